import Foundation
import TapedeckCore
import TapedeckSOAP

/// Assigns recorded responses to replayed requests. Within one recorded session,
/// the nth request with a key gets the nth recorded exchange with that key, where
/// "nth recorded" follows the order policy: recording order, or a permutation
/// drawn from the seed and the key, so one seed always gives one assignment.
final class Matcher: @unchecked Sendable {
    enum Outcome {
        case hit(index: Int, occurrence: Int)
        /// More requests than recordings: the last recording is served again.
        case reused(index: Int, occurrence: Int)
        case miss(Miss)
    }

    struct Miss: Sendable, Equatable {
        var key: String
        var session: String?
        var closestSequence: Int?
        var difference: String

        var message: String {
            var text = "tapedeck replay: no recorded response for \(key)"
            if let session { text += " in \(session)" }
            if let closestSequence { text += "; closest recorded request is #\(closestSequence), which differs at \(difference)" }
            else { text += "; \(difference)" }
            return text
        }
    }

    private struct Bucket: Hashable {
        var session: String?
        var key: RequestKey
    }

    private let cassette: RecordedCassette
    private let seed: UInt64?
    private var queues: [Bucket: [Int]] = [:]
    private var served: [Bucket: Int] = [:]
    private var byOperation: [String: [Int]] = [:]

    /// `seed` nil keeps recording order; a seed permutes each key's recordings.
    init(cassette: RecordedCassette, seed: UInt64?) {
        self.cassette = cassette
        self.seed = seed
        queues.reserveCapacity(cassette.entries.count)
        for (index, entry) in cassette.entries.enumerated() {
            queues[Bucket(session: entry.session, key: entry.key), default: []].append(index)
            byOperation[entry.key.operation, default: []].append(index)
        }
        // Updating through the values view keeps each bucket in place, without
        // hashing the long argument keys again. The indices are walked by hand,
        // because `queues.indices` would keep a second reference to the storage and
        // make the first update copy the whole dictionary.
        var position = queues.startIndex
        while position != queues.endIndex {
            let (bucket, indices) = queues[position]
            let ordered = indices.sorted { cassette.entries[$0].exchange.sequence < cassette.entries[$1].exchange.sequence }
            queues.values[position] = seed.map { permuted(ordered, seed: $0, bucket: bucket) } ?? ordered
            queues.formIndex(after: &position)
        }
    }

    /// Takes the next recorded exchange for a request. Callers hold the replay lock.
    func next(session: String?, request: ParsedRequest) -> Outcome {
        let bucket = Bucket(session: session, key: request.key)
        guard let queue = queues[bucket], !queue.isEmpty else {
            return .miss(closestMiss(session: session, request: request))
        }
        let occurrence = served[bucket, default: 0]
        served[bucket] = occurrence + 1
        if occurrence < queue.count { return .hit(index: queue[occurrence], occurrence: occurrence + 1) }
        return .reused(index: queue[queue.count - 1], occurrence: occurrence + 1)
    }

    private func permuted(_ indices: [Int], seed: UInt64, bucket: Bucket) -> [Int] {
        var generator = SeededGenerator(seed: seed, stream: "\(bucket.session ?? "")|\(bucket.key.operation)|\(bucket.key.this?.description ?? "")|\(bucket.key.arguments)")
        return indices.shuffled(using: &generator)
    }

    // MARK: - Misses

    /// Finds the recorded request with the same operation that shares the longest
    /// run of fields with this one, and names the first field that differs.
    private func closestMiss(session: String?, request: ParsedRequest) -> Miss {
        let candidates = byOperation[request.key.operation] ?? []
        guard !candidates.isEmpty else {
            return Miss(key: request.key.description, session: session, closestSequence: nil,
                        difference: "the cassette has no \(request.key.operation) request at all")
        }
        let wanted = request.element.map(argumentLeaves) ?? [("body", request.key.arguments)]
        var best: (index: Int, score: Int, likeness: Int, difference: String)?
        for index in candidates {
            let entry = cassette.entries[index]
            let recorded = recordedLeaves(entry)
            let (score, likeness, difference) = compare(request, wanted, entry, recorded, session: session)
            // Among recordings that share as many fields, the one whose differing
            // value looks most like the request's is the likelier intended match.
            if best == nil || (score, likeness) > (best!.score, best!.likeness) { best = (index, score, likeness, difference) }
        }
        return Miss(key: request.key.description, session: session,
                    closestSequence: best.map { cassette.entries[$0.index].exchange.sequence }, difference: best?.difference ?? "")
    }

    private func argumentLeaves(_ element: XMLElement) -> [(path: String, value: String)] {
        element.children.filter { $0.localName != "_this" }.flatMap { $0.leaves() }
    }

    private func recordedLeaves(_ entry: RecordedCassette.Entry) -> [(path: String, value: String)] {
        guard let element = try? SOAPEnvelope.bodyElement(of: entry.exchange.request.body.data) else {
            return [("body", entry.key.arguments)]
        }
        return argumentLeaves(element)
    }

    private func compare(
        _ request: ParsedRequest, _ wanted: [(path: String, value: String)], _ entry: RecordedCassette.Entry,
        _ recorded: [(path: String, value: String)], session: String?
    ) -> (score: Int, likeness: Int, difference: String) {
        if entry.key.this != request.key.this {
            return (-1, 0, "_this: recorded '\(entry.key.this?.description ?? "none")', got '\(request.key.this?.description ?? "none")'")
        }
        var shared = 0
        for (left, right) in zip(wanted, recorded) {
            if left.path != right.path || left.value != right.value {
                let field = left.path == right.path ? left.path : "\(right.path) / \(left.path)"
                return (shared, Matcher.likeness(left.value, right.value), "\(field): recorded '\(right.value)', got '\(left.value)'")
            }
            shared += 1
        }
        if wanted.count != recorded.count {
            return (shared, 0, "argument count: recorded \(recorded.count) fields, got \(wanted.count)")
        }
        return (shared + 1, 0, "session: recorded in \(entry.session ?? "no session"), requested in \(session ?? "no session")")
    }

    /// Counts the characters two values share at their start and at their end,
    /// so `tapedeck-vm-000` is more like `vm-000` than `tapedeck-vm-003` is.
    static func likeness(_ left: String, _ right: String) -> Int {
        let prefix = zip(left, right).prefix { $0 == $1 }.count
        let suffix = zip(left.reversed(), right.reversed()).prefix { $0 == $1 }.count
        return prefix + suffix
    }
}
