import Foundation
import TapedeckCassette
import TapedeckCore
import TapedeckReplay
import XCTest

/// REST logins recorded from vcsim's `/rest` API and replayed: replay hands out a
/// session id of its own and maps requests that carry it to the recorded session.
final class RestSessionTests: DirectoryTestCase {
    func testRestLoginMapsToRecordedSession() throws {
        let cassette = try recordRestSession()

        let replayer = try Replayer.start(cassette.path) { $0.latency = .none }
        let login = try restLogin(to: replayer.url, password: "not-checked-by-replay")
        XCTAssertEqual(login.status, 200, login.text)
        XCTAssertEqual(try sessionID(in: login), "tapedeck-replay-1")

        let byHeader = try restGet(categoryPath, from: replayer.url, header: "vmware-api-session-id: tapedeck-replay-1")
        XCTAssertEqual(byHeader.status, 200, byHeader.text)
        let byCookie = try restGet(categoryPath, from: replayer.url, header: "Cookie: vmware-api-session-id=tapedeck-replay-1")
        XCTAssertEqual(byCookie.status, 200, byCookie.text)

        let report = replayer.stop()
        XCTAssertEqual(report.misses, [])
        let reads = report.assignments.filter { $0.request.contains(categoryPath) }
        XCTAssertEqual(reads.count, 2)
        XCTAssertEqual(reads.map(\.session), ["session-1", "session-1"])
    }

    func testRecordedRestSessionIDIsRedacted() throws {
        let cassette = try recordRestSession()
        var exchanges: [Exchange] = []
        try CassetteReader(path: cassette.path).forEach { exchanges.append($0) }
        let text = try exchanges.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }.joined()
        XCTAssertTrue(text.contains("redacted-session-1"))
        XCTAssertFalse(text.contains(recordedSessionID ?? "missing"), "the live session id is in the cassette")
    }

    // MARK: - Helpers

    private let categoryPath = "/rest/com/vmware/cis/tagging/category"
    private var recordedSessionID: String?

    /// Records a REST login and one read through `tapedeck record` in front of vcsim.
    private func recordRestSession() throws -> URL {
        let vcsim = try VCSim(directory: directory)
        let cassette = directory.appendingPathComponent("rest.cassette")
        let recorder = try RecorderProcess(upstream: vcsim.origin, cassette: cassette, directory: directory)

        let login = try restLogin(to: recorder.url, password: vcsim.password)
        XCTAssertEqual(login.status, 200, login.text)
        let session = try sessionID(in: login)
        recordedSessionID = session
        let read = try restGet(categoryPath, from: recorder.url, header: "vmware-api-session-id: \(session)")
        XCTAssertEqual(read.status, 200, read.text)

        XCTAssertEqual(try recorder.stop(), 0)
        return cassette
    }

    private func restLogin(to base: String, password: String) throws -> RawHTTP.Reply {
        let credentials = Data("admin:\(password)".utf8).base64EncodedString()
        let request = "POST /rest/com/vmware/cis/session HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic \(credentials)\r\n"
            + "Content-Length: 0\r\nConnection: close\r\n\r\n"
        return try RawHTTP.send(Data(request.utf8), to: base)
    }

    private func restGet(_ path: String, from base: String, header: String) throws -> RawHTTP.Reply {
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\(header)\r\nConnection: close\r\n\r\n"
        return try RawHTTP.send(Data(request.utf8), to: base)
    }

    private func sessionID(in reply: RawHTTP.Reply) throws -> String {
        let object = try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any]
        return try XCTUnwrap(object?["value"] as? String, reply.text)
    }
}
