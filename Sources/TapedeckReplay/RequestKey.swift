import Foundation
import TapedeckCore
import TapedeckSOAP

/// What a request must share with a recorded one to get its response: the SOAP
/// operation, its `_this` and its canonical arguments, or for other requests the
/// method, path, sorted query and canonical JSON body.
struct RequestKey: Hashable, Sendable, CustomStringConvertible {
    var operation: String
    var this: ManagedObjectReference?
    var arguments: String

    var description: String {
        operation + (this.map { " on \($0)" } ?? "")
    }
}

/// A request reduced to what matching needs.
struct ParsedRequest {
    var key: RequestKey
    /// The SOAP operation element, for computing differences on a miss.
    var element: XMLElement?
    var isSOAP: Bool { element != nil }

    /// Login operations; replay maps them to recorded sessions in order.
    static let loginOperations: Set<String> = [
        "Login", "LoginByToken", "LoginBySSPI", "LoginExtensionByCertificate", "LoginExtensionBySubjectName",
    ]

    /// REST logins, keyed as method and path: the newer `/api` and the older `/rest`.
    static let restLoginOperations: Set<String> = ["POST /api/session", "POST /rest/com/vmware/cis/session"]

    /// True for a SOAP login, and for a REST login, which is a POST to the session
    /// path without an `~action` query (`?~action=get` reads the session instead).
    static func isLogin(_ key: RequestKey) -> Bool {
        loginOperations.contains(key.operation)
            || (restLoginOperations.contains(key.operation) && !key.arguments.hasPrefix("~action"))
    }

    /// Parses a request, with `parser` when given. SOAP bodies that do not parse
    /// fall back to a byte key, so they can still match a recording of the same bytes.
    init(method: String, path: String, body: Data, ignoredPaths: Set<String>, parser: XMLParser? = nil) {
        let route = path.prefix { $0 != "?" }
        if method == "POST", route.hasPrefix("/sdk"), let operation = try? SOAPEnvelope.bodyElement(of: body, using: parser) {
            element = operation
            var this: ManagedObjectReference?
            var arguments = ""
            for child in operation.children {
                if child.localName == "_this" {
                    this = ManagedObjectReference(type: child.attribute("type") ?? "", value: child.text)
                } else if !ignoredPaths.contains(child.localName) {
                    arguments += child.canonicalXML(ignoring: ignoredPaths)
                }
            }
            // Credentials differ between recording (redacted) and replay, so logins
            // match by operation alone.
            if ParsedRequest.loginOperations.contains(operation.localName) { arguments = "" }
            key = RequestKey(operation: operation.localName, this: this, arguments: arguments)
            return
        }
        element = nil
        key = RequestKey(
            operation: "\(method) \(route)", this: nil,
            arguments: ParsedRequest.canonicalQuery(path) + "\n" + ParsedRequest.canonicalBody(body))
        // Credentials travel in the Authorization header, which keys ignore, so a
        // REST login matches by method and path alone, like a SOAP login.
    }

    private static func canonicalQuery(_ path: String) -> String {
        guard let query = path.split(separator: "?", maxSplits: 1).dropFirst().first else { return "" }
        return query.split(separator: "&").sorted().joined(separator: "&")
    }

    /// JSON with sorted keys, or the text itself when it is not JSON.
    private static func canonicalBody(_ body: Data) -> String {
        guard !body.isEmpty else { return "" }
        if let object = try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed]),
           let canonical = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed]) {
            return String(decoding: canonical, as: UTF8.self)
        }
        return String(decoding: body, as: UTF8.self)
    }
}
