import Foundation
import TapedeckCore

/// Replaces secrets in exchanges with stable placeholders before they reach disk.
///
/// Each distinct secret gets one placeholder for the life of the redactor, such as
/// `redacted-session-2`, so replay can still tell sessions apart. Secrets found by a
/// rule are also remembered and replaced wherever they appear later, in any header
/// or body. Not thread-safe: the recorder's writer thread owns it.
public final class Redactor {
    /// The kind of secret a placeholder replaces.
    public enum Kind: String, Sendable {
        /// Session cookies and REST session ids.
        case session
        /// Other cookies and `Authorization` credentials.
        case credential
        case password
        /// Clone, service and console tickets, and SAML or SSPI tokens.
        case ticket
        /// `UserSession.key` values.
        case key
        /// Values matched by a user rule.
        case secret
    }

    /// One value that was replaced, and where.
    public struct Redaction: Sendable, Equatable, CustomStringConvertible {
        public var location: String
        public var kind: Kind

        public var description: String { "\(location) (\(kind.rawValue))" }
    }

    public static let placeholderPrefix = "redacted-"
    public static let sessionCookieName = "vmware_soap_session"
    /// The cookie that vSphere's REST API (and vcsim's) sets on a REST login.
    public static let restSessionCookieName = "vmware-api-session-id"

    /// Secrets shorter than this are replaced only where a rule finds them, because
    /// replacing a short string everywhere would mangle unrelated text.
    static let minimumGlobalLength = 6

    let userRules: [RedactionRule]
    let userPatterns: [NSRegularExpression]
    let elementPattern: NSRegularExpression
    let jsonPattern: NSRegularExpression
    let triggers: [Data]
    private var placeholders: [String: String] = [:]
    private var counters: [Kind: Int] = [:]
    /// Remembered secrets, longest first so that no secret is cut by a shorter one.
    private var knownSecrets: [String] = []
    private var found: [Redaction] = []

    public init(rules: [RedactionRule] = []) {
        userRules = rules
        userPatterns = rules.compactMap { rule in
            if case .pattern(let pattern) = rule { return try? NSRegularExpression(pattern: pattern, options: [.dotMatchesLineSeparators]) }
            return nil
        }
        elementPattern = Redactor.makeElementPattern(rules)
        jsonPattern = Redactor.makeJSONPattern(rules)
        triggers = Redactor.makeTriggers(rules)
    }

    /// Redacts the exchange in place, sets its session from the session cookie, and
    /// returns what was replaced.
    @discardableResult
    public func redact(_ exchange: inout Exchange) -> [Redaction] {
        found = []
        redactRequestHeaders(&exchange)
        if var response = exchange.response {
            redactHeaders(&response.headers, side: "response")
            exchange.response = response
        }

        exchange.request.body = redactBody(exchange.request.body, side: "request")
        learnResponseSecrets(exchange)
        if var response = exchange.response {
            response.body = redactBody(response.body, side: "response")
            exchange.response = response
        }

        replaceKnownSecrets(&exchange)
        flagSessionKeysInReferences(exchange)
        return found
    }

    /// Returns the placeholder for a secret, creating it on first sight.
    public func placeholder(for secret: String, kind: Kind) -> String {
        if let existing = placeholders[secret] { return existing }
        let number = (counters[kind] ?? 0) + 1
        counters[kind] = number
        let placeholder = "\(Redactor.placeholderPrefix)\(kind.rawValue)-\(number)"
        placeholders[secret] = placeholder
        if secret.count >= Redactor.minimumGlobalLength {
            knownSecrets.append(secret)
            knownSecrets.sort { $0.count > $1.count }
        }
        return placeholder
    }

    /// Remembered secrets with their placeholders, longest secret first.
    func rememberedSecrets() -> [(String, String)] {
        knownSecrets.map { ($0, placeholders[$0]!) }
    }

    static func isPlaceholder(_ value: String) -> Bool {
        value.hasPrefix(placeholderPrefix)
    }

    /// Reports a session key left in a `session[KEY]` reference, the form vCenter
    /// and vcsim give private collectors and filters. Only `scan` can meet one: a
    /// recording redacts the key as soon as the login response shows it.
    private func flagSessionKeysInReferences(_ exchange: Exchange) {
        guard let value = exchange.soap?.this?.value, let open = value.range(of: "session["),
              let close = value.range(of: "]", range: open.upperBound..<value.endIndex)
        else { return }
        let key = value[open.upperBound..<close.lowerBound]
        if !key.isEmpty && !Redactor.isPlaceholder(String(key)) {
            found.append(Redaction(location: "soap this", kind: .key))
        }
    }

