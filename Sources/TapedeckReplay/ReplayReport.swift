import Foundation

/// A record of one replay: the recorded response each request got, the wake-ups
/// the property collector model delivered, and the misses. Written by `--report`.
public struct ReplayReport: Codable, Sendable, Equatable {
    public struct Assignment: Codable, Sendable, Equatable, Comparable {
        /// The operation and target, such as `CreateVM_Task on Folder:group-v3`.
        public var request: String
        public var session: String?
        /// This request's position among requests with the same key, from 1.
        public var occurrence: Int
        public var recordedSequence: Int
        public var reused: Bool

        public static func < (lhs: Assignment, rhs: Assignment) -> Bool {
            (lhs.session ?? "", lhs.request, lhs.occurrence, lhs.recordedSequence)
                < (rhs.session ?? "", rhs.request, rhs.occurrence, rhs.recordedSequence)
        }
    }

    public struct Miss: Codable, Sendable, Equatable {
        public var request: String
        public var session: String?
        public var closestRecordedSequence: Int?
        public var message: String
    }

    public var cassette: String
    public var seed: UInt64
    public var order: String
    public var collectorSemantics: PropertyCollectorModel.Semantics
    public var requests = 0
    public var fromCassette = 0
    public var fromModel = 0
    public var heldUnanswered = 0
    /// The first `assignmentLimit` assignments; later ones are only counted, so a
    /// long-running replayer does not grow without bound.
    public var assignments: [Assignment] = []
    public var assignmentsNotKept = 0
    public static let assignmentLimit = 100_000
    /// The waiting call each change woke, in the order it happened.
    public var releases: [PropertyCollectorModel.Release] = []
    /// Task transitions as scheduled, in replay order; fixed by the cassette and
    /// the seed, unlike `releases`, which depend on the client's timing.
    public var transitions: [PropertyCollectorModel.Transition] = []
    public var misses: [Miss] = []
    /// The scheduler's decisions, when one ran.
    public var schedule: [Scheduler.Step] = []
    public var scheduleDivergence: String?
    /// Each injected fault and the request it hit.
    public var injectedFaults: [String] = []

    /// Requests that had no recorded response, plus recordings served again.
    public var problems: Int {
        misses.count + assignments.filter(\.reused).count
    }

    /// Keeps an assignment, building it only while under the limit.
    mutating func record(_ assignment: @autoclosure () -> Assignment) {
        if assignments.count < ReplayReport.assignmentLimit {
            assignments.append(assignment())
        } else {
            assignmentsNotKept += 1
        }
    }
}
