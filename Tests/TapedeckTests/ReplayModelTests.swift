import Foundation
import Synchronization
import TapedeckCore
import XCTest

@testable import TapedeckCassette
@testable import TapedeckReplay

/// The property collector model's faults and timing, and replay's latency and
/// misses, driven over HTTP like a client.
final class ReplayModelTests: XCTestCase {
    private var replayer: Replayer!

    override func setUpWithError() throws {
        replayer = try Replayer.start(ShippedCassette.perCall.path) { $0.latency = .none }
    }

    override func tearDownWithError() throws {
        replayer.stop()
    }

    private func call(_ operation: String, this: String = "<_this type=\"PropertyCollector\">propertyCollector</_this>", _ arguments: String = "") throws -> RawHTTP.Reply {
        try RawHTTP.soap(Fixtures.envelope("<\(operation) xmlns=\"urn:vim25\">\(this)\(arguments)</\(operation)>"), to: replayer.url)
    }

    private func version(in reply: RawHTTP.Reply) -> String? {
        guard let start = reply.body.range(of: "<version>"), let end = reply.body.range(of: "</version>") else { return nil }
        return String(reply.body[start.upperBound..<end.lowerBound])
    }

    private let taskFilter = "<spec><propSet><type>Task</type><pathSet>info.state</pathSet></propSet><objectSet><obj type=\"Task\">task-68</obj></objectSet></spec><partialUpdates>false</partialUpdates>"

    func testFilterReportsRecordedTaskState() throws {
        let filter = try call("CreateFilter", taskFilter)
        XCTAssertEqual(filter.status, 200, filter.body)
        let first = try call("WaitForUpdatesEx", "<version></version>")
        XCTAssertEqual(first.status, 200)
        XCTAssertTrue(first.body.contains("<kind>enter</kind><obj type=\"Task\">task-68</obj>"), first.body)
        XCTAssertTrue(first.body.contains("<name>info.state</name><op>assign</op><val xsi:type=\"TaskInfoState\">success</val>"), first.body)
    }

    func testUnknownVersionIsInvalidCollectorVersion() throws {
        let reply = try call("WaitForUpdatesEx", "<version>bogus-7</version>")
        XCTAssertEqual(reply.status, 500)
        XCTAssertTrue(reply.body.contains("xsi:type=\"InvalidCollectorVersion\""), reply.body)
    }

    func testUnknownCollectorIsManagedObjectNotFound() throws {
        let reply = try call("WaitForUpdatesEx", this: "<_this type=\"PropertyCollector\">session[x]collector-999</_this>", "<version></version>")
        XCTAssertEqual(reply.status, 500)
        XCTAssertTrue(reply.body.contains("xsi:type=\"ManagedObjectNotFound\""), reply.body)
        XCTAssertTrue(reply.body.contains("<obj type=\"PropertyCollector\">session[x]collector-999</obj>"), reply.body)
    }

    func testFilterWithoutObjectsIsInvalidArgument() throws {
        let reply = try call("CreateFilter", "<spec><propSet><type>Task</type><all>true</all></propSet></spec><partialUpdates>false</partialUpdates>")
        XCTAssertEqual(reply.status, 500)
        XCTAssertTrue(reply.body.contains("xsi:type=\"InvalidArgument\""), reply.body)
        XCTAssertTrue(reply.body.contains("<invalidProperty>spec</invalidProperty>"), reply.body)
    }

    func testMaxWaitSecondsReturnsNoUpdateSet() throws {
        XCTAssertEqual(try call("CreateFilter", taskFilter).status, 200)
        let version = try XCTUnwrap(version(in: try call("WaitForUpdatesEx", "<version></version>")))
        let started = Date()
        let reply = try call("WaitForUpdatesEx", "<version>\(version)</version><options><maxWaitSeconds>1</maxWaitSeconds></options>")
        let waited = Date().timeIntervalSince(started)
        XCTAssertEqual(reply.status, 200)
        XCTAssertFalse(reply.body.contains("<returnval>"), reply.body)
        XCTAssertGreaterThanOrEqual(waited, 1.0)
        XCTAssertLessThan(waited, 2.0)

        let check = try call("CheckForUpdates", "<version>\(version)</version>")
        XCTAssertEqual(check.status, 200)
        XCTAssertFalse(check.body.contains("<returnval>"), check.body)
    }

