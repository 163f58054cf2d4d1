import Foundation
import TapedeckCore
import TapedeckHTTP
import XCTest

/// The event-loop server: responses given later, clients that leave, and stopping
/// with requests still waiting.
final class HTTPServerTests: XCTestCase {
    func testLateResponseReachesClient() throws {
        let handler = LaterHandler { request, responder in
            DispatchQueue.global().asyncAfter(deadline: .now() + 0.1) {
                responder.respond(.text(200, "later \(request.path)"))
            }
        }
        let server = try makeServer(handler)
        defer { server.stop() }

        let reply = try RawHTTP.send(Data("GET /held HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8), to: url(of: server))
        XCTAssertEqual(reply.status, 200)
        XCTAssertEqual(reply.body, "later /held\n")
    }

    func testEarlyResponseIsSentAtOnce() throws {
        let server = try makeServer(LaterHandler { _, responder in responder.respond(.text(201, "now")) })
        defer { server.stop() }

        let reply = try RawHTTP.send(Data("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8), to: url(of: server))
        XCTAssertEqual(reply.status, 201)
    }

    func testAClientThatLeavesCancelsItsWaitingRequest() throws {
        let cancelled = expectation(description: "cancel handler ran")
        let server = try makeServer(LaterHandler { _, responder in
            responder.onCancel { cancelled.fulfill() }
        })
        defer { server.stop() }

        let descriptor = try openRequest(to: server)
        Thread.sleep(forTimeInterval: 0.2)
        close(descriptor)
        wait(for: [cancelled], timeout: 3)
    }

    func testStoppingTheServerCancelsAndClosesWaitingRequests() throws {
        let cancelled = expectation(description: "cancel handler ran")
        cancelled.expectedFulfillmentCount = 3
        let server = try makeServer(LaterHandler { _, responder in
            responder.onCancel { cancelled.fulfill() }
        })
        let descriptors = try (0..<3).map { _ in try openRequest(to: server) }
        defer { descriptors.forEach { close($0) } }
        Thread.sleep(forTimeInterval: 0.2)

        server.stop()
        wait(for: [cancelled], timeout: 3)
        for descriptor in descriptors {
            var byte: UInt8 = 0
            XCTAssertEqual(read(descriptor, &byte, 1), 0, "the connection is closed without a response")
        }
    }

    func testHeldRequestsDoNotTakeAThreadEach() throws {
        let server = try makeServer(LaterHandler { _, _ in })
        defer { server.stop() }
        let before = try threadCount()

        let descriptors = try (0..<200).map { _ in try openRequest(to: server) }
        defer { descriptors.forEach { close($0) } }
        Thread.sleep(forTimeInterval: 0.5)

        XCTAssertLessThan(try threadCount() - before, 10, "200 held requests")
    }

    // MARK: - Helpers

    private func makeServer(_ handler: LaterHandler) throws -> HTTPServer {
        var configuration = HTTPServerConfiguration()
        configuration.threading = .eventLoop(threads: 2)
        return try HTTPServer(configuration: configuration, clock: MonotonicClock(), logger: Logger(label: "test", level: .warning, handler: DiscardingLogHandler()), handler: handler)
    }

    private func url(of server: HTTPServer) -> String {
        "http://127.0.0.1:\(server.port)"
    }

    /// Connects and sends one request, leaving the connection open.
    private func openRequest(to server: HTTPServer) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var seconds = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &seconds, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = server.port.bigEndian
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw PeerError("connect failed: \(String(cString: strerror(errno)))") }
        let request = Data("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        return descriptor
    }

    private func threadCount() throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = status.split(separator: "\n").first { $0.hasPrefix("Threads:") } ?? ""
        return Int(line.dropFirst("Threads:".count).trimmingCharacters(in: .whitespaces)) ?? 0
    }
}

/// Runs a closure for each request; responding is up to the closure.
private final class LaterHandler: HTTPRequestHandler, @unchecked Sendable {
    let body: (IncomingRequest, HTTPResponder) -> Void

    init(_ body: @escaping (IncomingRequest, HTTPResponder) -> Void) {
        self.body = body
    }

    func handle(_ request: IncomingRequest, responder: HTTPResponder) {
        body(request, responder)
    }
}
