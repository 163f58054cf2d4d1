import Foundation
import Synchronization
import TapedeckCassette
import TapedeckCore
import TapedeckHTTP
import TapedeckSOAP

public struct RecorderConfiguration: Sendable {
    public var cassettePath: String
    public var upstream: UpstreamConfiguration
    public var listen = HTTPServerConfiguration()
    public var redactionRules: [RedactionRule] = []
    /// Bodies above this many bytes pass through but are recorded as omitted.
    public var maxBodyBytes = 8 << 20
    /// How long in-flight exchanges may still finish after a stop is requested.
    public var gracePeriod: Duration = .seconds(2)
    public var toolVersion = "tapedeck"

    public init(cassettePath: String, upstream: UpstreamConfiguration) {
        self.cassettePath = cassettePath
        self.upstream = upstream
    }
}

/// Counters for progress display, read while recording.
public struct RecorderStatistics: Sendable, Equatable {
    public var exchanges: Int
    public var bytes: Int64
    public var inFlight: Int
    public var unanswered: Int
}

/// A reverse proxy that forwards every request to the upstream and records each
/// exchange, with or without a response, into a new cassette.
public final class Recorder: BlockingHTTPRequestHandler, @unchecked Sendable {
    public let configuration: RecorderConfiguration
    private let logger: Logger
    private let clock = MonotonicClock()
    private let upstream: UpstreamClient
    private let queue: RecordingQueue
    private var server: HTTPServer!

    private let nextSequence = Atomic<Int>(0)
    private let inFlight = Atomic<Int>(0)
    private let bytes = Atomic<Int>(0)
    private let unanswered = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let aborting = AtomicFlag()

    /// Creates the cassette and starts listening. Throws `CassetteError` when the
    /// cassette exists, or `HTTPServerError` when the address is unusable.
    public init(configuration: RecorderConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        var upstreamConfiguration = configuration.upstream
        upstreamConfiguration.bodyMemoryLimit = configuration.maxBodyBytes
        upstream = UpstreamClient(configuration: upstreamConfiguration, clock: clock)

        let header = CassetteHeader(tool: configuration.toolVersion, upstream: configuration.upstream.origin)
        let writer = try CassetteWriter(path: configuration.cassettePath, header: header)
        queue = RecordingQueue(
            writer: writer, redactor: Redactor(rules: configuration.redactionRules),
            logger: logger.with(["cassette.path": configuration.cassettePath]))

        var listen = configuration.listen
        listen.bodyMemoryLimit = configuration.maxBodyBytes
        do {
            server = try HTTPServer(configuration: listen, clock: clock, logger: logger, handler: self)
        } catch {
            // The cassette holds only its header, so remove it: rerunning the same
            // command after fixing the address should not fail on "already exists".
            try? queue.finish()
            try? FileManager.default.removeItem(atPath: configuration.cassettePath)
            throw error
        }
        logger.info("recording", ["cassette.path": configuration.cassettePath, "upstream": configuration.upstream.origin])
    }

    public var port: UInt16 { server.port }

    /// The URL clients should use, such as `http://127.0.0.1:8989`.
    public var listenURL: String {
        let scheme = server.isTLS ? "https" : "http"
        let host = configuration.listen.host.contains(":") ? "[\(configuration.listen.host)]" : configuration.listen.host
        return "\(scheme)://\(host):\(server.port)"
    }

    public var statistics: RecorderStatistics {
        RecorderStatistics(
            exchanges: queue.recorded, bytes: Int64(bytes.load(ordering: .relaxed)),
            inFlight: inFlight.load(ordering: .relaxed), unanswered: unanswered.load(ordering: .relaxed))
    }

