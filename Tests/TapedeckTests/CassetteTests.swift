import Foundation
import TapedeckCore
import XCTest

@testable import TapedeckCassette

final class CassetteTests: DirectoryTestCase {
    private func path(_ name: String) -> String {
        directory.appendingPathComponent(name).path
    }

    private func writeCassette(_ name: String, exchanges: Int, close: Bool = true) throws -> String {
        let file = path(name)
        let writer = try CassetteWriter(path: file, header: CassetteHeader(tool: "tapedeck test", upstream: "http://127.0.0.1:1"))
        for sequence in 1...exchanges {
            try writer.append(Fixtures.exchange(
                sequence: sequence, operation: "RetrieveServiceContent",
                requestBody: Fixtures.envelope("<RetrieveServiceContent xmlns=\"urn:vim25\"><_this type=\"ServiceInstance\">ServiceInstance</_this></RetrieveServiceContent>"),
                responseBody: Fixtures.envelope("<RetrieveServiceContentResponse xmlns=\"urn:vim25\"><returnval>\(sequence)</returnval></RetrieveServiceContentResponse>")))
        }
        if close { try writer.close() }
        return file
    }

    private func readAll(_ file: String) throws -> (CassetteReader, [Exchange]) {
        let reader = try CassetteReader(path: file)
        var exchanges: [Exchange] = []
        try reader.forEach { exchanges.append($0) }
        return (reader, exchanges)
    }

    func testWrittenExchangesReadBackUnchanged() throws {
        let file = try writeCassette("round-trip.cassette", exchanges: 5)
        let (reader, exchanges) = try readAll(file)
        XCTAssertEqual(reader.header.version, 1)
        XCTAssertEqual(reader.header.upstream, "http://127.0.0.1:1")
        XCTAssertEqual(exchanges.map(\.sequence), [1, 2, 3, 4, 5])
        XCTAssertEqual(exchanges[2], Fixtures.exchange(
            sequence: 3, operation: "RetrieveServiceContent",
            requestBody: Fixtures.envelope("<RetrieveServiceContent xmlns=\"urn:vim25\"><_this type=\"ServiceInstance\">ServiceInstance</_this></RetrieveServiceContent>"),
            responseBody: Fixtures.envelope("<RetrieveServiceContentResponse xmlns=\"urn:vim25\"><returnval>3</returnval></RetrieveServiceContentResponse>")))
        XCTAssertNil(reader.truncation)
    }

    func testBinaryAndOmittedBodiesSurviveEncoding() throws {
        let file = path("bodies.cassette")
        let writer = try CassetteWriter(path: file, header: CassetteHeader(tool: "t", upstream: "u"))
        var exchange = Fixtures.exchange(method: "PUT")
        exchange.request.body = .bytes(Data([0xFF, 0x00, 0xFE]))
        exchange.response?.body = .omitted(size: 123_456_789)
        try writer.append(exchange)
        try writer.close()

        let (_, exchanges) = try readAll(file)
        XCTAssertEqual(exchanges.first?.request.body, .bytes(Data([0xFF, 0x00, 0xFE])))
        XCTAssertEqual(exchanges.first?.response?.body, .omitted(size: 123_456_789))
    }

