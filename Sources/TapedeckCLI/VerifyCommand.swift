import Foundation
import TapedeckCassette
import TapedeckCore
import TapedeckVerify

struct VerifyCommand: Command {
    static let name = "verify"
    static let summary = "Prove whether each task wait in a cassette completed or blocked."
    static let usage = "tapedeck verify CASSETTE [--json] [--junit FILE]"
    static let options = """
          --json                 print the verdicts as one JSON object
          --junit FILE           also write the verdicts as JUnit XML to FILE, one test case per flow
          -h, --help             show this help

        Exit status: 0 when every flow completed, 1 when any flow blocked, livelocked or
        broke the one-wait-per-collector rule, 2 on bad arguments or an unreadable cassette.
        """

    var path: String
    var json = false
    var junitFile: String?

    init(parsing arguments: inout Arguments) throws(UsageError) {
        json = arguments.flag("--json")
        junitFile = try arguments.value("--junit")
        try validateOutputFile(junitFile, option: "--junit")
        guard let path = arguments.positional() else { throw UsageError("missing CASSETTE (the cassette to verify)") }
        self.path = path
    }

    func run(_ context: CommandContext) throws -> ExitCode {
        let reader = try CassetteReader(path: path)
        var exchanges: [Exchange] = []
        try reader.forEach { exchanges.append($0) }
        if let truncation = reader.truncation { context.printError("warning: \(truncation)") }

        let report = Verifier.verify(exchanges)
        try VerificationOutput.write(report, source: path, json: json, junitFile: junitFile, context: context)
        return report.failed ? .failure : .success
    }
}

/// Prints a verification report as text or JSON, and writes JUnit XML.
enum VerificationOutput {
    static func write(_ report: VerificationReport, source: String, json: Bool, junitFile: String?, context: CommandContext) throws {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            context.print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            context.print(text(report, source: source))
        }
        if let junitFile {
            try Data(junit(report, source: source).utf8).write(to: URL(fileURLWithPath: junitFile))
        }
    }

    static func text(_ report: VerificationReport, source: String) -> String {
        let counts = FlowVerdict.Kind.allCases.compactMap { kind -> String? in
            let count = report.count(kind)
            return count == 0 ? nil : "\(count) \(kind.rawValue)"
        }
        var lines = ["\(source): \(report.flows.count) task flows: \(counts.isEmpty ? "none" : counts.joined(separator: ", "))"]
        for flow in report.flows where flow.kind != .completed {
            lines.append("\(flow.kind.rawValue)  \(flow.task)  \(flow.session ?? "no session")  \(flow.collector ?? "no collector")")
            lines += flow.evidence.map { "    " + $0 }
        }
        if !report.violations.isEmpty {
            let collectors = Set(report.violations.map { "\($0.session ?? "none")|\($0.collector)" })
            lines.append("protocol violations: \(report.violations.count) overlapping wait pairs on \(collectors.count) collector(s); the vSphere API allows one wait at a time per collector")
            for violation in report.violations.prefix(10) {
                let overlap = violation.overlapMilliseconds < 0 ? "still pending" : String(format: "%.1f ms", violation.overlapMilliseconds)
                lines.append("    \(violation.collector) in \(violation.session ?? "no session"): #\(violation.first) and #\(violation.second) overlapped (\(overlap))")
            }
            if report.violations.count > 10 { lines.append("    … \(report.violations.count - 10) more") }
        }
        lines.append(report.failed ? "verdict: FAILED" : "verdict: passed")
        return lines.joined(separator: "\n")
    }

    static func junit(_ report: VerificationReport, source: String) -> String {
        let failures = report.flows.filter { $0.kind.isFailure }.count + (report.violations.isEmpty ? 0 : 1)
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        xml += "<testsuite name=\"tapedeck verify \(escape(source))\" tests=\"\(report.flows.count + 1)\" failures=\"\(failures)\">\n"
        for flow in report.flows {
            xml += "  <testcase classname=\"\(escape(flow.collector ?? "polling"))\" name=\"\(escape(flow.task))\">"
            if flow.kind.isFailure {
                xml += "<failure type=\"\(flow.kind.rawValue)\" message=\"\(escape(flow.kind.rawValue))\">\(escape(flow.evidence.joined(separator: "\n")))</failure>"
            } else if flow.kind != .completed {
                xml += "<skipped message=\"\(escape(flow.kind.rawValue)): \(escape(flow.evidence.joined(separator: " ")))\"/>"
            }
            xml += "</testcase>\n"
        }
        xml += "  <testcase classname=\"protocol\" name=\"one wait per collector\">"
        if !report.violations.isEmpty {
            xml += "<failure type=\"protocol-violation\" message=\"\(report.violations.count) overlapping wait pairs\"/>"
        }
        xml += "</testcase>\n</testsuite>\n"
        return xml
    }

    private static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }
}
