import Foundation
import TapedeckCore

/// Holds responses that are ready and releases one per decision point, so that a
/// fuzzer controls the order in which a client's threads see their responses.
///
/// A decision point is quiescence: no new request for the settle window. The
/// strategy picks which held response goes next. No response is held longer
/// than the hang timeout, because starving a client's connection pool would
/// report hangs that no real server causes. Every decision is logged as a step.
public final class Scheduler: @unchecked Sendable {
    public enum Strategy: Sendable, Equatable, Codable, CustomStringConvertible {
        /// A uniform choice drawn from the seed.
        case random(seed: UInt64)
        /// Probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010):
        /// each client connection gets a random priority, the highest-priority
        /// ready response goes first, and at `depth - 1` random steps the
        /// connection about to be chosen drops to the lowest priority.
        case pct(seed: UInt64, depth: Int, steps: Int)
        /// The response whose recording came first.
        case recorded
        /// Follow a saved schedule: release each step's saved choice when it is
        /// ready. `strict` stops following at the first step where it is not;
        /// otherwise such steps fall back to `fallbackSeed`.
        case saved(steps: [Step], strict: Bool, fallbackSeed: UInt64)

        public var description: String {
            switch self {
            case .random: "random"
            case .pct(_, let depth, _): "pct(depth \(depth))"
            case .recorded: "recorded"
            case .saved(_, let strict, _): strict ? "saved (strict)" : "saved (tolerant)"
            }
        }
    }

    /// One decision: what was ready, and which was released.
    public struct Step: Codable, Sendable, Equatable {
        public var ready: [String]
        public var chosen: String
        /// Why the decision was made: `quiescent` or `hang timeout`.
        public var trigger: String
    }

    /// A response waiting for its turn.
    struct Item {
        let label: String
        let connection: Int
        let recordedSequence: Int
        let arrivedAt: UInt64
        let semaphore = DispatchSemaphore(value: 0)
    }

    private let strategy: Strategy
    private let settle: UInt64
    private let hangTimeout: UInt64
    private let clock: MonotonicClock
    private let logger: Logger
    private let lock = NSLock()
    private var ready: [Item] = []
    private var lastArrival: UInt64 = 0
    private var steps: [Step] = []
    private var divergence: String?
    private var generator: SeededGenerator
    private var priorities: [Int: Int] = [:]
    private var changePoints: Set<Int> = []
    private var lowestPriority = 0
    private var stopped = false

    /// Replay's model clock, advanced to its next timer at idle decision points.
    private let virtualTime: VirtualTime?

    /// `settle` and `hangTimeout` in nanoseconds.
    public init(
        strategy: Strategy, settle: UInt64, hangTimeout: UInt64, clock: MonotonicClock, logger: Logger,
        virtualTime: VirtualTime? = nil
    ) {
        self.virtualTime = virtualTime
        self.strategy = strategy
        self.settle = settle
        self.hangTimeout = hangTimeout
        self.clock = clock
        self.logger = logger
        switch strategy {
        case .random(let seed), .saved(_, _, let seed):
            generator = SeededGenerator(seed: seed, stream: "scheduler")
        case .pct(let seed, let depth, let steps):
            generator = SeededGenerator(seed: seed, stream: "scheduler")
            // PCT's d - 1 priority change points, uniform over the expected steps.
            while changePoints.count < max(0, depth - 1) && changePoints.count < max(1, steps) {
                changePoints.insert(Int.random(in: 1...max(1, steps), using: &generator))
            }
        case .recorded:
            generator = SeededGenerator(seed: 0, stream: "scheduler")
        }
        let thread = Thread { [self] in run() }
        thread.name = "tapedeck-sched"
        thread.start()
    }

    /// The decisions so far.
    public var log: [Step] { lock.withLock { steps } }

    /// The first step at which a strict saved schedule diverged, if any.
    public var divergenceMessage: String? { lock.withLock { divergence } }

    public func noteArrival() {
        lock.withLock { lastArrival = clock.elapsed() }
    }

