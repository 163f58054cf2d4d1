import Foundation

/// The outcome of one task flow: a task, the filter that watched it, and the
/// wait calls on that filter's collector.
public struct FlowVerdict: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case completed
        /// A wait is pending on the collector, the task's final state already went
        /// to another call, and the task will not change again.
        case blockedForever = "blocked-forever"
        /// The flow completed, but its collector had two wait calls outstanding at once.
        case protocolViolation = "protocol-violation"
        /// Waits kept returning empty update sets with the same version.
        case livelock
        /// The flow did not finish, and the stream does not prove why.
        case timedOut = "timed-out"
        /// A call of the flow failed with a fault.
        case clientError = "client-error"

        /// Whether this verdict fails verification.
        public var isFailure: Bool {
            [.blockedForever, .protocolViolation, .livelock].contains(self)
        }
    }

    public var task: String
    public var session: String?
    public var collector: String?
    public var kind: Kind
    /// Sentences that justify the verdict, naming exchanges by sequence number.
    public var evidence: [String]
    /// Sequence numbers of the exchanges the evidence names.
    public var exchanges: [Int]
}

/// Two wait calls outstanding at once on one collector in one session, which the
/// vSphere API does not support.
public struct ProtocolViolation: Codable, Sendable, Equatable {
    public var session: String?
    public var collector: String
    public var first: Int
    public var second: Int
    public var overlapMilliseconds: Double
}

public struct VerificationReport: Codable, Sendable, Equatable {
    public var flows: [FlowVerdict]
    public var violations: [ProtocolViolation]

    public var failed: Bool {
        flows.contains { $0.kind.isFailure } || !violations.isEmpty
    }

    public func count(_ kind: FlowVerdict.Kind) -> Int {
        flows.filter { $0.kind == kind }.count
    }
}
