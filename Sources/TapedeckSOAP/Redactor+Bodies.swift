import Foundation
import TapedeckCore

extension Redactor {
    /// XML elements whose content is a secret wherever they appear, besides any
    /// element whose name contains "password" (`password`, `adminPassword`, …).
    static let secretElements: [String: Kind] = [
        "base64Token": .ticket,  // LoginBySSPI
        "cloneTicket": .ticket,  // CloneSession
        "sessionId": .key,  // TerminateSession, SessionIsActive
        "Security": .ticket,  // WS-Security header of LoginByToken: SAML token and signature
        "Assertion": .ticket,  // a SAML assertion outside a Security header
    ]

    /// Operations whose responses carry a session key or a ticket.
    static let secretReturningOperations = sessionReturningOperations.union([
        "AcquireCloneTicket", "AcquireSessionTicket", "AcquireGenericServiceTicket", "AcquireTicket",
        "AcquireMksTicket", "AcquireCredentialsInGuest",
    ])

    static let userSessionMarker = Data("UserSession".utf8)

    static let valueElementPattern = try! NSRegularExpression(
        pattern: "(<(?:[A-Za-z_][\\w.-]*:)?value(?:\\s[^>]*)?>)([^<]*)(</(?:[A-Za-z_][\\w.-]*:)?value\\s*>)")

    /// Operations whose `returnval` is a `UserSession`, whose `key` is a secret.
    static let sessionReturningOperations: Set<String> = [
        "Login", "LoginByToken", "LoginBySSPI", "LoginExtensionByCertificate",
        "LoginExtensionBySubjectName", "ImpersonateUser", "CloneSession",
    ]

    func redactBody(_ body: Body, side: String) -> Body {
        guard case .bytes(let data) = body else { return body }
        // Most bodies (update sets, property retrievals) hold none of the names the
        // rules look for, and a byte search is far cheaper than a regular expression.
        guard !userPatterns.isEmpty || triggers.contains(where: { data.range(of: $0) != nil }) else { return body }
        guard var text = String(data: data, encoding: .utf8) else { return body }
        let location = "\(side) body"
        let trimmed = text.drop { $0.isWhitespace }

        if trimmed.hasPrefix("<") {
            text = redactXMLElements(text, location: location)
        } else if trimmed.hasPrefix("{") || trimmed.hasPrefix("[") {
            text = redactJSONMembers(text, location: location)
        }
        text = redactUserPatterns(text, location: location)
        return .bytes(Data(text.utf8))
    }

    /// Byte strings at least one of which a body must contain for any element or
    /// JSON rule to match it.
    static func makeTriggers(_ rules: [RedactionRule]) -> [Data] {
        var words = Set(secretElements.keys).union(["assword"])
        for rule in rules {
            switch rule {
            case .element(let name), .jsonKey(let name): words.insert(name)
            case .header, .pattern: break
            }
        }
        return words.sorted().map { Data($0.utf8) }
    }

    // MARK: - XML

    /// Matches an element with optional prefix and attributes, its content, and the
    /// matching end tag. Element content cannot contain "<" except in child
    /// elements, so a lazy match up to the same end tag is exact for these names.
    static func makeElementPattern(_ rules: [RedactionRule]) -> NSRegularExpression {
        var names = Set(secretElements.keys)
        for rule in rules {
            if case .element(let name) = rule { names.insert(name) }
        }
        let alternatives = names.sorted().map(NSRegularExpression.escapedPattern(for:)) + ["[A-Za-z_]*[Pp]assword"]
        let pattern = "<((?:[A-Za-z_][\\w.-]*:)?)(\(alternatives.joined(separator: "|")))(\\s[^>]*)?>(.*?)</\\1\\2\\s*>"
        return try! NSRegularExpression(pattern: pattern, options: [.dotMatchesLineSeparators])
    }

    /// Matches a JSON member whose key contains "password" or is a user's json rule.
    static func makeJSONPattern(_ rules: [RedactionRule]) -> NSRegularExpression {
        var keys = ["[A-Za-z_]*[Pp]assword"]
        for rule in rules {
            if case .jsonKey(let key) = rule { keys.append(NSRegularExpression.escapedPattern(for: key)) }
        }
        let pattern = "\"(\(keys.joined(separator: "|")))\"\\s*:\\s*\"((?:[^\"\\\\]|\\\\.)*)\""
        return try! NSRegularExpression(pattern: pattern)
    }

    private func redactXMLElements(_ text: String, location: String) -> String {
        substitute(elementPattern, in: text, group: 4) { content, match, source in
            let name = source.substring(with: match.range(at: 2))
            return redactElementContent(content, name: name, location: "\(location) <\(name)>")
        }
    }