    func testCancelWaitForUpdatesFailsTheWait() throws {
        XCTAssertEqual(try call("CreateFilter", taskFilter).status, 200)
        let version = try XCTUnwrap(version(in: try call("WaitForUpdatesEx", "<version></version>")))
        let done = DispatchSemaphore(value: 0)
        let url = replayer.url
        let request = Fixtures.envelope(
            "<WaitForUpdatesEx xmlns=\"urn:vim25\"><_this type=\"PropertyCollector\">propertyCollector</_this><version>\(version)</version></WaitForUpdatesEx>")
        nonisolated(unsafe) var waitReply: RawHTTP.Reply?
        Thread.detachNewThread {
            waitReply = try? RawHTTP.soap(request, to: url)
            done.signal()
        }
        Thread.sleep(forTimeInterval: 0.3)
        XCTAssertEqual(try call("CancelWaitForUpdates").status, 200)
        XCTAssertEqual(done.wait(timeout: .now() + 5), .success)
        XCTAssertEqual(waitReply?.status, 500)
        XCTAssertTrue(waitReply?.body.contains("xsi:type=\"RequestCanceled\"") ?? false, waitReply?.body ?? "")
    }

    func testMissNamesClosestRequestAndField() throws {
        let config = "<config><name>not-recorded</name><guestId>otherGuest</guestId><files><vmPathName>[LocalDS_0]</vmPathName></files><numCPUs>1</numCPUs><memoryMB>32</memoryMB></config><pool type=\"ResourcePool\">resgroup-26</pool>"
        let reply = try call("CreateVM_Task", this: "<_this type=\"Folder\">folder-3</_this>", config)
        XCTAssertEqual(reply.status, 500)
        XCTAssertTrue(reply.body.contains("no recorded response for CreateVM_Task on Folder:folder-3"), reply.body)
        XCTAssertTrue(reply.body.contains("closest recorded request is #"), reply.body)
        XCTAssertTrue(reply.body.contains("which differs at config/name: recorded 'tapedeck-vm-0"), reply.body)
        XCTAssertTrue(reply.body.contains("got 'not-recorded'"), reply.body)
        XCTAssertEqual(replayer.currentReport.misses.count, 1)
    }

    func testMissPrefersMostSimilarValue() throws {
        let config = "<config><name>other-vm-007</name><guestId>otherGuest</guestId><files><vmPathName>[LocalDS_0]</vmPathName></files><numCPUs>1</numCPUs><memoryMB>32</memoryMB></config><pool type=\"ResourcePool\">resgroup-26</pool>"
        let reply = try call("CreateVM_Task", this: "<_this type=\"Folder\">folder-3</_this>", config)
        XCTAssertTrue(reply.body.contains("recorded 'tapedeck-vm-007', got 'other-vm-007'"), reply.body)
    }

    func testLikenessCountsSharedEnds() {
        XCTAssertEqual(Matcher.likeness("tapedeck-vm-000", "wrong-vm-000"), 7)
        XCTAssertEqual(Matcher.likeness("tapedeck-vm-003", "wrong-vm-000"), 0)
        XCTAssertEqual(Matcher.likeness("abc", "abc"), 6)
    }
}

final class ReplayLatencyTests: XCTestCase {
    private func timed(_ body: () throws -> Void) rethrows -> TimeInterval {
        let started = Date()
        try body()
        return Date().timeIntervalSince(started)
    }

