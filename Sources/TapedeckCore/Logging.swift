import Foundation
import Synchronization

/// A structured logger: a fixed message plus metadata such as `cassette.path` or
/// `soap.operation`. Libraries log at `.debug` or `.info`; the command line picks the
/// handler and the level, and tests pass a `CapturingLogHandler`.
public struct Logger: Sendable {
    public enum Level: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
        case debug, info, warning, error

        public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }

        public var description: String {
            switch self {
            case .debug: "debug"
            case .info: "info"
            case .warning: "warning"
            case .error: "error"
            }
        }

        public init?(name: String) {
            guard let level = Level.allCases.first(where: { $0.description == name }) else { return nil }
            self = level
        }
    }

    public typealias Metadata = [String: String]

    public let label: String
    public var level: Level
    public var metadata: Metadata
    private let handler: any LogHandler

    public init(label: String, level: Level = .info, metadata: Metadata = [:], handler: any LogHandler) {
        self.label = label
        self.level = level
        self.metadata = metadata
        self.handler = handler
    }

    /// A logger that drops everything, for callers that do not care.
    public static let disabled = Logger(label: "disabled", level: .error, handler: DiscardingLogHandler())

    public func log(_ level: Level, _ message: @autoclosure () -> String, _ metadata: @autoclosure () -> Metadata = [:]) {
        guard level >= self.level else { return }
        var merged = self.metadata
        merged.merge(metadata()) { _, new in new }
        handler.write(LogRecord(level: level, label: label, message: message(), metadata: merged))
    }

    public func debug(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> Metadata = [:]) {
        log(.debug, message(), metadata())
    }

    public func info(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> Metadata = [:]) {
        log(.info, message(), metadata())
    }

    public func warning(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> Metadata = [:]) {
        log(.warning, message(), metadata())
    }

    public func error(_ message: @autoclosure () -> String, _ metadata: @autoclosure () -> Metadata = [:]) {
        log(.error, message(), metadata())
    }

    /// Returns a copy whose records all carry the given metadata.
    public func with(_ extra: Metadata) -> Logger {
        var copy = self
        copy.metadata.merge(extra) { _, new in new }
        return copy
    }
}

public struct LogRecord: Sendable, Equatable {
    public var level: Logger.Level
    public var label: String
    public var message: String
    public var metadata: Logger.Metadata

    /// The record as one line: `level label: message key=value …`, keys sorted.
    public var line: String {
        let pairs = metadata.keys.sorted().map { "\($0)=\(metadata[$0]!)" }
        let suffix = pairs.isEmpty ? "" : " " + pairs.joined(separator: " ")
        return "\(level) \(label): \(message)\(suffix)"
    }
}

public protocol LogHandler: Sendable {
    func write(_ record: LogRecord)
}

public struct DiscardingLogHandler: LogHandler {
    public init() {}
    public func write(_ record: LogRecord) {}
}

/// Writes each record as one line to standard error.
public final class StandardErrorLogHandler: LogHandler {
    private let lock = Mutex(())

    public init() {}

    public func write(_ record: LogRecord) {
        let line = record.line + "\n"
        lock.withLock { _ in
            FileHandle.standardError.write(Data(line.utf8))
        }
    }
}

/// Keeps every record in memory so tests can assert on what was logged.
public final class CapturingLogHandler: LogHandler {
    private let storage = Mutex<[LogRecord]>([])

    public init() {}

    public func write(_ record: LogRecord) {
        storage.withLock { $0.append(record) }
    }

    public var records: [LogRecord] {
        storage.withLock { $0 }
    }
}
