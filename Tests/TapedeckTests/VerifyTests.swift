import Foundation
import TapedeckCassette
import TapedeckCore
import TapedeckSOAP
import TapedeckVerify
import XCTest

/// `tapedeck verify` on the shipped cassettes, recorded from real govmomi and
/// pyvmomi clients against vcsim.
final class VerifyTests: XCTestCase {
    private func verify(_ cassette: ShippedCassette, _ extra: [String] = []) throws -> (status: Int32, report: VerificationReport) {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = try ManagedProcess(Paths.tapedeck, ["verify", cassette.path, "--json"] + extra, directory: directory)
        let status = try process.waitForExit(timeout: 60)
        let report = try JSONDecoder().decode(VerificationReport.self, from: Data(process.standardOutput.utf8))
        return (status, report)
    }

    private func exchanges(_ cassette: ShippedCassette) throws -> [Int: Exchange] {
        let reader = try CassetteReader(path: cassette.path)
        var result: [Int: Exchange] = [:]
        try reader.forEach { result[$0.sequence] = $0 }
        return result
    }

    func testPerCallCassetteCompletesEveryFlow() throws {
        let (status, report) = try verify(.perCall)
        XCTAssertEqual(status, 0)
        XCTAssertEqual(report.flows.count, 20)
        XCTAssertEqual(report.count(.completed), 20)
        XCTAssertEqual(report.violations, [])
    }

    func testSharedCassetteBlocksEachAbandonedWait() throws {
        let (status, report) = try verify(.shared)
        let recorded = try exchanges(.shared)
        let abandoned = recorded.values.filter { $0.unanswered != nil && $0.soap?.operation == "WaitForUpdatesEx" }

        XCTAssertEqual(status, 1)
        let blocked = report.flows.filter { $0.kind == .blockedForever }
        XCTAssertEqual(blocked.count, abandoned.count, "one blocked flow per abandoned wait")
        XCTAssertEqual(Set(blocked.map { $0.exchanges[1] }), Set(abandoned.map(\.sequence)))
        for flow in blocked {
            // The evidence names the exchange that consumed the final state, and that
            // exchange's response really carries it.
            let consumer = try XCTUnwrap(recorded[flow.exchanges[0]])
            let body = try XCTUnwrap(consumer.response?.body.text)
            XCTAssertTrue(body.contains(">\(flow.task)</obj>"), "#\(consumer.sequence) does not name \(flow.task)")
            XCTAssertTrue(body.contains("<state>success</state>"))
            XCTAssertTrue(flow.evidence[0].contains("delivered by #\(consumer.sequence)"), flow.evidence[0])
        }
    }

    func testSharedCassetteFlagsConcurrentWaits() throws {
        let (_, report) = try verify(.shared)
        XCTAssertFalse(report.violations.isEmpty)
        XCTAssertTrue(report.violations.allSatisfy { $0.collector == "propertyCollector" })
        XCTAssertEqual(report.count(.completed), 0, "every completed flow shared a collector with overlapping waits")
    }

    func testJUnitReportListsEachFlow() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let junit = directory.appendingPathComponent("verify.xml")
        let (status, report) = try verify(.shared, ["--junit", junit.path])
        XCTAssertEqual(status, 1)
        let xml = try String(contentsOf: junit, encoding: .utf8)
        XCTAssertEqual(xml.components(separatedBy: "<testcase ").count - 1, report.flows.count + 1)
        XCTAssertEqual(xml.components(separatedBy: "<failure type=\"blocked-forever\"").count - 1, report.count(.blockedForever))
        XCTAssertNotNil(try? XMLDocumentCheck.parse(xml))
    }

    func testUnreadableCassetteExitsTwo() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = try ManagedProcess(Paths.tapedeck, ["verify", "/tmp/tapedeck-absent.cassette"], directory: directory)
        XCTAssertEqual(try process.waitForExit(timeout: 30), 2)
        XCTAssertEqual(process.standardError, "Error: cassette '/tmp/tapedeck-absent.cassette' not found; check the path\n")
    }
}

/// Checks that text is well-formed XML, using the same libxml2 wrapper as the product.
enum XMLDocumentCheck {
    static func parse(_ text: String) throws -> Bool {
        _ = try TapedeckSOAP.XMLDocument(parsing: Data(text.utf8))
        return true
    }
}
