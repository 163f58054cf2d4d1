import Foundation
import TapedeckCore

/// Decides, from an exchange stream alone, whether each task flow completed,
/// blocked forever, or broke the one-wait-per-collector rule.
public enum Verifier {
    /// Consecutive empty responses with an unchanged version that count as livelock.
    static let livelockThreshold = 20

    public static func verify(_ exchanges: [Exchange]) -> VerificationReport {
        let facts = exchanges.compactMap(WireFacts.init).sorted { ($0.start, $0.sequence) < ($1.start, $1.sequence) }
        var state = FlowState()
        for fact in facts { state.add(fact) }
        return VerificationReport(flows: state.verdicts(), violations: state.violations())
    }
}

/// Flows and waits assembled from wire facts.
private struct FlowState {
    struct Filter {
        var collectorKey: String
        var tasks: [String]
        var created: Int
        var createdAt: UInt64
        var destroyed: Int?
        var destroyedAt: UInt64?
    }

    struct Wait {
        var fact: WireFacts
        var collectorKey: String
    }

    var filters: [String: Filter] = [:]
    var filtersByTask: [String: [String]] = [:]
    var waits: [String: [Wait]] = [:]
    var collectorDestroyed: [String: Int] = [:]
    /// For each task, the first exchange that carried its final state.
    var delivered: [String: WireFacts] = [:]
    var polledFinal: [String: Int] = [:]
    var faults: [String: Int] = [:]
    var tasks: [String] = []
    var sessions: [String: String?] = [:]

    private func key(_ session: String?, _ collector: String) -> String {
        "\(session ?? "none")|\(collector)"
    }

    mutating func add(_ fact: WireFacts) {
        for task in fact.finalTasks where delivered[task] == nil {
            delivered[task] = fact
        }
        switch fact.event {
        case .taskCreated(let task):
            tasks.append(task)
            sessions[task] = fact.session
        case .filterCreated(let collector, let filter, let watched):
            guard let filter else { break }
            filters[filter] = Filter(
                collectorKey: key(fact.session, collector), tasks: watched, created: fact.sequence, createdAt: fact.start)
            for task in watched { filtersByTask[task, default: []].append(filter) }
        case .filterDestroyed(let filter):
            filters[filter]?.destroyed = fact.sequence
            filters[filter]?.destroyedAt = fact.start
        case .collectorDestroyed(let collector):
            collectorDestroyed[key(fact.session, collector)] = fact.sequence
        case .wait(let collector, _, _, _):
            waits[key(fact.session, collector), default: []].append(Wait(fact: fact, collectorKey: key(fact.session, collector)))
        case .poll(let task):
            if fact.finalTasks.contains(task), polledFinal[task] == nil { polledFinal[task] = fact.sequence }
        case .other:
            break
        }
        if fact.fault != nil, case .wait(let collector, _, _, _) = fact.event {
            faults[key(fact.session, collector)] = fact.sequence
        }
    }

    func verdicts() -> [FlowVerdict] {
        let stuck = stuckWaits()
        // Overlapping pairs once per collector, not once per flow on it.
        let overlapping = waits.mapValues(overlaps)
        return tasks.compactMap { verdict(for: $0, stuck: stuck[$0], overlapping: overlapping) }
    }

    /// Pairs each wait that never got a response with the flow it left blocked: a
    /// flow on the same collector whose task's final state had already gone to
    /// another call before the wait started, and whose filter was still there when
    /// it started. A client that gives up cleans up its own filter right away, so
    /// the flow whose filter was destroyed closest to the wait's end is the one it
    /// belonged to. The end is when the recorder noticed the closed connection,
    /// which can lag the client's cleanup by up to a second.
    private func stuckWaits() -> [String: Wait] {
        var result: [String: Wait] = [:]
        for (collectorKey, collectorWaits) in waits {
            let abandoned = collectorWaits.filter { !$0.fact.answered }.sorted { ($0.fact.end ?? .max) < ($1.fact.end ?? .max) }
            for wait in abandoned {
                let candidates = tasks.filter { task in
                    guard result[task] == nil, let final = delivered[task], final.start <= wait.fact.start,
                          let filterID = filtersByTask[task]?.first, let filter = filters[filterID], filter.collectorKey == collectorKey
                    else { return false }
                    return filter.destroyedAt.map { $0 >= wait.fact.start } ?? true
                }
                let end = wait.fact.end ?? .max
                let owner = candidates.min { left, right in
                    distance(destroyedAt(left), end) < distance(destroyedAt(right), end)
                }
                if let owner { result[owner] = wait }
            }
        }
        return result
    }

    private func distance(_ left: UInt64, _ right: UInt64) -> UInt64 {
        left > right ? left - right : right - left
    }

    private func destroyedAt(_ task: String) -> UInt64 {
        filtersByTask[task]?.first.flatMap { filters[$0]?.destroyedAt } ?? .max
    }

