import CMicroHTTPD
import Foundation
import TapedeckCore

// libmicrohttpd calls these C functions on the thread that serves the connection.
// They find the server through their context pointer and the request through
// `*con_cls`.

/// Per-request state, created when the request line arrives and released when
/// libmicrohttpd reports the request complete.
final class RequestState {
    private enum Phase {
        /// The request line and headers arrived; libmicrohttpd has not yet offered
        /// any body bytes.
        case headersReceived
        /// Body bytes are arriving, possibly none.
        case receivingBody
        /// The handler returned without a response, and the connection is
        /// suspended until the responder resumes it.
        case awaitingResponse(HTTPResponder)
        /// The handler ran and a response was queued, or the connection is closing.
        case finished
    }

    /// The access handler's next step after a transition.
    enum Action {
        case continueReading
        case dispatch(MessageBody)
        case reject(status: Int, message: String)
        /// The connection was resumed: send the responder's response.
        case deliver(HTTPResponder)
    }

    let uri: String
    let startedAt: UInt64
    private var phase = Phase.headersReceived
    private let body: BodyAccumulator

    init(uri: String, startedAt: UInt64, bodyMemoryLimit: Int) {
        self.uri = uri
        self.startedAt = startedAt
        body = BodyAccumulator(limit: bodyMemoryLimit)
    }

    func receive(_ chunk: UnsafeRawBufferPointer?) -> Action {
        switch phase {
        case .headersReceived:
            // libmicrohttpd wants the first call acknowledged before it reads the body.
            phase = .receivingBody
            return .continueReading
        case .receivingBody:
            if let chunk, chunk.count > 0 {
                body.append(chunk)
                return .continueReading
            }
            phase = .finished
            if body.failed {
                return .reject(status: 507, message: "tapedeck: could not spool the request body to a temporary file")
            }
            return .dispatch(body.take())
        case .awaitingResponse(let responder):
            phase = .finished
            return .deliver(responder)
        case .finished:
            return .continueReading
        }
    }

    func awaitResponse(from responder: HTTPResponder) {
        phase = .awaitingResponse(responder)
    }
}

let accessHandler: MHD_AccessHandlerCallback = { context, connection, _, method, _, uploadData, uploadSize, requestContext in
    guard let context, let connection, let requestContext, let statePointer = requestContext.pointee else {
        return .NO
    }
    let server = Unmanaged<HTTPServer>.fromOpaque(context).takeUnretainedValue()
    let state = Unmanaged<RequestState>.fromOpaque(statePointer).takeUnretainedValue()

    let chunk = uploadData.map { UnsafeRawBufferPointer(start: $0, count: uploadSize?.pointee ?? 0) }
    uploadSize?.pointee = 0
    switch state.receive(chunk) {
    case .continueReading:
        return .YES
    case .reject(let status, let message):
        server.logger.error("request body could not be stored", ["http.uri": state.uri])
        return queue(.text(status, message), on: connection)
    case .dispatch(let body):
        let request = IncomingRequest(
            connectionID: Int(bitPattern: tapedeck_mhd_socket_context(connection)),
            method: method.map { String(cString: $0) } ?? "GET",
            path: state.uri,
            headers: requestHeaders(of: connection),
            body: body,
            startedAt: state.startedAt,
            completedAt: server.clock.elapsed(),
            client: ClientConnection(descriptor: tapedeck_mhd_connection_fd(connection)))
        return server.dispatch(request, on: connection, state: state)
    case .deliver(let responder):
        return server.resume(responder, on: connection)
    }
}

let beginRequest: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?, OpaquePointer?) -> UnsafeMutableRawPointer? = { context, uri, _ in
    guard let context else { return nil }
    let server = Unmanaged<HTTPServer>.fromOpaque(context).takeUnretainedValue()
    let state = RequestState(
        uri: uri.map { String(cString: $0) } ?? "/", startedAt: server.clock.elapsed(),
        bodyMemoryLimit: server.bodyMemoryLimit)
    return Unmanaged.passRetained(state).toOpaque()
}

let completeRequest: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, MHD_RequestTerminationCode) -> Void = { _, _, requestContext, _ in
    guard let requestContext, let statePointer = requestContext.pointee else { return }
    Unmanaged<RequestState>.fromOpaque(statePointer).release()
    requestContext.pointee = nil
}

let notifyConnection: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, MHD_ConnectionNotificationCode) -> Void = { context, _, socketContext, code in
    guard let context, let socketContext, code == .CONNECTION_NOTIFY_STARTED else { return }
    let server = Unmanaged<HTTPServer>.fromOpaque(context).takeUnretainedValue()
    // The connection id rides in the socket context pointer itself; nothing to free.
    socketContext.pointee = UnsafeMutableRawPointer(bitPattern: server.makeConnectionID())
}

let logFromLibrary: tapedeck_mhd_log_callback = { context, message in
    guard let context, let message else { return }
    let server = Unmanaged<HTTPServer>.fromOpaque(context).takeUnretainedValue()
    let text = String(cString: message).trimmingCharacters(in: .whitespacesAndNewlines)
    // libmicrohttpd reports every handler that returns MHD_NO as an internal error,
    // but tapedeck returns it on purpose when the client has already gone.
    let level: Logger.Level = text.hasPrefix("Application reported internal error") ? .debug : .warning
    server.logger.log(level, "HTTP connection error", ["http.detail": text])
}

private func requestHeaders(of connection: OpaquePointer) -> [Header] {
    final class Collector { var headers: [Header] = [] }
    let collector = Collector()
    let iterator: MHD_KeyValueIterator = { context, _, key, value in
        guard let context, let key else { return .YES }
        let collector = Unmanaged<Collector>.fromOpaque(context).takeUnretainedValue()
        collector.headers.append(Header(String(cString: key), value.map { String(cString: $0) } ?? ""))
        return .YES
    }
    withExtendedLifetime(collector) {
        _ = MHD_get_connection_values(connection, .HEADER_KIND, iterator, Unmanaged.passUnretained(collector).toOpaque())
    }
    return collector.headers
}

func queue(_ response: OutgoingResponse, on connection: OpaquePointer) -> MHD_Result {
    let made: OpaquePointer?
    switch response.body {
    case .inMemory(let data):
        made = data.withUnsafeBytes { buffer in
            MHD_create_response_from_buffer(buffer.count, UnsafeMutableRawPointer(mutating: buffer.baseAddress), .RESPMEM_MUST_COPY)
        }
    case .spooled(let descriptor, let size):
        // libmicrohttpd closes the descriptor when it frees the response.
        made = MHD_create_response_from_fd_at_offset64(UInt64(size), descriptor, 0)
    }
    guard let made else { return .NO }
    defer { MHD_destroy_response(made) }

    for header in response.headers where !hopByHopHeaders.contains(header.name.lowercased()) {
        _ = MHD_add_response_header(made, header.name, header.value)
    }
    return MHD_queue_response(connection, UInt32(response.status), made)
}
