import Foundation
import Synchronization
import TapedeckCassette
import TapedeckCore
import TapedeckHTTP
import TapedeckSOAP

/// Serves a cassette offline. Logins map to recorded sessions in order, property
/// collector calls go to `PropertyCollectorModel`, and everything else gets the
/// recorded response that the `Matcher` assigns. Never opens a connection to any
/// upstream.
public final class Replayer: HTTPRequestHandler, @unchecked Sendable {
    public let configuration: ReplayConfiguration
    let logger: Logger
    let cassette: RecordedCassette
    let model: PropertyCollectorModel
    let clock = MonotonicClock()
    private var server: HTTPServer!

    /// Guards the matcher, sessions and report; the model has its own lock.
    let lock = NSLock()
    let matcher: Matcher
    var report: ReplayReport
    /// Replay cookie value to recorded session.
    var sessionsByCookie: [String: String] = [:]
    /// Recorded session to the cookie handed out for it.
    var cookiesBySession: [String: String] = [:]
    var loginCount = 0
    let stopping = AtomicFlag()
    public let scheduler: Scheduler?
    let faults: FaultInjector
    var served: [Exchange] = []
    var inFlight: [Int: Exchange] = [:]
    var nextSequence = 0
    let lastArrival = Atomic<UInt64>(0)
    let parseCache: ParsedRequestCache

    /// Nanoseconds since the last request arrived.
    public var quietTime: UInt64 {
        clock.elapsed() &- lastArrival.load(ordering: .relaxed)
    }

    /// Requests received whose responses have not been sent yet.
    public var pendingRequests: Int {
        lock.withLock { inFlight.count }
    }

    /// Loads the cassette and starts listening. Throws `CassetteError` for an
    /// unreadable cassette and `HTTPServerError` for an unusable address.
    public init(configuration: ReplayConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        cassette = try RecordedCassette(path: configuration.cassettePath, ignoredPaths: configuration.ignoredPaths)
        parseCache = ParsedRequestCache(ignoredPaths: configuration.ignoredPaths)
        if let truncation = cassette.truncation {
            logger.warning("cassette is truncated; replaying the complete exchanges", ["cassette.path": cassette.path, "detail": "\(truncation)"])
        }
        let seeded = configuration.order == .seeded
        matcher = Matcher(cassette: cassette, seed: seeded ? configuration.seed : nil)
        var timing = PropertyCollectorModel.Timing()
        if case .scale(let factor) = configuration.latency { timing.scale = factor }
        timing.seed = seeded ? configuration.seed : nil
        timing.absolute = configuration.order == .recorded
        let semantics = configuration.collectorSemantics ?? (cassette.world.recordedByVCSim ? .vcsim : .vcenter)
        let virtualTime = configuration.scheduling == nil ? nil : VirtualTime()
        model = PropertyCollectorModel(
            world: cassette.world, semantics: semantics, time: virtualTime ?? WallTime(clock: clock),
            release: seeded ? .seeded(configuration.seed) : .longestWaiting, timing: timing, logger: logger)
        report = ReplayReport(
            cassette: configuration.cassettePath, seed: configuration.seed, order: configuration.order.rawValue,
            collectorSemantics: semantics)
        faults = FaultInjector(rules: configuration.faults, seed: configuration.seed)
        if let options = configuration.scheduling {
            scheduler = Scheduler(
                strategy: options.strategy, settle: UInt64(Replayer.nanoseconds(options.settle)),
                hangTimeout: UInt64(Replayer.nanoseconds(options.hangTimeout)), clock: clock, logger: logger,
                virtualTime: virtualTime)
        } else {
            scheduler = nil
        }

        server = try HTTPServer(configuration: configuration.listen, clock: clock, logger: logger, handler: self)
        logger.info("replaying", [
            "cassette.path": configuration.cassettePath, "replay.exchanges": "\(cassette.entries.count)",
            "replay.sessions": "\(cassette.sessionsInLoginOrder.count)", "replay.order": configuration.order.rawValue,
            "replay.seed": "\(configuration.seed)", "replay.collectorSemantics": semantics.rawValue,
        ])
    }

    public var port: UInt16 { server.port }

    /// The URL clients should use, such as `http://127.0.0.1:8990`.
    public var url: String {
        let host = configuration.listen.host.contains(":") ? "[\(configuration.listen.host)]" : configuration.listen.host
        return "\(server.isTLS ? "https" : "http")://\(host):\(server.port)"
    }

    /// The report so far; complete after `stop()`.
    public var currentReport: ReplayReport {
        lock.withLock {
            var copy = report
            copy.releases = model.releaseLog
            copy.transitions = model.transitionSchedule
            copy.schedule = scheduler?.log ?? []
            copy.scheduleDivergence = scheduler?.divergenceMessage
            return copy
        }
    }

    /// Stops serving. Held requests are released so their connections close.
    @discardableResult
    public func stop() -> ReplayReport {
        stopping.set()
        scheduler?.stop()
        server.stopAccepting()
        server.stop()
        let final = currentReport
        logger.info("replay stopped", [
            "replay.requests": "\(final.requests)", "replay.misses": "\(final.misses.count)",
            "replay.fromModel": "\(final.fromModel)",
        ])
        return final
    }

    /// Every exchange served so far, with requests still waiting marked pending.
    public var servedExchanges: [Exchange] {
        lock.withLock {
            let now = clock.elapsed()
            return served + inFlight.values.map { pending in
                var copy = pending
                copy.unanswered = Unanswered(reason: .pending, detail: "still waiting for a response", at: now)
                return copy
            }
        }
    }

    /// Returns a name for a held response that is the same in every run of the same
    /// client: the operation, its target, and a digest of its arguments.
    static func scheduleLabel(_ parsed: ParsedRequest) -> String {
        let digest = SHA256.hexDigest(Data(parsed.key.arguments.utf8)).prefix(8)
        return "\(parsed.key.operation) \(parsed.key.this?.value ?? "-") \(digest)"
    }

    static func bodyData(_ body: MessageBody) -> Data {
        switch body {
        case .inMemory(let data):
            return data
        case .spooled(let descriptor, let size):
            defer { close(descriptor) }
            lseek(descriptor, 0, SEEK_SET)
            var data = Data(count: Int(size))
            let read = data.withUnsafeMutableBytes { Foundation.read(descriptor, $0.baseAddress, Int(size)) }
            return read == Int(size) ? data : Data()
        }
    }

    /// Returns the value of the `vmware_soap_session` cookie, of the REST session
    /// cookie, or of the REST session header.
    static func sessionCookie(in headers: [Header]) -> String? {
        for header in headers where header.hasName("cookie") {
            for pair in header.value.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                if parts.count == 2, parts[0] == "vmware_soap_session" || parts[0] == "vmware-api-session-id" {
                    return parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                }
            }
        }
        return headers.value(named: "vmware-api-session-id")
    }
}

