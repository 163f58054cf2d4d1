import Foundation
import Synchronization
import TapedeckCore
import XCTest
import TapedeckCassette

@testable import TapedeckCLI

final class CommandLineTests: XCTestCase {
    /// Runs the command line in-process and returns its exit code and output.
    private func run(_ arguments: [String]) -> (code: ExitCode, output: String, error: String) {
        let output = Mutex("")
        let error = Mutex("")
        let context = CommandContext(
            standardOutput: { text in output.withLock { $0 += text } },
            standardError: { text in error.withLock { $0 += text } },
            logHandler: CapturingLogHandler(), isTerminal: false)
        let code = CommandLineTool.main(arguments, context: context)
        return (code, output.withLock { $0 }, error.withLock { $0 })
    }

    func testRecordHelpIsExact() {
        let result = run(["record", "--help"])
        XCTAssertEqual(result.code, .success)
        XCTAssertEqual(result.output, """
            Record client traffic to vCenter into a new cassette.

            Usage: tapedeck record --upstream URL --cassette PATH [options]

            Options:
              --upstream URL         vCenter or ESXi to forward to, such as https://vcenter.example.com (required)
              --cassette PATH        cassette file to create; an existing file is never overwritten (required)
              --listen HOST:PORT     address to listen on (default 127.0.0.1:0; port 0 picks a free port)
              --ready-file FILE      write the listen URL to FILE once the proxy accepts connections
              --insecure             do not verify the upstream's TLS certificate
              --ca-file FILE         verify the upstream's certificate against this PEM CA bundle
              --thumbprint SHA256    accept only an upstream certificate with this SHA-256 thumbprint
              --tls-cert FILE        PEM certificate for an HTTPS listener, with --tls-key
              --tls-key FILE         PEM private key for an HTTPS listener, with --tls-cert
              --tls-self-signed      serve HTTPS with a new self-signed certificate for 127.0.0.1 and localhost
              --redact RULE          also redact header:NAME, element:NAME, json:KEY or regex:PATTERN (repeatable)
              --max-body-bytes N     record bodies up to N bytes; larger ones pass through unrecorded (default 8388608)
              --grace SECONDS        on SIGINT or SIGTERM, let in-flight exchanges finish for this long (default 2)
              --log-level LEVEL      debug, info, warning or error (default info)
              -h, --help             show this help

            """)
    }

    func testOverviewListsEveryCommand() {
        let result = run(["--help"])
        XCTAssertEqual(result.code, .success)
        XCTAssertEqual(result.output, """
            tapedeck 0.1.0: record, replay, verify and fuzz vSphere API traffic.

            Usage: tapedeck <command> [options]

            Commands:
              record   Record client traffic to vCenter into a new cassette.
              replay   Serve a cassette offline, with controlled latency and ordering.
              verify   Prove whether each task wait in a cassette completed or blocked.
              fuzz     Run a client against many scheduled replays and save schedules that fail.
              inspect  Summarize a cassette: operations, sessions, tasks and unanswered exchanges.
              cat      Print a cassette's exchanges as a readable transcript, or as JSON lines.
              scan     Check a cassette for secrets that redaction should have removed.

            Run 'tapedeck <command> --help' for a command's options.

            """)
    }

    func testMissingOptionPrintsErrorUsageAndHint() {
        let result = run(["record", "--cassette", "/tmp/x.cassette"])
        XCTAssertEqual(result.code, .usage)
        XCTAssertEqual(result.output, "")
        XCTAssertEqual(result.error, """
            Error: missing --upstream (the vCenter URL to forward to)

            Usage: tapedeck record --upstream URL --cassette PATH [options]

            Hint: Run 'tapedeck record --help' for all options.

            """)
    }

