import Foundation
import Synchronization

/// Parsed forms of recently seen small requests. vSphere clients send many
/// byte-identical requests (RetrieveServiceContent on each connection, the same
/// property reads and waits in a loop), and parsing one with libxml2 costs more
/// than hashing and comparing its bytes.
final class ParsedRequestCache: Sendable {
    private struct Key: Hashable {
        var method: String
        var path: String
        var body: Data
    }

    /// Bodies above this size are parsed every time, because large bodies (VM specs,
    /// OVF descriptors) seldom repeat.
    static let bodyLimit = 8 << 10
    /// Entries kept before the cache starts over, which bounds its memory to about
    /// capacity times `bodyLimit` plus the parsed forms.
    static let capacity = 512

    private let ignoredPaths: Set<String>
    private let entries = Mutex<[Key: ParsedRequest]>([:])

    init(ignoredPaths: Set<String>) {
        self.ignoredPaths = ignoredPaths
    }

    /// Returns the parsed request, from the cache when the same bytes were seen.
    func parse(method: String, path: String, body: Data) -> ParsedRequest {
        guard body.count <= ParsedRequestCache.bodyLimit else {
            return ParsedRequest(method: method, path: path, body: body, ignoredPaths: ignoredPaths)
        }
        let key = Key(method: method, path: path, body: body)
        if let cached = entries.withLock({ $0[key] }) { return cached }

        let parsed = ParsedRequest(method: method, path: path, body: body, ignoredPaths: ignoredPaths)
        entries.withLock { entries in
            if entries.count >= ParsedRequestCache.capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = parsed
        }
        return parsed
    }
}
