import Foundation
import TapedeckCore
import XCTest

@testable import TapedeckSOAP

final class RedactorTests: XCTestCase {
    private func redact(_ exchange: Exchange, with redactor: Redactor = Redactor()) -> (Exchange, [Redactor.Redaction]) {
        var copy = exchange
        let found = redactor.redact(&copy)
        return (copy, found)
    }

    private func serialized(_ exchange: Exchange) throws -> String {
        String(decoding: try JSONEncoder().encode(exchange), as: UTF8.self)
    }

    func testLoginPasswordBecomesPlaceholder() throws {
        let password = Fixtures.distinctivePassword()
        let exchange = Fixtures.exchange(
            operation: "Login",
            requestBody: Fixtures.envelope("<Login xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this><userName>admin</userName><password>\(password)</password></Login>"))
        let (redacted, found) = redact(exchange)
        XCTAssertFalse(try serialized(redacted).contains(password))
        XCTAssertTrue(redacted.request.body.text!.contains("<password>redacted-password-1</password>"))
        XCTAssertEqual(found, [Redactor.Redaction(location: "request body <password>", kind: .password)])
    }

    func testSessionCookieGetsOneStablePlaceholder() throws {
        let redactor = Redactor()
        let first = Fixtures.exchange(sequence: 1, requestHeaders: [Header("Cookie", "vmware_soap_session=\"52aa-secret-cookie\"")])
        let second = Fixtures.exchange(sequence: 2, requestHeaders: [Header("Cookie", "vmware_soap_session=\"52aa-secret-cookie\"")])
        let other = Fixtures.exchange(sequence: 3, requestHeaders: [Header("Cookie", "vmware_soap_session=\"77bb-other-cookie\"")])

        let (one, _) = redact(first, with: redactor)
        let (two, _) = redact(second, with: redactor)
        let (three, _) = redact(other, with: redactor)
        XCTAssertEqual(one.request.headers.value(named: "cookie"), "vmware_soap_session=\"redacted-session-1\"")
        XCTAssertEqual(two.request.headers.value(named: "cookie"), "vmware_soap_session=\"redacted-session-1\"")
        XCTAssertEqual(three.request.headers.value(named: "cookie"), "vmware_soap_session=\"redacted-session-2\"")
        XCTAssertEqual(one.session, "session-1")
        XCTAssertEqual(three.session, "session-2")
    }

    func testSetCookieKeepsAttributes() {
        let exchange = Fixtures.exchange(responseHeaders: [Header("Set-Cookie", "vmware_soap_session=\"abc-123-secret\"; Path=/; HttpOnly; Secure;")])
        let (redacted, _) = redact(exchange)
        XCTAssertEqual(redacted.response?.headers.value(named: "set-cookie"), "vmware_soap_session=\"redacted-session-1\"; Path=/; HttpOnly; Secure;")
    }

    func testAuthorizationAndRESTSessionHeadersAreRedacted() {
        let exchange = Fixtures.exchange(
            requestHeaders: [Header("Authorization", "Basic YWRtaW46c2VjcmV0"), Header("vmware-api-session-id", "b00f-rest-session")],
            path: "/api/vcenter/vm", method: "GET")
        let (redacted, _) = redact(exchange)
        XCTAssertEqual(redacted.request.headers.value(named: "authorization"), "Basic redacted-credential-1")
        XCTAssertEqual(redacted.request.headers.value(named: "vmware-api-session-id"), "redacted-session-1")
        XCTAssertEqual(redacted.session, "session-1")
    }

    func testRESTLoginTokenIsRedactedEverywhereAfter() throws {
        let redactor = Redactor()
        let login = Fixtures.exchange(sequence: 1, responseBody: "\"f3c0d1e2-rest-token\"", path: "/api/session", method: "POST", status: 201)
        let (redactedLogin, _) = redact(login, with: redactor)
        XCTAssertEqual(redactedLogin.response?.body.text, "\"redacted-session-1\"")

        let echo = Fixtures.exchange(sequence: 2, responseBody: "{\"token\":\"f3c0d1e2-rest-token\"}", path: "/api/session", method: "GET")
        let (redactedEcho, _) = redact(echo, with: redactor)
        XCTAssertFalse(try serialized(redactedEcho).contains("f3c0d1e2-rest-token"))
    }

    func testUserSessionKeyAndItsEchoesAreRedacted() throws {
        let redactor = Redactor()
        let key = "52c9d7e0-8a1b-user-session-key"
        var login = Fixtures.exchange(
            sequence: 1, operation: "Login",
            responseBody: Fixtures.envelope("<LoginResponse xmlns=\"urn:vim25\"><returnval><key>\(key)</key><userName>admin</userName></returnval></LoginResponse>"))
        login.soap = SOAPCall(operation: "Login")
        let (redactedLogin, _) = redact(login, with: redactor)
        XCTAssertFalse(try serialized(redactedLogin).contains(key))

        let terminate = Fixtures.exchange(
            sequence: 2, operation: "RetrievePropertiesEx",
            responseBody: Fixtures.envelope("<RetrievePropertiesExResponse xmlns=\"urn:vim25\"><returnval><objects><propSet><name>currentSession</name><val xsi:type=\"UserSession\"><key>\(key)</key></val></propSet></objects></returnval></RetrievePropertiesExResponse>"))
        let (redactedTerminate, _) = redact(terminate, with: redactor)
        XCTAssertFalse(try serialized(redactedTerminate).contains(key))
        XCTAssertTrue(redactedTerminate.response!.body.text!.contains("redacted-key-1"))
    }

