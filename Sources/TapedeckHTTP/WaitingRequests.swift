import Foundation
import TapedeckCore

/// Requests whose handlers returned without a response. The server watches their
/// clients, because libmicrohttpd does not notice a suspended connection close,
/// and closes them all before it stops.
final class WaitingRequests: @unchecked Sendable {
    private let lock = NSLock()
    private var responders: [ObjectIdentifier: HTTPResponder] = [:]
    private var closed = false

    /// Registers a responder. Returns false once the server is stopping, and the
    /// request must then end without waiting.
    func add(_ responder: HTTPResponder) -> Bool {
        lock.withLock {
            guard !closed else { return false }
            responders[ObjectIdentifier(responder)] = responder
            return true
        }
    }

    func remove(_ responder: HTTPResponder) {
        lock.withLock { _ = responders.removeValue(forKey: ObjectIdentifier(responder)) }
    }

    var all: [HTTPResponder] {
        lock.withLock { Array(responders.values) }
    }

    /// Rejects new waiting requests from now on and returns the ones waiting.
    func closeAll() -> [HTTPResponder] {
        lock.withLock {
            closed = true
            defer { responders = [:] }
            return Array(responders.values)
        }
    }

    var isClosed: Bool {
        lock.withLock { closed }
    }
}
