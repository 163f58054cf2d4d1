import Dispatch
import Foundation
import TapedeckCore
import TapedeckSOAP

extension PropertyCollectorModel {
    /// `xsi:type` of TaskInfo fields, for values derived from a recorded `info`
    /// when a filter selects a sub-path such as `info.state`.
    static let taskInfoFieldTypes: [String: String] = [
        "state": "TaskInfoState", "error": "LocalizedMethodFault", "progress": "xsd:int",
        "cancelled": "xsd:boolean", "cancelable": "xsd:boolean", "queueTime": "xsd:dateTime",
        "startTime": "xsd:dateTime", "completeTime": "xsd:dateTime", "eventChainId": "xsd:int",
        "task": "ManagedObjectReference", "entity": "ManagedObjectReference", "description": "LocalizableMessage",
    ]

    /// Returns the replay time at which a recorded observation of `object` takes effect.
    func fireTime(of observationTime: UInt64, for object: ManagedObjectReference, history: RecordedWorld.History) -> UInt64 {
        if !timing.absolute, let created = taskCreatedAt[object], let recordedCreated = history.createdAt {
            let offset = Double(observationTime &- min(observationTime, recordedCreated))
            return created + UInt64(offset * factor(for: object))
        }
        return replayStart + UInt64(Double(observationTime) * timing.scale)
    }

    private func factor(for object: ManagedObjectReference) -> Double {
        guard let seed = timing.seed else { return timing.scale }
        var generator = SeededGenerator(seed: seed, stream: "task-timing|\(object.value)")
        return timing.scale * Double.random(in: 0.5...1.5, using: &generator)
    }

    /// Returns the object's properties as of replay time `now`: canonical `val` XML by name.
    func currentProperties(of object: ManagedObjectReference, at now: UInt64) -> [String: String] {
        guard let history = world.history(of: object) else { return [:] }
        var properties: [String: String] = [:]
        // The first observation applies from the start, because nothing earlier was recorded.
        for (index, observation) in history.observations.enumerated()
        where index == 0 || fireTime(of: observation.time, for: object, history: history) <= now {
            for (name, value) in observation.properties {
                properties[name] = value
            }
        }
        return properties
    }

    /// Returns the properties of `object` that `specs` select, by path.
    func selectedProperties(of object: ManagedObjectReference, specs: [PropertySpec], at now: UInt64) -> [String: String] {
        let current = currentProperties(of: object, at: now)
        var selected: [String: String] = [:]
        for spec in specs where spec.applies(to: object, knownProperties: Set(current.keys)) {
            if spec.all { selected.merge(current) { _, new in new } }
            for path in spec.paths {
                if let value = Self.value(at: path, in: current) { selected[path] = value }
            }
        }
        return selected
    }

    /// Returns the value at a property path, deriving `info.state` from a recorded
    /// `info` when the path itself was never recorded.
    static func value(at path: String, in properties: [String: String]) -> String? {
        if let value = properties[path] { return value }
        let parts = path.split(separator: ".").map(String.init)
        guard parts.count > 1, let base = properties[parts[0]] else { return nil }
        let wrapped = "<w xmlns:xsi=\"\(SOAPEnvelope.schemaInstanceNamespace)\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">\(base)</w>"
        guard var element = (try? XMLDocument(parsing: Data(wrapped.utf8)))?.root?.children.first else { return nil }
        for part in parts.dropFirst() {
            guard let child = element.firstChild(named: part) else { return nil }
            element = child
        }
        let value = element.canonicalXML(renamedTo: "val")
        guard !value.contains("xsi:type="), let type = taskInfoFieldTypes[parts.last!] else { return value }
        return "<val xsi:type=\"\(type)\"" + value.dropFirst("<val".count)
    }

    /// Starts the clock of a task that the replayed client just created, and
    /// schedules a wake-up for each of its later recorded transitions.
    func taskCreated(_ task: ManagedObjectReference) {
        lock.withLock {
            let now = time.now()
            taskCreatedAt[task] = now
            scheduled.remove(task)
            scheduleChanges(of: task)
            guard let history = world.history(of: task), let recordedCreated = history.createdAt else { return }
            for observation in history.observations {
                guard let info = observation.properties["info"] ?? nil, let state = TaskInfoState.state(of: info) else { continue }
                transitions.append(Transition(
                    task: task.value, state: state,
                    recordedOffsetMilliseconds: Double(observation.time &- min(observation.time, recordedCreated)) / 1e6,
                    replayOffsetMilliseconds: Double(fireTime(of: observation.time, for: task, history: history) &- now) / 1e6))
            }
        }
    }

    /// Schedules wake-ups for the object's future observations, once per object.
    /// Callers hold the lock.
    func scheduleChanges(of object: ManagedObjectReference) {
        guard !scheduled.contains(object), let history = world.history(of: object) else { return }
        scheduled.insert(object)
        let now = time.now()
        for observation in history.observations {
            let due = fireTime(of: observation.time, for: object, history: history)
            guard due > now else { continue }
            time.schedule(at: due) { [self] in
                objectChanged(object)
            }
        }
    }
}
