import CXML2
import Foundation

/// A failed libxml2 call: the C function, libxml2's message and where it stopped.
public struct XMLError: Error, CustomStringConvertible, Equatable {
    public let call: String
    public let message: String
    public let line: Int

    public var description: String {
        line > 0 ? "\(call) failed at line \(line): \(message)" : "\(call) failed: \(message)"
    }
}

/// A parsed XML document. Parsing never touches the network and never expands
/// external entities, because bodies come from clients and servers we do not trust.
public final class XMLDocument: @unchecked Sendable {
    fileprivate let pointer: xmlDocPtr

    private static let initialize: Void = { xmlInitParser() }()
    fileprivate static let options = Int32(XML_PARSE_NONET.rawValue | XML_PARSE_NOERROR.rawValue | XML_PARSE_NOWARNING.rawValue)

    public convenience init(parsing data: Data, removingBlankNodes: Bool = false) throws(XMLError) {
        let context = try XMLDocument.newContext()
        defer { xmlFreeParserCtxt(context) }
        var options = XMLDocument.options
        if removingBlankNodes { options |= Int32(XML_PARSE_NOBLANKS.rawValue) }
        try self.init(parsing: data, context: context, options: options)
    }

    /// Parses with a context that the caller owns and frees. A context that parses
    /// again needs `XML_PARSE_NODICT` in `options`, so that the document keeps no
    /// reference to the context's name dictionary.
    fileprivate init(parsing data: Data, context: xmlParserCtxtPtr, options: Int32) throws(XMLError) {
        let document = data.withUnsafeBytes { buffer in
            xmlCtxtReadMemory(
                context, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(buffer.count),
                nil, nil, options)
        }
        guard let document else {
            throw XMLDocument.lastError(of: context, call: "xmlCtxtReadMemory")
        }
        pointer = document
    }

    deinit {
        xmlFreeDoc(pointer)
    }

    fileprivate static func newContext() throws(XMLError) -> xmlParserCtxtPtr {
        _ = XMLDocument.initialize
        guard let context = xmlNewParserCtxt() else {
            throw XMLError(call: "xmlNewParserCtxt", message: "out of memory", line: 0)
        }
        return context
    }

    public var root: XMLElement? {
        xmlDocGetRootElement(pointer).map { XMLElement(node: $0, document: self) }
    }

    /// Serializes the document indented by two spaces per level, without the XML
    /// declaration.
    public func formatted() -> String {
        guard let root = xmlDocGetRootElement(pointer), let buffer = xmlBufferCreate() else { return "" }
        defer { xmlBufferFree(buffer) }
        xmlNodeDump(buffer, pointer, root, 0, 1)
        return String(cString: xmlBufferContent(buffer))
    }

    private static func lastError(of context: xmlParserCtxtPtr, call: String) -> XMLError {
        guard let error = xmlCtxtGetLastError(context) else {
            return XMLError(call: call, message: "document is empty or unreadable", line: 0)
        }
        let message = error.pointee.message.map { String(cString: $0) } ?? "unknown error"
        return XMLError(
            call: call, message: message.trimmingCharacters(in: .whitespacesAndNewlines),
            line: Int(error.pointee.line))
    }
}

/// A parser that keeps one libxml2 parser context for many documents, which
/// saves allocating and freeing a context and its name dictionary on each parse.
/// It parses as `XMLDocument(parsing:)` does by default. One thread at a time
/// may use it, but its documents are independent of it and of each other.
public final class XMLParser {
    private let context: xmlParserCtxtPtr

    public init() throws(XMLError) {
        context = try XMLDocument.newContext()
    }

    deinit {
        xmlFreeParserCtxt(context)
    }

    public func parse(_ data: Data) throws(XMLError) -> XMLDocument {
        try XMLDocument(parsing: data, context: context, options: XMLParser.options)
    }

    /// Names are copied into each document rather than shared through the
    /// context's dictionary, so that no document refers to the context.
    private static let options = XMLDocument.options | Int32(XML_PARSE_NODICT.rawValue)
}

/// An element of an `XMLDocument`, which it keeps alive.
public struct XMLElement: @unchecked Sendable {
    let node: xmlNodePtr
    private let document: XMLDocument

    fileprivate init(node: xmlNodePtr, document: XMLDocument) {
        self.node = node
        self.document = document
    }

    public var localName: String {
        String(cString: node.pointee.name)
    }

    public var namespaceURI: String? {
        node.pointee.ns?.pointee.href.map { String(cString: $0) }
    }

