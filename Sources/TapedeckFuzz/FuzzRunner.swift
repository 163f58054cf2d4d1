import Foundation
import TapedeckCassette
import TapedeckCore
import TapedeckReplay
import TapedeckVerify

public enum FuzzStrategy: String, Sendable, CaseIterable {
    case random, pct
    /// Responses in the order their recordings came, as a baseline.
    case recorded
    /// Alternates random and PCT from run to run.
    case portfolio
}

public struct FuzzConfiguration: Sendable {
    public var cassettePath: String
    /// The client command; `{url}` in an argument becomes the replay URL.
    public var client: [String]
    public var runs = 20
    public var strategy = FuzzStrategy.portfolio
    public var depth = 3
    public var seed: UInt64 = 1
    /// This process runs the runs whose index modulo `shardCount` is `shardIndex`.
    public var shardIndex = 0
    public var shardCount = 1
    public var settle: Duration = .milliseconds(5)
    public var hangTimeout: Duration = .seconds(2)
    /// Wall-clock limit for one run.
    public var runTimeout: Duration = .seconds(60)
    public var latency = LatencyPolicy.none
    public var faults: [FaultRule] = []
    public var scheduleDirectory = "fuzz-schedules"
    /// When set, every run follows this saved schedule instead of a strategy.
    public var savedSchedule: FuzzSchedule?
    public var savedSchedulePath: String?
    public var toolVersion = "tapedeck"

    public init(cassettePath: String, client: [String]) {
        self.cassettePath = cassettePath
        self.client = client
    }
}

public struct FuzzRunResult: Sendable, Codable {
    public var run: Int
    public var seed: UInt64
    public var strategy: String
    public var report: VerificationReport
    public var clientStatus: Int32?
    /// True when the run was stopped because a blocked flow was proven.
    public var stoppedEarly: Bool
    /// For a run stopped early: milliseconds from the client's last request to
    /// the proof.
    public var verdictDelayMilliseconds: Double?
    public var milliseconds: Double
    public var schedulePath: String?

    public var failed: Bool { report.failed }
}

/// Runs a client against seeded, scheduled replays and verifies each run.
public final class FuzzRunner {
    public let configuration: FuzzConfiguration
    private let logger: Logger
    private let cassetteDigest: String
    private let recordedExchanges: Int
    /// Most decision steps seen in a run so far: PCT draws its change points
    /// over this many steps, because a client may make far fewer requests than
    /// the cassette holds.
    private var observedSteps: Int?

    public init(configuration: FuzzConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        guard FileManager.default.fileExists(atPath: configuration.cassettePath) else {
            throw CassetteError.notFound(path: configuration.cassettePath)
        }
        cassetteDigest = SHA256.hexDigest(try Data(contentsOf: URL(fileURLWithPath: configuration.cassettePath)))
        if let saved = configuration.savedSchedule, saved.cassetteSHA256 != cassetteDigest {
            throw FuzzError("the schedule was saved for a cassette with SHA-256 \(saved.cassetteSHA256.prefix(12))…, not \(configuration.cassettePath) (\(cassetteDigest.prefix(12))…); pass the cassette it was made with")
        }
        let reader = try CassetteReader(path: configuration.cassettePath)
        var count = 0
        try reader.forEach { _ in count += 1 }
        recordedExchanges = count
    }

    /// The run indices this shard owns.
    public var runIndices: [Int] {
        (0..<configuration.runs).filter { $0 % configuration.shardCount == configuration.shardIndex }
    }

    public func run(onResult: (FuzzRunResult) -> Void) throws -> [FuzzRunResult] {
        var results: [FuzzRunResult] = []
        for index in runIndices {
            let result = try runOnce(index: index)
            results.append(result)
            onResult(result)
        }
        return results
    }

    /// Returns the strategy and seed of run `index`. PCT's step count adapts to the runs
    /// made so far.
    public func plan(index: Int) -> (String, Scheduler.Strategy, UInt64) {
        if let saved = configuration.savedSchedule {
            return ("saved", .saved(steps: saved.steps, strict: false, fallbackSeed: saved.seed), saved.seed)
        }
        let seed = configuration.seed &+ UInt64(index)
        if configuration.strategy == .recorded { return ("recorded", .recorded, seed) }
        let usePCT = configuration.strategy == .pct || (configuration.strategy == .portfolio && index % 2 == 1)
        if usePCT {
            return ("pct", .pct(seed: seed, depth: configuration.depth, steps: observedSteps ?? recordedExchanges), seed)
        }
        return ("random", .random(seed: seed), seed)
    }

