import Foundation

/// A user-supplied redaction rule from `--redact`, in one of these forms:
///
/// - `header:NAME`: the value of every header with that name;
/// - `element:NAME`: the content of every XML element with that local name;
/// - `json:KEY`: the string value of every JSON member with that key;
/// - `regex:PATTERN`: every match in a text body, or the match's first capture
///   group when the pattern has one.
public enum RedactionRule: Sendable, Equatable, CustomStringConvertible {
    case header(String)
    case element(String)
    case jsonKey(String)
    case pattern(String)

    public struct InvalidRule: Error, CustomStringConvertible {
        public let rule: String
        public let reason: String

        public var description: String {
            "invalid redaction rule '\(rule)': \(reason); use header:NAME, element:NAME, json:KEY or regex:PATTERN"
        }
    }

    public init(parsing text: String) throws(InvalidRule) {
        guard let colon = text.firstIndex(of: ":") else {
            throw InvalidRule(rule: text, reason: "it has no kind prefix")
        }
        let kind = text[..<colon]
        let value = String(text[text.index(after: colon)...])
        guard !value.isEmpty else {
            throw InvalidRule(rule: text, reason: "the part after '\(kind):' is empty")
        }
        switch kind {
        case "header": self = .header(value)
        case "element": self = .element(value)
        case "json": self = .jsonKey(value)
        case "regex":
            do {
                _ = try NSRegularExpression(pattern: value)
            } catch {
                throw InvalidRule(rule: text, reason: "the regular expression does not compile")
            }
            self = .pattern(value)
        default:
            throw InvalidRule(rule: text, reason: "unknown kind '\(kind)'")
        }
    }

    public var description: String {
        switch self {
        case .header(let name): "header:\(name)"
        case .element(let name): "element:\(name)"
        case .jsonKey(let key): "json:\(key)"
        case .pattern(let pattern): "regex:\(pattern)"
        }
    }
}
