import Foundation
import TapedeckCore

/// Reads the parts of a SOAP 1.1 envelope that tapedeck needs: the operation, its
/// `_this` target, and the typed fault of a fault response.
public enum SOAPEnvelope {
    public static let envelopeNamespace = "http://schemas.xmlsoap.org/soap/envelope/"
    public static let schemaInstanceNamespace = "http://www.w3.org/2001/XMLSchema-instance"

    /// Why a body is not a SOAP call.
    public enum ParseError: Error, CustomStringConvertible, Equatable {
        case notXML(XMLError)
        case notAnEnvelope(rootElement: String)
        case emptyBody

        public var description: String {
            switch self {
            case .notXML(let error): "body is not XML: \(error)"
            case .notAnEnvelope(let root): "root element is <\(root)>, not a SOAP Envelope"
            case .emptyBody: "SOAP Body has no operation element"
            }
        }
    }

    /// Parses a request body into its operation and `_this` reference.
    public static func parseCall(_ body: Data) throws(ParseError) -> SOAPCall {
        let operation = try bodyElement(of: body)
        var call = SOAPCall(operation: operation.localName)
        if let this = operation.firstChild(named: "_this") {
            call.this = ManagedObjectReference(type: this.attribute("type") ?? "", value: this.text)
        }
        return call
    }

    /// Returns the fault type of a fault response, such as `ManagedObjectNotFound`,
    /// or nil when the body is not a SOAP fault.
    public static func faultType(of body: Data) -> String? {
        guard let fault = try? bodyElement(of: body), fault.localName == "Fault" else { return nil }
        guard let detail = fault.firstChild(named: "detail")?.children.first else {
            return "SOAPFault"
        }
        if let type = detail.attribute("type", namespaceURI: schemaInstanceNamespace) {
            return type.split(separator: ":").last.map(String.init) ?? type
        }
        let name = detail.localName
        return name.hasSuffix("Fault") ? String(name.dropLast("Fault".count)) : name
    }

    /// Returns the first element inside the envelope's Body. A given `parser`
    /// parses the body, which saves setting up a new one.
    public static func bodyElement(of body: Data, using parser: XMLParser? = nil) throws(ParseError) -> XMLElement {
        let document: XMLDocument
        do {
            if let parser {
                document = try parser.parse(body)
            } else {
                document = try XMLDocument(parsing: body)
            }
        } catch {
            throw .notXML(error)
        }
        guard let root = document.root, root.localName == "Envelope" else {
            throw .notAnEnvelope(rootElement: document.root?.localName ?? "")
        }
        guard let soapBody = root.firstChild(named: "Body"), let operation = soapBody.children.first else {
            throw .emptyBody
        }
        return operation
    }

    /// Returns the body re-serialized with indentation, or nil when it is not XML.
    public static func formatted(_ body: Data) -> String? {
        guard let document = try? XMLDocument(parsing: body, removingBlankNodes: true) else { return nil }
        return document.formatted()
    }
}
