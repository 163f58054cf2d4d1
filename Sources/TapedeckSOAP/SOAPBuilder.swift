import Foundation
import TapedeckCore

/// Builds SOAP responses the way vCenter spells them, for responses that replay
/// computes instead of copying from a cassette.
public enum SOAPBuilder {
    private static let prologue = """
        <?xml version="1.0" encoding="UTF-8"?>
        <soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>
        """
    private static let epilogue = "</soapenv:Body></soapenv:Envelope>"

    /// Builds an `<OperationResponse>` holding `content`, which is canonical XML
    /// (see `XMLElement.canonicalXML`) such as `<returnval>…</returnval>`.
    public static func response(operation: String, content: String) -> Data {
        Data((prologue + "<\(operation)Response xmlns=\"urn:vim25\">\(content)</\(operation)Response>" + epilogue).utf8)
    }

    /// Builds a SOAP fault with a typed detail, such as `ManagedObjectNotFound` with its
    /// `obj`. `detail` is canonical XML for the fault's fields.
    public static func fault(type: String, message: String, detail: String = "") -> Data {
        let body = """
            <soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>\(escapeXML(message, attribute: false))</faultstring>\
            <detail><\(type)Fault xmlns="urn:vim25" xsi:type="\(type)">\(detail)</\(type)Fault></detail></soapenv:Fault>
            """
        return Data((prologue + body + epilogue).utf8)
    }

    public static func reference(_ name: String, _ reference: ManagedObjectReference) -> String {
        "<\(name) type=\"\(escapeXML(reference.type, attribute: true))\">\(escapeXML(reference.value, attribute: false))</\(name)>"
    }
}
