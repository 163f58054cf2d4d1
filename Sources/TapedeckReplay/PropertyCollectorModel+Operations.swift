import Dispatch
import Foundation
import TapedeckCore
import TapedeckSOAP

extension PropertyCollectorModel {
    /// Operations the model responds to. RetrievePropertiesEx, RetrieveProperties
    /// and Fetch go to the model only when they read tasks.
    static let operations: Set<String> = [
        "CreatePropertyCollector", "DestroyPropertyCollector", "CreateFilter", "DestroyPropertyFilter",
        "WaitForUpdatesEx", "WaitForUpdates", "CheckForUpdates", "CancelWaitForUpdates",
    ]

    // MARK: - Collectors and filters

    func createCollector(session: String) -> Answer {
        lock.withLock {
            let reference = ManagedObjectReference(type: "PropertyCollector", value: "session[\(session)]collector-\(nextID())")
            collectors[key(session, reference)] = Collector(reference: reference)
            return .content(SOAPBuilder.reference("returnval", reference))
        }
    }

    func destroyCollector(session: String, _ reference: ManagedObjectReference) -> Answer {
        let removed = lock.withLock { () -> Collector? in
            guard let collector = collectors.removeValue(forKey: key(session, reference)) else { return nil }
            for entry in collector.filters { filterOwners[key(session, entry.filter.reference)] = nil }
            return collector
        }
        guard let removed else { return notFound(reference) }
        cancelWaiters(of: removed)
        return .content("")
    }

    /// Creates a filter. `recordedObjects` lists what recorded filters with the
    /// same arguments reported; a filter with traversal specs watches those,
    /// because the model cannot follow traversals itself.
    func createFilter(
        session: String, collector reference: ManagedObjectReference, spec element: XMLElement?,
        recordedObjects: [ManagedObjectReference]
    ) -> Answer {
        var delivery: Delivery?
        defer { delivery?.run() }
        return lock.withLock {
            guard let collector = collector(session, reference) else { return notFound(reference) }
            guard let element, let spec = FilterSpec(element) else {
                return .fault(type: "InvalidArgument", message: "A specified parameter was not correct: spec", detail: "<invalidProperty>spec</invalidProperty>")
            }
            var objects = spec.objects
            if spec.needsTraversal {
                let starting = Set(spec.objects + spec.skipped)
                objects += recordedObjects.filter { !starting.contains($0) }
                logger.info("filter uses traversal specs; watching the objects the recorded filter reported", [
                    "replay.collector": reference.value, "replay.objects": "\(objects.count)",
                ])
            }
            let filterReference = ManagedObjectReference(type: "PropertyFilter", value: "session[\(session)]filter-\(nextID())")
            let filter = Filter(reference: filterReference, objects: objects, specs: spec.specs)
            collector.filters.append((nextID(), filter))
            filterOwners[key(session, filterReference)] = key(session, collector.reference)
            objects.forEach { scheduleChanges(of: $0) }
            // On vCenter a new filter has an "enter" to report, so a waiting call
            // wakes for it. vcsim wakes waiting calls only for changed objects, and
            // the filter's "enter" goes to whichever call computes updates next.
            if semantics == .vcenter {
                delivery = wakeOne(collector, object: objects.first?.description ?? "")
            }
            return .content(SOAPBuilder.reference("returnval", filterReference))
        }
    }

    func destroyFilter(session: String, _ reference: ManagedObjectReference) -> Answer {
        lock.withLock {
            guard let owner = filterOwners.removeValue(forKey: key(session, reference)), let collector = collectors[owner] else {
                return notFound(reference)
            }
            collector.filters.removeAll { $0.filter.reference == reference }
            return .content("")
        }
    }

    func cancelWait(session: String, _ reference: ManagedObjectReference) -> Answer {
        guard let collector = lock.withLock({ collector(session, reference) }) else { return notFound(reference) }
        cancelWaiters(of: collector)
        return .content("")
    }

    // MARK: - Waiting

