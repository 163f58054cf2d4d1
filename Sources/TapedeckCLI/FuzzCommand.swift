import Foundation
import TapedeckCore
import TapedeckFuzz
import TapedeckReplay
import TapedeckVerify

struct FuzzCommand: Command {
    static let name = "fuzz"
    static let summary = "Run a client against many scheduled replays and save schedules that fail."
    static let usage = "tapedeck fuzz --cassette PATH [options] -- CLIENT COMMAND..."
    static let options = """
          --cassette PATH        cassette to replay (required)
          --runs N               number of runs (default 20)
          --strategy S           random, pct, portfolio (random and pct in turn) or recorded (default portfolio)
          --depth D              PCT depth: D - 1 priority change points per run (default 3)
          --seed S               seed of the first run; run i uses S + i (default 1)
          --shard I/N            run only the runs whose index modulo N is I, for CI matrices (default 0/1)
          --settle DURATION      quiet time that makes a decision point (default 5ms)
          --hang-timeout DURATION  longest a ready response is held (default 2s)
          --run-timeout DURATION   longest one run may take (default 60s)
          --latency POLICY       replay latency, as for replay (default none)
          --fault RULE           inject OPERATION:KIND[:PROBABILITY|@N] in every run, seeded by the run (repeatable)
          --schedules DIR        where failing runs' schedules go (default fuzz-schedules)
          --schedule FILE        follow this saved schedule in every run, to check that it reproduces its verdict
          --log-level LEVEL      debug, info, warning or error (default warning)
          -h, --help             show this help

        The client gets the replay URL in TAPEDECK_URL and in place of {url} in its arguments.
        Exit status: 0 when no run failed, 1 when any run had a blocked, livelocked or
        protocol-violating flow, 2 on bad arguments or an unreadable cassette.
        """

    var configuration: FuzzConfiguration
    var logLevel = Logger.Level.warning

    init(parsing arguments: inout Arguments) throws(UsageError) {
        let client = arguments.trailingCommand()
        configuration = FuzzConfiguration(
            cassettePath: try arguments.requiredValue("--cassette", meaning: "(the cassette to replay)"), client: client)
        guard !client.isEmpty else {
            throw UsageError("missing the client command after --", hint: "For example: tapedeck fuzz --cassette c.cassette -- ./client -url {url}/sdk")
        }
        if let text = try arguments.value("--runs") {
            guard let runs = Int(text), runs > 0 else { throw .invalid("--runs", text, expected: "a whole number, 1 or more") }
            configuration.runs = runs
        }
        if let text = try arguments.value("--strategy") {
            guard let strategy = FuzzStrategy(rawValue: text) else { throw .invalid("--strategy", text, expected: "random, pct, portfolio or recorded") }
            configuration.strategy = strategy
        }
        if let text = try arguments.value("--depth") {
            guard let depth = Int(text), depth >= 1 else { throw .invalid("--depth", text, expected: "a whole number, 1 or more") }
            configuration.depth = depth
        }
        if let text = try arguments.value("--seed") {
            guard let seed = UInt64(text) else { throw .invalid("--seed", text, expected: "a whole number from 0 to 18446744073709551615") }
            configuration.seed = seed
        }
        if let text = try arguments.value("--shard") {
            let parts = text.split(separator: "/").compactMap { Int($0) }
            guard parts.count == 2, parts[1] >= 1, parts[0] >= 0, parts[0] < parts[1] else {
                throw .invalid("--shard", text, expected: "I/N with 0 <= I < N, such as 0/4")
            }
            (configuration.shardIndex, configuration.shardCount) = (parts[0], parts[1])
        }
        for (option, keyPath) in [("--settle", \FuzzConfiguration.settle), ("--hang-timeout", \.hangTimeout), ("--run-timeout", \.runTimeout)] {
            if let text = try arguments.value(option) {
                guard let duration = parseDuration(text) else { throw .invalid(option, text, expected: "a duration such as 5ms or 2s") }
                configuration[keyPath: keyPath] = duration
            }
        }
        if let text = try arguments.value("--latency") {
            do {
                configuration.latency = try LatencyPolicy(parsing: text)
            } catch {
                throw UsageError("\(error) (--latency)")
            }
        }
        if let directory = try arguments.value("--schedules") { configuration.scheduleDirectory = directory }
        configuration.faults = try parseFaults(&arguments)
        if let path = try arguments.value("--schedule") {
            do {
                let schedule = try FuzzSchedule.load(path)
                configuration.savedSchedule = schedule
                configuration.savedSchedulePath = path
                configuration.settle = .nanoseconds(Int64(schedule.settleMilliseconds * 1e6))
                configuration.hangTimeout = .nanoseconds(Int64(schedule.hangTimeoutMilliseconds * 1e6))
                configuration.latency = (try? LatencyPolicy(parsing: schedule.latency)) ?? .none
                configuration.faults = try schedule.faults.map { try FaultRule(parsing: $0) }
            } catch {
                throw UsageError("\(error)")
            }
        }
        configuration.toolVersion = "tapedeck \(tapedeckVersion)"
        if let text = try arguments.value("--log-level") {
            guard let level = Logger.Level(name: text) else {
                throw .invalid("--log-level", text, expected: "debug, info, warning or error")
            }
            logLevel = level
        }
    }

