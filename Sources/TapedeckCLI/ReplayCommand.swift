import Foundation
import TapedeckCore
import TapedeckFuzz
import TapedeckReplay
import TapedeckVerify

struct ReplayCommand: Command {
    static let name = "replay"
    static let summary = "Serve a cassette offline, with controlled latency and ordering."
    static let usage = "tapedeck replay --cassette PATH [options]"
    static let options = """
          --cassette PATH        cassette to serve (required)
          --listen HOST:PORT     address to listen on (default 127.0.0.1:0; port 0 picks a free port)
          --ready-file FILE      write the listen URL to FILE once replay accepts connections
          --latency POLICY       recorded, none, fixed:DURATION or scale:FACTOR (default recorded)
          --latency-for OP=POLICY  the latency policy for one SOAP operation (repeatable)
          --jitter DURATION      add a seeded random delay from 0 to DURATION, such as 5ms (default 0)
          --seed N               seed for jitter and for --order seeded (default 0)
          --order ORDER          arrival, recorded or seeded (default arrival)
          --on-miss ACTION       fault or close: what an unmatched request gets (default fault)
          --ignore PATH          leave this element path out of matching, such as config/annotation (repeatable)
          --collector-semantics S  auto, vcenter or vcsim: what an empty-version wait returns (default auto)
          --strict               exit 1 at the end when any request missed or reused a recording
          --report FILE          write what was served, woken and missed to FILE as JSON at the end
          --fault RULE           inject OPERATION:KIND[:PROBABILITY|@N], seeded by --seed (repeatable; see docs/fuzzing.md)
          --verify               at the end, verify the served task flows; exit 1 if any blocked or broke the protocol
          --schedule FILE        release responses in the order a saved fuzz schedule gives
          --schedule-mode MODE   strict stops following the schedule at the first divergence; tolerant continues with seeded choices (default tolerant)
          --log-level LEVEL      debug, info, warning or error (default info)
          -h, --help             show this help
        """

    var configuration: ReplayConfiguration
    var readyFile: String?
    var strict = false
    var verify = false
    var reportFile: String?
    var logLevel = Logger.Level.info

