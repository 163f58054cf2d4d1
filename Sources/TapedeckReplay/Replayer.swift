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
    private let lastArrival = Atomic<UInt64>(0)

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

    // MARK: - Routing

    public func handle(_ request: IncomingRequest) -> OutgoingResponse? {
        scheduler?.noteArrival()
        lastArrival.store(clock.elapsed(), ordering: .relaxed)
        let body = Replayer.bodyData(request.body)
        let parsed = ParsedRequest(method: request.method, path: request.path, body: body, ignoredPaths: configuration.ignoredPaths)
        let (session, sequence) = lock.withLock {
            report.requests += 1
            nextSequence += 1
            return (Replayer.sessionCookie(in: request.headers).flatMap { sessionsByCookie[$0] }, nextSequence)
        }
        var exchange = Exchange(
            sequence: sequence, connection: request.connectionID, session: session,
            timing: Timing(requestStart: request.startedAt, requestEnd: request.completedAt),
            request: Request(method: request.method, path: request.path, headers: request.headers, body: Body(body)))
        if configuration.keepsServedExchanges { lock.withLock { inFlight[sequence] = exchange } }

        var response = route(request, parsed: parsed, session: session)
        if response != nil, let scheduler {
            scheduler.hold(label: Replayer.scheduleLabel(parsed), connection: request.connectionID, recordedSequence: sequence)
            if request.client.isClosed { response = nil }
        }
        if configuration.keepsServedExchanges {
            let now = clock.elapsed()
            if let response {
                exchange.timing.responseStart = now
                exchange.timing.responseEnd = now
                exchange.response = Response(status: response.status, headers: response.headers, body: Body(Replayer.bodyData(response.body)))
            } else {
                exchange.unanswered = Unanswered(reason: .clientDisconnected, detail: "no response was sent", at: now)
            }
            // The session of a login is the one it was just mapped to.
            if exchange.session == nil, let cookie = response?.headers.first(where: { $0.name.lowercased() == "set-cookie" })?.value {
                exchange.session = lock.withLock { sessionsByCookie.first { cookie.contains($0.key) }?.value }
            }
            lock.withLock {
                inFlight[sequence] = nil
                served.append(exchange)
            }
        }
        return response
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

    private func route(_ request: IncomingRequest, parsed: ParsedRequest, session: String?) -> OutgoingResponse? {
        let operation = parsed.key.operation
        if let rule = faults.fault(for: operation) {
            lock.withLock { report.injectedFaults.append("\(rule.text) on \(parsed.key.description)") }
            logger.info("fault injected", ["soap.operation": operation, "replay.fault": rule.text])
            switch FaultInjector.effect(of: rule, operation: operation) {
            case .respond(let response): return response
            case .close: return nil
            case .proceed: break
            }
        }

        if ParsedRequest.loginOperations.contains(operation) {
            return respondToLogin(request, parsed: parsed)
        }
        if let answer = modelAnswer(parsed, session: session, client: request.client) {
            lock.withLock { report.fromModel += 1 }
            return respond(answer, operation: operation, request: request)
        }
        return respondFromCassette(request, parsed: parsed, session: session)
    }

    /// Routes property collector calls, and task reads, to the model.
    private func modelAnswer(_ parsed: ParsedRequest, session: String?, client: ClientConnection) -> PropertyCollectorModel.Answer? {
        guard let element = parsed.element, let this = parsed.key.this else { return nil }
        let label = session ?? "none"
        let stopping = self.stopping
        switch parsed.key.operation {
        case "CreatePropertyCollector":
            return model.createCollector(session: label)
        case "DestroyPropertyCollector":
            return model.destroyCollector(session: label, this)
        case "CreateFilter":
            return model.createFilter(
                session: label, collector: this, spec: element.firstChild(named: "spec"),
                recordedObjects: cassette.recordedObjects(forFilterArguments: parsed.key.arguments))
        case "DestroyPropertyFilter":
            return model.destroyFilter(session: label, this)
        case "CancelWaitForUpdates":
            return model.cancelWait(session: label, this)
        case "WaitForUpdatesEx", "WaitForUpdates", "CheckForUpdates":
            let kind: PropertyCollectorModel.WaitKind = switch parsed.key.operation {
            case "WaitForUpdatesEx": .waitForUpdatesEx
            case "WaitForUpdates": .waitForUpdates
            default: .checkForUpdates
            }
            let maxWait = element.firstChild(named: "options")?.firstChild(named: "maxWaitSeconds").flatMap { Double($0.text) }
            return model.wait(
                session: label, collector: this, version: element.firstChild(named: "version")?.text ?? "",
                maxWaitSeconds: maxWait, kind: kind, isAbandoned: { client.isClosed || stopping.isSet })
        case "RetrievePropertiesEx", "RetrieveProperties":
            return model.retrieve(operation: parsed.key.operation, element: element)
        case "Fetch":
            return element.firstChild(named: "prop").flatMap { model.fetch(this, property: $0.text) }
        default:
            return nil
        }
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

    /// Returns the value of the `vmware_soap_session` cookie, or of the REST session header.
    static func sessionCookie(in headers: [Header]) -> String? {
        for header in headers where header.name.lowercased() == "cookie" {
            for pair in header.value.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                if parts.count == 2, parts[0] == "vmware_soap_session" {
                    return parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                }
            }
        }
        return headers.value(named: "vmware-api-session-id")
    }
}

