import Foundation
import TapedeckCore
import TapedeckHTTP
import XCTest

@testable import TapedeckCassette

/// `tapedeck record` between real clients (govmomi 0.24.2, pyvmomi) and vcsim, all
/// on loopback ports that the tests pick.
final class RecordIntegrationTests: DirectoryTestCase {
    private func cassettePath(_ name: String = "session") -> URL {
        directory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(6)).cassette")
    }

    private func readCassette(_ url: URL) throws -> (exchanges: [Exchange], truncation: Truncation?) {
        let reader = try CassetteReader(path: url.path)
        var exchanges: [Exchange] = []
        try reader.forEach { exchanges.append($0) }
        return (exchanges, reader.truncation)
    }

    private func runTapedeck(_ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        let process = try ManagedProcess(Paths.tapedeck, arguments, directory: directory)
        let status = try process.waitForExit(timeout: 60)
        return (status, process.standardOutput, process.standardError)
    }

    // MARK: - Faithful recording

    func testPerCallWorkloadThroughProxyMatchesDirect() throws {
        let vcsim = try VCSim(directory: directory)
        let direct = try Workloads.govmomi(url: vcsim.sdkURL, password: vcsim.password, wait: "percall", directory: directory)
        XCTAssertEqual(direct.status, 0, direct.standardError)

        let recorder = try RecorderProcess(upstream: vcsim.origin, cassette: cassettePath(), directory: directory)
        let proxied = try Workloads.govmomi(url: recorder.sdkURL, password: vcsim.password, wait: "percall", directory: directory)
        XCTAssertEqual(try recorder.stop(), 0, recorder.process.standardError)

        XCTAssertEqual(proxied.status, direct.status, proxied.standardError)
        XCTAssertEqual(proxied.result.completed, 20)
        XCTAssertEqual(proxied.result.blocked, direct.result.blocked)
        XCTAssertEqual(proxied.result.errors, direct.result.errors)

        let (exchanges, truncation) = try readCassette(recorder.cassette)
        XCTAssertNil(truncation)
        if let roundTrips = proxied.result.roundTrips {
            XCTAssertEqual(exchanges.count, roundTrips, "every round trip the client made is in the cassette")
        }
        XCTAssertEqual(exchanges.filter { $0.soap?.operation == "CreateVM_Task" }.count, 20)
        XCTAssertEqual(exchanges.filter { $0.unanswered != nil }.count, 0)
        XCTAssertEqual(Set(exchanges.map(\.sequence)).count, exchanges.count, "sequence numbers are unique")

        let inspect = try runTapedeck(["inspect", recorder.cassette.path, "--json"])
        XCTAssertEqual(inspect.status, 0, inspect.error)
        let summary = try JSONDecoder().decode(CassetteSummary.self, from: Data(inspect.output.utf8))
        XCTAssertEqual(summary.exchanges, exchanges.count)
        XCTAssertEqual(summary.tasksCreated, 20)
        XCTAssertEqual(summary.operations["CreateVM_Task"]?.calls, 20)
        XCTAssertEqual(summary.operations["Login"]?.calls, 1)
        XCTAssertEqual(summary.sessions, 1)
        XCTAssertEqual(summary.unanswered, 0)
    }

    func testPerCallWorkloadThroughHTTPSUpstream() throws {
        let vcsim = try VCSim(tls: true, directory: directory)
        let certificate = try XCTUnwrap(vcsim.certificateFile)
        let recorder = try RecorderProcess(
            upstream: vcsim.origin, cassette: cassettePath(), arguments: ["--ca-file", certificate.path], directory: directory)
        let run = try Workloads.govmomi(url: recorder.sdkURL, password: vcsim.password, wait: "percall", directory: directory)
        XCTAssertEqual(try recorder.stop(), 0)

        XCTAssertEqual(run.status, 0, run.standardError)
        XCTAssertEqual(run.result, WorkloadResult(completed: 20, blocked: 0, errors: 0, roundTrips: run.result.roundTrips))
        let (exchanges, _) = try readCassette(recorder.cassette)
        XCTAssertEqual(exchanges.filter { $0.soap?.operation == "CreateVM_Task" }.count, 20)
        XCTAssertTrue(exchanges.allSatisfy { $0.response?.status != nil })
    }

    func testThumbprintPinsTheUpstreamCertificate() throws {
        let vcsim = try VCSim(tls: true, directory: directory)
        let pem = try String(contentsOf: try XCTUnwrap(vcsim.certificateFile), encoding: .utf8)
        let thumbprint = Thumbprint.sha256(try XCTUnwrap(Thumbprint.derFromPEM(pem)))

        let pinned = try RecorderProcess(
            upstream: vcsim.origin, cassette: cassettePath("pinned"), arguments: ["--thumbprint", thumbprint], directory: directory)
        XCTAssertEqual(try RawHTTP.soap(RawHTTP.retrieveServiceContent, to: pinned.url).status, 200)
        XCTAssertEqual(try pinned.stop(), 0)

        let wrong = String(repeating: "AB:", count: 31) + "AB"
        let mismatched = try RecorderProcess(
            upstream: vcsim.origin, cassette: cassettePath("mismatched"), arguments: ["--thumbprint", wrong], directory: directory)
        let reply = try RawHTTP.soap(RawHTTP.retrieveServiceContent, to: mismatched.url)
        XCTAssertEqual(reply.status, 502)
        XCTAssertTrue(reply.body.contains("does not match --thumbprint"), reply.body)
        XCTAssertEqual(try mismatched.stop(), 0)

        let (exchanges, _) = try readCassette(mismatched.cassette)
        XCTAssertEqual(exchanges.first?.unanswered?.reason, .upstreamFailed)
        XCTAssertNil(exchanges.first?.response)
    }

    func testSharedCollectorBlockedWaitsAreUnanswered() throws {
        // About 1 run in 140 against vcsim blocks no wait at all, because the
        // count depends on how the first waiters' calls interleave. One retry
        // keeps that from failing the suite.
        var recorder: RecorderProcess!
        var run: WorkloadRun!
        for _ in 1...2 {
            let vcsim = try VCSim(directory: directory)
            recorder = try RecorderProcess(upstream: vcsim.origin, cassette: cassettePath(), directory: directory)
            run = try Workloads.govmomi(
                url: recorder.sdkURL, password: vcsim.password, wait: "shared", waitTimeout: "3s", directory: directory)
            XCTAssertEqual(try recorder.stop(), 0)
            if run.result.blocked > 0 { break }
        }

        XCTAssertEqual(run.status, 1, "the shared-collector pattern blocks waits against vcsim")
        XCTAssertGreaterThan(run.result.blocked, 0)
        let (exchanges, truncation) = try readCassette(recorder.cassette)
        XCTAssertNil(truncation)
        let unanswered = exchanges.filter { $0.unanswered != nil }
        XCTAssertEqual(unanswered.count, run.result.blocked, "one unanswered long poll per blocked wait")
        for exchange in unanswered {
            XCTAssertEqual(exchange.soap?.operation, "WaitForUpdatesEx")
            XCTAssertEqual(exchange.unanswered?.reason, .clientDisconnected)
            XCTAssertNil(exchange.response)
            let waited = Double(exchange.unanswered!.at - exchange.timing.requestEnd) / 1e9
            XCTAssertGreaterThan(waited, 1.0, "the wait was held until the client gave up")
        }
    }

    func testPyvmomiWorkloadPassesThroughProxy() throws {
        let vcsim = try VCSim(directory: directory)
        let recorder = try RecorderProcess(upstream: vcsim.origin, cassette: cassettePath(), directory: directory)
        let run = try Workloads.pyvmomi(url: recorder.sdkURL, password: vcsim.password, directory: directory)
        XCTAssertEqual(try recorder.stop(), 0)

        XCTAssertEqual(run.status, 0, run.standardError)
        XCTAssertEqual(run.result.blocked, 0)
        XCTAssertEqual(run.result.errors, 0)
        let (exchanges, _) = try readCassette(recorder.cassette)
        let operations = Set(exchanges.compactMap { $0.soap?.operation })
        for expected in ["Login", "WaitForUpdates", "PowerOnVM_Task", "PowerOffVM_Task", "Destroy_Task"] {
            XCTAssertTrue(operations.contains(expected), "\(expected) missing from \(operations.sorted())")
        }
    }

    func testSelfSignedListenerServesGovmomi() throws {
        let vcsim = try VCSim(directory: directory)
        let recorder = try RecorderProcess(
            upstream: vcsim.origin, cassette: cassettePath(), arguments: ["--tls-self-signed"], directory: directory)
        XCTAssertTrue(recorder.url.hasPrefix("https://127.0.0.1:"), recorder.url)
        let run = try Workloads.govmomi(
            url: recorder.sdkURL, password: vcsim.password, wait: "percall", vms: 5, concurrency: 5,
            extra: ["-insecure"], directory: directory)
        XCTAssertEqual(try recorder.stop(), 0)
        XCTAssertEqual(run.status, 0, run.standardError)
        XCTAssertEqual(run.result.completed, 5)
    }

    // MARK: - Crashes and shutdown

    func testKilledRecorderLeavesReadableCassettes() throws {
        let vcsim = try VCSim(directory: directory)
        var counts: [Int] = []
        for attempt in 0..<20 {
            let recorder = try RecorderProcess(upstream: vcsim.origin, cassette: cassettePath("killed-\(attempt)"), directory: directory)
            let workload = try ManagedProcess(
                try Paths.peer("govmomi-workload"),
                ["-url", recorder.sdkURL, "-user", "admin", "-wait", "percall", "-vms", "20", "-concurrency", "10", "-power-on"],
                environment: ["TAPEDECK_PASSWORD": vcsim.password], directory: directory)
            let delay = Double.random(in: 0.0...0.25)
            Thread.sleep(forTimeInterval: delay)
            recorder.process.signal(SIGKILL)
            _ = try recorder.process.waitForExit(timeout: 10)
            workload.signal(SIGKILL)

            let (exchanges, _) = try readCassette(recorder.cassette)
            XCTAssertEqual(Set(exchanges.map(\.sequence)).count, exchanges.count, "attempt \(attempt) after \(delay) s")
            counts.append(exchanges.count)
        }
        XCTAssertGreaterThan(counts.max() ?? 0, 0, "some kills happened mid-session: \(counts)")
    }

    func testTerminatedRecorderRecordsPendingLongPolls() throws {
        let vcsim = try VCSim(directory: directory)
        let recorder = try RecorderProcess(
            upstream: vcsim.origin, cassette: cassettePath(), arguments: ["--grace", "0.5"], directory: directory)
        let workload = try ManagedProcess(
            try Paths.peer("govmomi-workload"),
            ["-url", recorder.sdkURL, "-user", "admin", "-wait", "shared", "-vms", "20", "-concurrency", "10", "-wait-timeout", "60s"],
            environment: ["TAPEDECK_PASSWORD": vcsim.password], directory: directory)
        // The waits that complete do so within a second; the rest stay blocked.
        Thread.sleep(forTimeInterval: 3)
        let started = Date()
        XCTAssertEqual(try recorder.stop(timeout: 15), 0, recorder.process.standardError)
        XCTAssertLessThan(Date().timeIntervalSince(started), 8, "grace period plus abort stays short")
        workload.signal(SIGKILL)

        let (exchanges, truncation) = try readCassette(recorder.cassette)
        XCTAssertNil(truncation, "a stopped recorder closes its cassette")
        // Blocked long polls are cut off; requests that a client sends after that on
        // a kept-alive connection are refused and recorded the same way.
        let stopped = exchanges.filter { $0.unanswered?.reason == .recorderStopped }
        XCTAssertGreaterThan(stopped.filter { $0.soap?.operation == "WaitForUpdatesEx" }.count, 0)
        XCTAssertTrue(stopped.allSatisfy { $0.response == nil })
    }

    // MARK: - Secrets

    func testNoSecretReachesCassetteOrLog() throws {
        let vcsim = try VCSim(directory: directory)
        let recorder = try RecorderProcess(
            upstream: vcsim.origin, cassette: cassettePath(), arguments: ["--log-level", "debug"], directory: directory)

        let login = try RawHTTP.soap(RawHTTP.login(user: vcsim.user, password: vcsim.password), to: recorder.url)
        XCTAssertEqual(login.status, 200, login.text)
        let setCookie = try XCTUnwrap(login.header("Set-Cookie"))
        let cookiePair = String(setCookie.split(separator: ";").first!)
        let cookieValue = String(cookiePair.split(separator: "=", maxSplits: 1)[1]).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        XCTAssertEqual(try RawHTTP.soap(RawHTTP.retrieveServiceContent, to: recorder.url, cookie: cookiePair).status, 200)
        let run = try Workloads.govmomi(url: recorder.sdkURL, password: vcsim.password, wait: "percall", vms: 3, concurrency: 3, directory: directory)
        XCTAssertEqual(run.status, 0, run.standardError)
        XCTAssertEqual(try recorder.stop(), 0)

        let raw = try Data(contentsOf: recorder.cassette)
        let decoded = String(decoding: try ZstdDecompressor().decompress(raw), as: UTF8.self)
        let log = recorder.process.standardError + recorder.process.standardOutput
        XCTAssertTrue(decoded.contains("redacted-password-1"))
        for secret in [vcsim.password, cookieValue] {
            XCTAssertFalse(decoded.contains(secret), "secret in decoded cassette")
            XCTAssertNil(raw.range(of: Data(secret.utf8)), "secret in cassette bytes")
            XCTAssertFalse(log.contains(secret), "secret in recorder log")
        }
        // The govmomi session's own cookie never reached the test, so check that
        // every cookie in the cassette is a placeholder.
        for line in decoded.split(separator: "\n") {
            for match in line.ranges(of: "vmware_soap_session=") {
                XCTAssertTrue(line[match.upperBound...].drop { $0 == "\"" || $0 == "\\" }.hasPrefix("redacted-session-"))
            }
        }

        // Collectors and filters that vcsim hands out embed the session key, in the
        // body and in the exchange's SOAP fields.
        for match in decoded.ranges(of: "session[") {
            XCTAssertTrue(decoded[match.upperBound...].hasPrefix("redacted-"), String(decoded[match.lowerBound...].prefix(60)))
        }

        let scan = try runTapedeck(["scan", recorder.cassette.path])
        XCTAssertEqual(scan.status, 0, scan.output)
    }

    func testScanFindsPlantedSecret() throws {
        let file = directory.appendingPathComponent("planted.cassette")
        let writer = try CassetteWriter(path: file.path, header: CassetteHeader(tool: "test", upstream: "http://127.0.0.1:1"))
        try writer.append(Fixtures.exchange(sequence: 1))
        try writer.append(Fixtures.exchange(
            sequence: 2, operation: "Login",
            requestBody: Fixtures.envelope("<Login xmlns=\"urn:vim25\"><userName>a</userName><password>\(Fixtures.distinctivePassword())</password></Login>"),
            requestHeaders: [Header("Cookie", "vmware_soap_session=\"planted-cookie-value\"")]))
        try writer.close()

        let scan = try runTapedeck(["scan", file.path])
        XCTAssertEqual(scan.status, 1)
        XCTAssertTrue(scan.output.contains("exchange #2: secret in request header Cookie (session)"), scan.output)
        XCTAssertTrue(scan.output.contains("exchange #2: secret in request body <password> (password)"), scan.output)
        XCTAssertFalse(scan.output.contains("exchange #1"), scan.output)
    }

    // MARK: - Bad input

    func testMalformedRequestsGetErrorsAndRecordingContinues() throws {
        let vcsim = try VCSim(directory: directory)
        let recorder = try RecorderProcess(
            upstream: vcsim.origin, cassette: cassettePath(), arguments: ["--max-body-bytes", "1024"], directory: directory)

        let malformed = try RawHTTP.send(Data("NOT AN HTTP REQUEST\r\n\r\n".utf8), to: recorder.url)
        XCTAssertEqual(malformed.status, 400, malformed.text)
        let badHeader = try RawHTTP.send(Data("GET /sdk HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n".utf8), to: recorder.url)
        XCTAssertEqual(badHeader.status, 400, badHeader.text)
        let badVersion = try RawHTTP.send(Data("GET /sdk HTTP/9.9\r\n\r\n".utf8), to: recorder.url)
        XCTAssertEqual(badVersion.status, 505, badVersion.text)

        let hugeHeader = "GET /sdk HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 200_000))\r\n\r\n"
        let oversized = try RawHTTP.send(Data(hugeHeader.utf8), to: recorder.url)
        XCTAssertEqual(oversized.status, 431, oversized.text.prefix(200).description)

        let notXML = try RawHTTP.soap("this is not XML", to: recorder.url)
        XCTAssertNotNil(notXML.status, "the upstream's own error reaches the client")

        let padded = RawHTTP.retrieveServiceContent.replacingOccurrences(
            of: "<soapenv:Body>", with: "<soapenv:Body><!-- \(String(repeating: "p", count: 4096)) -->")
        XCTAssertEqual(try RawHTTP.soap(padded, to: recorder.url).status, 200)

        var clientHello = Data([0x16, 0x03, 0x01, 0x00, 0x30, 0x01, 0x00, 0x00, 0x2C, 0x03, 0x03])
        clientHello.append(Data(repeating: 0x42, count: 44))
        let tls = try RawHTTP.send(clientHello, to: recorder.url, timeout: 5)
        XCTAssertTrue(tls.status == nil || tls.status == 400, tls.text)

        XCTAssertEqual(try RawHTTP.soap(RawHTTP.retrieveServiceContent, to: recorder.url).status, 200, "still serving")
        XCTAssertEqual(try recorder.stop(), 0)

        let (exchanges, truncation) = try readCassette(recorder.cassette)
        XCTAssertNil(truncation)
        XCTAssertTrue(exchanges.contains { $0.request.body == .omitted(size: Int64(padded.utf8.count)) }, "large body recorded as omitted")
        XCTAssertTrue(exchanges.contains { $0.request.body.text == "this is not XML" && $0.soap == nil })
        XCTAssertTrue(recorder.process.standardError.contains("HTTP connection error"), recorder.process.standardError)
    }

    func testUpstreamDownGivesClearErrorAndIsRecorded() throws {
        // A port that was free a moment ago: bind, read the port, close.
        let probe = try HTTPServer(configuration: HTTPServerConfiguration(), clock: MonotonicClock(), logger: .disabled, handler: NoHandler())
        let closedPort = probe.port
        probe.stop()

        let recorder = try RecorderProcess(upstream: "http://127.0.0.1:\(closedPort)", cassette: cassettePath(), directory: directory)
        let reply = try RawHTTP.soap(RawHTTP.retrieveServiceContent, to: recorder.url)
        XCTAssertEqual(reply.status, 502)
        XCTAssertTrue(reply.body.contains("upstream http://127.0.0.1:\(closedPort) failed for POST /sdk"), reply.body)
        XCTAssertEqual(try RawHTTP.soap(RawHTTP.retrieveServiceContent, to: recorder.url).status, 502, "still serving")
        XCTAssertEqual(try recorder.stop(), 0)

        XCTAssertTrue(recorder.process.standardError.contains("upstream request failed"), recorder.process.standardError)
        let (exchanges, _) = try readCassette(recorder.cassette)
        XCTAssertEqual(exchanges.count, 2)
        XCTAssertEqual(exchanges.first?.unanswered?.reason, .upstreamFailed)
        XCTAssertEqual(exchanges.first?.soap?.operation, "RetrieveServiceContent")
    }

    func testUnverifiedUpstreamCertificateIsRejected() throws {
        let vcsim = try VCSim(tls: true, directory: directory)
        let recorder = try RecorderProcess(upstream: vcsim.origin, cassette: cassettePath(), directory: directory)
        let reply = try RawHTTP.soap(RawHTTP.retrieveServiceContent, to: recorder.url)
        XCTAssertEqual(reply.status, 502)
        XCTAssertTrue(reply.body.lowercased().contains("certificate"), reply.body)
        XCTAssertEqual(try recorder.stop(), 0)
        let (exchanges, _) = try readCassette(recorder.cassette)
        XCTAssertEqual(exchanges.first?.unanswered?.reason, .upstreamFailed)
    }
}

private final class NoHandler: BlockingHTTPRequestHandler {
    func handle(_ request: IncomingRequest) -> OutgoingResponse? { nil }
}
