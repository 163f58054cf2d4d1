import Foundation
import TapedeckCore
import XCTest

@testable import TapedeckCassette

/// Checks that `JSONCursor` decodes exchange lines exactly as JSONDecoder does,
/// and that it rejects every line it cannot decode that way.
final class CassetteLineDecodingTests: XCTestCase {
    private func viaCursor(_ line: String) -> Exchange? {
        Data(line.utf8).withUnsafeBytes { try? JSONCursor.decodeExchange($0) }
    }

    private func viaDecoder(_ line: String) -> Exchange? {
        try? JSONDecoder().decode(Exchange.self, from: Data(line.utf8))
    }

    /// Returns an exchange that sets every field the format defines, with text
    /// that needs escaping.
    private func richExchange() -> Exchange {
        var exchange = Fixtures.exchange(
            sequence: 42, operation: "Fetch",
            requestBody: "<a x=\"1\">tab\there\\ \u{1} \u{7F} é 日本 😀 \r\n</a>", responseBody: "",
            requestHeaders: [Header("Cookie", "vmware_soap_session=\"redacted-session-1\""), Header("X-Empty", "")],
            responseHeaders: [Header("Set-Cookie", "a=b; Path=/")])
        exchange.session = "session-1"
        exchange.connection = 7
        exchange.soap?.this = ManagedObjectReference(type: "VirtualMachine", value: "vm-12")
        exchange.soap?.fault = "ManagedObjectNotFound"
        exchange.response?.body = .bytes(Data([0xFF, 0x00, 0xFE]))
        return exchange
    }

