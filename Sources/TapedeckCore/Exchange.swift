import Foundation

/// One HTTP request and its response, or the reason it has none: the unit that the
/// recorder writes and that replay and verification read.
public struct Exchange: Codable, Sendable, Equatable {
    /// Arrival order of the request at the recorder, starting at 1. Exchanges are
    /// written when they finish, so a cassette is not sorted by this number.
    public var sequence: Int
    /// Client connection that carried the request, numbered from 1 per recording.
    public var connection: Int
    /// Placeholder of the session cookie (`session-1`, …), never the cookie itself.
    public var session: String?
    public var timing: Timing
    public var request: Request
    public var response: Response?
    public var unanswered: Unanswered?
    /// The SOAP call, for requests to `/sdk` whose body parsed as a SOAP envelope.
    public var soap: SOAPCall?

    public init(
        sequence: Int, connection: Int, session: String? = nil, timing: Timing,
        request: Request, response: Response? = nil, unanswered: Unanswered? = nil,
        soap: SOAPCall? = nil
    ) {
        self.sequence = sequence
        self.connection = connection
        self.session = session
        self.timing = timing
        self.request = request
        self.response = response
        self.unanswered = unanswered
        self.soap = soap
    }
}

/// Monotonic nanoseconds since the cassette started.
public struct Timing: Codable, Sendable, Equatable {
    public var requestStart: UInt64
    public var requestEnd: UInt64
    public var responseStart: UInt64?
    public var responseEnd: UInt64?

    public init(requestStart: UInt64, requestEnd: UInt64, responseStart: UInt64? = nil, responseEnd: UInt64? = nil) {
        self.requestStart = requestStart
        self.requestEnd = requestEnd
        self.responseStart = responseStart
        self.responseEnd = responseEnd
    }
}

public struct Request: Codable, Sendable, Equatable {
    public var method: String
    /// Path and query exactly as the client sent them.
    public var path: String
    public var headers: [Header]
    public var body: Body

    public init(method: String, path: String, headers: [Header], body: Body) {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
    }
}

public struct Response: Codable, Sendable, Equatable {
    public var status: Int
    public var headers: [Header]
    public var body: Body

    public init(status: Int, headers: [Header], body: Body) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// The reason an exchange has no response, and when that became known.
public struct Unanswered: Codable, Sendable, Equatable {
    public enum Reason: String, Codable, Sendable {
        /// The client closed its connection before the upstream answered.
        case clientDisconnected = "client-disconnected"
        /// The upstream could not be reached or failed mid-response.
        case upstreamFailed = "upstream-failed"
        /// The recorder stopped while the exchange was still waiting.
        case recorderStopped = "recorder-stopped"
        /// Still waiting when the stream was read; only in live streams, never in
        /// a cassette.
        case pending
    }

    public var reason: Reason
    public var detail: String
    /// Monotonic nanoseconds since the cassette started.
    public var at: UInt64

    public init(reason: Reason, detail: String, at: UInt64) {
        self.reason = reason
        self.detail = detail
        self.at = at
    }
}

/// An HTTP header field. A list of these keeps order and repeated names.
public struct Header: Codable, Sendable, Equatable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    public init(from decoder: Decoder) throws {
        var container = try decoder.unkeyedContainer()
        name = try container.decode(String.self)
        value = try container.decode(String.self)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(name)
        try container.encode(value)
    }
}

extension Array where Element == Header {
    /// Returns the first value of the named header, compared without case.
    public func value(named name: String) -> String? {
        first { $0.hasName(name) }?.value
    }
}

extension Header {
    /// Compares the name without ASCII case, as HTTP field names compare. Faster
    /// than Foundation's case-insensitive compare, which went through NSString
    /// and cost replay 6% of its time per request.
    public func hasName(_ other: String) -> Bool {
        let lhs = name.utf8, rhs = other.utf8
        guard lhs.count == rhs.count else { return false }
        return zip(lhs, rhs).allSatisfy { a, b in a == b || (a | 0x20 == b | 0x20 && (a | 0x20) >= 0x61 && (a | 0x20) <= 0x7A) }
    }
}

/// A managed object reference. References compare by type and value only, because
/// some responses carry a `serverGuid` attribute and others name the same object
/// without it.
public struct ManagedObjectReference: Codable, Sendable, Hashable, CustomStringConvertible {
    public var type: String
    public var value: String

    public init(type: String, value: String) {
        self.type = type
        self.value = value
    }

    public var description: String { "\(type):\(value)" }
}

/// The SOAP call an exchange carries.
public struct SOAPCall: Codable, Sendable, Equatable {
    /// The body element's local name, such as `WaitForUpdatesEx`.
    public var operation: String
    /// The `_this` argument: the managed object the call targets.
    public var this: ManagedObjectReference?
    /// The fault type (`ManagedObjectNotFound`, …) when the response is a SOAP fault.
    public var fault: String?

    public init(operation: String, this: ManagedObjectReference? = nil, fault: String? = nil) {
        self.operation = operation
        self.this = this
        self.fault = fault
    }
}