    /// Responds to WaitForUpdatesEx, WaitForUpdates or CheckForUpdates by calling
    /// `completion` once: at once when there is something to return, or later when
    /// a change is delivered to this call, `maxWaitSeconds` passes, or the wait is
    /// cancelled. Returns the waiting call, for `abandon`, or nil when the response
    /// was immediate. No thread waits meanwhile.
    @discardableResult
    func wait(
        session: String, collector reference: ManagedObjectReference, version: String, maxWaitSeconds: Double?,
        kind: WaitKind, completion: @escaping @Sendable (Answer) -> Void
    ) -> Waiter? {
        var waiter: Waiter?
        let immediate = lock.withLock { () -> Answer? in
            guard let collector = collector(session, reference) else { return notFound(reference) }
            if !version.isEmpty && !collector.issuedVersions.contains(version) {
                return .fault(type: "InvalidCollectorVersion", message: "The collector version '\(version)' is not valid for \(reference.value).", detail: "")
            }
            if version.isEmpty {
                return .content(updateSet(of: collector, full: semantics == .vcenter, always: true) ?? "")
            }
            if let changes = updateSet(of: collector, full: false) { return .content(changes) }
            if kind == .checkForUpdates || maxWaitSeconds == 0 { return .content("") }

            let waiting = Waiter(collector: collector, completion: completion)
            collector.waiters.append(waiting)
            if let maxWaitSeconds {
                // Under virtual time this fires when the scheduler advances the
                // clock that far.
                time.schedule(at: time.now() + UInt64(maxWaitSeconds * 1e9)) { [self] in
                    finish(waiting, with: .content(""))
                }
            }
            waiter = waiting
            return nil
        }
        if let immediate { completion(immediate) }
        return waiter
    }

    /// Ends a wait whose client went away, or that replay is stopping.
    func abandon(_ waiter: Waiter) {
        finish(waiter, with: .abandoned)
    }

    /// Ends a wait with `answer`, unless it already ended.
    private func finish(_ waiter: Waiter, with answer: Answer) {
        let ended = lock.withLock { end(waiter) }
        if ended { waiter.completion(answer) }
    }

    /// Removes a waiter from its collector. Returns false when it already ended.
    /// Callers hold the lock.
    private func end(_ waiter: Waiter) -> Bool {
        guard !waiter.ended else { return false }
        waiter.ended = true
        waiter.collector.waiters.removeAll { $0 === waiter }
        return true
    }

    /// Wakes one waiting call on every collector whose filters watch `object`.
    func objectChanged(_ object: ManagedObjectReference) {
        let deliveries = lock.withLock {
            collectors.values
                .filter { $0.filters.contains { $0.filter.objects.contains(object) } }
                .compactMap { wakeOne($0, object: object.description) }
        }
        deliveries.forEach { $0.run() }
    }

    /// Picks exactly one waiting call, by the release policy, and hands it the
    /// changes. With none waiting, the change stays pending for the next call.
    /// Callers hold the lock and run the returned delivery after releasing it.
    private func wakeOne(_ collector: Collector, object: String) -> Delivery? {
        guard !collector.waiters.isEmpty else { return nil }
        let chosen: Int
        switch release {
        case .longestWaiting:
            chosen = 0
        case .seeded(let seed):
            let stream = collector.reference.value
            var generator = generators[stream] ?? SeededGenerator(seed: seed, stream: "release|\(stream)")
            chosen = Int.random(in: 0..<collector.waiters.count, using: &generator)
            generators[stream] = generator
        }
        let waiter = collector.waiters[chosen]
        let record = Release(
            atMilliseconds: Double(time.now() - replayStart) / 1e6, collector: collector.reference.value,
            object: object, waiter: chosen + 1, waiting: collector.waiters.count)
        releases.append(record)
        logger.debug("wake-up delivered", [
            "replay.collector": record.collector, "replay.object": object,
            "replay.waiter": "\(record.waiter) of \(record.waiting)",
        ])

        // The woken call computes the changes now; when another call already took
        // them, it goes on waiting.
        guard let changes = updateSet(of: collector, full: false) else { return nil }
        _ = end(waiter)
        return Delivery(waiter: waiter, answer: .content(changes))
    }

    /// Ends every wait on a collector with RequestCanceled.
    private func cancelWaiters(of collector: Collector) {
        let cancelled = lock.withLock { collector.waiters.filter { end($0) } }
        for waiter in cancelled {
            waiter.completion(.fault(type: "RequestCanceled", message: "The task was canceled by a user.", detail: ""))
        }
    }

    // MARK: - Update sets

