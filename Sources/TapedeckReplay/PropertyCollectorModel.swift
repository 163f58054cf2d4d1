import Dispatch
import Foundation
import TapedeckCore
import TapedeckSOAP

/// Replay's PropertyCollector: collectors, filters and waits answered from the
/// property values the cassette recorded, instead of from recorded bytes.
///
/// A call with a version gets the changes since each filter last reported, and
/// those changes go to whichever call on the collector computes them first. So
/// two concurrent waits on one collector can lose a wake-up, as they do on
/// vCenter: when a watched object changes, exactly one waiting call is woken.
/// What a call with an empty version gets depends on `Semantics`.
///
/// Objects change only between recorded observations, at the recorded offsets:
/// before its first observation an object reads as first observed.
public final class PropertyCollectorModel: @unchecked Sendable {
    enum WaitKind: Sendable {
        case waitForUpdatesEx, waitForUpdates, checkForUpdates

        init(operation: String) {
            self = switch operation {
            case "WaitForUpdatesEx": .waitForUpdatesEx
            case "WaitForUpdates": .waitForUpdates
            default: .checkForUpdates
            }
        }
    }

    /// The operations that `wait` handles.
    static let waitOperations: Set<String> = ["WaitForUpdatesEx", "WaitForUpdates", "CheckForUpdates"]

    /// The body of a response: `returnval` content, a typed fault, or nothing
    /// because the client went away.
    enum Answer: Equatable, Sendable {
        case content(String)
        case fault(type: String, message: String, detail: String)
        case abandoned
    }

    /// The rule for what a call with an empty version returns.
    public enum Semantics: String, Sendable, Codable, CaseIterable {
        /// The vSphere API reference: the current state of every filter.
        case vcenter
        /// vcsim 0.24.2: only objects that no call on the collector has reported
        /// yet, so a concurrent call can take another caller's initial state.
        case vcsim
    }

    /// The rule for which waiting call a change wakes.
    enum ReleasePolicy: Sendable {
        /// The call that has waited longest.
        case longestWaiting
        /// A call drawn from the seed, per collector.
        case seeded(UInt64)
    }

    /// The mapping from recorded times to replay times for task transitions.
    struct Timing: Sendable {
        /// Multiplies recorded offsets; 0 makes every transition immediate.
        var scale = 1.0
        /// When set, each task's offsets are further multiplied by a factor from
        /// 0.5 to 1.5 drawn from this seed and the task.
        var seed: UInt64?
        /// Fire transitions at their recorded time since the cassette started,
        /// rather than relative to when the replayed client created the task.
        var absolute = false
    }

    /// One wake-up: which change went to which call.
    public struct Release: Sendable, Equatable, Codable {
        public var atMilliseconds: Double
        public var collector: String
        public var object: String
        /// The woken call's position among the calls then waiting, from 1.
        public var waiter: Int
        public var waiting: Int
    }

    /// When a task created during replay changes, relative to its creation.
    /// Depends only on the cassette, the latency scale and the seed.
    public struct Transition: Sendable, Equatable, Codable, Comparable {
        public var task: String
        public var state: String
        public var recordedOffsetMilliseconds: Double
        public var replayOffsetMilliseconds: Double

        public static func < (lhs: Transition, rhs: Transition) -> Bool {
            (lhs.replayOffsetMilliseconds, lhs.task) < (rhs.replayOffsetMilliseconds, rhs.task)
        }
    }

    final class Collector {
        let reference: ManagedObjectReference
        var filters: [(id: Int, filter: Filter)] = []
        var version = 0
        var issuedVersions: Set<String> = []
        var waiters: [Waiter] = []

        init(reference: ManagedObjectReference) {
            self.reference = reference
        }
    }

    final class Filter {
        let reference: ManagedObjectReference
        let objects: [ManagedObjectReference]
        let specs: [PropertySpec]
        var reported: [ManagedObjectReference: [String: String]] = [:]

        init(reference: ManagedObjectReference, objects: [ManagedObjectReference], specs: [PropertySpec]) {
            self.reference = reference
            self.objects = objects
            self.specs = specs
        }
    }

    /// A call waiting for changes on a collector. Guarded by the model's lock.
    final class Waiter: @unchecked Sendable {
        let collector: Collector
        let completion: @Sendable (Answer) -> Void
        var ended = false

        init(collector: Collector, completion: @escaping @Sendable (Answer) -> Void) {
            self.collector = collector
            self.completion = completion
        }
    }

    /// A response for a waiting call, handed over once the model's lock is released,
    /// because the completion sends it on to the client.
    struct Delivery {
        let waiter: Waiter
        let answer: Answer

        func run() {
            waiter.completion(answer)
        }
    }

    let world: RecordedWorld
    let semantics: Semantics
    let time: any ReplayTime
    let release: ReleasePolicy
    let timing: Timing
    let logger: Logger
    let lock = NSLock()
    var collectors: [String: Collector] = [:]
    var filterOwners: [String: String] = [:]
    var taskCreatedAt: [ManagedObjectReference: UInt64] = [:]
    var scheduled: Set<ManagedObjectReference> = []
    var nextIdentifier = 0
    var generators: [String: SeededGenerator] = [:]
    var releases: [Release] = []
    var transitions: [Transition] = []
    /// Clock reading when replay started; recorded times count from here.
    let replayStart: UInt64

    init(world: RecordedWorld, semantics: Semantics, time: any ReplayTime, release: ReleasePolicy, timing: Timing, logger: Logger) {
        self.world = world
        self.semantics = semantics
        self.time = time
        self.release = release
        self.timing = timing
        self.logger = logger
        replayStart = time.now()
    }

    var releaseLog: [Release] {
        lock.withLock { releases }
    }

    /// Every scheduled task transition, in replay order.
    var transitionSchedule: [Transition] {
        lock.withLock { transitions.sorted() }
    }
}