    private func encoded(_ exchange: Exchange) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(exchange), as: UTF8.self)
    }

    func testWrittenLinesDecodeLikeJSONDecoder() throws {
        var unanswered = Fixtures.exchange(sequence: 3, operation: "WaitForUpdatesEx")
        unanswered.response = nil
        unanswered.timing.responseStart = nil
        unanswered.unanswered = Unanswered(reason: .clientDisconnected, detail: "gone \"now\"", at: UInt64.max)
        var omitted = Fixtures.exchange(sequence: 4, path: "/api/x?b=1&a=2", method: "GET")
        omitted.response?.body = .omitted(size: 123_456_789)
        var emptyText = Fixtures.exchange(sequence: 5)
        emptyText.request.body = .bytes(Data())

        for exchange in [richExchange(), unanswered, omitted, emptyText, Fixtures.exchange()] {
            let line = try encoded(exchange)
            XCTAssertEqual(viaCursor(line), exchange, line)
            XCTAssertEqual(viaCursor(line), viaDecoder(line), line)
        }
    }

    func testHandWrittenLinesDecodeLikeJSONDecoder() {
        let lines = [
            // Whitespace, member order, escaped slash and a surrogate pair.
            #" { "timing" : {"requestEnd":2,"requestStart":1} , "request":{"path":"\/sdk","method":"POST","headers":[ ],"body":{"text":"\ud83d\ude00 \u00e9 \u0000"}},"sequence":1,"connection":1 } "#,
            // Unknown members of every JSON type are skipped.
            #"{"connection":1,"extra":{"a":[1,-2.5e+3,0.0,true,false,null,"x\"y",{}],"b":{"c":[]}},"request":{"body":{},"headers":[["a","b"]],"method":"GET","path":"/"},"sequence":-1,"timing":{"requestEnd":2,"requestStart":1,"later":"field"},"zz":1E2}"#,
            // Precedence among body forms.
            #"{"connection":1,"request":{"body":{"base64":"AAE=","omitted":5,"text":"t"},"headers":[],"method":"GET","path":"/"},"sequence":1,"timing":{"requestEnd":2,"requestStart":1}}"#,
            #"{"connection":1,"request":{"body":{"base64":"AAE=","omitted":5},"headers":[],"method":"GET","path":"/"},"sequence":1,"timing":{"requestEnd":2,"requestStart":1}}"#,
            #"{"connection":1,"request":{"body":{"omitted":5},"headers":[],"method":"GET","path":"/"},"sequence":1,"timing":{"requestEnd":2,"requestStart":1}}"#,
            #"{"connection":1,"request":{"body":{"base64":""},"headers":[],"method":"GET","path":"/"},"sequence":1,"timing":{"requestEnd":2,"requestStart":1}}"#,
        ]
        for line in lines {
            XCTAssertNotNil(viaCursor(line), line)
            XCTAssertEqual(viaCursor(line), viaDecoder(line), line)
        }
    }

    func testUnusualLinesAreLeftToJSONDecoder() {
        let lines = [
            // null for an optional member, a header with three elements, a duplicate
            // member, an escaped key, a fractional integer and a trailing comma.
            #"{"connection":1,"request":{"body":{},"headers":[],"method":"GET","path":"/"},"sequence":1,"session":null,"timing":{"requestEnd":2,"requestStart":1}}"#,
            #"{"connection":1,"request":{"body":{},"headers":[["a","b","c"]],"method":"GET","path":"/"},"sequence":1,"timing":{"requestEnd":2,"requestStart":1}}"#,
            #"{"connection":1,"connection":2,"request":{"body":{},"headers":[],"method":"GET","path":"/"},"sequence":1,"timing":{"requestEnd":2,"requestStart":1}}"#,
            #"{"connection":1,"request":{"body":{},"headers":[],"method":"GET","path":"/"},"sequ\u0065nce":1,"timing":{"requestEnd":2,"requestStart":1}}"#,
            #"{"connection":1.0,"request":{"body":{},"headers":[],"method":"GET","path":"/"},"sequence":1,"timing":{"requestEnd":2,"requestStart":1}}"#,
            #"{"connection":1,"x":[1,],"request":{"body":{},"headers":[],"method":"GET","path":"/"},"sequence":1,"timing":{"requestEnd":2,"requestStart":1}}"#,
        ]
        for line in lines {
            XCTAssertNil(viaCursor(line), line)
            let viaReader = try? CassetteReader.decodeExchange(Data(line.utf8), path: "test", number: 1, offset: 0)
            XCTAssertEqual(viaReader, viaDecoder(line), line)
        }
    }

    func testInvalidLinesAreRejected() {
        let valid = #"{"connection":1,"request":{"body":{"text":"T"},"headers":[],"method":"GET","path":"/"},"sequence":1,"timing":{"requestEnd":2,"requestStart":1}}"#
        let broken = [
            String(valid.dropLast()),
            valid + "x",
            valid.replacingOccurrences(of: #""T""#, with: #""\ud800""#),
            valid.replacingOccurrences(of: #""T""#, with: #""\udc00\ud800""#),
            valid.replacingOccurrences(of: #""T""#, with: #""\x""#),
            valid.replacingOccurrences(of: #""T""#, with: "\"\u{1}\""),
            valid.replacingOccurrences(of: #""sequence":1"#, with: #""sequence":01"#),
            valid.replacingOccurrences(of: #""sequence":1"#, with: #""sequence":99999999999999999999"#),
            valid.replacingOccurrences(of: #""requestEnd":2"#, with: #""requestEnd":-2"#),
            valid.replacingOccurrences(of: #","path":"/""#, with: ""),
            valid.replacingOccurrences(of: #"{"text":"T"}"#, with: #"{"base64":"%%%"}"#),
        ]
        for line in broken {
            XCTAssertNil(viaCursor(line), line)
            XCTAssertNil(viaDecoder(line), line)
        }
        var invalidUTF8 = Data(valid.utf8)
        invalidUTF8[invalidUTF8.firstIndex(of: UInt8(ascii: "T"))!] = 0xC3
        XCTAssertNil(invalidUTF8.withUnsafeBytes { try? JSONCursor.decodeExchange($0) })
    }

    /// Flips bytes of a written line at random: whenever the cursor still accepts
    /// the line, JSONDecoder must accept it too and decode the same exchange.
    func testMutatedLinesNeverDecodeDifferently() throws {
        let line = Array(try encoded(richExchange()).utf8)
        let replacements = Array(#"{}[]",:\/0123456789-+.eEuntrfalsx "#.utf8) + [0x00, 0x1F, 0xC3, 0xFF]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func random(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        var accepted = 0
        for _ in 0..<3000 {
            var mutated = line
            for _ in 0...random(3) {
                mutated[random(mutated.count)] = replacements[random(replacements.count)]
            }
            let data = Data(mutated)
            guard let fast = data.withUnsafeBytes({ try? JSONCursor.decodeExchange($0) }) else { continue }
            accepted += 1
            XCTAssertEqual(fast, try? JSONDecoder().decode(Exchange.self, from: data), String(decoding: data, as: UTF8.self))
        }
        XCTAssertGreaterThan(accepted, 100)
    }
}
