import Foundation
import TapedeckCassette
import TapedeckCore
import TapedeckSOAP

struct ScanCommand: Command {
    static let name = "scan"
    static let summary = "Check a cassette for secrets that redaction should have removed."
    static let usage = "tapedeck scan CASSETTE [--redact RULE ...]"
    static let options = """
          --redact RULE          also look for header:NAME, element:NAME, json:KEY or regex:PATTERN (repeatable)
          -h, --help             show this help
        """

    var path: String
    var rules: [RedactionRule] = []

    init(parsing arguments: inout Arguments) throws(UsageError) {
        for rule in try arguments.values("--redact") {
            do {
                rules.append(try RedactionRule(parsing: rule))
            } catch {
                throw UsageError(error.description)
            }
        }
        guard let path = arguments.positional() else { throw UsageError("missing CASSETTE (the cassette file to scan)") }
        self.path = path
    }

    /// A secret survives where redacting the stored exchange again would still
    /// change it: placeholders are left alone, anything else is found.
    func run(_ context: CommandContext) throws -> ExitCode {
        let reader = try CassetteReader(path: path)
        let redactor = Redactor(rules: rules)
        var findings = 0
        try reader.forEach { exchange in
            var copy = exchange
            for redaction in redactor.redact(&copy) {
                findings += 1
                context.print("exchange #\(exchange.sequence): secret in \(redaction)")
            }
        }
        if let truncation = reader.truncation {
            context.printError("warning: \(truncation)")
        }
        if findings > 0 {
            context.print("\(findings) secrets found in \(reader.exchangesRead) exchanges of \(path)")
            return .failure
        }
        context.print("no secrets found in \(reader.exchangesRead) exchanges of \(path)")
        return .success
    }
}
