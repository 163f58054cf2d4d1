import Foundation
import Synchronization
import TapedeckCassette
import TapedeckCore
import TapedeckSOAP

/// Moves finished exchanges off the connection threads: one writer thread parses
/// their SOAP, redacts them and appends them to the cassette, so disk and
/// compression do not delay a client's response.
///
/// The queue holds at most `capacity` exchanges. When the writer falls behind, a
/// full queue makes connection threads wait for room, which slows clients down
/// instead of growing memory without bound. A crash loses only the exchanges
/// still queued.
final class RecordingQueue: @unchecked Sendable {
    private struct State {
        var pending: [Exchange] = []
        var finishing = false
    }

    private let writer: CassetteWriter
    private let redactor: Redactor
    private let logger: Logger
    private let state = Mutex(State())
    private let wakeUp = DispatchSemaphore(value: 0)
    /// Free places in the queue.
    private let room: DispatchSemaphore
    static let capacity = 1024
    private let finished = DispatchSemaphore(value: 0)
    private let recordedCount = Atomic<Int>(0)
    private let failedCount = Atomic<Int>(0)

    init(writer: CassetteWriter, redactor: Redactor, logger: Logger) {
        self.writer = writer
        self.redactor = redactor
        self.logger = logger
        room = DispatchSemaphore(value: RecordingQueue.capacity)
        let thread = Thread { [self] in run() }
        // Linux shows at most 15 characters of a thread name.
        thread.name = "tapedeck-writer"
        thread.start()
    }

    var recorded: Int { recordedCount.load(ordering: .relaxed) }
    var failed: Int { failedCount.load(ordering: .relaxed) }

    func enqueue(_ exchange: Exchange) {
        room.wait()
        state.withLock { $0.pending.append(exchange) }
        wakeUp.signal()
    }

    /// Writes what is queued, closes the cassette and returns when it is on disk.
    func finish() throws {
        state.withLock { $0.finishing = true }
        wakeUp.signal()
        finished.wait()
        try writer.close()
    }

    private func run() {
        while true {
            wakeUp.wait()
            let (batch, finishing) = state.withLock { state in
                defer { state.pending.removeAll() }
                return (state.pending, state.finishing)
            }
            for exchange in batch {
                write(exchange)
                room.signal()
            }
            if finishing && state.withLock({ $0.pending.isEmpty }) { break }
        }
        finished.signal()
    }

    private func write(_ original: Exchange) {
        var exchange = original
        annotateSOAP(&exchange)
        redactor.redact(&exchange)
        do {
            try writer.append(exchange)
            recordedCount.add(1, ordering: .relaxed)
            logger.debug("exchange recorded", metadata(of: exchange))
        } catch {
            failedCount.add(1, ordering: .relaxed)
            logger.error("could not append exchange to cassette", metadata(of: exchange).merging(["error": "\(error)"]) { $1 })
        }
    }

    /// Fills in the SOAP operation, `_this` and fault type for SOAP requests.
    private func annotateSOAP(_ exchange: inout Exchange) {
        guard exchange.request.method == "POST", exchange.request.path.hasPrefix("/sdk") else { return }
        do {
            var call = try SOAPEnvelope.parseCall(exchange.request.body.data)
            if let response = exchange.response, response.status >= 400 {
                call.fault = SOAPEnvelope.faultType(of: response.body.data)
            }
            exchange.soap = call
        } catch {
            logger.debug("request to /sdk is not a SOAP call", ["interaction.seq": "\(exchange.sequence)", "error": "\(error)"])
        }
    }

    private func metadata(of exchange: Exchange) -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            "interaction.seq": "\(exchange.sequence)",
            "http.method": exchange.request.method,
            // The query is left out because a query string can carry a ticket.
            "http.path": String(exchange.request.path.prefix { $0 != "?" }),
        ]
        if let operation = exchange.soap?.operation { metadata["soap.operation"] = operation }
        if let status = exchange.response?.status { metadata["http.status"] = "\(status)" }
        if let unanswered = exchange.unanswered { metadata["exchange.unanswered"] = unanswered.reason.rawValue }
        return metadata
    }
}