    func run(_ context: CommandContext) throws -> ExitCode {
        let logger = context.logger(label: "tapedeck.fuzz", level: logLevel)
        let runner = try FuzzRunner(configuration: configuration, logger: logger)
        let total = runner.runIndices.count
        var done = 0
        let results = try runner.run { result in
            done += 1
            let line = "run \(done)/\(total) seed \(result.seed) \(result.strategy): \(FuzzSummary.verdictText(result))"
            context.printError(context.isTerminal ? "\r\u{1B}[K" + line : line)
        }
        if context.isTerminal { context.printError("") }
        context.print(FuzzSummary.table(results))
        if let failing = results.first(where: \.failed) {
            context.print(FuzzSummary.reproduction(failing, configuration: configuration))
            return .failure
        }
        return .success
    }
}

/// The fuzz run summary: a table per strategy and a command that reproduces a failure.
enum FuzzSummary {
    static func verdictText(_ result: FuzzRunResult) -> String {
        let report = result.report
        var parts: [String] = []
        for kind in FlowVerdict.Kind.allCases where report.count(kind) > 0 {
            parts.append("\(report.count(kind)) \(kind.rawValue)")
        }
        if !report.violations.isEmpty { parts.append("\(report.violations.count) overlapping waits") }
        return (result.failed ? "FAILED " : "passed ") + parts.joined(separator: ", ")
            + String(format: " (%.0f ms%@)", result.milliseconds, result.stoppedEarly ? ", stopped once blocked" : "")
    }

    static func table(_ results: [FuzzRunResult]) -> String {
        var lines = ["strategy    runs  failing  blocked  violating  livelock  first failing seed"]
        let groups = Dictionary(grouping: results, by: \.strategy)
        for strategy in groups.keys.sorted() + ["total"] {
            let group = strategy == "total" ? results : groups[strategy]!
            let failing = group.filter(\.failed)
            let blocked = group.filter { $0.report.count(.blockedForever) > 0 }.count
            let violating = group.filter { !$0.report.violations.isEmpty }.count
            let livelocked = group.filter { $0.report.count(.livelock) > 0 }.count
            let first = failing.min { $0.run < $1.run }.map { String($0.seed) } ?? "-"
            let counts = String(format: "%5d %8d %8d %10d %9d", group.count, failing.count, blocked, violating, livelocked)
            lines.append(strategy.padding(toLength: 10, withPad: " ", startingAt: 0) + " " + counts + "  " + first)
        }
        return lines.joined(separator: "\n")
    }

    private static func milliseconds(_ duration: Duration) -> String {
        "\(Replayer.nanoseconds(duration) / 1_000_000)ms"
    }

    static func reproduction(_ result: FuzzRunResult, configuration: FuzzConfiguration) -> String {
        var command = "tapedeck fuzz --cassette \(configuration.cassettePath) --runs 1"
        if let path = configuration.savedSchedulePath {
            command += " --schedule \(path)"
        } else {
            command += " --seed \(result.seed) --strategy \(result.strategy)"
            if result.strategy == "pct" { command += " --depth \(configuration.depth)" }
            command += " --settle \(milliseconds(configuration.settle)) --hang-timeout \(milliseconds(configuration.hangTimeout))"
            command += " --latency \(configuration.latency)"
            for fault in configuration.faults { command += " --fault \(fault.text)" }
        }
        command += " -- " + configuration.client.map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " ")
        var text = "reproduce: \(command)"
        if let path = result.schedulePath {
            text += "\nschedule: \(path) (replay it with: tapedeck replay --cassette \(configuration.cassettePath) --schedule \(path))"
        }
        return text
    }
}
