import Foundation
import TapedeckCore
import TapedeckSOAP

/// The objects that recorded property filters reported, by the CreateFilter
/// arguments that made each filter: the only record of where traversal specs led,
/// for filters the model cannot evaluate itself.
struct RecordedFilters {
    /// The filters and reported objects that one recorded response reveals. Like
    /// `RecordedWorld.Sightings`, it is read on a loading thread and added in order.
    struct Sightings: Sendable {
        /// A filter that CreateFilter returned, with the call's canonical arguments.
        var created: (arguments: String, filter: String)?
        /// Objects that an update set reported for a filter.
        var reported: [(filter: String, object: ManagedObjectReference)] = []
    }

    private var filtersByArguments: [String: Set<String>] = [:]
    private var objectsByFilter: [String: Set<ManagedObjectReference>] = [:]

    /// Returns true for operations whose responses `sightings(operation:arguments:response:)` reads.
    static func revealsFilters(_ operation: String) -> Bool {
        operation == "CreateFilter" || RecordedWorld.updateOperations.contains(operation)
    }

    static func sightings(operation: String, arguments: String, response: XMLElement) -> Sightings {
        var sightings = Sightings()
        if operation == "CreateFilter", let filter = response.firstChild(named: "returnval")?.text {
            sightings.created = (arguments, filter)
        }
        guard RecordedWorld.updateOperations.contains(operation) else { return sightings }
        for filterSet in response.firstChild(named: "returnval")?.children ?? [] where filterSet.localName == "filterSet" {
            guard let filter = filterSet.firstChild(named: "filter")?.text else { continue }
            for objectSet in filterSet.children where objectSet.localName == "objectSet" {
                if let object = objectSet.firstChild(named: "obj") {
                    let reference = ManagedObjectReference(type: object.attribute("type") ?? "", value: object.text)
                    sightings.reported.append((filter, reference))
                }
            }
        }
        return sightings
    }

    mutating func add(_ sightings: Sightings) {
        if let (arguments, filter) = sightings.created {
            filtersByArguments[arguments, default: []].insert(filter)
        }
        for (filter, object) in sightings.reported {
            objectsByFilter[filter, default: []].insert(object)
        }
    }

    /// Returns the objects that recorded filters with these CreateFilter arguments
    /// reported, sorted by type and value.
    func objects(forFilterArguments arguments: String) -> [ManagedObjectReference] {
        let filters = filtersByArguments[arguments] ?? []
        let objects = filters.reduce(into: Set<ManagedObjectReference>()) { $0.formUnion(objectsByFilter[$1] ?? []) }
        return objects.sorted { ($0.type, $0.value) < ($1.type, $1.value) }
    }
}
