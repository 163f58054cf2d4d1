import Foundation
import TapedeckCassette
import TapedeckCore
import TapedeckSOAP

struct CatCommand: Command {
    static let name = "cat"
    static let summary = "Print a cassette's exchanges as a readable transcript, or as JSON lines."
    static let usage = "tapedeck cat CASSETTE [--json]"
    static let options = """
          --json                 print one JSON object per exchange, in cassette order
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
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try reader.forEach { exchange in
            if json {
                context.print(String(decoding: try encoder.encode(exchange), as: UTF8.self))
            } else {
                context.print(Self.transcript(of: exchange))
            }
        }
        if let truncation = reader.truncation {
            context.printError("warning: \(truncation)")
        }
        return .success
    }

    static func transcript(of exchange: Exchange) -> String {
        var lines: [String] = []
        var title = "#\(exchange.sequence)  connection \(exchange.connection)  \(exchange.session ?? "no session")"
        title += "  +\(seconds(exchange.timing.requestStart))  \(exchange.request.method) \(exchange.request.path)"
        if let call = exchange.soap {
            title += "  \(call.operation)" + (call.this.map { " \($0)" } ?? "")
        }
        lines.append(title)
        lines += exchange.request.headers.map { "> \($0.name): \($0.value)" }
        lines += bodyLines(exchange.request.body)

        if let response = exchange.response {
            let elapsed = (exchange.timing.responseEnd ?? 0) &- exchange.timing.requestEnd
            lines.append("< \(response.status)  after \(seconds(elapsed))" + (exchange.soap?.fault.map { "  fault \($0)" } ?? ""))
            lines += response.headers.map { "< \($0.name): \($0.value)" }
            lines += bodyLines(response.body)
        } else if let unanswered = exchange.unanswered {
            let waited = unanswered.at &- exchange.timing.requestEnd
            lines.append("! unanswered: \(unanswered.reason.rawValue) after \(seconds(waited)): \(unanswered.detail)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func bodyLines(_ body: Body) -> [String] {
        switch body {
        case .empty:
            return []
        case .omitted(let size):
            return ["  (body of \(size) bytes not recorded: larger than --max-body-bytes)"]
        case .bytes(let data):
            if let xml = SOAPEnvelope.formatted(data) {
                return xml.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }
            }
            if let text = String(data: data, encoding: .utf8) {
                return text.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }
            }
            return ["  (\(data.count) bytes of binary data)"]
        }
    }
}