    func testFixedLatencyDelaysEveryCall() throws {
        let replayer = try Replayer.start(ShippedCassette.perCall.path) { $0.latency = .fixed(.milliseconds(50)) }
        defer { replayer.stop() }
        let fromCassette = try timed { XCTAssertEqual(try RawHTTP.soap(RawHTTP.retrieveServiceContent, to: replayer.url).status, 200) }
        let fromModel = try timed {
            let reply = try RawHTTP.soap(Fixtures.envelope("<CreatePropertyCollector xmlns=\"urn:vim25\"><_this type=\"PropertyCollector\">propertyCollector</_this></CreatePropertyCollector>"), to: replayer.url)
            XCTAssertEqual(reply.status, 200)
        }
        XCTAssertGreaterThanOrEqual(fromCassette, 0.050)
        XCTAssertGreaterThanOrEqual(fromModel, 0.050)
    }

    func testRecordedLatencyReproducesServerTime() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("slow.cassette").path
        let writer = try CassetteWriter(path: path, header: CassetteHeader(tool: "test", upstream: "http://127.0.0.1:1"))
        var exchange = Fixtures.exchange(
            sequence: 1, operation: "RetrieveServiceContent", requestBody: RawHTTP.retrieveServiceContent,
            responseBody: Fixtures.envelope("<RetrieveServiceContentResponse xmlns=\"urn:vim25\"><returnval/></RetrieveServiceContentResponse>"))
        exchange.timing = Timing(requestStart: 0, requestEnd: 1_000_000, responseStart: 301_000_000, responseEnd: 302_000_000)
        try writer.append(exchange)
        try writer.close()

        let recorded = try Replayer.start(path) { $0.latency = .recorded }
        let slow = try timed { XCTAssertEqual(try RawHTTP.soap(RawHTTP.retrieveServiceContent, to: recorded.url).status, 200) }
        recorded.stop()
        let none = try Replayer.start(path) { $0.latency = .none }
        let fast = try timed { XCTAssertEqual(try RawHTTP.soap(RawHTTP.retrieveServiceContent, to: none.url).status, 200) }
        none.stop()

        XCTAssertGreaterThanOrEqual(slow, 0.300, "the recorded 300 ms server time")
        XCTAssertLessThan(slow, 0.600)
        XCTAssertLessThan(fast, 0.150)
    }

    func testJitterIsFixedBySeed() {
        let jitter = Duration.milliseconds(40)
        let first = (0..<20).map { Replayer.delay(policy: .none, recordedServerTime: 0, elapsed: 0, jitter: jitter, seed: 7, identity: "call-\($0)") }
        let again = (0..<20).map { Replayer.delay(policy: .none, recordedServerTime: 0, elapsed: 0, jitter: jitter, seed: 7, identity: "call-\($0)") }
        let other = (0..<20).map { Replayer.delay(policy: .none, recordedServerTime: 0, elapsed: 0, jitter: jitter, seed: 8, identity: "call-\($0)") }
        XCTAssertEqual(first, again)
        XCTAssertNotEqual(first, other)
        XCTAssertTrue(first.allSatisfy { $0 >= 0 && $0 < 40_000_000 })
        XCTAssertEqual(Replayer.delay(policy: .scale(2), recordedServerTime: 5_000_000, elapsed: 0, jitter: .zero, seed: 0, identity: "x"), 10_000_000)
        XCTAssertEqual(Replayer.delay(policy: .fixed(.milliseconds(50)), recordedServerTime: 0, elapsed: 20_000_000, jitter: .zero, seed: 0, identity: "x"), 30_000_000)
    }

    func testLatencyPolicyParsingNamesTheForms() throws {
        XCTAssertEqual(try LatencyPolicy(parsing: "fixed:50ms"), .fixed(.milliseconds(50)))
        XCTAssertEqual(try LatencyPolicy(parsing: "scale:0.5"), .scale(0.5))
        XCTAssertThrowsError(try LatencyPolicy(parsing: "slow")) { error in
            XCTAssertEqual("\(error)", "invalid latency 'slow'; use recorded, none, fixed:DURATION (such as fixed:50ms) or scale:FACTOR (such as scale:0.5)")
        }
    }
}

