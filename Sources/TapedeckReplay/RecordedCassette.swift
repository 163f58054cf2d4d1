import Foundation
import TapedeckCassette
import TapedeckCore
import TapedeckSOAP

/// A cassette loaded for replay: its exchanges with their keys and sessions, the
/// recorded sessions in login order, and the property values it reveals.
final class RecordedCassette: @unchecked Sendable {
    struct Entry {
        var exchange: Exchange
        var key: RequestKey
        /// The recorded session, also for logins, whose request has no cookie yet.
        var session: String?
    }

    let path: String
    let header: CassetteHeader
    private(set) var truncation: Truncation?
    private(set) var entries: [Entry] = []
    /// Recorded sessions in the order their login responses arrived.
    private(set) var sessionsInLoginOrder: [String] = []
    /// Index into `entries` of each session's login exchange.
    private(set) var loginEntry: [String: Int] = [:]
    let world = RecordedWorld()
    /// Recorded filters by their CreateFilter arguments, for filters the model
    /// cannot evaluate itself.
    private var filtersByArguments: [String: Set<String>] = [:]
    /// Objects that each recorded filter reported in an update set.
    private var objectsByFilter: [String: Set<ManagedObjectReference>] = [:]

    init(path: String, ignoredPaths: Set<String>) throws {
        self.path = path
        let reader = try CassetteReader(path: path)
        header = reader.header
        var logins: [(time: UInt64, session: String, index: Int)] = []
        try reader.forEach { exchange in
            let parsed = ParsedRequest(method: exchange.request.method, path: exchange.request.path, body: exchange.request.body.data, ignoredPaths: ignoredPaths)
            var session = exchange.session
            if ParsedRequest.loginOperations.contains(parsed.key.operation), let assigned = RecordedCassette.sessionSetBy(exchange) {
                session = assigned
                logins.append((exchange.timing.requestStart, assigned, entries.count))
            }
            if let response = exchange.response, response.status == 200,
               let element = try? SOAPEnvelope.bodyElement(of: response.body.data) {
                world.add(exchange, operation: parsed.key.operation, response: element)
                indexFilters(operation: parsed.key.operation, arguments: parsed.key.arguments, response: element)
            }
            entries.append(Entry(exchange: exchange, key: parsed.key, session: session))
        }
        truncation = reader.truncation
        world.finish()
        for login in logins.sorted(by: { $0.time < $1.time }) where loginEntry[login.session] == nil {
            sessionsInLoginOrder.append(login.session)
            loginEntry[login.session] = login.index
        }
    }

    /// The objects that recorded filters with these CreateFilter arguments
    /// reported, the only record of where their traversal specs led.
    func recordedObjects(forFilterArguments arguments: String) -> [ManagedObjectReference] {
        let filters = filtersByArguments[arguments] ?? []
        let objects = filters.reduce(into: Set<ManagedObjectReference>()) { $0.formUnion(objectsByFilter[$1] ?? []) }
        return objects.sorted { ($0.type, $0.value) < ($1.type, $1.value) }
    }

    private func indexFilters(operation: String, arguments: String, response: XMLElement) {
        if operation == "CreateFilter", let filter = response.firstChild(named: "returnval")?.text {
            filtersByArguments[arguments, default: []].insert(filter)
        }
        guard RecordedWorld.updateOperations.contains(operation) else { return }
        for filterSet in response.firstChild(named: "returnval")?.children ?? [] where filterSet.localName == "filterSet" {
            guard let filter = filterSet.firstChild(named: "filter")?.text else { continue }
            for objectSet in filterSet.children where objectSet.localName == "objectSet" {
                if let object = objectSet.firstChild(named: "obj") {
                    objectsByFilter[filter, default: []].insert(ManagedObjectReference(type: object.attribute("type") ?? "", value: object.text))
                }
            }
        }
    }

    /// Returns the session a login response created, from its `Set-Cookie` placeholder.
    static func sessionSetBy(_ exchange: Exchange) -> String? {
        guard let cookie = exchange.response?.headers.first(where: { $0.name.lowercased() == "set-cookie" })?.value,
              let range = cookie.range(of: "redacted-session-")
        else { return nil }
        return "session-" + cookie[range.upperBound...].prefix { $0.isNumber }
    }
}