    /// Child elements in document order, skipping text and comments.
    public var children: [XMLElement] {
        var result: [XMLElement] = []
        var child = node.pointee.children
        while let current = child {
            if current.pointee.type == XML_ELEMENT_NODE {
                result.append(XMLElement(node: current, document: document))
            }
            child = current.pointee.next
        }
        return result
    }

    /// Calls `body` with each child element in document order. Unlike `children`,
    /// it collects nothing, which matters when loading reads thousands of bodies.
    public func forEachChild(_ body: (XMLElement) throws -> Void) rethrows {
        var child = node.pointee.children
        while let current = child {
            if current.pointee.type == XML_ELEMENT_NODE {
                try body(XMLElement(node: current, document: document))
            }
            child = current.pointee.next
        }
    }

    public func firstChild(named name: String) -> XMLElement? {
        var child = node.pointee.children
        while let current = child {
            if current.pointee.type == XML_ELEMENT_NODE, XMLElement.name(of: current, equals: name) {
                return XMLElement(node: current, document: document)
            }
            child = current.pointee.next
        }
        return nil
    }

    /// Returns true when the local name is `name`, without making a String of it.
    public func hasLocalName(_ name: String) -> Bool {
        XMLElement.name(of: node, equals: name)
    }

    private static func name(of node: xmlNodePtr, equals name: String) -> Bool {
        var name = name
        return name.withUTF8 { expected in
            Int(xmlStrlen(node.pointee.name)) == expected.count && memcmp(node.pointee.name, expected.baseAddress!, expected.count) == 0
        }
    }

    /// Calls `body` with the UTF-8 bytes of the local name, without copying them.
    public func withLocalNameBytes<Result>(_ body: (UnsafeBufferPointer<UInt8>) throws -> Result) rethrows -> Result {
        let name = node.pointee.name!
        return try body(UnsafeBufferPointer(start: name, count: Int(xmlStrlen(name))))
    }

    /// True when the element has attributes, namespace declarations excluded.
    public var hasAttributes: Bool {
        node.pointee.properties != nil
    }

    /// Calls `body` with the name and value bytes of the element's only attribute
    /// and returns true, when that attribute is in no namespace. Returns false
    /// without calling `body` for other elements.
    public func withOnlyPlainAttributeBytes(
        _ body: (_ name: UnsafeBufferPointer<UInt8>, _ value: UnsafeBufferPointer<UInt8>) -> Void
    ) -> Bool {
        guard let attribute = node.pointee.properties, attribute.pointee.next == nil, attribute.pointee.ns == nil,
              let content = xmlNodeGetContent(UnsafeMutablePointer<xmlNode>(OpaquePointer(attribute)))
        else { return false }
        defer { tapedeck_xml_free(content) }
        let name = attribute.pointee.name!
        body(
            UnsafeBufferPointer(start: name, count: Int(xmlStrlen(name))),
            UnsafeBufferPointer(start: content, count: Int(xmlStrlen(content))))
        return true
    }

    /// The concatenated text of this element and its descendants, entities decoded.
    public var text: String {
        guard let content = xmlNodeGetContent(node) else { return "" }
        defer { tapedeck_xml_free(content) }
        return String(cString: content)
    }

    /// Calls `body` with the UTF-8 bytes of `text`, without making a String of them.
    public func withTextBytes<Result>(_ body: (UnsafeBufferPointer<UInt8>) throws -> Result) rethrows -> Result {
        guard let content = xmlNodeGetContent(node) else { return try body(UnsafeBufferPointer(start: nil, count: 0)) }
        defer { tapedeck_xml_free(content) }
        return try body(UnsafeBufferPointer(start: content, count: Int(xmlStrlen(content))))
    }

    /// The value of an attribute in no namespace, such as `type` on `_this`.
    public func attribute(_ name: String) -> String? {
        guard let value = xmlGetNoNsProp(node, name) else { return nil }
        defer { tapedeck_xml_free(value) }
        return String(cString: value)
    }

    /// The value of an attribute in the given namespace, such as `xsi:type`.
    public func attribute(_ name: String, namespaceURI: String) -> String? {
        guard let value = xmlGetNsProp(node, name, namespaceURI) else { return nil }
        defer { tapedeck_xml_free(value) }
        return String(cString: value)
    }

    /// Visits this element and every descendant element in document order.
    public func walk(_ visit: (XMLElement) -> Void) {
        visit(self)
        for child in children { child.walk(visit) }
    }
}