    func testExistingCassetteIsNeverOverwritten() throws {
        let file = try writeCassette("existing.cassette", exchanges: 1)
        let before = try Data(contentsOf: URL(fileURLWithPath: file))
        XCTAssertThrowsError(try CassetteWriter(path: file, header: CassetteHeader(tool: "t", upstream: "u"))) { error in
            XCTAssertEqual(error as? CassetteError, .alreadyExists(path: file))
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: file)), before)
    }

    func testUnclosedCassetteReadsEveryFlushedExchange() throws {
        // The writer is dropped without close(), as when the recorder is killed.
        let file = try writeCassette("unclosed.cassette", exchanges: 7, close: false)
        let (reader, exchanges) = try readAll(file)
        XCTAssertEqual(exchanges.count, 7)
        XCTAssertEqual(reader.truncation?.exchangesRead, 7)
    }

    func testTruncatedCassetteYieldsCompletePrefixAtEveryCut() throws {
        let file = try writeCassette("full.cassette", exchanges: 20)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        // The header is the first flushed block; its size is that of a cassette with
        // no exchanges that was never closed.
        let headerOnly = path("header-only.cassette")
        _ = try CassetteWriter(path: headerOnly, header: CassetteHeader(tool: "tapedeck test", upstream: "http://127.0.0.1:1"))
        let headerSize = try Data(contentsOf: URL(fileURLWithPath: headerOnly)).count

        let insideHeader = path("cut-header.cassette")
        try bytes.prefix(headerSize - 1).write(to: URL(fileURLWithPath: insideHeader))
        XCTAssertThrowsError(try CassetteReader(path: insideHeader)) { error in
            guard case .notACassette? = error as? CassetteError else { return XCTFail("got \(error)") }
        }

        var previous = 0
        for length in stride(from: headerSize, to: bytes.count, by: 7) {
            let cut = path("cut-\(length).cassette")
            try bytes.prefix(length).write(to: URL(fileURLWithPath: cut))
            let (reader, exchanges) = try readAll(cut)
            XCTAssertEqual(exchanges.map(\.sequence), Array(0..<exchanges.count).map { $0 + 1 }, "cut at \(length)")
            XCTAssertGreaterThanOrEqual(exchanges.count, previous, "cut at \(length)")
            XCTAssertNotNil(reader.truncation, "cut at \(length)")
            previous = exchanges.count
        }
        XCTAssertGreaterThanOrEqual(previous, 19)
    }

    func testFlippedByteIsReportedWithOffset() throws {
        let file = try writeCassette("flipped.cassette", exchanges: 30)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        let middle = bytes.count / 2
        bytes[middle] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: file))

        XCTAssertThrowsError(try readAll(file)) { error in
            guard case .corrupt(let reported, let offset, _)? = error as? CassetteError else {
                return XCTFail("expected a corrupt cassette error, got \(error)")
            }
            XCTAssertEqual(reported, file)
            XCTAssertGreaterThanOrEqual(offset, 0)
            XCTAssertTrue("\(error)".contains("compressed byte"))
        }
    }

    /// What a read returned: the exchanges consumed, the error that ended it and
    /// the truncation found, also when opening the reader failed.
    private struct ReadOutcome {
        var exchanges: [Exchange] = []
        var error: CassetteError?
        var truncation: Truncation?
        var exchangesRead = 0
    }

    private func read(_ file: String, concurrently: Bool) -> ReadOutcome {
        var outcome = ReadOutcome()
        do {
            let reader = try CassetteReader(path: file)
            defer {
                outcome.truncation = reader.truncation
                outcome.exchangesRead = reader.exchangesRead
            }
            if concurrently {
                try reader.forEach(preparing: { $0 }) { outcome.exchanges.append($0) }
            } else {
                try reader.forEach { outcome.exchanges.append($0) }
            }
        } catch {
            outcome.error = error as? CassetteError
        }
        return outcome
    }

    func testConcurrentReadMatchesSerialRead() throws {
        let file = try writeCassette("concurrent.cassette", exchanges: 1000)
        let serial = read(file, concurrently: false)
        let concurrent = read(file, concurrently: true)
        XCTAssertNil(concurrent.error)
        XCTAssertEqual(concurrent.exchanges, serial.exchanges)
        XCTAssertEqual(concurrent.exchanges.count, 1000)
        XCTAssertEqual(concurrent.exchangesRead, 1000)
        XCTAssertNil(concurrent.truncation)
    }

    func testConcurrentReadCountsTruncatedExchanges() throws {
        let count = 3 * CassetteReader.batchSize + 5
        let file = try writeCassette("concurrent-unclosed.cassette", exchanges: count, close: false)
        let outcome = read(file, concurrently: true)
        XCTAssertNil(outcome.error)
        XCTAssertEqual(outcome.exchanges.count, count)
        XCTAssertEqual(outcome.truncation?.exchangesRead, count)
    }

    func testConcurrentReadStopsAtCorruptLine() throws {
        let file = path("bad-line.cassette")
        let compressor = try ZstdCompressor(level: 3)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var lines = [try encoder.encode(CassetteHeader(tool: "t", upstream: "u"))]
        for sequence in 1...300 {
            lines.append(try encoder.encode(Fixtures.exchange(sequence: sequence, operation: "Logout")))
        }
        lines.insert(Data(#"{"sequence":"#.utf8), at: 201)
        var bytes = Data()
        for line in lines {
            bytes.append(try compressor.compress(line + Data("\n".utf8)))
        }
        bytes.append(try compressor.finish())
        try bytes.write(to: URL(fileURLWithPath: file))

        let outcome = read(file, concurrently: true)
        XCTAssertEqual(outcome.exchanges.map(\.sequence), Array(1...200))
        guard case .corrupt(_, _, let detail)? = outcome.error else {
            return XCTFail("expected a corrupt cassette error, got \(String(describing: outcome.error))")
        }
        XCTAssertTrue(detail.contains("exchange 201"), detail)
        XCTAssertEqual(outcome.error, read(file, concurrently: false).error)
    }

    /// A flipped byte may end the read with an error or look like a cut-short
    /// file; either way both reads must agree.
    func testConcurrentReadAgreesWithSerialReadOnDamage() throws {
        let file = try writeCassette("concurrent-flipped.cassette", exchanges: 8000)
        let original = try Data(contentsOf: URL(fileURLWithPath: file))
        XCTAssertGreaterThan(original.count, 2 * 64 * 1024, "damage should fall after the first read chunk")
        for tenth in 1...9 {
            var bytes = original
            bytes[bytes.count * tenth / 10] ^= 0xFF
            try bytes.write(to: URL(fileURLWithPath: file))

            let serial = read(file, concurrently: false)
            let concurrent = read(file, concurrently: true)
            XCTAssertEqual(concurrent.exchanges, serial.exchanges, "flip at \(tenth)/10")
            XCTAssertEqual(concurrent.error, serial.error, "flip at \(tenth)/10")
            XCTAssertEqual(concurrent.truncation, serial.truncation, "flip at \(tenth)/10")
        }
    }

    func testUnknownVersionNamesTheVersionFound() throws {
        let file = path("future.cassette")
        let compressor = try ZstdCompressor(level: 3)
        let header = #"{"format":"tapedeck-cassette","version":9,"tool":"t","upstream":"u","started":"s"}"# + "\n"
        try compressor.compress(Data(header.utf8)).write(to: URL(fileURLWithPath: file))

        XCTAssertThrowsError(try CassetteReader(path: file)) { error in
            XCTAssertEqual(error as? CassetteError, .unsupportedVersion(path: file, found: 9))
            XCTAssertTrue("\(error)".contains("version 9"))
        }
    }

    func testPlainTextFileIsNotACassette() throws {
        let file = path("notes.txt")
        try Data("hello\n".utf8).write(to: URL(fileURLWithPath: file))
        XCTAssertThrowsError(try CassetteReader(path: file)) { error in
            guard case .notACassette? = error as? CassetteError else { return XCTFail("got \(error)") }
            XCTAssertTrue("\(error)".contains("zstd magic number"))
        }
    }

    func testEmptyAndMissingFilesAreErrors() throws {
        let empty = path("empty.cassette")
        _ = FileManager.default.createFile(atPath: empty, contents: Data())
        XCTAssertThrowsError(try CassetteReader(path: empty)) { error in
            XCTAssertEqual(error as? CassetteError, .empty(path: empty))
        }
        let missing = path("missing.cassette")
        XCTAssertThrowsError(try CassetteReader(path: missing)) { error in
            XCTAssertEqual(error as? CassetteError, .notFound(path: missing))
        }
    }

    func testRepeatedEnvelopesCompressWell() throws {
        let file = try writeCassette("ratio.cassette", exchanges: 500)
        let compressed = try FileManager.default.attributesOfItem(atPath: file)[.size] as! Int
        let (_, exchanges) = try readAll(file)
        let encoder = JSONEncoder()
        let raw = try exchanges.reduce(0) { $0 + (try encoder.encode($1).count) }
        XCTAssertLessThan(Double(compressed) / Double(raw), 0.1, "compressed \(compressed) of \(raw) bytes")
    }

    func testSummaryCountsOperationsAndUnanswered() throws {
        var summary = CassetteSummary()
        summary.add(Fixtures.exchange(sequence: 1, operation: "CreateVM_Task"))
        var blocked = Fixtures.exchange(sequence: 2, operation: "WaitForUpdatesEx")
        blocked.response = nil
        blocked.unanswered = Unanswered(reason: .clientDisconnected, detail: "gone", at: 5_000_000_000)
        summary.add(blocked)
        summary.add(Fixtures.exchange(sequence: 3, path: "/api/session", method: "GET"))

        XCTAssertEqual(summary.exchanges, 3)
        XCTAssertEqual(summary.tasksCreated, 1)
        XCTAssertEqual(summary.unanswered, 1)
        XCTAssertEqual(summary.operations["WaitForUpdatesEx"]?.unanswered, 1)
        XCTAssertEqual(summary.otherRequests["GET /api/session"], 1)
        XCTAssertEqual(summary.unansweredExchanges.first?.sequence, 2)
    }
}
