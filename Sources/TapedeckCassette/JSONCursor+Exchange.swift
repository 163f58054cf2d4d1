import Foundation
import TapedeckCore

// Reads the `Exchange` shape that the Codable conformances in TapedeckCore define,
// with the same required and optional members. Unknown members are skipped, as
// JSONDecoder skips them. A member given twice, or null, is rejected rather than
// guessed at, so JSONDecoder decides those lines.

extension JSONCursor {
    /// Decodes a whole line as one exchange.
    static func decodeExchange(_ line: UnsafeRawBufferPointer) throws(Rejection) -> Exchange {
        var cursor = JSONCursor(line)
        let exchange = try cursor.readExchange()
        try cursor.expectEnd()
        return exchange
    }

    mutating func readExchange() throws(Rejection) -> Exchange {
        var sequence: Int?, connection: Int?, session: String?, timing: Timing?
        var request: Request?, response: Response?, unanswered: Unanswered?, soap: SOAPCall?
        try readObject { cursor, key throws(Rejection) in
            if cursor.key(key, is: "sequence") {
                try assignOnce(&sequence, try cursor.readInt())
            } else if cursor.key(key, is: "connection") {
                try assignOnce(&connection, try cursor.readInt())
            } else if cursor.key(key, is: "session") {
                try assignOnce(&session, try cursor.readString())
            } else if cursor.key(key, is: "timing") {
                try assignOnce(&timing, try cursor.readTiming())
            } else if cursor.key(key, is: "request") {
                try assignOnce(&request, try cursor.readRequest())
            } else if cursor.key(key, is: "response") {
                try assignOnce(&response, try cursor.readResponse())
            } else if cursor.key(key, is: "unanswered") {
                try assignOnce(&unanswered, try cursor.readUnanswered())
            } else if cursor.key(key, is: "soap") {
                try assignOnce(&soap, try cursor.readSOAPCall())
            } else {
                return false
            }
            return true
        }
        guard let sequence, let connection, let timing, let request else { throw Rejection() }
        return Exchange(
            sequence: sequence, connection: connection, session: session, timing: timing, request: request,
            response: response, unanswered: unanswered, soap: soap)
    }

    private mutating func readTiming() throws(Rejection) -> Timing {
        var requestStart: UInt64?, requestEnd: UInt64?, responseStart: UInt64?, responseEnd: UInt64?
        try readObject { cursor, key throws(Rejection) in
            if cursor.key(key, is: "requestStart") {
                try assignOnce(&requestStart, try cursor.readUInt64())
            } else if cursor.key(key, is: "requestEnd") {
                try assignOnce(&requestEnd, try cursor.readUInt64())
            } else if cursor.key(key, is: "responseStart") {
                try assignOnce(&responseStart, try cursor.readUInt64())
            } else if cursor.key(key, is: "responseEnd") {
                try assignOnce(&responseEnd, try cursor.readUInt64())
            } else {
                return false
            }
            return true
        }
        guard let requestStart, let requestEnd else { throw Rejection() }
        return Timing(requestStart: requestStart, requestEnd: requestEnd, responseStart: responseStart, responseEnd: responseEnd)
    }

    private mutating func readRequest() throws(Rejection) -> Request {
        var method: String?, path: String?, headers: [Header]?, body: Body?
        try readObject { cursor, key throws(Rejection) in
            if cursor.key(key, is: "method") {
                try assignOnce(&method, try cursor.readString())
            } else if cursor.key(key, is: "path") {
                try assignOnce(&path, try cursor.readString())
            } else if cursor.key(key, is: "headers") {
                try assignOnce(&headers, try cursor.readHeaders())
            } else if cursor.key(key, is: "body") {
                try assignOnce(&body, try cursor.readBody())
            } else {
                return false
            }
            return true
        }
        guard let method, let path, let headers, let body else { throw Rejection() }
        return Request(method: method, path: path, headers: headers, body: body)
    }

