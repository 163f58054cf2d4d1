import Synchronization

/// A Bool that one thread sets once and connection threads read. A class, so
/// that a `@Sendable` closure can capture it.
public final class AtomicFlag: Sendable {
    private let value = Atomic<Bool>(false)

    public init() {}

    public var isSet: Bool { value.load(ordering: .relaxed) }

    public func set() {
        value.store(true, ordering: .relaxed)
    }
}