    /// Builds an UpdateSet: with `full`, every object of every filter; otherwise
    /// what changed since each filter last reported. Returns nil when nothing
    /// changed, unless `always`. Marks what it reports, so the next call sees only
    /// later changes.
    private func updateSet(of collector: Collector, full: Bool, always: Bool = false) -> String? {
        let now = time.now()
        var filterSets = ""
        for (_, filter) in collector.filters {
            var objectSets = ""
            for object in filter.objects {
                let current = selectedProperties(of: object, specs: filter.specs, at: now)
                let previous = filter.reported[object]
                filter.reported[object] = current
                var changes = ""
                let kind: String
                if full || previous == nil {
                    kind = "enter"
                    for name in current.keys.sorted() { changes += changeSet(name, current[name]) }
                } else {
                    kind = "modify"
                    for name in Set(current.keys).union(previous!.keys).sorted() where current[name] != previous![name] {
                        changes += changeSet(name, current[name])
                    }
                    if changes.isEmpty { continue }
                }
                objectSets += "<objectSet><kind>\(kind)</kind>\(SOAPBuilder.reference("obj", object))\(changes)</objectSet>"
            }
            if !objectSets.isEmpty {
                filterSets += "<filterSet>\(SOAPBuilder.reference("filter", filter.reference))\(objectSets)</filterSet>"
            }
        }
        if filterSets.isEmpty && !full && !always { return nil }
        collector.version += 1
        let version = String(collector.version)
        collector.issuedVersions.insert(version)
        return "<returnval><version>\(version)</version>\(filterSets)</returnval>"
    }

    private func changeSet(_ name: String, _ value: String?) -> String {
        guard let value else { return "<changeSet><name>\(escapeXML(name, attribute: false))</name><op>remove</op></changeSet>" }
        return "<changeSet><name>\(escapeXML(name, attribute: false))</name><op>assign</op>\(value)</changeSet>"
    }

    // MARK: - Reading tasks

    /// Responds to RetrievePropertiesEx or RetrieveProperties when every object it
    /// names is a recorded task and no traversal is asked for; nil otherwise.
    func retrieve(operation: String, element: XMLElement) -> Answer? {
        let specs = element.children.filter { $0.localName == "specSet" }.compactMap(FilterSpec.init)
        guard !specs.isEmpty, specs.allSatisfy({ !$0.needsTraversal }) else { return nil }
        let objects = specs.flatMap(\.objects)
        guard objects.allSatisfy({ $0.type == "Task" && world.history(of: $0) != nil }) else { return nil }

        let now = time.now()
        let contents = lock.withLock {
            specs.flatMap { spec in
                spec.objects.map { object in
                    let properties = selectedProperties(of: object, specs: spec.specs, at: now)
                    let propSets = properties.keys.sorted().map { name in
                        "<propSet><name>\(escapeXML(name, attribute: false))</name>\(properties[name]!)</propSet>"
                    }
                    return SOAPBuilder.reference("obj", object) + propSets.joined()
                }
            }
        }
        if operation == "RetrieveProperties" {
            return .content(contents.map { "<returnval>\($0)</returnval>" }.joined())
        }
        return .content("<returnval>" + contents.map { "<objects>\($0)</objects>" }.joined() + "</returnval>")
    }

    /// Answers pyvmomi's `Fetch` of a task property; nil for other objects.
    func fetch(_ object: ManagedObjectReference, property: String) -> Answer? {
        guard object.type == "Task", world.history(of: object) != nil else { return nil }
        let properties = lock.withLock { currentProperties(of: object, at: time.now()) }
        guard let value = Self.value(at: property, in: properties) else { return nil }
        return .content("<returnval" + value.dropFirst("<val".count).dropLast(value.hasSuffix("</val>") ? "</val>".count : 0)
            + (value.hasSuffix("</val>") ? "</returnval>" : ""))
    }

    // MARK: - Helpers

    private func key(_ session: String, _ reference: ManagedObjectReference) -> String {
        "\(session)|\(reference.value)"
    }

    /// Finds a collector, creating the session's default collector on first use.
    private func collector(_ session: String, _ reference: ManagedObjectReference) -> Collector? {
        if let existing = collectors[key(session, reference)] { return existing }
        guard reference.value == "propertyCollector" || reference.value == "ha-property-collector" else { return nil }
        let created = Collector(reference: reference)
        collectors[key(session, reference)] = created
        return created
    }

    private func nextID() -> Int {
        nextIdentifier += 1
        return nextIdentifier
    }

    private func notFound(_ reference: ManagedObjectReference) -> Answer {
        .fault(
            type: "ManagedObjectNotFound", message: "The object '\(reference.type):\(reference.value)' has already been deleted or has not been completely created",
            detail: SOAPBuilder.reference("obj", reference))
    }
}
