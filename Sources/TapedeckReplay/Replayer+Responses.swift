import Foundation
import TapedeckCassette
import TapedeckCore
import TapedeckHTTP
import TapedeckSOAP

/// The outcome of routing a request, before latency and scheduling apply.
struct Resolution: Sendable {
    /// The response, or nil to close the connection without one.
    var response: OutgoingResponse?
    /// The recorded server time and a jitter identity, when the latency policy
    /// applies; nil sends the response at once.
    var latency: (serverTime: UInt64, identity: String)?
    /// A task the response hands out; its transitions count from when it leaves.
    var createdTask: ManagedObjectReference?
    /// The recorded server never responded, so the request is held.
    var recordedUnanswered = false

    static func immediate(_ response: OutgoingResponse?) -> Resolution {
        Resolution(response: response)
    }
}

extension Replayer {
    // MARK: - Logins

    /// Maps the nth login to the nth recorded session and hands out a cookie of
    /// replay's own for it.
    func respondToLogin(_ request: IncomingRequest, parsed: ParsedRequest) -> Resolution {
        let assigned: (session: String, entry: RecordedCassette.Entry, cookie: String)? = lock.withLock {
            let index = loginCount
            loginCount += 1
            guard index < cassette.sessionsInLoginOrder.count else { return nil }
            let session = cassette.sessionsInLoginOrder[index]
            let cookie = "tapedeck-replay-\(index + 1)"
            sessionsByCookie[cookie] = session
            cookiesBySession[session] = cookie
            report.fromCassette += 1
            report.record(.init(
                request: parsed.key.description, session: session, occurrence: 1,
                recordedSequence: cassette.entries[cassette.loginEntry[session]!].exchange.sequence, reused: false))
            return (session, cassette.entries[cassette.loginEntry[session]!], cookie)
        }
        guard let assigned else {
            let miss = Matcher.Miss(
                key: parsed.key.description, session: nil, closestSequence: nil,
                difference: "the cassette records \(cassette.sessionsInLoginOrder.count) logins, and this is login \(loginCount)")
            return .immediate(respondToMiss(miss, request: request, parsed: parsed))
        }
        logger.debug("login mapped to recorded session", ["replay.session": assigned.session])
        var resolution = recordedResponse(assigned.entry, request: request, parsed: parsed)
        // A REST login also returns its session id in the body, as a JSON string;
        // the quotes keep redacted-session-1 from matching redacted-session-12.
        if !parsed.isSOAP, var response = resolution.response, case .inMemory(let body) = response.body,
           let text = String(data: body, encoding: .utf8) {
            let placeholder = RecordedCassette.sessionPlaceholderPrefix + assigned.session.dropFirst("session-".count)
            let replaced = text.replacingOccurrences(of: "\"\(placeholder)\"", with: "\"\(assigned.cookie)\"")
            response.body = .inMemory(Data(replaced.utf8))
            resolution.response = response
        }
        return resolution
    }

    // MARK: - Recorded responses

    func respondFromCassette(_ request: IncomingRequest, parsed: ParsedRequest, session: String?) -> Resolution {
        let outcome = lock.withLock { () -> Matcher.Outcome in
            let outcome = matcher.next(session: session, request: parsed)
            switch outcome {
            case .hit(let index, let occurrence), .reused(let index, let occurrence):
                var reused = false
                if case .reused = outcome { reused = true }
                report.fromCassette += 1
                report.record(.init(
                    request: parsed.key.description, session: session, occurrence: occurrence,
                    recordedSequence: cassette.entries[index].exchange.sequence, reused: reused))
            case .miss:
                break
            }
            return outcome
        }
        switch outcome {
        case .hit(let index, let occurrence):
            logger.debug("request assigned a recording", [
                "soap.operation": parsed.key.operation, "replay.session": session ?? "none",
                "replay.occurrence": "\(occurrence)", "interaction.seq": "\(cassette.entries[index].exchange.sequence)",
            ])
            return recordedResponse(cassette.entries[index], request: request, parsed: parsed)
        case .reused(let index, let occurrence):
            logger.info("more requests than recordings; serving the last recording again", [
                "soap.operation": parsed.key.operation, "replay.occurrence": "\(occurrence)",
                "interaction.seq": "\(cassette.entries[index].exchange.sequence)",
            ])
            return recordedResponse(cassette.entries[index], request: request, parsed: parsed)
        case .miss(let miss):
            return .immediate(respondToMiss(miss, request: request, parsed: parsed))
        }
    }

