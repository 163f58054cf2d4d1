import Foundation
import TapedeckCore

/// Exit codes follow grep and diff, because users script around verdicts.
public enum ExitCode: Int32, Sendable {
    case success = 0
    /// A verdict or check failed, such as `scan` finding a secret.
    case failure = 1
    /// Bad arguments or unreadable input.
    case usage = 2
}

/// A subcommand: one type each, parsed and validated before any work starts.
protocol Command {
    static var name: String { get }
    /// One line for the command list.
    static var summary: String { get }
    /// The synopsis line, without the "Usage: " prefix.
    static var usage: String { get }
    /// The option list shown by `--help`.
    static var options: String { get }

    init(parsing arguments: inout Arguments) throws(UsageError)
    func run(_ context: CommandContext) throws -> ExitCode
}

extension Command {
    static var help: String {
        "\(summary)\n\nUsage: \(usage)\n\nOptions:\n\(options)"
    }
}

/// An invalid command line: the message, and optionally a hint for the fix.
public struct UsageError: Error, Equatable {
    public var message: String
    public var hint: String?

    public init(_ message: String, hint: String? = nil) {
        self.message = message
        self.hint = hint
    }
}

/// A failure while running a command, reported as `Error: …` with exit code 2.
public struct RunError: Error, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// Where a command writes, so tests can capture it.
public struct CommandContext: Sendable {
    public var standardOutput: @Sendable (String) -> Void
    public var standardError: @Sendable (String) -> Void
    public var logHandler: any LogHandler
    /// True when standard error is a terminal, which enables live progress.
    public var isTerminal: Bool

    public static let process = CommandContext(
        standardOutput: { text in FileHandle.standardOutput.write(Data(text.utf8)) },
        standardError: { text in FileHandle.standardError.write(Data(text.utf8)) },
        logHandler: StandardErrorLogHandler(),
        isTerminal: isatty(STDERR_FILENO) == 1)

    func print(_ line: String = "") {
        standardOutput(line + "\n")
    }

    func printError(_ line: String) {
        standardError(line + "\n")
    }

    func logger(label: String, level: Logger.Level) -> Logger {
        Logger(label: label, level: level, handler: logHandler)
    }
}