    /// Blocks the calling connection thread until its response is released.
    func hold(label: String, connection: Int, recordedSequence: Int) {
        let item = Item(label: label, connection: connection, recordedSequence: recordedSequence, arrivedAt: clock.elapsed())
        let released = lock.withLock { () -> Bool in
            if stopped { return true }
            ready.append(item)
            return false
        }
        if !released { item.semaphore.wait() }
    }

    /// Releases everything held and stops deciding.
    public func stop() {
        lock.withLock {
            stopped = true
            ready.forEach { $0.semaphore.signal() }
            ready.removeAll()
        }
    }

    private func run() {
        while true {
            Thread.sleep(forTimeInterval: 0.0005)
            var idle = false
            let decision = lock.withLock { () -> Item? in
                if stopped { return nil }
                let now = clock.elapsed()
                guard !ready.isEmpty else {
                    idle = now &- lastArrival >= settle
                    return nil
                }
                let quiet = now &- lastArrival >= settle
                let starving = ready.contains { now &- $0.arrivedAt >= hangTimeout }
                guard quiet || starving else { return nil }
                return decide(trigger: quiet ? "quiescent" : "hang timeout")
            }
            if lock.withLock({ stopped }) { return }
            decision?.semaphore.signal()
            // Nothing is ready and the client is quiet, so it waits on replay's
            // clock: move that clock to its next timer.
            if idle, let virtualTime, let advanced = virtualTime.advance() {
                lock.withLock { lastArrival = clock.elapsed() }
                logger.debug("virtual time advanced", ["schedule.virtualMilliseconds": "\(advanced / 1_000_000)"])
            }
        }
    }

    /// Picks and removes one ready item. Callers hold the lock.
    private func decide(trigger: String) -> Item {
        let labels = ready.map(\.label)
        var index: Int
        switch strategy {
        case .random:
            index = Int.random(in: 0..<ready.count, using: &generator)
        case .recorded:
            index = ready.indices.min { ready[$0].recordedSequence < ready[$1].recordedSequence }!
        case .pct:
            index = pctChoice()
        case .saved(let saved, let strict, _):
            index = savedChoice(saved, strict: strict)
        }
        let item = ready.remove(at: index)
        steps.append(Step(ready: labels, chosen: item.label, trigger: trigger))
        logger.debug("response released", [
            "schedule.step": "\(steps.count)", "schedule.chosen": item.label, "schedule.ready": "\(labels.count)",
            "schedule.trigger": trigger,
        ])
        return item
    }

    private func pctChoice() -> Int {
        for item in ready where priorities[item.connection] == nil {
            priorities[item.connection] = Int.random(in: 1_000...1_000_000, using: &generator)
        }
        var best = ready.indices.max { priorities[ready[$0].connection]! < priorities[ready[$1].connection]! }!
        if changePoints.contains(steps.count + 1) {
            lowestPriority -= 1
            priorities[ready[best].connection] = lowestPriority
            best = ready.indices.max { priorities[ready[$0].connection]! < priorities[ready[$1].connection]! }!
        }
        return best
    }

    private func savedChoice(_ saved: [Step], strict: Bool) -> Int {
        let position = steps.count
        if position < saved.count, let index = ready.firstIndex(where: { $0.label == saved[position].chosen }) {
            return index
        }
        if divergence == nil {
            let expected = position < saved.count ? saved[position].ready.sorted().joined(separator: ", ") : "the end of the schedule"
            divergence = "step \(position + 1): ready set [\(ready.map(\.label).sorted().joined(separator: ", "))] lacks the saved choice; saved ready set [\(expected)]"
            logger.warning("replay diverged from the saved schedule", ["schedule.step": "\(position + 1)", "detail": divergence!])
        }
        if strict {
            // Stop deciding: release everything now and from here on.
            stopped = true
            ready.forEach { $0.semaphore.signal() }
        }
        return Int.random(in: 0..<ready.count, using: &generator)
    }
}