    func testInvalidValuesNameTheValueAndTheExpectedForm() {
        let cases: [([String], String)] = [
            (["--upstream", "vcenter.local"], "Error: invalid value 'vcenter.local' for --upstream; expected an http or https URL such as https://vcenter.example.com"),
            (["--upstream", "https://root:pw@vc"], "Error: --upstream must not contain credentials"),
            (["--upstream", "https://vc", "--listen", "127.0.0.1:99999"], "Error: invalid value '127.0.0.1:99999' for --listen; expected HOST:PORT with a port from 0 to 65535"),
            (["--upstream", "https://vc", "--thumbprint", "12:34"], "Error: invalid value '12:34' for --thumbprint; expected a SHA-256 thumbprint: 32 hex pairs, with or without colons"),
            (["--upstream", "https://vc", "--insecure", "--thumbprint", String(repeating: "ab", count: 32)], "Error: --insecure, --ca-file and --thumbprint exclude each other; give one"),
            (["--upstream", "https://vc", "--redact", "cookie:x"], "Error: invalid redaction rule 'cookie:x': unknown kind 'cookie'; use header:NAME, element:NAME, json:KEY or regex:PATTERN"),
            (["--upstream", "https://vc", "--tls-cert", "/etc/hostname"], "Error: --tls-cert and --tls-key go together; give both"),
            (["--upstream", "https://vc", "--bogus"], "Error: unknown option '--bogus'"),
        ]
        for (arguments, expected) in cases {
            let result = run(["record", "--cassette", "/tmp/tapedeck-never-created.cassette"] + arguments)
            XCTAssertEqual(result.code, .usage, "\(arguments)")
            XCTAssertEqual(result.error.components(separatedBy: "\n").first, expected, "\(arguments)")
        }
    }

    func testExistingCassetteIsRejectedBeforeListening() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let existing = directory.appendingPathComponent("old.cassette")
        try Data("keep me".utf8).write(to: existing)

        let result = run(["record", "--upstream", "http://127.0.0.1:1", "--cassette", existing.path])
        XCTAssertEqual(result.code, .usage)
        XCTAssertTrue(result.error.hasPrefix("Error: cassette '\(existing.path)' already exists\n"), result.error)
        XCTAssertTrue(result.error.contains("Hint: tapedeck never overwrites a cassette"), result.error)
        XCTAssertEqual(try String(contentsOf: existing, encoding: .utf8), "keep me")
    }

    func testUnreadableCassetteExitsTwoNamingThePath() {
        let result = run(["inspect", "/tmp/tapedeck-no-such-file.cassette"])
        XCTAssertEqual(result.code, .usage)
        XCTAssertEqual(result.error, "Error: cassette '/tmp/tapedeck-no-such-file.cassette' not found; check the path\n")
    }

    func testMissingOutputDirectoryIsRejectedUpFront() {
        let result = run(["verify", "/tmp/x.cassette", "--junit", "/tmp/tapedeck-no-such-dir/verify.xml"])
        XCTAssertEqual(result.code, .usage)
        XCTAssertTrue(result.error.hasPrefix("Error: the directory '/tmp/tapedeck-no-such-dir' of --junit does not exist\n"), result.error)
    }

    func testMisspelledRequiredOptionIsNamed() {
        let replay = run(["replay", "--casette", "/tmp/x.cassette"])
        XCTAssertEqual(replay.code, .usage)
        XCTAssertTrue(replay.error.hasPrefix("Error: unknown option '--casette'; did you mean --cassette?\n"), replay.error)
    }

    func testUnknownCommandExitsTwo() {
        let result = run(["replay-everything"])
        XCTAssertEqual(result.code, .usage)
        XCTAssertTrue(result.error.hasPrefix("Error: unknown command 'replay-everything'\n"))
    }

    func testInspectWarnsAboutTruncatedCassette() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("cut.cassette").path
        let writer = try TapedeckCassette.CassetteWriter(path: path, header: .init(tool: "t", upstream: "http://127.0.0.1:1"))
        try writer.append(Fixtures.exchange(sequence: 1, operation: "Login"))
        // Not closed, as after SIGKILL.

        let result = run(["inspect", path])
        XCTAssertEqual(result.code, .success)
        XCTAssertTrue(result.output.contains("exchanges    1 (0 unanswered)"), result.output)
        XCTAssertTrue(result.error.hasPrefix("warning: cassette ends without its closing frame after 1 complete exchanges"), result.error)
    }
}
