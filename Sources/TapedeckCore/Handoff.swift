import Foundation

/// Carries one value from the thread that produces it to a thread that waits for
/// it, for code that must finish on its own thread what another thread started.
public final class Handoff<Value: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: Value?

    public init() {}

    /// Stores the value; only the first call counts.
    public func put(_ newValue: Value) {
        condition.withLock {
            guard value == nil else { return }
            value = newValue
            condition.signal()
        }
    }

    /// Waits for the value and returns it.
    public func take() -> Value {
        condition.withLock {
            while value == nil { condition.wait() }
            return value!
        }
    }
}
