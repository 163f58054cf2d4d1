import Foundation
import TapedeckCore

/// Totals over a cassette's exchanges, built in one pass without keeping them.
public struct CassetteSummary: Codable, Sendable, Equatable {
    public struct OperationCount: Codable, Sendable, Equatable {
        public var calls = 0
        public var faults = 0
        public var unanswered = 0
    }

    public struct UnansweredExchange: Codable, Sendable, Equatable {
        public var sequence: Int
        /// The SOAP operation, or the method and path of another request.
        public var request: String
        public var this: String?
        public var reason: Unanswered.Reason
        /// Nanoseconds from the request's end until the exchange was given up.
        public var waited: UInt64
    }

    public var exchanges = 0
    public var unanswered = 0
    public var sessions = 0
    public var connections = 0
    /// Nanoseconds from the first request to the last event.
    public var span: UInt64 = 0
    /// Successful calls of `*_Task` methods, each of which created a task.
    public var tasksCreated = 0
    public var operations: [String: OperationCount] = [:]
    /// Requests that are not SOAP, by method and path without the query.
    public var otherRequests: [String: Int] = [:]
    public var unansweredExchanges: [UnansweredExchange] = []

    private var sessionSet: Set<String> = []
    private var connectionSet: Set<Int> = []
    private var firstStart: UInt64?

    private enum CodingKeys: String, CodingKey {
        case exchanges, unanswered, sessions, connections, span, tasksCreated, operations, otherRequests, unansweredExchanges
    }

    public init() {}

    public mutating func add(_ exchange: Exchange) {
        exchanges += 1
        if let session = exchange.session, sessionSet.insert(session).inserted { sessions += 1 }
        if connectionSet.insert(exchange.connection).inserted { connections += 1 }
        firstStart = min(firstStart ?? exchange.timing.requestStart, exchange.timing.requestStart)
        let end = exchange.timing.responseEnd ?? exchange.unanswered?.at ?? exchange.timing.requestEnd
        span = max(span, end &- (firstStart ?? 0))

        if let call = exchange.soap {
            var count = operations[call.operation] ?? OperationCount()
            count.calls += 1
            if call.fault != nil { count.faults += 1 }
            if exchange.unanswered != nil { count.unanswered += 1 }
            operations[call.operation] = count
            if call.operation.hasSuffix("_Task") && exchange.response?.status == 200 { tasksCreated += 1 }
        } else {
            let path = exchange.request.path.prefix { $0 != "?" }
            otherRequests["\(exchange.request.method) \(path)", default: 0] += 1
        }

        if let missing = exchange.unanswered {
            unanswered += 1
            unansweredExchanges.append(UnansweredExchange(
                sequence: exchange.sequence,
                request: exchange.soap?.operation ?? "\(exchange.request.method) \(exchange.request.path.prefix { $0 != "?" })",
                this: exchange.soap?.this?.description, reason: missing.reason,
                waited: missing.at &- exchange.timing.requestEnd))
            unansweredExchanges.sort { $0.sequence < $1.sequence }
        }
    }

    /// Reads the whole cassette into a summary; the truncation, if any, is returned
    /// beside it.
    public static func read(_ reader: CassetteReader) throws -> CassetteSummary {
        var summary = CassetteSummary()
        try reader.forEach { summary.add($0) }
        return summary
    }
}
