import Foundation
import TapedeckCore
import TapedeckSOAP

extension RecordedWorld {
    /// The property values and tasks that one recorded response reveals. Reading
    /// them needs no shared state, so loading reads responses on several threads
    /// and adds the results to the world in cassette order.
    struct Sightings: Sendable {
        var observations: [(object: ManagedObjectReference, observation: Observation)] = []
        /// The task a `*_Task` call created, and when its response arrived.
        var createdTask: (task: ManagedObjectReference, time: UInt64)?
        /// True when an update set carried vcsim's version `-`.
        var sawVCSimVersion = false
    }

    /// Returns true for operations whose responses `sightings(in:operation:response:)`
    /// reads, so that loading can skip parsing every other response.
    static func revealsProperties(_ operation: String) -> Bool {
        switch operation {
        case _ where updateOperations.contains(operation): true
        case "RetrievePropertiesEx", "ContinueRetrievePropertiesEx", "RetrieveProperties", "Fetch": true
        default: operation.hasSuffix("_Task")
        }
    }

    /// Reads what one recorded exchange reveals from its parsed response body.
    static func sightings(in exchange: Exchange, operation: String, response: XMLElement) -> Sightings {
        var sightings = Sightings()
        let time = exchange.timing.responseStart ?? exchange.timing.requestEnd
        switch operation {
        case _ where updateOperations.contains(operation):
            sightings.addUpdateSet(response.firstChild(named: "returnval"), time: time)
        case "RetrievePropertiesEx", "ContinueRetrievePropertiesEx":
            for objects in response.firstChild(named: "returnval")?.children.filter({ $0.localName == "objects" }) ?? [] {
                sightings.addObjectContent(objects, time: time)
            }
        case "RetrieveProperties":
            for content in response.children where content.localName == "returnval" {
                sightings.addObjectContent(content, time: time)
            }
        case "Fetch":
            sightings.addFetch(exchange, response: response, time: time)
        case _ where operation.hasSuffix("_Task"):
            if let task = response.firstChild(named: "returnval"), task.attribute("type") == "Task" {
                sightings.createdTask = (ManagedObjectReference(type: "Task", value: task.text), time)
            }
        default:
            break
        }
        return sightings
    }
}

extension RecordedWorld.Sightings {
    fileprivate mutating func addUpdateSet(_ updateSet: XMLElement?, time: UInt64) {
        guard let updateSet else { return }
        if updateSet.firstChild(named: "version")?.text == "-" { sawVCSimVersion = true }
        updateSet.forEachChild { filterSet in
            guard filterSet.hasLocalName("filterSet") else { return }
            filterSet.forEachChild { objectSet in
                guard objectSet.hasLocalName("objectSet"),
                      let object = objectSet.firstChild(named: "obj").map(reference(of:))
                else { return }
                append(object, RecordedWorld.Observation(time: time, properties: changedProperties(in: objectSet)))
            }
        }
    }

    /// Returns the property values that an object update's change sets assign,
    /// with nil for removed ones.
    private func changedProperties(in objectSet: XMLElement) -> [String: String?] {
        var properties: [String: String?] = [:]
        objectSet.forEachChild { change in
            guard change.hasLocalName("changeSet"), let name = change.firstChild(named: "name")?.text else { return }
            let operation = change.firstChild(named: "op")?.text ?? "assign"
            if operation == "assign" || operation == "add" {
                properties[name] = change.firstChild(named: "val")?.canonicalXML(renamedTo: "val")
            } else {
                properties[name] = .some(nil)
            }
        }
        return properties
    }

    fileprivate mutating func addObjectContent(_ content: XMLElement, time: UInt64) {
        guard let object = content.firstChild(named: "obj").map(reference(of:)) else { return }
        var properties: [String: String?] = [:]
        for property in content.children where property.localName == "propSet" {
            guard let name = property.firstChild(named: "name")?.text else { continue }
            properties[name] = property.firstChild(named: "val")?.canonicalXML(renamedTo: "val")
        }
        append(object, RecordedWorld.Observation(time: time, properties: properties))
    }

    fileprivate mutating func addFetch(_ exchange: Exchange, response: XMLElement, time: UInt64) {
        guard let this = exchange.soap?.this,
              let request = try? SOAPEnvelope.bodyElement(of: exchange.request.body.data),
              let name = request.firstChild(named: "prop")?.text,
              let value = response.firstChild(named: "returnval")
        else { return }
        append(this, RecordedWorld.Observation(time: time, properties: [name: value.canonicalXML(renamedTo: "val")]))
    }

    private mutating func append(_ object: ManagedObjectReference, _ observation: RecordedWorld.Observation) {
        guard !observation.properties.isEmpty else { return }
        observations.append((object, observation))
    }

    private func reference(of element: XMLElement) -> ManagedObjectReference {
        ManagedObjectReference(type: element.attribute("type") ?? "", value: element.text)
    }
}