final class ReplayCassetteErrorTests: XCTestCase {
    private func replay(_ path: String) throws -> (status: Int32, error: String) {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = try ManagedProcess(Paths.tapedeck, ["replay", "--cassette", path], directory: directory)
        let status = try process.waitForExit(timeout: 30)
        return (status, process.standardError)
    }

    func testMissingCassetteExitsTwoNamingThePath() throws {
        let result = try replay("/tmp/tapedeck-missing.cassette")
        XCTAssertEqual(result.status, 2)
        XCTAssertEqual(result.error, "Error: cassette '/tmp/tapedeck-missing.cassette' not found; check the path\n")
    }

    func testWrongVersionAndCorruptCassettesExitTwo() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let future = directory.appendingPathComponent("future.cassette")
        let compressor = try ZstdCompressor(level: 3)
        let header = #"{"format":"tapedeck-cassette","version":3,"tool":"t","upstream":"u","started":"s"}"# + "\n"
        try compressor.compress(Data(header.utf8)).write(to: future)
        let versioned = try replay(future.path)
        XCTAssertEqual(versioned.status, 2)
        XCTAssertTrue(versioned.error.contains("format version 3"), versioned.error)

        var bytes = try Data(contentsOf: URL(fileURLWithPath: ShippedCassette.perCall.path))
        bytes[bytes.count / 2] ^= 0xFF
        let corrupt = directory.appendingPathComponent("corrupt.cassette")
        try bytes.write(to: corrupt)
        let damaged = try replay(corrupt.path)
        XCTAssertEqual(damaged.status, 2)
        XCTAssertTrue(damaged.error.contains("is corrupt at or after compressed byte"), damaged.error)
    }

    func testTruncatedCassetteReplaysItsCompleteExchanges() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: ShippedCassette.perCall.path))
        let cut = directory.appendingPathComponent("cut.cassette")
        try bytes.prefix(bytes.count * 2 / 3).write(to: cut)

        let capture = CapturingLogHandler()
        let replayer = try Replayer.start(cut.path, logHandler: capture)
        defer { replayer.stop() }
        XCTAssertEqual(try RawHTTP.soap(RawHTTP.retrieveServiceContent, to: replayer.url).status, 200)
        XCTAssertTrue(capture.records.contains { $0.message == "cassette is truncated; replaying the complete exchanges" })
    }
}

final class TraversalFilterTests: XCTestCase {
    /// A ContainerView filter as govmomi's view package builds it: the view is
    /// skipped and a traversal spec leads to the VMs.
    private let spec = """
        <spec><propSet><type>VirtualMachine</type><pathSet>runtime.powerState</pathSet></propSet>\
        <objectSet><obj type="ContainerView">session[x]view-1</obj><skip>true</skip>\
        <selectSet xsi:type="TraversalSpec"><name>traverseEntities</name><type>ContainerView</type><path>view</path><skip>false</skip></selectSet></objectSet></spec>\
        <partialUpdates>false</partialUpdates>
        """

    func testTraversalFilterWatchesRecordedObjects() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("view.cassette").path
        let writer = try CassetteWriter(path: path, header: CassetteHeader(tool: "test", upstream: "http://127.0.0.1:1"))
        let createFilter = "<CreateFilter xmlns=\"urn:vim25\"><_this type=\"PropertyCollector\">propertyCollector</_this>\(spec)</CreateFilter>"
        try writer.append(Fixtures.exchange(
            sequence: 1, operation: "CreateFilter", requestBody: Fixtures.envelope(createFilter),
            responseBody: Fixtures.envelope("<CreateFilterResponse xmlns=\"urn:vim25\"><returnval type=\"PropertyFilter\">recorded-filter</returnval></CreateFilterResponse>")))
        try writer.append(Fixtures.exchange(
            sequence: 2, operation: "WaitForUpdatesEx",
            requestBody: Fixtures.envelope("<WaitForUpdatesEx xmlns=\"urn:vim25\"><_this type=\"PropertyCollector\">propertyCollector</_this><version></version></WaitForUpdatesEx>"),
            responseBody: Fixtures.envelope("""
                <WaitForUpdatesExResponse xmlns="urn:vim25"><returnval><version>1</version><filterSet><filter type="PropertyFilter">recorded-filter</filter>\
                <objectSet><kind>enter</kind><obj type="VirtualMachine">vm-7</obj><changeSet><name>runtime.powerState</name><op>assign</op>\
                <val xsi:type="VirtualMachinePowerState">poweredOn</val></changeSet></objectSet></filterSet></returnval></WaitForUpdatesExResponse>
                """)))
        try writer.close()

