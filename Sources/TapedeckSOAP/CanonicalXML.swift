import CXML2
import Foundation

extension XMLElement {
    /// Attributes as (local name, namespace URI, value), namespace declarations excluded.
    public var attributes: [(name: String, namespaceURI: String?, value: String)] {
        var result: [(String, String?, String)] = []
        var attribute = node.pointee.properties
        while let current = attribute {
            let name = String(cString: current.pointee.name)
            let namespace = current.pointee.ns?.pointee.href.map { String(cString: $0) }
            var value = ""
            if let content = xmlNodeGetContent(UnsafeMutablePointer<xmlNode>(OpaquePointer(current))) {
                value = String(cString: content)
                tapedeck_xml_free(content)
            }
            result.append((name, namespace, value))
            attribute = current.pointee.next
        }
        return result
    }

    /// True when the element has child elements, as opposed to text only.
    public var hasChildElements: Bool {
        var found = false
        forEachChild { _ in found = true }
        return found
    }

    /// Serializes the element in a canonical form that ignores namespace prefixes,
    /// attribute order and whitespace-only text: local names only, `xsi:type` with
    /// its value's prefix removed, other namespaced attributes dropped, and
    /// attributes sorted. Two envelopes that differ only in how a client library
    /// spells them yield the same string, and the result is valid XML in a
    /// context where `xsi` is declared and `urn:vim25` is the default namespace.
    ///
    /// `renamedTo` replaces the element's own name, for reusing a recorded `val`
    /// as a `returnval`, say.
    /// `ignoring` lists element paths below this element, such as
    /// `config/annotation`, whose subtrees are left out.
    public func canonicalXML(renamedTo name: String? = nil, ignoring ignored: Set<String> = []) -> String {
        // One byte buffer for the whole subtree costs far fewer allocations than
        // joining a String for each element and attribute.
        var output: [UInt8] = []
        output.reserveCapacity(512)
        // Paths are only needed to look them up in `ignored`.
        let path = ignored.isEmpty ? nil : localName
        appendCanonical(to: &output, name: name, path: path, ignored: ignored)
        return String(decoding: output, as: UTF8.self)
    }

    /// Appends the element as `canonicalXML` describes, named `name` or else by
    /// its local name. `path` is nil when nothing is ignored.
    private func appendCanonical(to output: inout [UInt8], name: String?, path: String?, ignored: Set<String>) {
        output.append(UInt8(ascii: "<"))
        appendName(name, to: &output)
        if hasAttributes { appendCanonicalAttributes(to: &output) }
        guard hasChildElements else {
            withTextBytes { text in
                if text.isEmpty {
                    output.append(contentsOf: "/>".utf8)
                    return
                }
                output.append(UInt8(ascii: ">"))
                appendEscaped(text, attribute: false, to: &output)
                appendEndTag(name, to: &output)
            }
            return
        }
        output.append(UInt8(ascii: ">"))
        forEachChild { child in
            var childPath: String?
            if let path {
                let joined = path + "/" + child.localName
                if ignored.contains(joined) { return }
                childPath = joined
            }
            child.appendCanonical(to: &output, name: nil, path: childPath, ignored: ignored)
        }
        appendEndTag(name, to: &output)
    }

    private func appendName(_ name: String?, to output: inout [UInt8]) {
        if let name {
            output.append(contentsOf: name.utf8)
        } else {
            withLocalNameBytes { output.append(contentsOf: $0) }
        }
    }

    private func appendEndTag(_ name: String?, to output: inout [UInt8]) {
        output.append(contentsOf: "</".utf8)
        appendName(name, to: &output)
        output.append(UInt8(ascii: ">"))
    }

    /// Appends `xsi:type` with its value's prefix rewritten and the attributes in
    /// no namespace, sorted by name. Other namespaced attributes are dropped.
    private func appendCanonicalAttributes(to output: inout [UInt8]) {
        // Most elements with attributes have one plain `type`, which needs neither
        // sorting nor Strings.
        let appended = withOnlyPlainAttributeBytes { name, value in
            output.append(UInt8(ascii: " "))
            output.append(contentsOf: name)
            output.append(contentsOf: "=\"".utf8)
            appendEscaped(value, attribute: true, to: &output)
            output.append(UInt8(ascii: "\""))
        }
        if appended { return }

        var pairs: [(String, String)] = []
        for attribute in attributes {
            if attribute.namespaceURI == SOAPEnvelope.schemaInstanceNamespace && attribute.name == "type" {
                pairs.append(("xsi:type", canonicalType(attribute.value)))
            } else if attribute.namespaceURI == nil {
                pairs.append((attribute.name, attribute.value))
            }
        }
        for (key, value) in pairs.sorted(by: { $0.0 < $1.0 }) {
            output.append(UInt8(ascii: " "))
            output.append(contentsOf: key.utf8)
            output.append(contentsOf: "=\"".utf8)
            var value = value
            value.withUTF8 { appendEscaped($0, attribute: true, to: &output) }
            output.append(UInt8(ascii: "\""))
        }
    }

    /// Rewrites an `xsi:type` value so that XML Schema types keep the `xsd` prefix
    /// and vSphere types have none, whatever prefixes the sender declared.
    private func canonicalType(_ value: String) -> String {
        let parts = value.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return value }
        let namespace = xmlSearchNs(node.pointee.doc, node, parts[0])?.pointee.href.map { String(cString: $0) }
        return namespace == "http://www.w3.org/2001/XMLSchema" ? "xsd:\(parts[1])" : parts[1]
    }

    /// Flattens the element into (path, value) leaves, such as
    /// `("config/name", "vm-7")`, for naming the first field where two requests differ.
    public func leaves(prefix: String = "") -> [(path: String, value: String)] {
        let elements = children
        let path = prefix.isEmpty ? localName : "\(prefix)/\(localName)"
        guard !elements.isEmpty else {
            let type = attribute("type").map { "\($0):" } ?? ""
            return [(path, type + text)]
        }
        return elements.flatMap { $0.leaves(prefix: path) }
    }
}

/// Appends UTF-8 text escaped as `escapeXML` escapes it. Working on bytes is
/// safe, because the escaped characters are ASCII and never occur inside a
/// multi-byte sequence.
private func appendEscaped(_ text: UnsafeBufferPointer<UInt8>, attribute: Bool, to output: inout [UInt8]) {
    for byte in text {
        switch byte {
        case UInt8(ascii: "&"): output.append(contentsOf: "&amp;".utf8)
        case UInt8(ascii: "<"): output.append(contentsOf: "&lt;".utf8)
        case UInt8(ascii: ">"): output.append(contentsOf: "&gt;".utf8)
        case UInt8(ascii: "\"") where attribute: output.append(contentsOf: "&quot;".utf8)
        default: output.append(byte)
        }
    }
}

/// Escapes text for XML content or a double-quoted attribute value.
public func escapeXML(_ text: String, attribute: Bool) -> String {
    // Most text contains nothing to escape, and returning it unchanged saves
    // walking it character by character.
    let needsEscaping = text.utf8.contains { byte in
        byte == UInt8(ascii: "&") || byte == UInt8(ascii: "<") || byte == UInt8(ascii: ">")
            || (attribute && byte == UInt8(ascii: "\""))
    }
    guard needsEscaping else { return text }
    var result = ""
    result.reserveCapacity(text.utf8.count)
    for character in text {
        switch character {
        case "&": result += "&amp;"
        case "<": result += "&lt;"
        case ">": result += "&gt;"
        case "\"" where attribute: result += "&quot;"
        default: result.append(character)
        }
    }
    return result
}