    func testCloneAndServiceTicketsAreRedacted() throws {
        let redactor = Redactor()
        var clone = Fixtures.exchange(
            sequence: 1, responseBody: Fixtures.envelope("<AcquireCloneTicketResponse xmlns=\"urn:vim25\"><returnval>cst-VCT-52ab-clone-ticket</returnval></AcquireCloneTicketResponse>"))
        clone.soap = SOAPCall(operation: "AcquireCloneTicket")
        var service = Fixtures.exchange(
            sequence: 2, responseBody: Fixtures.envelope("<AcquireGenericServiceTicketResponse xmlns=\"urn:vim25\"><returnval><id>cst-service-ticket-77</id><hostName>esx1</hostName></returnval></AcquireGenericServiceTicketResponse>"))
        service.soap = SOAPCall(operation: "AcquireGenericServiceTicket")
        let use = Fixtures.exchange(
            sequence: 3, requestBody: Fixtures.envelope("<CloneSession xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this><cloneTicket>cst-VCT-52ab-clone-ticket</cloneTicket></CloneSession>"))

        for exchange in [clone, service, use] {
            let (redacted, _) = redact(exchange, with: redactor)
            let text = try serialized(redacted)
            XCTAssertFalse(text.contains("cst-VCT-52ab-clone-ticket"), text)
            XCTAssertFalse(text.contains("cst-service-ticket-77"), text)
        }
    }

    func testGuestAndCustomizationPasswordsAreRedacted() throws {
        let body = Fixtures.envelope("""
            <StartProgramInGuest xmlns="urn:vim25"><auth xsi:type="NamePasswordAuthentication"><interactiveSession>false</interactiveSession><username>root</username><password>guest-pw-91</password></auth></StartProgramInGuest><identity><guiUnattended><password><value>admin-pw-92</value><plainText>true</plainText></password></guiUnattended><userData/><domainAdminPassword><value>domain-pw-93</value><plainText>true</plainText></domainAdminPassword></identity>
            """)
        let (redacted, found) = redact(Fixtures.exchange(requestBody: body))
        let text = redacted.request.body.text!
        for secret in ["guest-pw-91", "admin-pw-92", "domain-pw-93"] {
            XCTAssertFalse(text.contains(secret), secret)
        }
        XCTAssertTrue(text.contains("<plainText>true</plainText>"), "structure of CustomizationPassword is kept")
        XCTAssertEqual(found.count, 3)
    }

    func testSAMLTokenInSecurityHeaderIsRedacted() {
        let header = "<wsse:Security xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\"><saml2:Assertion xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_1\">SIGNED-SAML-BODY</saml2:Assertion></wsse:Security>"
        let body = Fixtures.envelope("<LoginByToken xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this></LoginByToken>", header: header)
        let (redacted, _) = redact(Fixtures.exchange(requestBody: body))
        XCTAssertFalse(redacted.request.body.text!.contains("SIGNED-SAML-BODY"))
    }

    func testJSONPasswordMembersAreRedacted() {
        let body = #"{"spec":{"guest_customization":{"password":"json-pw-94","user":"root"}}}"#
        let (redacted, _) = redact(Fixtures.exchange(requestBody: body, path: "/api/vcenter/vm"))
        XCTAssertEqual(redacted.request.body.text, #"{"spec":{"guest_customization":{"password":"redacted-password-1","user":"root"}}}"#)
    }

    func testUserRulesRedactHeadersElementsKeysAndPatterns() throws {
        let rules = try ["header:X-Api-Key", "element:annotation", "json:token", "regex:serial=([A-Z0-9]+)"].map(RedactionRule.init(parsing:))
        let exchange = Fixtures.exchange(
            requestBody: "<x><annotation>private note</annotation>serial=ABC123</x>",
            responseBody: #"{"token":"tok-95"}"#,
            requestHeaders: [Header("X-Api-Key", "key-96")])
        let (redacted, _) = redact(exchange, with: Redactor(rules: rules))
        let text = try serialized(redacted)
        for secret in ["private note", "ABC123", "tok-95", "key-96"] {
            XCTAssertFalse(text.contains(secret), secret)
        }
    }

    func testInvalidRuleNamesTheRuleAndTheForms() {
        XCTAssertThrowsError(try RedactionRule(parsing: "cookie:x")) { error in
            XCTAssertEqual("\(error)", "invalid redaction rule 'cookie:x': unknown kind 'cookie'; use header:NAME, element:NAME, json:KEY or regex:PATTERN")
        }
        XCTAssertThrowsError(try RedactionRule(parsing: "regex:(")) { error in
            XCTAssertTrue("\(error)".contains("does not compile"))
        }
    }

    func testRedactingTwiceChangesNothing() {
        let exchange = Fixtures.exchange(
            requestBody: Fixtures.envelope("<Login xmlns=\"urn:vim25\"><password>pw-97-secret</password></Login>"),
            requestHeaders: [Header("Cookie", "vmware_soap_session=\"abc-98-cookie\"")])
        let (once, _) = redact(exchange)
        let (twice, found) = redact(once, with: Redactor())
        XCTAssertEqual(once, twice)
        XCTAssertEqual(found, [])
    }
}