    // MARK: - Headers

    private func redactRequestHeaders(_ exchange: inout Exchange) {
        redactHeaders(&exchange.request.headers, side: "request")
        exchange.session = sessionPlaceholder(in: exchange)
    }

    private func redactHeaders(_ headers: inout [Header], side: String) {
        for index in headers.indices {
            let name = headers[index].name.lowercased()
            let value = headers[index].value
            let location = "\(side) header \(headers[index].name)"
            switch name {
            case "cookie":
                headers[index].value = redactCookies(value, separator: ";", location: location)
            case "set-cookie":
                headers[index].value = redactSetCookie(value, location: location)
            case "vmware-api-session-id":
                headers[index].value = replaceSecret(value, kind: .session, location: location)
            case "authorization", "proxy-authorization":
                headers[index].value = redactAuthorization(value, location: location)
            default:
                if userRules.contains(where: { if case .header(let rule) = $0 { rule.lowercased() == name } else { false } }) {
                    headers[index].value = replaceSecret(value, kind: .secret, location: location)
                }
            }
        }
    }

    /// Redacts each `name=value` pair of a Cookie header, keeping names and quotes.
    private func redactCookies(_ header: String, separator: Character, location: String) -> String {
        header.split(separator: separator, omittingEmptySubsequences: false).map { part in
            redactCookiePair(String(part), location: location)
        }.joined(separator: String(separator))
    }

    /// Redacts the first `name=value` pair of a Set-Cookie header; the attributes
    /// after it (Path, HttpOnly, …) hold no secrets.
    private func redactSetCookie(_ header: String, location: String) -> String {
        guard let semicolon = header.firstIndex(of: ";") else {
            return redactCookiePair(header, location: location)
        }
        return redactCookiePair(String(header[..<semicolon]), location: location) + header[semicolon...]
    }

    private func redactCookiePair(_ pair: String, location: String) -> String {
        guard let equals = pair.firstIndex(of: "=") else { return pair }
        let name = pair[..<equals]
        var value = String(pair[pair.index(after: equals)...])
        var quoted = false
        if value.count >= 2 && value.hasPrefix("\"") && value.hasSuffix("\"") {
            value = String(value.dropFirst().dropLast())
            quoted = true
        }
        guard !value.isEmpty else { return pair }
        let cookieName = name.trimmingCharacters(in: .whitespaces)
        let isSession = cookieName == Redactor.sessionCookieName || cookieName == Redactor.restSessionCookieName
        let replaced = replaceSecret(value, kind: isSession ? .session : .credential, location: location)
        return "\(name)=" + (quoted ? "\"\(replaced)\"" : replaced)
    }

    /// Keeps the scheme (`Basic`, `Bearer`, …) and redacts the credentials.
    private func redactAuthorization(_ value: String, location: String) -> String {
        guard let space = value.firstIndex(of: " ") else {
            return replaceSecret(value, kind: .credential, location: location)
        }
        let credentials = String(value[value.index(after: space)...])
        return value[...space] + replaceSecret(credentials, kind: .credential, location: location)
    }

    /// Derives the exchange's session from its session cookie or REST session id,
    /// which are placeholders by now: `redacted-session-3` becomes `session-3`.
    private func sessionPlaceholder(in exchange: Exchange) -> String? {
        let prefix = "\(Redactor.placeholderPrefix)\(Kind.session.rawValue)-"
        let candidates = exchange.request.headers.filter {
            ["cookie", "vmware-api-session-id"].contains($0.name.lowercased())
        }
        for header in candidates {
            if let range = header.value.range(of: prefix) {
                let digits = header.value[range.upperBound...].prefix { $0.isNumber }
                return "session-\(digits)"
            }
        }
        return nil
    }

    func replaceSecret(_ value: String, kind: Kind, location: String) -> String {
        guard !value.isEmpty, !Redactor.isPlaceholder(value) else { return value }
        found.append(Redaction(location: location, kind: kind))
        return placeholder(for: value, kind: kind)
    }
}
