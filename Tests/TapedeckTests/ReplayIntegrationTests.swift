import Foundation
import TapedeckCassette
import TapedeckCore
import TapedeckReplay
import XCTest

/// Real govmomi and pyvmomi clients against `tapedeck replay`, with no vCenter
/// or vcsim running.
final class ReplayIntegrationTests: DirectoryTestCase {
    /// Runs the client against a fresh replayer `runs` times and checks each run
    /// ended as the recording did.
    private func assertReplays(
        _ cassette: ShippedCassette, runs: Int, order: ReplayOrder, seeds: [UInt64] = [0],
        run: (String) throws -> WorkloadRun, expected: WorkloadResult, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        for index in 0..<runs {
            let seed = seeds[index % seeds.count]
            let replayer = try Replayer.start(cassette.path) { configuration in
                configuration.order = order
                configuration.seed = seed
            }
            let result = try run(replayer.sdkURL)
            let report = replayer.stop()
            let context = "run \(index + 1), order \(order), seed \(seed): \(result.standardError.suffix(600))"
            XCTAssertEqual(result.result.completed, expected.completed, context, file: file, line: line)
            XCTAssertEqual(result.result.blocked, expected.blocked, context, file: file, line: line)
            XCTAssertEqual(result.result.errors, expected.errors, context, file: file, line: line)
            XCTAssertEqual(report.misses, [], context, file: file, line: line)
            if result.result.completed != expected.completed || !report.misses.isEmpty { return }
        }
    }

    func testPerCallWorkloadPassesOfflineUnderArrivalOrder() throws {
        try assertReplays(
            .perCall, runs: 50, order: .arrival,
            run: { try Workloads.govmomiReplay(url: $0, wait: "percall", directory: self.directory) },
            expected: WorkloadResult(completed: 20, blocked: 0, errors: 0))
    }

    func testPerCallWorkloadPassesOfflineUnderSeededOrder() throws {
        try assertReplays(
            .perCall, runs: 50, order: .seeded, seeds: [1, 2, 3, 4, 5],
            run: { try Workloads.govmomiReplay(url: $0, wait: "percall", directory: self.directory) },
            expected: WorkloadResult(completed: 20, blocked: 0, errors: 0))
    }

    func testPyvmomiWorkloadPassesOfflineUnderArrivalOrder() throws {
        try assertReplays(
            .pyvmomi, runs: 50, order: .arrival,
            run: { try Workloads.pyvmomiReplay(url: $0, directory: self.directory) },
            expected: WorkloadResult(completed: 16, blocked: 0, errors: 0))
    }

    func testPyvmomiWorkloadPassesOfflineUnderSeededOrder() throws {
        try assertReplays(
            .pyvmomi, runs: 50, order: .seeded, seeds: [1, 2, 3, 4, 5],
            run: { try Workloads.pyvmomiReplay(url: $0, directory: self.directory) },
            expected: WorkloadResult(completed: 16, blocked: 0, errors: 0))
    }

    func testSharedCollectorWorkloadBlocksAsItDidLive() throws {
        for order in [ReplayOrder.arrival, .seeded] {
            // Whether a wait blocks depends on how the client's goroutines
            // interleave, live and in replay. About 1 run in 20 blocks none, so a
            // run may be tried 3 times. Every try must end without replay errors.
            var run: WorkloadRun!
            var report: ReplayReport!
            for attempt in 1...3 {
                let replayer = try Replayer.start(ShippedCassette.shared.path) { $0.order = order; $0.seed = 3 + UInt64(attempt) }
                run = try Workloads.govmomiReplay(url: replayer.sdkURL, wait: "shared", waitTimeout: "2s", directory: directory)
                report = replayer.stop()
                XCTAssertEqual(report.misses, [], "\(order), attempt \(attempt)")
                if run.result.blocked > 0 { break }
            }

            XCTAssertEqual(run.status, 1, "\(order): \(run.standardError.suffix(400))")
            XCTAssertGreaterThan(run.result.blocked, 0, "\(order)")
            XCTAssertEqual(run.result.errors, 0, "\(order)")
            XCTAssertEqual(run.result.completed + run.result.blocked, 20, "\(order)")
            XCTAssertEqual(report.misses, [], "\(order): replay errors, not blocked waits")
            XCTAssertTrue(run.standardError.contains("wait blocked"), run.standardError)
            XCTAssertEqual(report.collectorSemantics, .vcsim, "the cassette was recorded from vcsim")
        }
    }

    func testSameSeedGivesSameAssignmentsAndSchedule() throws {
        var first: ReplayReport?
        for run in 1...20 {
            let replayer = try Replayer.start(ShippedCassette.perCall.path) { $0.order = .seeded; $0.seed = 42 }
            let result = try Workloads.govmomiReplay(url: replayer.sdkURL, wait: "percall", directory: directory)
            let report = replayer.stop()
            XCTAssertEqual(result.result.completed, 20)
            guard let first else {
                first = report
                XCTAssertFalse(report.transitions.isEmpty)
                continue
            }
            XCTAssertEqual(report.assignments.sorted(), first.assignments.sorted(), "assignments differ in run \(run)")
            XCTAssertEqual(report.transitions, first.transitions, "transition schedule differs in run \(run)")
        }

        let other = try Replayer.start(ShippedCassette.perCall.path) { $0.order = .seeded; $0.seed = 43 }
        _ = try Workloads.govmomiReplay(url: other.sdkURL, wait: "percall", directory: directory)
        XCTAssertNotEqual(other.stop().transitions, first?.transitions, "another seed gives another schedule")
    }

    func testSeededAssignmentIsLoggedAndReported() throws {
        let capture = CapturingLogHandler()
        let replayer = try Replayer.start(ShippedCassette.perCall.path, logHandler: capture) { $0.order = .seeded; $0.seed = 5 }
        _ = try Workloads.govmomiReplay(url: replayer.sdkURL, wait: "percall", directory: directory)
        let report = replayer.stop()

        XCTAssertEqual(report.assignments.filter { $0.request.hasPrefix("CreateVM_Task") }.count, 20)
        XCTAssertTrue(capture.records.contains { $0.message == "request assigned a recording" && $0.metadata["interaction.seq"] != nil })
    }
}
