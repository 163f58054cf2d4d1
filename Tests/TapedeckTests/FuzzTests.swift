import Foundation
import TapedeckCore
import TapedeckFuzz
import TapedeckReplay
import XCTest

/// `tapedeck fuzz` driving the real govmomi client through scheduled replays.
final class FuzzTests: DirectoryTestCase {
    private func govmomi(wait: String, vms: Int, concurrency: Int) throws -> [String] {
        [try Paths.peer("govmomi-workload").path, "-url", "{url}/sdk", "-user", "admin", "-password", "not-checked",
         "-vms", "\(vms)", "-concurrency", "\(concurrency)", "-wait", wait, "-name-prefix", "tapedeck-vm", "-wait-timeout", "60s"]
    }

    private func runner(_ cassette: ShippedCassette, client: [String], configure: (inout FuzzConfiguration) -> Void) throws -> FuzzRunner {
        var configuration = FuzzConfiguration(cassettePath: cassette.path, client: client)
        configuration.scheduleDirectory = directory.appendingPathComponent("schedules").path
        configuration.hangTimeout = .seconds(1)
        configure(&configuration)
        return try FuzzRunner(configuration: configuration, logger: .disabled)
    }

    func testSharedCollectorWorkloadBlocksInNearlyEveryRun() throws {
        // Random order detects this bug most often (PCT lets one goroutine run
        // ahead, so flows overlap less); see the Fuzz section of docs/benchmarks.md.
        let fuzz = try runner(.shared, client: try govmomi(wait: "shared", vms: 20, concurrency: 10)) { configuration in
            configuration.runs = 40
            configuration.strategy = .random
        }
        let results = try fuzz.run { _ in }
        let blocked = results.filter { $0.report.count(.blockedForever) > 0 }
        XCTAssertGreaterThanOrEqual(blocked.count, 38, "95% of 40 runs: \(results.map { $0.report.count(.blockedForever) })")

        for result in blocked {
            XCTAssertTrue(result.stoppedEarly, "run \(result.run) waited for the client's own timeout")
            // The verdict comes within the settle window plus the hang timeout of the
            // client's last request, give or take the watcher's 20 ms poll and one
            // verification pass.
            XCTAssertLessThanOrEqual(result.verdictDelayMilliseconds ?? .infinity, 5 + 1_000 + 250, "run \(result.run)")
            XCTAssertNotNil(result.schedulePath)
        }
    }

    func testPCTFindsBlockedFlowWithThreeVMs() throws {
        let fuzz = try runner(.shared, client: try govmomi(wait: "shared", vms: 3, concurrency: 3)) { configuration in
            configuration.strategy = .pct
            configuration.depth = 3
            configuration.runs = 10
        }
        var found: FuzzRunResult?
        for index in fuzz.runIndices where found == nil {
            let result = try fuzz.runOnce(index: index)
            if result.report.count(.blockedForever) > 0 { found = result }
        }
        XCTAssertNotNil(found, "PCT found no blocked flow in 10 runs")
    }

    func testSavedScheduleReproducesItsVerdict() throws {
        let search = try runner(.shared, client: try govmomi(wait: "shared", vms: 3, concurrency: 3)) { configuration in
            configuration.strategy = .pct
            configuration.runs = 30
        }
        var failing: FuzzRunResult?
        for index in search.runIndices where failing == nil {
            let result = try search.runOnce(index: index)
            if result.report.count(.blockedForever) > 0 { failing = result }
        }
        let path = try XCTUnwrap(failing?.schedulePath)
        let schedule = try FuzzSchedule.load(path)
        XCTAssertFalse(schedule.steps.isEmpty)
        XCTAssertEqual(schedule.client, try govmomi(wait: "shared", vms: 3, concurrency: 3))

        let replay = try runner(.shared, client: schedule.client) { configuration in
            configuration.savedSchedule = schedule
            configuration.runs = 20
        }
        let results = try replay.run { _ in }
        let reproduced = results.filter { $0.report.count(.blockedForever) > 0 }.count
        XCTAssertGreaterThanOrEqual(reproduced, 19, "the saved schedule reproduced its verdict in \(reproduced) of 20 runs")
    }

    func testPerCallWorkloadNeverFailsUnderFuzzing() throws {
        let fuzz = try runner(.perCall, client: try govmomi(wait: "percall", vms: 20, concurrency: 10)) { configuration in
            configuration.runs = 200
            configuration.settle = .milliseconds(2)
        }
        let results = try fuzz.run { _ in }
        XCTAssertEqual(results.count, 200)
        for result in results {
            XCTAssertFalse(result.failed, "run \(result.run) seed \(result.seed): \(result.report.flows.filter { $0.kind != .completed })")
            XCTAssertEqual(result.report.count(.completed), 20, "run \(result.run)")
            XCTAssertEqual(result.clientStatus, 0, "run \(result.run)")
        }
    }

    func testClientThatSendsNothingIsAnError() throws {
        let process = try ManagedProcess(
            Paths.tapedeck,
            ["fuzz", "--cassette", ShippedCassette.perCall.path, "--runs", "2", "--", "/bin/false"], directory: directory)
        XCTAssertEqual(try process.waitForExit(timeout: 60), 2)
        XCTAssertTrue(process.standardError.contains("the client exited with status 1 without sending any request to the replay"), process.standardError)
    }

    func testFuzzCommandPrintsTableAndReproduction() throws {
        let process = try ManagedProcess(
            Paths.tapedeck,
            ["fuzz", "--cassette", ShippedCassette.shared.path, "--runs", "2", "--hang-timeout", "1s",
             "--schedules", directory.appendingPathComponent("cli").path, "--"] + (try govmomi(wait: "shared", vms: 20, concurrency: 10)),
            directory: directory)
        XCTAssertEqual(try process.waitForExit(timeout: 120), 1, process.standardError)
        let output = process.standardOutput
        XCTAssertTrue(output.hasPrefix("strategy    runs  failing  blocked  violating  livelock  first failing seed\n"), output)
        // About 1 shared run in 20 blocks nothing, so the counts are not fixed.
        XCTAssertTrue(output.contains("\ntotal          2 "), output)
        XCTAssertTrue(output.contains("reproduce: tapedeck fuzz --cassette \(ShippedCassette.shared.path) --runs 1 --seed "), output)
        XCTAssertTrue(output.contains(" --settle 5ms --hang-timeout 1000ms --latency none -- "), output)
    }
}
