import Foundation
import TapedeckCore
import TapedeckHTTP

/// Serving one request: parse, route to the model or the cassette, then send
/// after latency and, under fuzzing, when the scheduler releases it.
extension Replayer {
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
    /// keeps no parsed form, and the request body only in `exchange`.
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

    // MARK: - Routing

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

        guard resolution.recordedUnanswered else { return completion(resolution) }
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
}
