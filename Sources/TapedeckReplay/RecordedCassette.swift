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
    private var filters = RecordedFilters()

    /// An exchange with everything loading derives from it alone, computed on a
    /// loading thread.
    private struct LoadedExchange: Sendable {
        var exchange: Exchange
        var key: RequestKey
        var world: RecordedWorld.Sightings?
        var filters: RecordedFilters.Sightings?
    }

    init(path: String, ignoredPaths: Set<String>) throws {
        self.path = path
        let reader = try CassetteReader(path: path)
        header = reader.header
        var logins: [(time: UInt64, session: String, index: Int)] = []
        let makeLoader: @Sendable () -> (Exchange) -> LoadedExchange = {
            // Without a parser, each body sets up libxml2 anew, which is slower but
            // parses the same way.
            let parser = try? XMLParser()
            return { RecordedCassette.load($0, ignoredPaths: ignoredPaths, parser: parser) }
        }
        try reader.forEach(makingPreparer: makeLoader) { loaded in
            let exchange = loaded.exchange
            var session = exchange.session
            if ParsedRequest.isLogin(loaded.key), let assigned = RecordedCassette.sessionSetBy(exchange) {
                session = assigned
                logins.append((exchange.timing.requestStart, assigned, entries.count))
            }
            if let sightings = loaded.world { world.add(sightings) }
            if let sightings = loaded.filters { filters.add(sightings) }
            entries.append(Entry(exchange: exchange, key: loaded.key, session: session))
        }
        truncation = reader.truncation
        world.finish()
        for login in logins.sorted(by: { $0.time < $1.time }) where loginEntry[login.session] == nil {
            sessionsInLoginOrder.append(login.session)
            loginEntry[login.session] = login.index
        }
    }

    /// Parses one exchange's request into its key, and its response into what it
    /// reveals. Only responses that the world or the filter index read are parsed.
    private static func load(_ exchange: Exchange, ignoredPaths: Set<String>, parser: XMLParser?) -> LoadedExchange {
        let parsed = ParsedRequest(
            method: exchange.request.method, path: exchange.request.path, body: exchange.request.body.data,
            ignoredPaths: ignoredPaths, parser: parser)
        var loaded = LoadedExchange(exchange: exchange, key: parsed.key)
        let operation = parsed.key.operation
        let revealsProperties = RecordedWorld.revealsProperties(operation)
        let revealsFilters = RecordedFilters.revealsFilters(operation)
        guard revealsProperties || revealsFilters, let response = exchange.response, response.status == 200,
              let element = try? SOAPEnvelope.bodyElement(of: response.body.data, using: parser)
        else { return loaded }
        if revealsProperties {
            loaded.world = RecordedWorld.sightings(in: exchange, operation: operation, response: element)
        }
        if revealsFilters {
            loaded.filters = RecordedFilters.sightings(operation: operation, arguments: parsed.key.arguments, response: element)
        }
        return loaded
    }

    /// The objects that recorded filters with these CreateFilter arguments
    /// reported, the only record of where their traversal specs led.
    func recordedObjects(forFilterArguments arguments: String) -> [ManagedObjectReference] {
        filters.objects(forFilterArguments: arguments)
    }

    /// Returns the session a login response created, from the session placeholder
    /// in its `Set-Cookie` header or, for a REST login, in its body.
    static func sessionSetBy(_ exchange: Exchange) -> String? {
        guard let response = exchange.response else { return nil }
        let places = [response.headers.value(named: "set-cookie"), response.body.text].compactMap { $0 }
        for place in places {
            if let range = place.range(of: sessionPlaceholderPrefix) {
                return "session-" + place[range.upperBound...].prefix { $0.isNumber }
            }
        }
        return nil
    }

    /// The start of the placeholder that redaction puts in place of a session id.
    static let sessionPlaceholderPrefix = "redacted-session-"
}