    private func verdict(for task: String, stuck: Wait?, overlapping: [String: [(Wait, Wait, UInt64)]]) -> FlowVerdict? {
        guard let filterID = filtersByTask[task]?.first, let filter = filters[filterID] else {
            guard let polled = polledFinal[task] else { return nil }
            return FlowVerdict(
                task: task, session: sessions[task] ?? nil, collector: nil, kind: .completed,
                evidence: ["#\(polled) read the task's final state by polling"], exchanges: [polled])
        }
        let collector = filter.collectorKey.split(separator: "|", maxSplits: 1).last.map(String.init)
        let session = sessions[task] ?? nil
        let ended = filter.destroyed ?? collectorDestroyed[filter.collectorKey]
        let collectorWaits = waits[filter.collectorKey] ?? []
        // Only overlaps while this flow's filter existed count against it.
        let lifetimeEnd = filter.destroyedAt ?? .max
        let overlapsDuringFlow = (overlapping[filter.collectorKey] ?? []).contains { first, second, _ in
            second.fact.start < lifetimeEnd && (first.fact.end ?? .max) > filter.createdAt
        }

        if let final = delivered[task], let stuck {
            let ending = stuck.fact.end == nil ? "is still pending" : "was abandoned by the client"
            return FlowVerdict(
                task: task, session: session, collector: collector, kind: .blockedForever,
                evidence: [
                    "\(task)'s final state was delivered by #\(final.sequence) (\(final.operation)) to a call that did not act on it",
                    "#\(stuck.fact.sequence) (\(stuck.fact.operation)) waited on \(collector ?? "?") after that and \(ending); it could never receive the update, because \(task) does not change again",
                ],
                exchanges: [final.sequence, stuck.fact.sequence])
        }
        if let final = delivered[task] {
            if let ended, ended > final.sequence || polledFinal[task] != nil {
                if overlapsDuringFlow {
                    return FlowVerdict(
                        task: task, session: session, collector: collector, kind: .protocolViolation,
                        evidence: ["#\(final.sequence) delivered the final state and #\(ended) ended the flow, but waits on \(collector ?? "?") overlapped while the flow's filter existed"],
                        exchanges: [final.sequence, ended])
                }
                return FlowVerdict(
                    task: task, session: session, collector: collector, kind: .completed,
                    evidence: ["#\(final.sequence) delivered the final state; #\(ended) ended the flow"], exchanges: [final.sequence, ended])
            }
        }
        if let fault = faults[filter.collectorKey] {
            return FlowVerdict(
                task: task, session: session, collector: collector, kind: .clientError,
                evidence: ["#\(fault) failed with a fault"], exchanges: [fault])
        }
        if livelocked(collectorWaits) {
            return FlowVerdict(
                task: task, session: session, collector: collector, kind: .livelock,
                evidence: ["waits on \(collector ?? "?") returned \(Verifier.livelockThreshold) or more empty update sets with the same version"],
                exchanges: [])
        }
        return FlowVerdict(
            task: task, session: session, collector: collector, kind: .timedOut,
            evidence: [delivered[task] == nil ? "the stream never shows \(task) in a final state" : "the flow did not end, and no wait was left pending"],
            exchanges: [])
    }

    private func livelocked(_ waits: [Wait]) -> Bool {
        var run = 0
        for wait in waits {
            guard case .wait(_, let versionIn, let versionOut, let changed) = wait.fact.event, wait.fact.answered else { continue }
            run = (!changed && (versionOut == nil || versionOut == versionIn)) ? run + 1 : 0
            if run >= Verifier.livelockThreshold { return true }
        }
        return false
    }

    /// Pairs of waits on one collector whose intervals overlap.
    func overlaps(_ waits: [Wait]) -> [(Wait, Wait, UInt64)] {
        var result: [(Wait, Wait, UInt64)] = []
        let sorted = waits.sorted { $0.fact.start < $1.fact.start }
        for (index, first) in sorted.enumerated() {
            let firstEnd = first.fact.end ?? UInt64.max
            for second in sorted[(index + 1)...] {
                guard second.fact.start < firstEnd else { break }
                result.append((first, second, min(firstEnd, second.fact.end ?? UInt64.max) &- second.fact.start))
            }
        }
        return result
    }

    func violations() -> [ProtocolViolation] {
        waits.keys.sorted().flatMap { key in
            overlaps(waits[key]!).map { first, second, overlap in
                ProtocolViolation(
                    session: first.fact.session, collector: String(key.split(separator: "|", maxSplits: 1).last ?? ""),
                    first: first.fact.sequence, second: second.fact.sequence,
                    overlapMilliseconds: overlap == UInt64.max ? -1 : Double(overlap) / 1e6)
            }
        }
    }
}