    init(parsing arguments: inout Arguments) throws(UsageError) {
        configuration = ReplayConfiguration(cassettePath: try arguments.requiredValue("--cassette", meaning: "(the cassette to serve)"))
        if let listen = try arguments.value("--listen") {
            (configuration.listen.host, configuration.listen.port) = try RecordCommand.parseListen(listen)
        }
        readyFile = try arguments.value("--ready-file")
        try validateOutputFile(readyFile, option: "--ready-file")
        if let text = try arguments.value("--latency") {
            configuration.latency = try Self.parseLatency(text, option: "--latency")
        }
        for text in try arguments.values("--latency-for") {
            guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
                throw .invalid("--latency-for", text, expected: "OPERATION=POLICY such as WaitForUpdatesEx=fixed:1s")
            }
            configuration.latencyOverrides[String(text[..<equals])] = try Self.parseLatency(String(text[text.index(after: equals)...]), option: "--latency-for")
        }
        if let text = try arguments.value("--jitter") {
            guard let duration = parseDuration(text) else { throw .invalid("--jitter", text, expected: "a duration such as 5ms or 1s") }
            configuration.jitter = duration
        }
        if let text = try arguments.value("--seed") {
            guard let seed = UInt64(text) else { throw .invalid("--seed", text, expected: "a whole number from 0 to 18446744073709551615") }
            configuration.seed = seed
        }
        if let text = try arguments.value("--order") {
            guard let order = ReplayOrder(rawValue: text) else { throw .invalid("--order", text, expected: "arrival, recorded or seeded") }
            configuration.order = order
        }
        if let text = try arguments.value("--on-miss") {
            guard let policy = MissPolicy(rawValue: text) else { throw .invalid("--on-miss", text, expected: "fault or close") }
            configuration.onMiss = policy
        }
        configuration.ignoredPaths = Set(try arguments.values("--ignore"))
        if let text = try arguments.value("--collector-semantics"), text != "auto" {
            guard let semantics = PropertyCollectorModel.Semantics(rawValue: text) else {
                throw .invalid("--collector-semantics", text, expected: "auto, vcenter or vcsim")
            }
            configuration.collectorSemantics = semantics
        }
        strict = arguments.flag("--strict")
        configuration.faults = try parseFaults(&arguments)
        verify = arguments.flag("--verify")
        configuration.keepsServedExchanges = verify
        let mode = try arguments.value("--schedule-mode") ?? "tolerant"
        guard ["strict", "tolerant"].contains(mode) else { throw .invalid("--schedule-mode", mode, expected: "strict or tolerant") }
        if let path = try arguments.value("--schedule") {
            let schedule: FuzzSchedule
            do {
                schedule = try FuzzSchedule.load(path)
            } catch {
                throw UsageError("\(error)")
            }
            if let digest = try? SHA256.hexDigest(Data(contentsOf: URL(fileURLWithPath: configuration.cassettePath))),
               digest != schedule.cassetteSHA256 {
                throw UsageError(
                    "schedule '\(path)' was saved for another cassette (SHA-256 \(schedule.cassetteSHA256.prefix(12))…, not \(digest.prefix(12))…)",
                    hint: "Pass the cassette named in the schedule: \(schedule.cassette)")
            }
            var options = SchedulingOptions(strategy: .saved(steps: schedule.steps, strict: mode == "strict", fallbackSeed: schedule.seed))
            options.settle = .nanoseconds(Int64(schedule.settleMilliseconds * 1e6))
            options.hangTimeout = .nanoseconds(Int64(schedule.hangTimeoutMilliseconds * 1e6))
            configuration.scheduling = options
            configuration.order = .seeded
            configuration.seed = schedule.seed
            configuration.latency = (try? LatencyPolicy(parsing: schedule.latency)) ?? .none
            for fault in schedule.faults {
                if let rule = try? FaultRule(parsing: fault) { configuration.faults.append(rule) }
            }
        }
        reportFile = try arguments.value("--report")
        try validateOutputFile(reportFile, option: "--report")
        logLevel = try parseLogLevel(&arguments)
    }

    private static func parseLatency(_ text: String, option: String) throws(UsageError) -> LatencyPolicy {
        do {
            return try LatencyPolicy(parsing: text)
        } catch {
            // Worded like every other option error: the value, then the option.
            throw UsageError("\(error)".replacingOccurrences(of: "invalid latency '\(text)'", with: "invalid value '\(text)' for \(option)"))
        }
    }

    func run(_ context: CommandContext) throws -> ExitCode {
        let logger = context.logger(label: "tapedeck.replay", level: logLevel)
        SignalWatcher.ignoreBrokenPipes()
        let signals = SignalWatcher()
        let replayer = try Replayer(configuration: configuration, logger: logger)
        try announce(replayer.url, readyFile: readyFile, context: context)

        let signal = signals.wait()
        logger.info("signal received", ["signal": signal])
        let report = replayer.stop()
        if let reportFile {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try encoder.encode(report).write(to: URL(fileURLWithPath: reportFile))
        }
        context.printError("served \(report.requests) requests: \(report.fromCassette) from the cassette, \(report.fromModel) from the property collector model, \(report.misses.count) missed")
        if let divergence = report.scheduleDivergence {
            context.printError("schedule diverged at \(divergence)")
        }
        var failed = false
        if verify {
            let verification = Verifier.verify(replayer.servedExchanges)
            context.print(VerificationOutput.text(verification, source: "replay of \(configuration.cassettePath)"))
            failed = verification.failed
        }
        if strict && report.problems > 0 {
            for miss in report.misses { context.printError("miss: \(miss.message)") }
            for reuse in report.assignments where reuse.reused {
                context.printError("reused: \(reuse.request) occurrence \(reuse.occurrence) got recording #\(reuse.recordedSequence) again")
            }
            return .failure
        }
        return failed ? .failure : .success
    }
}

/// Prints the listen URL and writes the ready file through a temporary name, so
/// that a reader never sees it half written.
func announce(_ url: String, readyFile: String?, context: CommandContext) throws {
    context.print(url)
    guard let readyFile else { return }
    let temporary = readyFile + ".tmp-\(getpid())"
    do {
        try Data((url + "\n").utf8).write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, readyFile) == 0 else { throw RunError(String(cString: strerror(errno))) }
    } catch {
        throw RunError("could not write --ready-file '\(readyFile)': \(error); check that its directory exists and is writable")
    }
}

/// Parses every `--fault` rule.
func parseFaults(_ arguments: inout Arguments) throws(UsageError) -> [FaultRule] {
    var rules: [FaultRule] = []
    for text in try arguments.values("--fault") {
        do {
            rules.append(try FaultRule(parsing: text))
        } catch {
            throw UsageError(error.description)
        }
    }
    return rules
}
