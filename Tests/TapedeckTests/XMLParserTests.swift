import Foundation
import TapedeckSOAP
import XCTest

/// `XMLParser` reuses one libxml2 context, so it must accept, reject and decode
/// every document as `XMLDocument(parsing:)` does, whatever it parsed before.
final class XMLParserTests: XCTestCase {
    private static let latin1Envelope: Data = {
        var data = Data("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Envelope><Body><Op a=\"".utf8)
        data.append(0xE9)
        data.append(contentsOf: Array("\">caf".utf8))
        data.append(0xE9)
        data.append(contentsOf: Array("</Op></Body></Envelope>".utf8))
        return data
    }()

    private static let documents: [(name: String, data: Data)] = [
        ("utf-8 with declaration", Data("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Envelope><Body><Op b=\"2\" a=\"1\">x &amp; y</Op></Body></Envelope>".utf8)),
        ("without declaration", Data("<Envelope><Body><Op>&#233;t&#xE9;</Op></Body></Envelope>".utf8)),
        ("cdata and comment", Data("<Envelope><Body><Op><![CDATA[<raw>]]><!-- note --></Op></Body></Envelope>".utf8)),
        ("latin-1 declared", latin1Envelope),
        ("utf-16 with byte order mark", Data([0xFF, 0xFE]) + "<Envelope><Body><Op>\u{E9}</Op></Body></Envelope>".data(using: .utf16LittleEndian)!),
        // libxml2 reads long input in pieces, so one body spans several of them.
        ("longer than a read", Data(("<Envelope><Body><Op>" + String(repeating: "<v a=\"1\">text &amp; more</v>", count: 2000) + "</Op></Body></Envelope>").utf8)),
        ("unclosed element", Data("<Envelope><Body><Op></Body></Envelope>".utf8)),
        ("text only", Data("not xml".utf8)),
        ("empty", Data()),
    ]

    func testParserMatchesDocumentParsing() throws {
        let parser = try XMLParser()
        // Two rounds show that one document leaves nothing behind for the next.
        for round in 1...2 {
            for (name, data) in XMLParserTests.documents {
                let expected = Result { () throws(XMLError) in try XMLDocument(parsing: data).formatted() }
                let actual = Result { () throws(XMLError) in try parser.parse(data).formatted() }
                XCTAssertEqual(try? actual.get(), try? expected.get(), "\(name), round \(round)")
                XCTAssertEqual(actual.failureMessage, expected.failureMessage, "\(name), round \(round)")
            }
        }
    }

    func testParserDocumentOutlivesParser() throws {
        var parser: XMLParser? = try XMLParser()
        let document = try parser!.parse(Data("<Envelope><Body><Op>kept</Op></Body></Envelope>".utf8))
        parser = nil
        XCTAssertEqual(document.root?.firstChild(named: "Body")?.firstChild(named: "Op")?.text, "kept")
    }
}

extension Result where Failure == XMLError {
    fileprivate var failureMessage: String? {
        guard case .failure(let error) = self else { return nil }
        return error.message
    }
}
