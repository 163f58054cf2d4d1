import Dispatch
import Foundation
import TapedeckCore

extension CassetteReader {
    /// Lines in one unit of work. Large enough that dispatching costs little next to
    /// decoding, small enough that the last batches still spread over the threads.
    static let batchSize = 128

    /// Reads every remaining exchange like `forEach(_:)`, but decodes the lines
    /// and runs `prepare` on them on other threads, several batches at a time.
    /// `consume` receives the results in cassette order on the calling thread. A
    /// corrupt line or damaged data throws after `consume` has received every
    /// exchange before it, as `forEach(_:)` does, and a cut-short file sets
    /// `truncation` at the end.
    public func forEach<Prepared: Sendable>(
        preparing prepare: @escaping @Sendable (Exchange) -> Prepared,
        consume: (Prepared) throws -> Void
    ) throws {
        try forEach(makingPreparer: { prepare }, consume: consume)
    }

    /// Reads like `forEach(preparing:consume:)`, but calls `makePreparer` once per
    /// batch of lines on the worker thread, so that `prepare` can reuse state,
    /// such as a parser, that must stay on one thread.
    public func forEach<Prepared: Sendable>(
        makingPreparer makePreparer: @escaping @Sendable () -> (Exchange) -> Prepared,
        consume: (Prepared) throws -> Void
    ) throws {
        // Two batches a thread keep the workers busy while this thread reads and
        // consumes, and bound how many decoded lines wait in memory.
        let window = 2 * max(1, ProcessInfo.processInfo.activeProcessorCount)
        var inFlight: [LineBatch<Prepared>] = []
        // No worker may outlive the call, also when `consume` throws.
        defer { inFlight.forEach { $0.wait() } }

        var scheduled = exchangesRead
        var reading = true
        while reading || !inFlight.isEmpty {
            while reading && inFlight.count < window {
                let batch = readBatch(firstNumber: scheduled + 1, makePreparer: makePreparer)
                scheduled += batch.lines.count
                reading = !batch.isLast
                batch.start()
                inFlight.append(batch)
            }
            let oldest = inFlight.removeFirst()
            oldest.wait()
            try oldest.forEachResult { prepared in
                exchangesRead += 1
                try consume(prepared)
            }
        }
        // `nextLine` found the end while lines were still being prepared, so it
        // counted too few; every line read has been consumed now.
        truncation?.exchangesRead = exchangesRead
    }

    private func readBatch<Prepared>(
        firstNumber: Int, makePreparer: @escaping @Sendable () -> (Exchange) -> Prepared
    ) -> LineBatch<Prepared> {
        var lines: [Data] = []
        var offsets: [Int64] = []
        lines.reserveCapacity(CassetteReader.batchSize)
        offsets.reserveCapacity(CassetteReader.batchSize)
        var readError: (any Error)?
        var atEnd = false
        do {
            while lines.count < CassetteReader.batchSize {
                guard let line = try nextLine() else {
                    atEnd = true
                    break
                }
                lines.append(line)
                offsets.append(compressedOffset)
            }
        } catch {
            readError = error
        }
        return LineBatch(
            path: path, firstNumber: firstNumber, lines: lines, offsets: offsets, readError: readError,
            isLast: atEnd || readError != nil, makePreparer: makePreparer)
    }
}

/// Lines read from a cassette and their results, which one worker thread fills
/// in while the reader goes on.
final class LineBatch<Prepared: Sendable>: @unchecked Sendable {
    let lines: [Data]
    /// True when reading stopped after these lines, at the end or at damage.
    let isLast: Bool
    private let path: String
    private let firstNumber: Int
    private let offsets: [Int64]
    /// The error that stopped reading after these lines, reported after their results.
    private let readError: (any Error)?
    private let makePreparer: @Sendable () -> (Exchange) -> Prepared
    private var results: [Result<Prepared, CassetteError>] = []
    private let done = DispatchGroup()

    init(
        path: String, firstNumber: Int, lines: [Data], offsets: [Int64], readError: (any Error)?, isLast: Bool,
        makePreparer: @escaping @Sendable () -> (Exchange) -> Prepared
    ) {
        self.path = path
        self.firstNumber = firstNumber
        self.lines = lines
        self.offsets = offsets
        self.readError = readError
        self.isLast = isLast
        self.makePreparer = makePreparer
    }

    /// Decodes and prepares every line on a worker thread. `results` is written
    /// only there, and read only after `wait()`, which orders the two.
    func start() {
        DispatchQueue.global().async(group: done) { [self] in
            let prepare = makePreparer()
            results.reserveCapacity(lines.count)
            for (index, line) in lines.enumerated() {
                results.append(Result { () throws(CassetteError) -> Prepared in
                    let exchange = try CassetteReader.decodeExchange(
                        line, path: path, number: firstNumber + index, offset: offsets[index])
                    return prepare(exchange)
                })
            }
        }
    }

    func wait() {
        done.wait()
    }

    /// Passes each prepared exchange to `body` in order, then throws the first
    /// error: a corrupt line's, or else the read error that ended the batch.
    func forEachResult(_ body: (Prepared) throws -> Void) throws {
        for result in results {
            try body(result.get())
        }
        if let readError { throw readError }
    }
}