        let replayer = try Replayer.start(path) { $0.latency = .none }
        defer { replayer.stop() }
        XCTAssertEqual(try RawHTTP.soap(Fixtures.envelope(createFilter), to: replayer.url).status, 200)
        let reply = try RawHTTP.soap(Fixtures.envelope(
            "<WaitForUpdatesEx xmlns=\"urn:vim25\"><_this type=\"PropertyCollector\">propertyCollector</_this><version></version></WaitForUpdatesEx>"), to: replayer.url)
        XCTAssertEqual(reply.status, 200)
        XCTAssertTrue(reply.body.contains("<kind>enter</kind><obj type=\"VirtualMachine\">vm-7</obj>"), reply.body)
        XCTAssertTrue(reply.body.contains("<val xsi:type=\"VirtualMachinePowerState\">poweredOn</val>"), reply.body)
        XCTAssertFalse(reply.body.contains("ContainerView"), "the skipped view is not reported")
    }
}

final class VirtualTimeTests: XCTestCase {
    func testTimersFireInOrderWhenAdvanced() {
        let time = VirtualTime()
        let fired = Mutex<[Int]>([])
        time.schedule(at: 30) { fired.withLock { $0.append(3) } }
        time.schedule(at: 10) { fired.withLock { $0.append(1) } }
        time.schedule(at: 10) { fired.withLock { $0.append(2) } }
        XCTAssertEqual(time.advance(), 10)
        XCTAssertEqual(fired.withLock { $0 }, [1, 2])
        XCTAssertEqual(time.now(), 10)
        XCTAssertEqual(time.advance(), 30)
        XCTAssertEqual(fired.withLock { $0 }, [1, 2, 3])
        XCTAssertNil(time.advance())
    }

    func testLongMaxWaitPassesOnVirtualClockUnderScheduling() throws {
        let replayer = try Replayer.start(ShippedCassette.perCall.path) { configuration in
            configuration.latency = .none
            configuration.scheduling = SchedulingOptions(strategy: .random(seed: 1))
        }
        defer { replayer.stop() }
        let filter = "<spec><propSet><type>Task</type><pathSet>info.state</pathSet></propSet><objectSet><obj type=\"Task\">task-68</obj></objectSet></spec><partialUpdates>false</partialUpdates>"
        func call(_ body: String) throws -> RawHTTP.Reply {
            try RawHTTP.soap(Fixtures.envelope(body), to: replayer.url)
        }
        XCTAssertEqual(try call("<CreateFilter xmlns=\"urn:vim25\"><_this type=\"PropertyCollector\">propertyCollector</_this>\(filter)</CreateFilter>").status, 200)
        let first = try call("<WaitForUpdatesEx xmlns=\"urn:vim25\"><_this type=\"PropertyCollector\">propertyCollector</_this><version></version></WaitForUpdatesEx>")
        let version = try XCTUnwrap(first.body.range(of: "<version>").map { first.body[$0.upperBound...].prefix { $0 != "<" } })

        let started = Date()
        let reply = try call("<WaitForUpdatesEx xmlns=\"urn:vim25\"><_this type=\"PropertyCollector\">propertyCollector</_this><version>\(version)</version><options><maxWaitSeconds>600</maxWaitSeconds></options></WaitForUpdatesEx>")
        XCTAssertEqual(reply.status, 200)
        XCTAssertFalse(reply.body.contains("<returnval>"), "600 s passed on the virtual clock: \(reply.body)")
        XCTAssertLessThan(Date().timeIntervalSince(started), 5, "no wall-clock wait")
    }
}
