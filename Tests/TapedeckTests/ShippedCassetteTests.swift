import Foundation
import TapedeckCassette
import TapedeckCore
import TapedeckSOAP
import XCTest

/// Checks that the cassettes in Cassettes/ read cleanly, contain what their
/// README describes, and contain no secret.
final class ShippedCassetteTests: XCTestCase {
    private func load(_ name: String) throws -> [Exchange] {
        let reader = try CassetteReader(path: Paths.repositoryRoot.appendingPathComponent("Cassettes/\(name).cassette").path)
        var exchanges: [Exchange] = []
        try reader.forEach { exchanges.append($0) }
        XCTAssertNil(reader.truncation, name)
        return exchanges
    }

    private func assertNoSecrets(_ exchanges: [Exchange], _ name: String) {
        let redactor = Redactor()
        for exchange in exchanges {
            var copy = exchange
            XCTAssertEqual(redactor.redact(&copy), [], "\(name) #\(exchange.sequence)")
            if let this = exchange.soap?.this?.value, this.hasPrefix("session[") {
                XCTAssertTrue(this.hasPrefix("session[redacted-"), "\(name) #\(exchange.sequence): \(this)")
            }
        }
    }

    func testPerCallCassetteCompletesEveryWait() throws {
        let exchanges = try load("govmomi-percall-20vm-c10")
        assertNoSecrets(exchanges, "percall")
        XCTAssertEqual(exchanges.filter { $0.soap?.operation == "CreateVM_Task" }.count, 20)
        XCTAssertEqual(exchanges.filter { $0.soap?.operation == "CreatePropertyCollector" }.count, 20)
        XCTAssertEqual(exchanges.filter { $0.unanswered != nil }.count, 0)
    }

    func testSharedCassetteHasUnansweredWaits() throws {
        let exchanges = try load("govmomi-shared-20vm-c10")
        assertNoSecrets(exchanges, "shared")
        let unanswered = exchanges.filter { $0.unanswered != nil }
        XCTAssertGreaterThan(unanswered.count, 0)
        for exchange in unanswered {
            XCTAssertEqual(exchange.soap?.operation, "WaitForUpdatesEx")
            XCTAssertEqual(exchange.soap?.this, ManagedObjectReference(type: "PropertyCollector", value: "propertyCollector"))
            XCTAssertEqual(exchange.unanswered?.reason, .clientDisconnected)
        }
    }

    func testPyvmomiCassetteCoversTheLifecycle() throws {
        let exchanges = try load("pyvmomi-4vm-t4")
        assertNoSecrets(exchanges, "pyvmomi")
        let operations = exchanges.compactMap { $0.soap?.operation }
        for operation in ["CreateVM_Task", "PowerOnVM_Task", "PowerOffVM_Task", "Destroy_Task"] {
            XCTAssertEqual(operations.filter { $0 == operation }.count, 4, operation)
        }
        XCTAssertEqual(operations.filter { $0 == "WaitForUpdates" }.count, 16)
    }
}
