import CMicroHTTPD
import Foundation
import TapedeckCore

/// A request body: in memory up to the configured limit, or spooled to an unlinked
/// temporary file beyond it so that large uploads never sit in memory.
public enum MessageBody: Sendable {
    case inMemory(Data)
    /// An open descriptor of an unlinked file, owned by the code that created the body.
    case spooled(descriptor: Int32, size: Int64)

    public var size: Int64 {
        switch self {
        case .inMemory(let data): Int64(data.count)
        case .spooled(_, let size): size
        }
    }
}

/// A request as the listening server received it.
public struct IncomingRequest: Sendable {
    public var connectionID: Int
    public var method: String
    /// Path and query as the client sent them.
    public var path: String
    public var headers: [Header]
    public var body: MessageBody
    /// Clock readings (see `HTTPServer.clock`) when the headers arrived and when the
    /// body was complete.
    public var startedAt: UInt64
    public var completedAt: UInt64
    public var client: ClientConnection
}

/// A response to send back to the client.
public struct OutgoingResponse: Sendable {
    public var status: Int
    public var headers: [Header]
    public var body: MessageBody

    public init(status: Int, headers: [Header], body: MessageBody) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A plain-text response, for errors that tapedeck itself reports to a client.
    public static func text(_ status: Int, _ message: String) -> OutgoingResponse {
        OutgoingResponse(
            status: status, headers: [Header("Content-Type", "text/plain; charset=utf-8")],
            body: .inMemory(Data((message + "\n").utf8)))
    }
}

/// The client side of a connection, for noticing that a client gave up while its
/// request still waits upstream.
public struct ClientConnection: Sendable {
    let descriptor: Int32

    /// True once the client has closed or shut down its side of the connection.
    /// Uses POLLRDHUP rather than a peek, because on a TLS connection the peer's
    /// close_notify leaves unread bytes in the socket.
    public var isClosed: Bool {
        guard descriptor >= 0 else { return false }
        var entry = pollfd(fd: descriptor, events: Int16(TAPEDECK_POLLRDHUP), revents: 0)
        guard poll(&entry, 1, 0) > 0 else { return false }
        return entry.revents & Int16(TAPEDECK_POLLRDHUP | POLLHUP | POLLERR) != 0
    }
}

/// Headers that describe one connection rather than the message, so a proxy must
/// not forward them (RFC 9110, section 7.6.1), plus the framing headers that the
/// sending library sets itself.
public let hopByHopHeaders: Set<String> = [
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "content-length",
]
