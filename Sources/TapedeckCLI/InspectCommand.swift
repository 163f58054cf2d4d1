import Foundation
import TapedeckCassette
import TapedeckCore

struct InspectCommand: Command {
    static let name = "inspect"
    static let summary = "Summarize a cassette: operations, sessions, tasks and unanswered exchanges."
    static let usage = "tapedeck inspect CASSETTE [--json]"
    static let options = """
          --json                 print the summary as one JSON object
          -h, --help             show this help
        """

    var path: String
    var json = false

    init(parsing arguments: inout Arguments) throws(UsageError) {
        json = arguments.flag("--json")
        guard let path = arguments.positional() else { throw UsageError("missing CASSETTE (the cassette file to read)") }
        self.path = path
    }

    func run(_ context: CommandContext) throws -> ExitCode {
        let reader = try CassetteReader(path: path)
        let summary = try CassetteSummary.read(reader)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            context.print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            context.print(Self.describe(summary, header: reader.header, path: path))
        }
        if let truncation = reader.truncation {
            context.printError("warning: \(truncation)")
        }
        return .success
    }

    static func describe(_ summary: CassetteSummary, header: CassetteHeader, path: String) -> String {
        var lines = [
            "cassette     \(path)",
            "format       version \(header.version), written by \(header.tool)",
            "upstream     \(header.upstream)",
            "started      \(header.started)",
            "span         \(seconds(summary.span))",
            "exchanges    \(summary.exchanges) (\(summary.unanswered) unanswered)",
            "sessions     \(summary.sessions)",
            "connections  \(summary.connections)",
            "tasks        \(summary.tasksCreated) created",
        ]
        if !summary.operations.isEmpty {
            lines += ["", "SOAP operation".padding(toLength: 36, withPad: " ", startingAt: 0) + "  calls  faults  unanswered"]
            for (name, count) in summary.operations.sorted(by: { ($0.value.calls, $1.key) > ($1.value.calls, $0.key) }) {
                lines.append("  " + name.padding(toLength: 34, withPad: " ", startingAt: 0)
                    + pad(count.calls, 7) + pad(count.faults, 8) + pad(count.unanswered, 12))
            }
        }
        if !summary.otherRequests.isEmpty {
            lines += ["", "Other requests".padding(toLength: 36, withPad: " ", startingAt: 0) + "  calls"]
            for (name, count) in summary.otherRequests.sorted(by: { $0.key < $1.key }) {
                lines.append("  " + name.padding(toLength: 34, withPad: " ", startingAt: 0) + pad(count, 7))
            }
        }
        if !summary.unansweredExchanges.isEmpty {
            lines += ["", "Unanswered exchanges"]
            for item in summary.unansweredExchanges {
                let target = item.this.map { " \($0)" } ?? ""
                lines.append("  #\(item.sequence)  \(item.request)\(target)  \(item.reason.rawValue) after \(seconds(item.waited))")
            }
        }
        return lines.joined(separator: "\n")
    }

    private static func pad(_ number: Int, _ width: Int) -> String {
        let text = String(number)
        return String(repeating: " ", count: max(0, width - text.count)) + text
    }
}

func seconds(_ nanoseconds: UInt64) -> String {
    String(format: "%.3f s", Double(nanoseconds) / 1e9)
}
