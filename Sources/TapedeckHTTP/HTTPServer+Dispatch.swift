import CMicroHTTPD
import Foundation
import TapedeckCore

// Handing requests to the handler, and the watcher for clients of waiting requests.

extension HTTPServer {
    /// How often waiting requests' clients are checked. One poll() covers them
    /// all, so 10,000 held polls cost a few milliseconds each time.
    static let watchInterval: TimeInterval = 0.25

    /// Starts the thread that cancels waiting requests whose clients went away.
    func startWatcher() {
        let waiting = self.waiting
        let thread = Thread {
            while !waiting.isClosed {
                Thread.sleep(forTimeInterval: HTTPServer.watchInterval)
                for responder in HTTPServer.disconnected(waiting.all) {
                    waiting.remove(responder)
                    responder.cancel()
                    responder.respond(nil)
                }
            }
        }
        thread.name = "tapedeck-http-watch"
        thread.start()
    }

    /// Returns the responders whose clients closed or shut down their side.
    static func disconnected(_ responders: [HTTPResponder]) -> [HTTPResponder] {
        let watched = responders.filter { $0.client.descriptor >= 0 }
        guard !watched.isEmpty else { return [] }
        var entries = watched.map { pollfd(fd: $0.client.descriptor, events: Int16(TAPEDECK_POLLRDHUP), revents: 0) }
        guard poll(&entries, nfds_t(entries.count), 0) > 0 else { return [] }
        let closedEvents = Int16(TAPEDECK_POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)
        return zip(watched, entries).filter { $0.1.revents & closedEvents != 0 }.map(\.0)
    }

    /// Hands a complete request to the handler and returns what libmicrohttpd
    /// should do with the connection now.
    func dispatch(_ request: IncomingRequest, on connection: OpaquePointer, state: RequestState) -> MHD_Result {
        let handle = ConnectionHandle(pointer: connection)
        let semaphore = threading == .threadPerConnection ? DispatchSemaphore(value: 0) : nil
        let responder = HTTPResponder(client: request.client) {
            if let semaphore { semaphore.signal() } else { MHD_resume_connection(handle.pointer) }
        }
        handler.handle(request, responder: responder)

        // Only a request left waiting touches the registry, so a request that gets
        // its response at once takes no lock that the other threads share.
        let waiting = self.waiting
        let next = responder.handlerReturned {
            // A stopping server ends the request instead of letting it wait.
            guard waiting.add(responder) else { return false }
            if semaphore == nil { MHD_suspend_connection(connection) }
            return true
        }
        switch next {
        case .send(let response):
            return send(response, on: connection)
        case .rejected:
            responder.cancel()
            return .NO
        case .awaitResponse:
            guard let semaphore else {
                state.awaitResponse(from: responder)
                return .YES
            }
            semaphore.wait()
            waiting.remove(responder)
            return send(responder.takeResponse(), on: connection)
        }
    }

    /// Sends the response that resumed the connection.
    func resume(_ responder: HTTPResponder, on connection: OpaquePointer) -> MHD_Result {
        waiting.remove(responder)
        return send(responder.takeResponse(), on: connection)
    }

    private func send(_ response: OutgoingResponse?, on connection: OpaquePointer) -> MHD_Result {
        guard let response else { return .NO }
        return queue(response, on: connection)
    }
}

/// A connection pointer that a responder may use from another thread: libmicrohttpd
/// allows MHD_resume_connection from any thread.
private struct ConnectionHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}
