import Foundation
import TapedeckHTTP

/// The delay replay adds before each response.
public enum LatencyPolicy: Sendable, Equatable, CustomStringConvertible {
    /// Each exchange's recorded server time: response start minus request end.
    case recorded
    case none
    /// At least this long per call, counted from the request's arrival.
    case fixed(Duration)
    /// The recorded server time times a factor.
    case scale(Double)

    public struct InvalidPolicy: Error, CustomStringConvertible {
        public let text: String
        public var description: String {
            "invalid latency '\(text)'; use recorded, none, fixed:DURATION (such as fixed:50ms) or scale:FACTOR (such as scale:0.5)"
        }
    }

    public init(parsing text: String) throws(InvalidPolicy) {
        switch text {
        case "recorded": self = .recorded
        case "none": self = .none
        case _ where text.hasPrefix("fixed:"):
            guard let duration = parseDuration(String(text.dropFirst(6))) else { throw InvalidPolicy(text: text) }
            self = .fixed(duration)
        case _ where text.hasPrefix("scale:"):
            guard let factor = Double(text.dropFirst(6)), factor >= 0, factor.isFinite else { throw InvalidPolicy(text: text) }
            self = .scale(factor)
        default:
            throw InvalidPolicy(text: text)
        }
    }

    public var description: String {
        switch self {
        case .recorded: "recorded"
        case .none: "none"
        case .fixed(let duration): "fixed:\(duration)"
        case .scale(let factor): "scale:\(factor)"
        }
    }
}

/// Parses `250ms`, `1.5s`, `2m` or `500us` into a duration; nil when invalid.
public func parseDuration(_ text: String) -> Duration? {
    let units: [(String, Double)] = [("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9), ("s", 1), ("m", 60)]
    for (suffix, seconds) in units where text.hasSuffix(suffix) {
        guard let value = Double(text.dropLast(suffix.count)), value >= 0, value.isFinite else { return nil }
        return .nanoseconds(Int64(value * seconds * 1e9))
    }
    return nil
}

/// The policy for which recorded response an identical request gets, and which
/// waiting call a change wakes.
public enum ReplayOrder: String, Sendable, CaseIterable {
    /// Identical requests get recorded responses in recording order as they
    /// arrive; a change wakes the call that has waited longest.
    case arrival
    /// As `arrival`, but task transitions fire at their recorded time since the
    /// cassette started, reproducing the recording's global order of completions.
    case recorded
    /// Recorded responses for each key are permuted by the seed, the woken call
    /// is drawn from the seed, and each task's transition times are scaled by a
    /// seeded factor from 0.5 to 1.5.
    case seeded
}

/// The response an unmatched request gets.
public enum MissPolicy: String, Sendable, CaseIterable {
    /// A SOAP fault (HTTP 500) for SOAP calls, HTTP 404 otherwise, naming the
    /// closest recorded request.
    case fault
    /// The connection is closed without a response.
    case close
}

public struct ReplayConfiguration: Sendable {
    public var cassettePath: String
    public var listen = ReplayConfiguration.defaultListen
    public var latency = LatencyPolicy.recorded
    /// Per SOAP operation, replacing `latency`.
    public var latencyOverrides: [String: LatencyPolicy] = [:]
    /// Extra delay drawn uniformly from zero to this, from the seed.
    public var jitter: Duration = .zero
    public var seed: UInt64 = 0
    public var order = ReplayOrder.arrival
    public var onMiss = MissPolicy.fault
    /// Element paths below the operation, such as `config/annotation`, left out
    /// of matching.
    public var ignoredPaths: Set<String> = []
    /// The semantics of an empty-version wait. Nil picks vcsim's for a cassette
    /// recorded from vcsim, and the API reference's otherwise.
    public var collectorSemantics: PropertyCollectorModel.Semantics?
    /// When set, responses are released one at a time by a `Scheduler`.
    public var scheduling: SchedulingOptions?
    /// Faults to inject, each drawn from `seed`.
    public var faults: [FaultRule] = []
    /// Keep every served exchange in memory, for `Replayer.servedExchanges`.
    public var keepsServedExchanges = false

    public init(cassettePath: String) {
        self.cassettePath = cassettePath
    }
}

public struct SchedulingOptions: Sendable {
    public var strategy: Scheduler.Strategy
    /// Quiet time that makes a decision point.
    public var settle: Duration = .milliseconds(5)
    /// No response is held longer than this.
    public var hangTimeout: Duration = .seconds(2)

    public init(strategy: Scheduler.Strategy) {
        self.strategy = strategy
    }
}

extension ReplayConfiguration {
    /// Replay's handler returns without waiting, because waits and latency are
    /// callbacks, so two epoll threads serve every connection. 16 KiB per
    /// connection is over 50 times the largest request headers in the shipped
    /// govmomi and pyvmomi cassettes (283 bytes). With it, 10,000 held polls took
    /// 238 MB in the benchmark, against 809 MB with the recorder's 64 KiB.
    public static var defaultListen: HTTPServerConfiguration {
        var listen = HTTPServerConfiguration()
        listen.threading = .eventLoop(threads: 2)
        listen.headerMemoryLimit = 16 << 10
        return listen
    }
}