    private func redactElementContent(_ content: String, name: String, location: String) -> String {
        let kind = Self.secretElements[name] ?? (name.lowercased().contains("password") ? .password : .secret)
        // A CustomizationPassword keeps its secret in a <value> child; redact only that
        // so the element keeps its structure.
        if content.contains("<") && kind == .password {
            return substitute(Self.valueElementPattern, in: content, group: 2) { value, _, _ in
                value.isEmpty ? value : replaceSecret(value, kind: kind, location: location)
            }
        }
        let trimmed = content.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return content }
        return replaceSecret(trimmed, kind: kind, location: location)
    }

    // MARK: - JSON

    private func redactJSONMembers(_ text: String, location: String) -> String {
        substitute(jsonPattern, in: text, group: 2) { value, match, source in
            let key = source.substring(with: match.range(at: 1))
            let kind: Kind = key.lowercased().contains("password") ? .password : .secret
            return value.isEmpty ? value : replaceSecret(value, kind: kind, location: "\(location) \"\(key)\"")
        }
    }

    private func redactUserPatterns(_ text: String, location: String) -> String {
        var result = text
        for expression in userPatterns {
            let group = expression.numberOfCaptureGroups > 0 ? 1 : 0
            result = substitute(expression, in: result, group: group) { value, _, _ in
                value.isEmpty ? value : replaceSecret(value, kind: .secret, location: "\(location) regex")
            }
        }
        return result
    }

    // MARK: - Secrets learned from responses

    /// Remembers secrets that a response hands out, such as a session key or a
    /// clone ticket, so that they are replaced wherever they appear.
    func learnResponseSecrets(_ exchange: Exchange) {
        if let session = restSessionToken(exchange) {
            _ = replaceSecret(session, kind: .session, location: "response body REST session")
        }
        guard let call = exchange.soap, let body = exchange.response?.body.data, !body.isEmpty else { return }
        // Parsing every response would dominate the writer's time, so parse only
        // those that can hand out a session key or a ticket.
        guard Self.secretReturningOperations.contains(call.operation) || body.range(of: Self.userSessionMarker) != nil,
              let returnValue = try? SOAPEnvelope.bodyElement(of: body).firstChild(named: "returnval")
        else { return }

        if Self.sessionReturningOperations.contains(call.operation), let key = returnValue.firstChild(named: "key") {
            _ = replaceSecret(key.text, kind: .key, location: "response body UserSession key")
        }
        switch call.operation {
        case "AcquireCloneTicket", "AcquireSessionTicket":
            _ = replaceSecret(returnValue.text, kind: .ticket, location: "response body \(call.operation)")
        case "AcquireGenericServiceTicket":
            if let id = returnValue.firstChild(named: "id") {
                _ = replaceSecret(id.text, kind: .ticket, location: "response body \(call.operation)")
            }
        case "AcquireTicket", "AcquireMksTicket", "AcquireCredentialsInGuest":
            if let ticket = returnValue.firstChild(named: "ticket") {
                _ = replaceSecret(ticket.text, kind: .ticket, location: "response body \(call.operation)")
            }
        default:
            break
        }
        returnValue.walk { element in
            let type = element.attribute("type", namespaceURI: SOAPEnvelope.schemaInstanceNamespace)
            if type?.hasSuffix("UserSession") == true, let key = element.firstChild(named: "key") {
                _ = replaceSecret(key.text, kind: .key, location: "response body UserSession key")
            }
        }
    }

    /// The session id that a REST login returns: a JSON string from `POST /api/session`,
    /// or `{"value": …}` from `POST /rest/com/vmware/cis/session`.
    private func restSessionToken(_ exchange: Exchange) -> String? {
        guard exchange.request.method == "POST",
              let response = exchange.response, (200..<300).contains(response.status),
              let text = response.body.text
        else { return nil }
        let path = exchange.request.path.split(separator: "?").first.map(String.init) ?? ""
        guard path.hasSuffix("/api/session") || path.hasSuffix("/rest/com/vmware/cis/session") else { return nil }
        let json = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        if let token = json as? String { return token }
        return (json as? [String: Any])?["value"] as? String
    }

    // MARK: - Everywhere

    /// Replaces every remembered secret in every header and body of the exchange.
    func replaceKnownSecrets(_ exchange: inout Exchange) {
        let secrets = rememberedSecrets()
        guard !secrets.isEmpty else { return }
        for index in exchange.request.headers.indices {
            exchange.request.headers[index].value = replaceAll(secrets, in: exchange.request.headers[index].value)
        }
        exchange.request.body = replaceAll(secrets, in: exchange.request.body)
        if var response = exchange.response {
            for index in response.headers.indices {
                response.headers[index].value = replaceAll(secrets, in: response.headers[index].value)
            }
            response.body = replaceAll(secrets, in: response.body)
            exchange.response = response
        }
        if var unanswered = exchange.unanswered {
            unanswered.detail = replaceAll(secrets, in: unanswered.detail)
            exchange.unanswered = unanswered
        }
        // The SOAP fields were read from the body before redaction, and a managed
        // object reference can embed a session key (vcsim's `session[KEY]…`).
        if var call = exchange.soap, var this = call.this {
            this.value = replaceAll(secrets, in: this.value)
            call.this = this
            exchange.soap = call
        }
    }

    private func replaceAll(_ secrets: [(String, String)], in text: String) -> String {
        var result = text
        for (secret, placeholder) in secrets where result.contains(secret) {
            result = result.replacingOccurrences(of: secret, with: placeholder)
        }
        return result
    }

    private func replaceAll(_ secrets: [(String, String)], in body: Body) -> Body {
        guard case .bytes(var data) = body else { return body }
        for (secret, placeholder) in secrets {
            let needle = Data(secret.utf8)
            let replacement = Data(placeholder.utf8)
            while let range = data.range(of: needle) {
                data.replaceSubrange(range, with: replacement)
            }
        }
        return .bytes(data)
    }

    // MARK: - Helpers

    private func substitute(
        _ expression: NSRegularExpression, in text: String, group: Int,
        _ transform: (String, NSTextCheckingResult, NSString) -> String
    ) -> String {
        let source = text as NSString
        let matches = expression.matches(in: text, range: NSRange(location: 0, length: source.length))
        guard !matches.isEmpty else { return text }
        let result = NSMutableString(string: text)
        // Replace from the end so earlier ranges stay valid.
        for match in matches.reversed() {
            let range = match.range(at: group)
            guard range.location != NSNotFound else { continue }
            let replacement = transform(source.substring(with: range), match, source)
            result.replaceCharacters(in: range, with: replacement)
        }
        return result as String
    }
}
