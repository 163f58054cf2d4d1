import Foundation
import TapedeckCore
import TapedeckSOAP

/// One `propSet` entry of a filter or retrieval spec: which properties of which
/// type to report.
struct PropertySpec: Sendable {
    var type: String
    var all: Bool
    var paths: [String]

    /// Returns whether this spec applies to the object. The model has no type
    /// hierarchy, so a spec also applies when it names a property the object has.
    func applies(to object: ManagedObjectReference, knownProperties: Set<String>) -> Bool {
        type == object.type || paths.contains { knownProperties.contains(($0.split(separator: ".").first).map(String.init) ?? $0) }
    }
}

/// A `PropertyFilterSpec` reduced to what the model evaluates.
struct FilterSpec {
    var specs: [PropertySpec]
    /// Starting objects that the filter reports itself.
    var objects: [ManagedObjectReference]
    /// Starting objects marked `skip`: only the start of a traversal.
    var skipped: [ManagedObjectReference]
    /// True when an object spec requests a traversal (`selectSet`) or to skip the
    /// starting object, which the model cannot evaluate.
    var needsTraversal: Bool

    /// Parses the `spec` or `specSet` element; nil when it lacks property or
    /// object specs, which vCenter rejects with InvalidArgument.
    init?(_ element: XMLElement) {
        specs = element.children.filter { $0.localName == "propSet" }.map { property in
            PropertySpec(
                type: property.firstChild(named: "type")?.text ?? "",
                all: property.firstChild(named: "all")?.text == "true",
                paths: property.children.filter { $0.localName == "pathSet" }.map(\.text))
        }
        let objectSpecs = element.children.filter { $0.localName == "objectSet" }
        func starting(_ spec: XMLElement) -> ManagedObjectReference? {
            spec.firstChild(named: "obj").map { ManagedObjectReference(type: $0.attribute("type") ?? "", value: $0.text) }
        }
        let isSkipped = { (spec: XMLElement) in spec.firstChild(named: "skip")?.text == "true" }
        objects = objectSpecs.filter { !isSkipped($0) }.compactMap(starting)
        skipped = objectSpecs.filter(isSkipped).compactMap(starting)
        needsTraversal = objectSpecs.contains { $0.firstChild(named: "selectSet") != nil || isSkipped($0) }
        if specs.isEmpty || objectSpecs.isEmpty { return nil }
    }
}
