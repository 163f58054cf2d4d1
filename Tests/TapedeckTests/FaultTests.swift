import Foundation
import TapedeckCore
import TapedeckVerify
import XCTest

@testable import TapedeckReplay

/// Each injected fault against a real client, with the behaviour that client is
/// expected to show and the verdict that follows.
final class FaultTests: DirectoryTestCase {
    /// Runs 3 per-call govmomi waits against a replay with the given faults.
    private func govmomi(_ faults: [String]) throws -> (WorkloadRun, ReplayReport, VerificationReport) {
        let replayer = try Replayer.start(ShippedCassette.perCall.path) { configuration in
            configuration.latency = .none
            configuration.keepsServedExchanges = true
            configuration.faults = faults.map { try! FaultRule(parsing: $0) }
        }
        let run = try Workloads.govmomi(
            url: replayer.sdkURL, password: "x", wait: "percall", vms: 3, concurrency: 3, waitTimeout: "10s",
            extra: ["-name-prefix", "tapedeck-vm"], directory: directory)
        let report = replayer.stop()
        Thread.sleep(forTimeInterval: 0.1)
        return (run, report, Verifier.verify(replayer.servedExchanges))
    }

    func testEmptyUpdateSetMakesGovmomiResendAndComplete() throws {
        let (run, report, verdict) = try govmomi(["WaitForUpdatesEx:empty-update-set@1"])
        XCTAssertEqual(report.injectedFaults.count, 1)
        XCTAssertEqual(run.result.completed, 3, run.standardError)
        XCTAssertEqual(run.result.errors, 0)
        XCTAssertEqual(verdict.count(.completed), 3, "the empty answer consumed no change")
        XCTAssertFalse(verdict.failed)
    }

    func testFaultsOnWaitFailGovmomiWaitAsClientError() throws {
        for fault in ["request-canceled", "not-authenticated", "invalid-collector-version", "http-503"] {
            let (run, report, verdict) = try govmomi(["WaitForUpdatesEx:\(fault)@1"])
            XCTAssertEqual(report.injectedFaults.count, 1, fault)
            XCTAssertEqual(run.result.errors, 1, "\(fault): govmomi's task wait returns the error: \(run.standardError)")
            XCTAssertEqual(run.result.completed, 2, fault)
            XCTAssertEqual(verdict.count(.clientError), 1, "\(fault): \(verdict.flows)")
            XCTAssertFalse(verdict.failed, "\(fault): a client error is not a hang")
        }
    }

    func testConnectionResetFailsOneGovmomiWait() throws {
        let (run, report, verdict) = try govmomi(["WaitForUpdatesEx:connection-reset@1"])
        XCTAssertEqual(report.injectedFaults.count, 1)
        XCTAssertEqual(run.result.errors, 1, "govmomi does not retry a POST whose connection broke: \(run.standardError)")
        XCTAssertEqual(run.result.completed, 2)
        XCTAssertFalse(verdict.failed, "\(verdict.flows)")
    }

    func testDelayedWaitsStillComplete() throws {
        let started = Date()
        let (run, report, verdict) = try govmomi(["WaitForUpdatesEx:delay=300ms"])
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.3)
        XCTAssertEqual(report.injectedFaults.count, 3, "one per wait")
        XCTAssertEqual(run.result.completed, 3)
        XCTAssertEqual(verdict.count(.completed), 3)
    }

    func testPyvmomiRetriesCanceledAndStaleVersionWaits() throws {
        for fault in ["WaitForUpdates:request-canceled@2", "WaitForUpdates:invalid-collector-version@2"] {
            let replayer = try Replayer.start(ShippedCassette.pyvmomi.path) { configuration in
                configuration.latency = .none
                configuration.faults = [try! FaultRule(parsing: fault)]
            }
            let run = try Workloads.pyvmomiReplay(url: replayer.sdkURL, directory: directory)
            let report = replayer.stop()
            XCTAssertEqual(report.injectedFaults.count, 1, fault)
            XCTAssertEqual(run.result.completed, 16, "\(fault): pyVim's WaitForTask retries: \(run.standardError.suffix(500))")
            XCTAssertEqual(run.result.errors, 0, fault)
        }
    }

    func testSeededProbabilityIsRepeatable() throws {
        let injector = { FaultInjector(rules: [try! FaultRule(parsing: "*:http-503:0.3")], seed: 11) }
        let first = injector()
        let second = injector()
        let hits = (0..<50).map { _ in first.fault(for: "RetrieveProperties") != nil }
        XCTAssertEqual(hits, (0..<50).map { _ in second.fault(for: "RetrieveProperties") != nil })
        XCTAssertTrue((5...25).contains(hits.filter { $0 }.count), "about 30% of 50: \(hits.filter { $0 }.count)")
    }

    func testInvalidFaultRuleNamesTheForms() {
        XCTAssertThrowsError(try FaultRule(parsing: "WaitForUpdatesEx:explode")) { error in
            XCTAssertTrue("\(error)".hasPrefix("invalid fault 'WaitForUpdatesEx:explode': unknown kind 'explode'; use OPERATION:KIND"), "\(error)")
        }
        XCTAssertThrowsError(try FaultRule(parsing: "WaitForUpdatesEx:http-503:1.5"))
    }
}
