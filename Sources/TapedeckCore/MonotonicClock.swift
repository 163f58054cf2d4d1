import Foundation

/// Nanoseconds elapsed since the clock was created, from CLOCK_MONOTONIC so that
/// wall-clock adjustments never reorder a recording.
public struct MonotonicClock: Sendable {
    private let origin: UInt64

    public init() {
        origin = MonotonicClock.now()
    }

    public func elapsed() -> UInt64 {
        MonotonicClock.now() &- origin
    }

    private static func now() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }
}
