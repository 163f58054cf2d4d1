import Foundation
import TapedeckCore
import TapedeckSOAP

/// Property values of managed objects as the cassette saw them over time, taken
/// from update sets, property retrievals and `Fetch` responses. The property
/// collector model evaluates filters against it during replay.
final class RecordedWorld: @unchecked Sendable {
    /// One sighting of some of an object's properties.
    struct Observation {
        /// Recorded nanoseconds since the cassette started.
        var time: UInt64
        /// Property name to canonical value XML (element `val`); nil means removed.
        var properties: [String: String?]
    }

    struct History {
        var observations: [Observation] = []
        /// When the `*_Task` call that created this task answered, for tasks.
        var createdAt: UInt64?
    }

    private(set) var histories: [ManagedObjectReference: History] = [:]

    /// Operations whose responses carry update sets.
    static let updateOperations: Set<String> = ["WaitForUpdatesEx", "WaitForUpdates", "CheckForUpdates"]

    /// Adds what one recorded exchange reveals.
    func add(_ exchange: Exchange, operation: String, response: XMLElement) {
        let time = exchange.timing.responseStart ?? exchange.timing.requestEnd
        switch operation {
        case _ where RecordedWorld.updateOperations.contains(operation):
            addUpdateSet(response.firstChild(named: "returnval"), time: time)
        case "RetrievePropertiesEx", "ContinueRetrievePropertiesEx":
            for objects in response.firstChild(named: "returnval")?.children.filter({ $0.localName == "objects" }) ?? [] {
                addObjectContent(objects, time: time)
            }
        case "RetrieveProperties":
            for content in response.children where content.localName == "returnval" {
                addObjectContent(content, time: time)
            }
        case "Fetch":
            addFetch(exchange, response: response, time: time)
        case _ where operation.hasSuffix("_Task"):
            if let task = response.firstChild(named: "returnval"), task.attribute("type") == "Task" {
                histories[ManagedObjectReference(type: "Task", value: task.text), default: History()].createdAt = time
            }
        default:
            break
        }
    }

    /// True when an update set carried version `-`, which vcsim uses and vCenter
    /// never does; replay then follows vcsim's collector semantics.
    private(set) var recordedByVCSim = false

    /// Sorts each object's observations by time.
    func finish() {
        for (reference, var history) in histories {
            history.observations.sort { $0.time < $1.time }
            histories[reference] = history
        }
    }

    func history(of reference: ManagedObjectReference) -> History? {
        histories[reference]
    }

    private func addUpdateSet(_ updateSet: XMLElement?, time: UInt64) {
        if updateSet?.firstChild(named: "version")?.text == "-" { recordedByVCSim = true }
        for filterSet in updateSet?.children ?? [] where filterSet.localName == "filterSet" {
            for objectSet in filterSet.children where objectSet.localName == "objectSet" {
                guard let object = objectSet.firstChild(named: "obj").map(reference(of:)) else { continue }
                var properties: [String: String?] = [:]
                for change in objectSet.children where change.localName == "changeSet" {
                    guard let name = change.firstChild(named: "name")?.text else { continue }
                    let operation = change.firstChild(named: "op")?.text ?? "assign"
                    if operation == "assign" || operation == "add" {
                        properties[name] = change.firstChild(named: "val")?.canonicalXML(renamedTo: "val")
                    } else {
                        properties[name] = .some(nil)
                    }
                }
                append(object, Observation(time: time, properties: properties))
            }
        }
    }

    private func addObjectContent(_ content: XMLElement, time: UInt64) {
        guard let object = content.firstChild(named: "obj").map(reference(of:)) else { return }
        var properties: [String: String?] = [:]
        for property in content.children where property.localName == "propSet" {
            guard let name = property.firstChild(named: "name")?.text else { continue }
            properties[name] = property.firstChild(named: "val")?.canonicalXML(renamedTo: "val")
        }
        append(object, Observation(time: time, properties: properties))
    }

    private func addFetch(_ exchange: Exchange, response: XMLElement, time: UInt64) {
        guard let this = exchange.soap?.this,
              let request = try? SOAPEnvelope.bodyElement(of: exchange.request.body.data),
              let name = request.firstChild(named: "prop")?.text,
              let value = response.firstChild(named: "returnval")
        else { return }
        append(this, Observation(time: time, properties: [name: value.canonicalXML(renamedTo: "val")]))
    }

    private func append(_ object: ManagedObjectReference, _ observation: Observation) {
        guard !observation.properties.isEmpty else { return }
        histories[object, default: History()].observations.append(observation)
    }

    private func reference(of element: XMLElement) -> ManagedObjectReference {
        ManagedObjectReference(type: element.attribute("type") ?? "", value: element.text)
    }
}

/// Helpers for `TaskInfo` values in canonical XML.
enum TaskInfoState {
    static let terminal = ["success", "error"]

    /// Returns the state (`queued`, `running`, `success`, `error`) of a TaskInfo.
    static func state(of info: String) -> String? {
        guard let start = info.range(of: "<state>"), let end = info.range(of: "</state>", range: start.upperBound..<info.endIndex) else {
            return nil
        }
        return String(info[start.upperBound..<end.lowerBound])
    }

}