    /// Stops accepting, lets in-flight exchanges finish within the grace period,
    /// records the rest as unanswered, and closes the cassette.
    public func stop() throws {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        server.stopAccepting()
        logger.info("stopping", ["exchanges.inFlight": "\(inFlight.load(ordering: .relaxed))"])

        waitForInFlight(upTo: configuration.gracePeriod)
        aborting.set()
        // Aborted transfers notice within about a second, when libcurl next calls
        // the progress callback.
        waitForInFlight(upTo: .seconds(5))
        server.stop()
        try queue.finish()
        logger.info("cassette closed", ["cassette.path": configuration.cassettePath, "exchanges": "\(queue.recorded)"])
    }

    private func waitForInFlight(upTo limit: Duration) {
        let deadline = ContinuousClock.now + limit
        while inFlight.load(ordering: .relaxed) > 0 && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    // MARK: - Forwarding

    public func handle(_ request: IncomingRequest) -> OutgoingResponse? {
        let sequence = nextSequence.add(1, ordering: .relaxed).newValue
        inFlight.add(1, ordering: .relaxed)
        defer { inFlight.subtract(1, ordering: .relaxed) }
        defer { if case .spooled(let descriptor, _) = request.body { close(descriptor) } }

        let client = request.client
        let aborting = self.aborting
        // Past the grace period nothing new is forwarded; the request is recorded
        // and refused at once.
        let result = aborting.isSet
            ? .failure(UpstreamError(call: "forward", code: 0, message: "the recorder is stopping", cancelled: true, at: clock.elapsed()))
            : upstream.send(
                method: request.method, path: request.path, headers: request.headers, body: request.body,
                shouldCancel: { client.isClosed || aborting.isSet })

        var exchange = Exchange(
            sequence: sequence, connection: request.connectionID,
            timing: Timing(requestStart: request.startedAt, requestEnd: request.completedAt),
            request: Request(
                method: request.method, path: request.path, headers: request.headers,
                body: recorded(request.body)))
        bytes.add(Int(request.body.size), ordering: .relaxed)

        switch result {
        case .success(let response):
            exchange.timing.responseStart = response.startedAt
            exchange.timing.responseEnd = response.completedAt
            exchange.response = Response(status: response.status, headers: response.headers, body: recorded(response.body))
            bytes.add(Int(response.body.size), ordering: .relaxed)
            queue.enqueue(exchange)
            return OutgoingResponse(status: response.status, headers: response.headers, body: response.body)

        case .failure(let error):
            let reason = unansweredReason(error, client: client)
            exchange.unanswered = Unanswered(reason: reason, detail: error.description, at: error.at)
            unanswered.add(1, ordering: .relaxed)
            queue.enqueue(exchange)
            return failureResponse(reason: reason, error: error, request: request, sequence: sequence)
        }
    }

    private func unansweredReason(_ error: UpstreamError, client: ClientConnection) -> Unanswered.Reason {
        guard error.cancelled else { return .upstreamFailed }
        return aborting.isSet ? .recorderStopped : .clientDisconnected
    }

    private func failureResponse(
        reason: Unanswered.Reason, error: UpstreamError, request: IncomingRequest, sequence: Int
    ) -> OutgoingResponse? {
        let metadata: Logger.Metadata = [
            "interaction.seq": "\(sequence)", "http.method": request.method,
            "http.path": String(request.path.prefix { $0 != "?" }), "error": error.description,
        ]
        switch reason {
        case .clientDisconnected, .pending:
            logger.info("client disconnected before the upstream responded", metadata)
            return nil
        case .recorderStopped:
            logger.info("exchange abandoned at shutdown", metadata)
            return .text(503, "tapedeck: the recorder is shutting down; retry against the upstream directly")
        case .upstreamFailed:
            logger.warning("upstream request failed", metadata)
            return .text(502, "tapedeck: upstream \(configuration.upstream.origin) failed for \(request.method) \(metadata["http.path"]!): \(error.message)")
        }
    }

    /// Returns the cassette's copy of a body: omitted, with its size, when it was spooled.
    private func recorded(_ body: MessageBody) -> Body {
        switch body {
        case .inMemory(let data): Body(data)
        case .spooled(_, let size): .omitted(size: size)
        }
    }
}