    private mutating func readResponse() throws(Rejection) -> Response {
        var status: Int?, headers: [Header]?, body: Body?
        try readObject { cursor, key throws(Rejection) in
            if cursor.key(key, is: "status") {
                try assignOnce(&status, try cursor.readInt())
            } else if cursor.key(key, is: "headers") {
                try assignOnce(&headers, try cursor.readHeaders())
            } else if cursor.key(key, is: "body") {
                try assignOnce(&body, try cursor.readBody())
            } else {
                return false
            }
            return true
        }
        guard let status, let headers, let body else { throw Rejection() }
        return Response(status: status, headers: headers, body: body)
    }

    /// Reads `[[name, value], …]`. Pairs of another length go to JSONDecoder.
    private mutating func readHeaders() throws(Rejection) -> [Header] {
        var headers: [Header] = []
        var more = try enterArray()
        while more {
            guard try enterArray() else { throw Rejection() }
            let name = try readString()
            guard try nextElement() else { throw Rejection() }
            let value = try readString()
            guard try !nextElement() else { throw Rejection() }
            headers.append(Header(name, value))
            more = try nextElement()
        }
        return headers
    }

    /// Reads a body with the precedence of `Body.init(from:)`: `text`, then
    /// `base64`, then `omitted`, else empty.
    private mutating func readBody() throws(Rejection) -> Body {
        var text: Data?, base64: String?, omitted: Int64?
        try readObject { cursor, key throws(Rejection) in
            if cursor.key(key, is: "text") {
                try assignOnce(&text, try cursor.readUTF8Data())
            } else if cursor.key(key, is: "base64") {
                try assignOnce(&base64, try cursor.readString())
            } else if cursor.key(key, is: "omitted") {
                try assignOnce(&omitted, try cursor.readInt64())
            } else {
                return false
            }
            return true
        }
        if let text { return .bytes(text) }
        if let base64 {
            guard let data = Data(base64Encoded: base64) else { throw Rejection() }
            return .bytes(data)
        }
        if let omitted { return .omitted(size: omitted) }
        return .empty
    }

    private mutating func readUnanswered() throws(Rejection) -> Unanswered {
        var reason: Unanswered.Reason?, detail: String?, at: UInt64?
        try readObject { cursor, key throws(Rejection) in
            if cursor.key(key, is: "reason") {
                guard let parsed = Unanswered.Reason(rawValue: try cursor.readString()) else { throw Rejection() }
                try assignOnce(&reason, parsed)
            } else if cursor.key(key, is: "detail") {
                try assignOnce(&detail, try cursor.readString())
            } else if cursor.key(key, is: "at") {
                try assignOnce(&at, try cursor.readUInt64())
            } else {
                return false
            }
            return true
        }
        guard let reason, let detail, let at else { throw Rejection() }
        return Unanswered(reason: reason, detail: detail, at: at)
    }

    private mutating func readSOAPCall() throws(Rejection) -> SOAPCall {
        var operation: String?, this: ManagedObjectReference?, fault: String?
        try readObject { cursor, key throws(Rejection) in
            if cursor.key(key, is: "operation") {
                try assignOnce(&operation, try cursor.readString())
            } else if cursor.key(key, is: "this") {
                try assignOnce(&this, try cursor.readReference())
            } else if cursor.key(key, is: "fault") {
                try assignOnce(&fault, try cursor.readString())
            } else {
                return false
            }
            return true
        }
        guard let operation else { throw Rejection() }
        return SOAPCall(operation: operation, this: this, fault: fault)
    }

    private mutating func readReference() throws(Rejection) -> ManagedObjectReference {
        var type: String?, value: String?
        try readObject { cursor, key throws(Rejection) in
            if cursor.key(key, is: "type") {
                try assignOnce(&type, try cursor.readString())
            } else if cursor.key(key, is: "value") {
                try assignOnce(&value, try cursor.readString())
            } else {
                return false
            }
            return true
        }
        guard let type, let value else { throw Rejection() }
        return ManagedObjectReference(type: type, value: value)
    }
}

/// Stores the value of a member, rejecting a member that appears twice.
private func assignOnce<Value>(_ slot: inout Value?, _ value: Value) throws(JSONCursor.Rejection) {
    guard slot == nil else { throw JSONCursor.Rejection() }
    slot = value
}
