import Foundation
import TapedeckCore
import TapedeckHTTP
import TapedeckSOAP

/// A fault to inject into replay, from `--fault OPERATION:KIND[:PROBABILITY|@N]`.
///
/// `OPERATION` is a SOAP operation or `*`. The fault hits each matching request
/// with the probability (drawn from the seed, per request), or only the Nth
/// matching request with `@N`, or every matching request when neither is given.
public struct FaultRule: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// A wait response with no UpdateSet, as when `maxWaitSeconds` passes.
        case emptyUpdateSet
        case requestCanceled
        /// The session expired.
        case notAuthenticated
        case invalidCollectorVersion
        /// The normal response, after this extra delay.
        case delay(Duration)
        /// The connection is closed without a response.
        case connectionReset
        /// HTTP 503 with an HTML body, as a load balancer in front of vCenter sends.
        case serviceUnavailable
    }

    public enum Trigger: Sendable, Equatable {
        case always
        case probability(Double)
        case occurrence(Int)
    }

    public var operation: String
    public var kind: Kind
    public var trigger: Trigger
    public let text: String

    public struct InvalidRule: Error, CustomStringConvertible {
        public let rule: String
        public let reason: String
        public var description: String {
            "invalid fault '\(rule)': \(reason); use OPERATION:KIND[:PROBABILITY|@N] with KIND one of empty-update-set, request-canceled, not-authenticated, invalid-collector-version, delay=DURATION, connection-reset, http-503"
        }
    }

    public init(parsing text: String) throws(InvalidRule) {
        self.text = text
        var parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, !parts[0].isEmpty else { throw InvalidRule(rule: text, reason: "it needs an operation and a kind") }
        operation = parts.removeFirst()
        var kindText = parts.removeFirst()
        trigger = .always
        if let at = kindText.firstIndex(of: "@") {
            guard let occurrence = Int(kindText[kindText.index(after: at)...]), occurrence >= 1 else {
                throw InvalidRule(rule: text, reason: "@N needs a whole number, 1 or more")
            }
            trigger = .occurrence(occurrence)
            kindText = String(kindText[..<at])
        }
        if let probabilityText = parts.first {
            guard let probability = Double(probabilityText), (0...1).contains(probability) else {
                throw InvalidRule(rule: text, reason: "the probability must be a number from 0 to 1")
            }
            trigger = .probability(probability)
        }
        switch kindText {
        case "empty-update-set": kind = .emptyUpdateSet
        case "request-canceled": kind = .requestCanceled
        case "not-authenticated": kind = .notAuthenticated
        case "invalid-collector-version": kind = .invalidCollectorVersion
        case "connection-reset": kind = .connectionReset
        case "http-503": kind = .serviceUnavailable
        case _ where kindText.hasPrefix("delay="):
            guard let duration = parseDuration(String(kindText.dropFirst("delay=".count))) else {
                throw InvalidRule(rule: text, reason: "delay= needs a duration such as 500ms")
            }
            kind = .delay(duration)
        default:
            throw InvalidRule(rule: text, reason: "unknown kind '\(kindText)'")
        }
    }

    public var description: String { text }
}

/// Decides which requests get which fault. Thread-safe.
final class FaultInjector: @unchecked Sendable {
    private let rules: [FaultRule]
    private let seed: UInt64
    private let lock = NSLock()
    private var counts: [Int: Int] = [:]

    init(rules: [FaultRule], seed: UInt64) {
        self.rules = rules
        self.seed = seed
    }

    /// Returns the fault for this request, if any rule fires.
    func fault(for operation: String) -> FaultRule? {
        guard !rules.isEmpty else { return nil }
        return lock.withLock {
            for (index, rule) in rules.enumerated() where rule.operation == "*" || rule.operation == operation {
                let occurrence = (counts[index] ?? 0) + 1
                counts[index] = occurrence
                switch rule.trigger {
                case .always:
                    return rule
                case .occurrence(let wanted) where wanted == occurrence:
                    return rule
                case .probability(let probability):
                    var generator = SeededGenerator(seed: seed, stream: "fault|\(index)|\(occurrence)")
                    if Double.random(in: 0..<1, using: &generator) < probability { return rule }
                default:
                    continue
                }
            }
            return nil
        }
    }

    /// The response a fault produces, or nil to close the connection. `delay`
    /// faults return `.proceed` after sleeping.
    enum Effect {
        case respond(OutgoingResponse)
        case close
        case proceed
    }

    static func effect(of rule: FaultRule, operation: String) -> Effect {
        let xml = [Header("Content-Type", "text/xml; charset=utf-8")]
        switch rule.kind {
        case .emptyUpdateSet:
            return .respond(OutgoingResponse(status: 200, headers: xml, body: .inMemory(SOAPBuilder.response(operation: operation, content: ""))))
        case .requestCanceled:
            return .respond(OutgoingResponse(status: 500, headers: xml, body: .inMemory(SOAPBuilder.fault(type: "RequestCanceled", message: "The task was canceled by a user."))))
        case .notAuthenticated:
            return .respond(OutgoingResponse(status: 500, headers: xml, body: .inMemory(SOAPBuilder.fault(
                type: "NotAuthenticated", message: "The session is not authenticated.",
                detail: "<object type=\"SessionManager\">SessionManager</object><privilegeId>System.View</privilegeId>"))))
        case .invalidCollectorVersion:
            return .respond(OutgoingResponse(status: 500, headers: xml, body: .inMemory(SOAPBuilder.fault(type: "InvalidCollectorVersion", message: "The collector version is not valid."))))
        case .delay(let duration):
            Thread.sleep(forTimeInterval: Double(Replayer.nanoseconds(duration)) / 1e9)
            return .proceed
        case .connectionReset:
            return .close
        case .serviceUnavailable:
            let html = "<html><head><title>503 Service Unavailable</title></head><body><h1>503 Service Unavailable</h1></body></html>\n"
            return .respond(OutgoingResponse(status: 503, headers: [Header("Content-Type", "text/html")], body: .inMemory(Data(html.utf8))))
        }
    }
}
