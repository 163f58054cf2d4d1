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
    private let parseCache: ParsedRequestCache

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

    // MARK: - Routing

    public func handle(_ request: IncomingRequest, responder: HTTPResponder) {
        guard scheduler != nil else {
            serve(request, responder: responder)
            return
        }
        // The scheduler holds each ready response on its request's own thread
        // until it decides to release it, so that thread must not be the server's.
        Thread.detachNewThread { [self] in serve(request, responder: responder) }
    }

    private func serve(_ request: IncomingRequest, responder: HTTPResponder) {
        scheduler?.noteArrival()
        lastArrival.store(clock.elapsed(), ordering: .relaxed)
        let body = Replayer.bodyData(request.body)
        let parsed = parseCache.parse(method: request.method, path: request.path, body: body)
        let (session, sequence) = lock.withLock {
            report.requests += 1
            nextSequence += 1
            return (Replayer.sessionCookie(in: request.headers).flatMap { sessionsByCookie[$0] }, nextSequence)
        }
        let reply = makeReply(request, sequence: sequence, session: session, body: body, parsed: parsed, responder: responder)

        guard scheduler != nil else {
            route(request, parsed: parsed, session: session, responder: responder) { [self, reply] in send($0, reply: reply) }
            return
        }
        // A wait may end on a timer's thread, but the response still leaves from
        // this one, where the scheduler may hold it.
        let handoff = Handoff<Resolution>()
        route(request, parsed: parsed, session: session, responder: responder) { handoff.put($0) }
        send(handoff.take(), reply: reply)
    }

    private func makeReply(
        _ request: IncomingRequest, sequence: Int, session: String?, body: Data, parsed: ParsedRequest, responder: HTTPResponder
    ) -> Reply {
        var reply = Reply(
            sequence: sequence, operation: parsed.key.operation, startedAt: request.startedAt,
            connectionID: request.connectionID, responder: responder)
        if configuration.keepsServedExchanges {
            let exchange = Exchange(
                sequence: sequence, connection: request.connectionID, session: session,
                timing: Timing(requestStart: request.startedAt, requestEnd: request.completedAt),
                request: Request(method: request.method, path: request.path, headers: request.headers, body: Body(body)))
            lock.withLock { inFlight[sequence] = exchange }
            reply.exchange = exchange
        }
        if scheduler != nil { reply.scheduleLabel = Replayer.scheduleLabel(parsed) }
        return reply
    }

    /// The state `send` needs to finish a request. Every held poll keeps one, so it
    /// keeps neither the request body nor its parsed form.
    struct Reply: Sendable {
        let sequence: Int
        let operation: String
        let startedAt: UInt64
        let connectionID: Int
        let responder: HTTPResponder
        /// Set only when replay keeps the exchanges it serves.
        var exchange: Exchange?
        /// Set only under a scheduler.
        var scheduleLabel = ""
    }

    /// Sends a resolved request after its latency. Without a scheduler the delay is
    /// a timer, so no thread waits. With one, this thread sleeps, and then the
    /// scheduler decides when the response leaves.
    private func send(_ resolution: Resolution, reply: Reply) {
        let delay = resolution.latency.map { latency in
            Replayer.delay(
                policy: configuration.latencyOverrides[reply.operation] ?? configuration.latency,
                recordedServerTime: latency.serverTime, elapsed: clock.elapsed() &- reply.startedAt,
                jitter: configuration.jitter, seed: configuration.seed,
                identity: "\(reply.operation)|\(latency.identity)")
        } ?? 0
        guard delay > 0 else { return complete(resolution, reply: reply) }
        if scheduler != nil {
            Thread.sleep(forTimeInterval: Double(delay) / 1e9)
            complete(resolution, reply: reply)
        } else {
            DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(delay))) { [self] in
                complete(resolution, reply: reply)
            }
        }
    }

    private func complete(_ resolution: Resolution, reply: Reply) {
        if let task = resolution.createdTask { model.taskCreated(task) }
        var response = resolution.response
        if response != nil, let scheduler {
            scheduler.hold(label: reply.scheduleLabel, connection: reply.connectionID, recordedSequence: reply.sequence)
            if reply.responder.client.isClosed { response = nil }
        }
        if let exchange = reply.exchange { keep(exchange, response: response) }
        reply.responder.respond(response)
    }

    private func keep(_ pending: Exchange, response: OutgoingResponse?) {
        var exchange = pending
        let now = clock.elapsed()
        if let response {
            exchange.timing.responseStart = now
            exchange.timing.responseEnd = now
            exchange.response = Response(status: response.status, headers: response.headers, body: Body(Replayer.bodyData(response.body)))
        } else {
            exchange.unanswered = Unanswered(reason: .clientDisconnected, detail: "no response was sent", at: now)
        }
        // The session of a login is the one it was just mapped to.
        if exchange.session == nil, let cookie = response?.headers.value(named: "set-cookie") {
            exchange.session = lock.withLock { sessionsByCookie.first { cookie.contains($0.key) }?.value }
        }
        lock.withLock {
            inFlight[exchange.sequence] = nil
            served.append(exchange)
        }
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

    /// Resolves a request, calling `completion` once, at once or when a wait ends.
    private func route(
        _ request: IncomingRequest, parsed: ParsedRequest, session: String?, responder: HTTPResponder,
        completion: @escaping @Sendable (Resolution) -> Void
    ) {
        let operation = parsed.key.operation
        if let rule = faults.fault(for: operation) {
            lock.withLock { report.injectedFaults.append("\(rule.text) on \(parsed.key.description)") }
            logger.info("fault injected", ["soap.operation": operation, "replay.fault": rule.text])
            switch FaultInjector.effect(of: rule, operation: operation) {
            case .respond(let response): return completion(.immediate(response))
            case .close: return completion(.immediate(nil))
            case .proceed: break
            }
        }

        let resolution: Resolution
        if ParsedRequest.isLogin(parsed.key) {
            resolution = respondToLogin(request, parsed: parsed)
        } else if PropertyCollectorModel.waitOperations.contains(operation), let element = parsed.element, let this = parsed.key.this {
            lock.withLock { report.fromModel += 1 }
            let waiter = model.wait(
                session: session ?? "none", collector: this, version: element.firstChild(named: "version")?.text ?? "",
                maxWaitSeconds: element.firstChild(named: "options")?.firstChild(named: "maxWaitSeconds").flatMap { Double($0.text) },
                kind: PropertyCollectorModel.WaitKind(operation: operation)
            ) { [self] answer in
                completion(respond(answer, operation: operation))
            }
            if let waiter { responder.onCancel { [model] in model.abandon(waiter) } }
            return
        } else if let answer = modelAnswer(parsed, session: session) {
            lock.withLock { report.fromModel += 1 }
            resolution = respond(answer, operation: operation)
        } else {
            resolution = respondFromCassette(request, parsed: parsed, session: session)
        }

        guard resolution.held else { return completion(resolution) }
        // The recorded server never responded, so replay does not respond either,
        // until the client gives up or replay stops.
        responder.onCancel { completion(.immediate(nil)) }
    }

    /// Routes property collector calls other than waits, and task reads, to the model.
    private func modelAnswer(_ parsed: ParsedRequest, session: String?) -> PropertyCollectorModel.Answer? {
        guard let element = parsed.element, let this = parsed.key.this else { return nil }
        let label = session ?? "none"
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

