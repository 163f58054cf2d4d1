import Dispatch
import Foundation
import TapedeckCore

/// The clock of replay's model: when task transitions fire and when
/// `maxWaitSeconds` runs out. Nanoseconds from an arbitrary origin.
public protocol ReplayTime: AnyObject, Sendable {
    func now() -> UInt64
    /// Runs `action` once the clock reaches `due`.
    func schedule(at due: UInt64, _ action: @escaping @Sendable () -> Void)
}

/// Real time: timers are dispatch timers.
final class WallTime: ReplayTime {
    private let clock: MonotonicClock

    init(clock: MonotonicClock) {
        self.clock = clock
    }

    func now() -> UInt64 {
        clock.elapsed()
    }

    func schedule(at due: UInt64, _ action: @escaping @Sendable () -> Void) {
        let delay = due > now() ? due - now() : 0
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(delay)), execute: action)
    }
}

/// Time that moves only when the scheduler advances it. Under fuzzing, a task that
/// took 30 s when recorded, or a wait with a 10-minute `maxWaitSeconds`, costs
/// no wall-clock time: when nothing is ready and the client is quiet, the
/// scheduler advances this clock to the next timer.
public final class VirtualTime: ReplayTime, @unchecked Sendable {
    private struct Timer {
        var due: UInt64
        var order: Int
        var action: @Sendable () -> Void
    }

    private let lock = NSLock()
    private var current: UInt64 = 0
    private var timers: [Timer] = []
    private var scheduledCount = 0

    public init() {}

    public func now() -> UInt64 {
        lock.withLock { current }
    }

    /// Schedules `action`. An action already due runs at once on another thread, as a dispatch timer
    /// would, because callers schedule while holding their own locks.
    public func schedule(at due: UInt64, _ action: @escaping @Sendable () -> Void) {
        let runNow = lock.withLock { () -> Bool in
            if due <= current { return true }
            scheduledCount += 1
            timers.append(Timer(due: due, order: scheduledCount, action: action))
            return false
        }
        if runNow { DispatchQueue.global().async(execute: action) }
    }

    public var hasTimers: Bool {
        lock.withLock { !timers.isEmpty }
    }

    /// Moves the clock to the earliest timer and runs every timer due then.
    /// Returns the new time, or nil when no timer is pending.
    @discardableResult
    public func advance() -> UInt64? {
        let (due, actions) = lock.withLock { () -> (UInt64?, [@Sendable () -> Void]) in
            guard let next = timers.min(by: { ($0.due, $0.order) < ($1.due, $1.order) }) else { return (nil, []) }
            current = max(current, next.due)
            let fired = timers.filter { $0.due <= current }.sorted { ($0.due, $0.order) < ($1.due, $1.order) }
            timers.removeAll { $0.due <= current }
            return (current, fired.map(\.action))
        }
        actions.forEach { $0() }
        return due
    }
}