    /// Resolves to a recorded exchange's response, or to a held request when the
    /// recorded server never responded.
    private func recordedResponse(_ entry: RecordedCassette.Entry, request: IncomingRequest, parsed: ParsedRequest) -> Resolution {
        let exchange = entry.exchange
        guard let response = exchange.response else {
            lock.withLock { report.heldUnanswered += 1 }
            logger.debug("holding a request the recorded server never answered", ["interaction.seq": "\(exchange.sequence)"])
            return Resolution(recordedUnanswered: true)
        }
        if case .omitted(let size) = response.body {
            return .immediate(.text(502, "tapedeck replay: the recorded response of #\(exchange.sequence) has a \(size)-byte body that was not recorded (larger than --max-body-bytes)"))
        }

        var resolution = Resolution(
            response: OutgoingResponse(status: response.status, headers: replayHeaders(response.headers), body: .inMemory(response.body.data)),
            latency: ((exchange.timing.responseStart ?? exchange.timing.requestEnd) &- exchange.timing.requestEnd, "\(exchange.sequence)"))
        if parsed.key.operation.hasSuffix("_Task"), response.status == 200,
           let task = try? SOAPEnvelope.bodyElement(of: response.body.data).firstChild(named: "returnval"),
           task.attribute("type") == "Task" {
            resolution.createdTask = ManagedObjectReference(type: "Task", value: task.text)
        }
        return resolution
    }

    /// Drops framing headers and swaps each session placeholder in `Set-Cookie`
    /// for the cookie replay handed out for that session.
    private func replayHeaders(_ headers: [Header]) -> [Header] {
        headers.compactMap { header in
            let name = header.name.lowercased()
            if hopByHopHeaders.contains(name) { return nil }
            guard name == "set-cookie" else { return header }
            guard let range = header.value.range(of: "redacted-session-") else { return nil }
            let digits = header.value[range.upperBound...].prefix { $0.isNumber }
            guard let cookie = lock.withLock({ cookiesBySession["session-\(digits)"] }) else { return nil }
            return Header(header.name, header.value.replacingOccurrences(of: "redacted-session-\(digits)", with: cookie))
        }
    }

    // MARK: - Model responses

    func respond(_ answer: PropertyCollectorModel.Answer, operation: String) -> Resolution {
        let response: OutgoingResponse
        switch answer {
        case .content(let content):
            response = OutgoingResponse(
                status: 200, headers: [Header("Content-Type", "text/xml; charset=utf-8")],
                body: .inMemory(SOAPBuilder.response(operation: operation, content: content)))
        case .fault(let type, let message, let detail):
            response = OutgoingResponse(
                status: 500, headers: [Header("Content-Type", "text/xml; charset=utf-8")],
                body: .inMemory(SOAPBuilder.fault(type: type, message: message, detail: detail)))
        case .abandoned:
            return .immediate(nil)
        }
        return Resolution(response: response, latency: (0, "model"))
    }

    // MARK: - Misses

    func respondToMiss(_ miss: Matcher.Miss, request: IncomingRequest, parsed: ParsedRequest) -> OutgoingResponse? {
        lock.withLock {
            report.misses.append(.init(
                request: miss.key, session: miss.session, closestRecordedSequence: miss.closestSequence, message: miss.message))
        }
        logger.warning("no recorded response", [
            "soap.operation": parsed.key.operation, "replay.this": parsed.key.this?.description ?? "",
            "replay.closest": miss.closestSequence.map { "#\($0)" } ?? "none", "replay.difference": miss.difference,
        ])
        switch configuration.onMiss {
        case .close:
            return nil
        case .fault where parsed.isSOAP:
            return OutgoingResponse(
                status: 500, headers: [Header("Content-Type", "text/xml; charset=utf-8")],
                body: .inMemory(SOAPBuilder.fault(type: "NotFound", message: miss.message)))
        case .fault:
            return .text(404, miss.message)
        }
    }

    // MARK: - Latency

    /// Nanoseconds to wait before responding: the policy's delay less what has
    /// already passed for `fixed`, plus jitter drawn from the seed and `identity`,
    /// so one seed gives one jitter per request.
    static func delay(
        policy: LatencyPolicy, recordedServerTime: UInt64, elapsed: UInt64, jitter: Duration, seed: UInt64, identity: String
    ) -> Int64 {
        var delay: Int64
        switch policy {
        case .recorded: delay = Int64(recordedServerTime)
        case .none: delay = 0
        case .scale(let factor): delay = Int64(Double(recordedServerTime) * factor)
        case .fixed(let duration): delay = max(0, nanoseconds(duration) - Int64(elapsed))
        }
        let spread = nanoseconds(jitter)
        if spread > 0 {
            var generator = SeededGenerator(seed: seed, stream: "jitter|\(identity)")
            delay += Int64.random(in: 0..<spread, using: &generator)
        }
        return delay
    }

    public static func nanoseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
    }
}
