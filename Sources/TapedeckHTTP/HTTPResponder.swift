import CMicroHTTPD
import Foundation
import TapedeckCore

/// The way back to the client for one request. A handler calls `respond` once,
/// before it returns or later from any thread. A long poll keeps its responder and
/// responds when its response is ready, so no thread waits with it.
public final class HTTPResponder: @unchecked Sendable {
    private enum State {
        /// The handler has not returned yet.
        case handling
        /// The handler responded before it returned.
        case respondedWhileHandling(OutgoingResponse?)
        /// The handler returned without a response; the connection is suspended
        /// (event loop) or its thread waits (thread per connection).
        case awaitingResponse
        /// A response arrived while the connection was waiting for it.
        case responded(OutgoingResponse?)
        /// The response went to libmicrohttpd, or the connection closed.
        case delivered
    }

    /// The connection's next step once the handler has returned.
    enum AfterHandler {
        case send(OutgoingResponse?)
        case awaitResponse
        /// The server is stopping, so the request may not wait.
        case rejected
    }

    /// The client side of the connection, to check whether it is still there.
    public let client: ClientConnection
    private let lock = NSLock()
    private var state = State.handling
    private var cancelHandlers: [@Sendable () -> Void] = []
    private var cancelled = false
    /// Called with the lock held when a response arrives for a waiting
    /// connection: resumes it, or wakes its thread.
    private let wake: @Sendable () -> Void

    init(client: ClientConnection, wake: @escaping @Sendable () -> Void) {
        self.client = client
        self.wake = wake
    }

    /// Sends `response`, or closes the connection without one when it is nil.
    /// Only the first call counts; later ones are ignored, so a response that
    /// arrives after the client left or the server stopped goes nowhere.
    public func respond(_ response: OutgoingResponse?) {
        lock.withLock {
            switch state {
            case .handling:
                state = .respondedWhileHandling(response)
            case .awaitingResponse:
                state = .responded(response)
                wake()
            case .respondedWhileHandling, .responded, .delivered:
                break
            }
        }
    }

    /// Registers work to run if the client goes away or the server stops before
    /// a response is sent, such as removing a waiting call from a model. Runs
    /// `handler` at once when that has already happened.
    public func onCancel(_ handler: @escaping @Sendable () -> Void) {
        let runNow = lock.withLock { () -> Bool in
            if !cancelled { cancelHandlers.append(handler) }
            return cancelled
        }
        if runNow { handler() }
    }

    /// True once the client went away or the server stopped while this request
    /// was waiting.
    public var isCancelled: Bool {
        lock.withLock { cancelled }
    }

    // MARK: - Transitions driven by the server

    /// Moves on after the handler returned. `suspend` runs with the lock held, so a
    /// response from another thread cannot resume the connection before it is
    /// suspended. `suspend` returns false when the request may not wait.
    func handlerReturned(suspend: () -> Bool) -> AfterHandler {
        lock.withLock {
            switch state {
            case .handling:
                guard suspend() else {
                    state = .delivered
                    return .rejected
                }
                state = .awaitingResponse
                return .awaitResponse
            case .respondedWhileHandling(let response):
                state = .delivered
                return .send(response)
            case .awaitingResponse, .responded, .delivered:
                return .send(nil)
            }
        }
    }

    /// Takes the response that woke the connection.
    func takeResponse() -> OutgoingResponse? {
        lock.withLock {
            guard case .responded(let response) = state else { return nil }
            state = .delivered
            return response
        }
    }

    /// Runs the cancel handlers once, because the client left or the server is stopping.
    func cancel() {
        let handlers = lock.withLock { () -> [@Sendable () -> Void] in
            guard !cancelled else { return [] }
            cancelled = true
            defer { cancelHandlers = [] }
            return cancelHandlers
        }
        handlers.forEach { $0() }
    }
}
