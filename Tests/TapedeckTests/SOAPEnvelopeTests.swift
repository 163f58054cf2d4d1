import Foundation
import TapedeckCore
import TapedeckSOAP
import XCTest

final class SOAPEnvelopeTests: XCTestCase {
    func testCallNamesOperationAndThis() throws {
        let body = Fixtures.envelope("""
            <WaitForUpdatesEx xmlns="urn:vim25"><_this type="PropertyCollector">session[52a1]abc</_this><version>3</version></WaitForUpdatesEx>
            """)
        let call = try SOAPEnvelope.parseCall(Data(body.utf8))
        XCTAssertEqual(call.operation, "WaitForUpdatesEx")
        XCTAssertEqual(call.this, ManagedObjectReference(type: "PropertyCollector", value: "session[52a1]abc"))
    }

    func testPrefixedBodyElementIsFound() throws {
        let body = """
            <s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><v:Logout xmlns:v="urn:vim25"><v:_this type="SessionManager">SessionManager</v:_this></v:Logout></s:Body></s:Envelope>
            """
        let call = try SOAPEnvelope.parseCall(Data(body.utf8))
        XCTAssertEqual(call.operation, "Logout")
        XCTAssertEqual(call.this?.type, "SessionManager")
    }

    func testFaultTypeComesFromXsiType() {
        let body = Fixtures.envelope("""
            <soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>gone</faultstring><detail><ManagedObjectNotFoundFault xmlns="urn:vim25" xsi:type="ManagedObjectNotFound"><obj type="Task">task-9</obj></ManagedObjectNotFoundFault></detail></soapenv:Fault>
            """)
        XCTAssertEqual(SOAPEnvelope.faultType(of: Data(body.utf8)), "ManagedObjectNotFound")
    }

    func testFaultWithoutDetailIsAPlainSOAPFault() {
        let body = Fixtures.envelope("<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>x</faultstring></soapenv:Fault>")
        XCTAssertEqual(SOAPEnvelope.faultType(of: Data(body.utf8)), "SOAPFault")
    }

    func testNonXMLBodyReportsTheParserMessage() {
        XCTAssertThrowsError(try SOAPEnvelope.parseCall(Data("not xml at all".utf8))) { error in
            guard case .notXML(let xmlError)? = error as? SOAPEnvelope.ParseError else { return XCTFail("got \(error)") }
            XCTAssertEqual(xmlError.call, "xmlCtxtReadMemory")
            XCTAssertFalse(xmlError.message.isEmpty)
        }
    }

    func testOtherRootElementIsNotAnEnvelope() {
        XCTAssertThrowsError(try SOAPEnvelope.parseCall(Data("<html><body/></html>".utf8))) { error in
            XCTAssertEqual(error as? SOAPEnvelope.ParseError, .notAnEnvelope(rootElement: "html"))
        }
    }

    func testExternalEntitiesAreNotExpanded() throws {
        let body = """
            <?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><Login xmlns="urn:vim25"><userName>&e;</userName></Login></soapenv:Body></soapenv:Envelope>
            """
        let operation = try SOAPEnvelope.bodyElement(of: Data(body.utf8))
        XCTAssertFalse(operation.firstChild(named: "userName")?.text.contains("root:") ?? false)
    }

    func testFormattedBodyIsIndented() throws {
        let formatted = try XCTUnwrap(SOAPEnvelope.formatted(Data(Fixtures.envelope("<Logout xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this></Logout>").utf8)))
        XCTAssertTrue(formatted.contains("\n    <Logout"), formatted)
    }
}