    public func runOnce(index: Int) throws -> FuzzRunResult {
        let (name, strategy, seed) = plan(index: index)
        let started = Date()
        var replay = ReplayConfiguration(cassettePath: configuration.cassettePath)
        replay.latency = configuration.latency
        replay.order = .seeded
        replay.seed = seed
        replay.keepsServedExchanges = true
        replay.faults = configuration.faults
        var scheduling = SchedulingOptions(strategy: strategy)
        scheduling.settle = configuration.settle
        scheduling.hangTimeout = configuration.hangTimeout
        replay.scheduling = scheduling
        let replayer = try Replayer(configuration: replay, logger: logger.with(["fuzz.run": "\(index)"]))

        let client = try ClientProcess(configuration.client, url: replayer.url)
        let verdictDelay = watch(client, replayer: replayer)
        let clientStatus = client.finish()
        let clientOutput = client.output
        let replayReport = replayer.stop()
        guard replayReport.requests > 0 else {
            let status = clientStatus.map { "exited with status \($0)" } ?? "was stopped"
            let output = String(decoding: client.output.suffix(400), as: UTF8.self)
            throw FuzzError("run \(index): the client \(status) without sending any request to the replay; check the command after -- and that it uses {url} or TAPEDECK_URL. Its output ended with: \(output)")
        }
        if !replayReport.schedule.isEmpty {
            observedSteps = max(observedSteps ?? 0, replayReport.schedule.count)
        }
        // Waits abandoned by the killed client finish within the model's 50 ms poll.
        Thread.sleep(forTimeInterval: 0.1)
        let report = Verifier.verify(replayer.servedExchanges)

        var result = FuzzRunResult(
            run: index, seed: seed, strategy: name, report: report, clientStatus: clientStatus,
            stoppedEarly: verdictDelay != nil, verdictDelayMilliseconds: verdictDelay.map { Double($0) / 1e6 }, milliseconds: Date().timeIntervalSince(started) * 1000, schedulePath: nil)
        if result.failed && configuration.savedSchedule == nil {
            result.schedulePath = try save(FuzzSchedule(
                tool: configuration.toolVersion, cassette: configuration.cassettePath, cassetteSHA256: cassetteDigest,
                client: configuration.client, strategy: name, seed: seed, depth: configuration.depth,
                settleMilliseconds: Double(Replayer.nanoseconds(configuration.settle)) / 1e6,
                hangTimeoutMilliseconds: Double(Replayer.nanoseconds(configuration.hangTimeout)) / 1e6,
                latency: configuration.latency.description, faults: configuration.faults.map(\.text),
                steps: replayReport.schedule, verdict: report))
            if let path = result.schedulePath {
                // The client's own account of the failing run, beside its schedule.
                try? clientOutput.write(to: URL(fileURLWithPath: path.replacingOccurrences(of: ".json", with: ".client.log")))
            }
        }
        return result
    }

    /// Waits for the client to exit. Stops it early once the client has been quiet
    /// for the settle window plus the hang timeout while requests are pending, and
    /// the stream so far proves a flow blocked. Returns how long the client had
    /// been quiet then, in nanoseconds, or nil when it was not stopped early.
    private func watch(_ client: ClientProcess, replayer: Replayer) -> UInt64? {
        let deadline = Date().addingTimeInterval(Double(Replayer.nanoseconds(configuration.runTimeout)) / 1e9)
        let quietLimit = UInt64(Replayer.nanoseconds(configuration.settle) + Replayer.nanoseconds(configuration.hangTimeout))
        var lastCheck: UInt64 = 0
        while client.isRunning && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.02)
            let quiet = replayer.quietTime
            guard quiet >= quietLimit, replayer.pendingRequests > 0, quiet != lastCheck else { continue }
            lastCheck = quiet
            if Verifier.verify(replayer.servedExchanges).count(.blockedForever) > 0 {
                logger.debug("blocked flow proven; stopping the client", ["fuzz.quietMilliseconds": "\(quiet / 1_000_000)"])
                return quiet
            }
        }
        return nil
    }

    private func save(_ schedule: FuzzSchedule) throws -> String {
        try FileManager.default.createDirectory(atPath: configuration.scheduleDirectory, withIntermediateDirectories: true)
        let stem = ((configuration.cassettePath as NSString).lastPathComponent as NSString).deletingPathExtension
        let path = "\(configuration.scheduleDirectory)/\(stem)-\(schedule.strategy)-seed-\(schedule.seed).json"
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // A new name per save: an existing schedule from another run is kept.
        var target = path
        var attempt = 1
        while FileManager.default.fileExists(atPath: target) {
            attempt += 1
            target = path.replacingOccurrences(of: ".json", with: "-\(attempt).json")
        }
        try encoder.encode(schedule).write(to: URL(fileURLWithPath: target))
        return target
    }
}
