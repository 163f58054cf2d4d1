import Foundation
import TapedeckCore

/// The end point of a cassette that did not end cleanly: the normal state of a file
/// whose recorder was killed.
public struct Truncation: Sendable, Equatable, CustomStringConvertible {
    /// Complete exchanges read before the end.
    public var exchangesRead: Int
    /// Size of the compressed file.
    public var compressedSize: Int64
    /// Decoded bytes after the last complete exchange, which are dropped.
    public var trailingBytes: Int

    public var description: String {
        "cassette ends without its closing frame after \(exchangesRead) complete exchanges (\(compressedSize) compressed bytes, \(trailingBytes) bytes of an unfinished exchange dropped); the recorder probably stopped abruptly"
    }
}

/// Streams exchanges from a cassette, holding one read chunk and one decoded line in
/// memory at a time, or a few batches of lines in `forEach(preparing:consume:)`. A file cut short yields every complete exchange and then
/// sets `truncation`; damage elsewhere throws `CassetteError` with the offset.
public final class CassetteReader {
    public let path: String
    public private(set) var header: CassetteHeader!
    public internal(set) var truncation: Truncation?
    public internal(set) var exchangesRead = 0

    private let file: FileHandle
    private let decompressor: ZstdDecompressor
    private var pending = Data()
    /// Start of the unread part of `pending`. Consumed lines are dropped in bulk,
    /// because removing each line from the front would copy the rest every time.
    private var pendingStart = 0
    private(set) var compressedOffset: Int64 = 0
    private var reachedEnd = false

    private static let chunkSize = 64 * 1024
    private static let zstdMagic: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD]

    public init(path: String) throws {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else {
            throw CassetteError.notFound(path: path)
        }
        guard let file = FileHandle(forReadingAtPath: path) else {
            throw CassetteError.systemCallFailed(path: path, call: "open", errno: errno)
        }
        self.file = file
        decompressor = try ZstdDecompressor()
        try readHeader()
    }

    deinit {
        try? file.close()
    }

    /// Returns the next exchange, or nil at the end of the cassette.
    public func next() throws -> Exchange? {
        guard let line = try nextLine() else { return nil }
        let exchange = try CassetteReader.decodeExchange(
            line, path: path, number: exchangesRead + 1, offset: compressedOffset)
        exchangesRead += 1
        return exchange
    }

    /// Decodes one exchange line. `number` and `offset` name the line in the error.
    /// Static, so that loading threads can call it without sharing the reader.
    static func decodeExchange(_ line: Data, path: String, number: Int, offset: Int64) throws(CassetteError) -> Exchange {
        let fast = line.withUnsafeBytes { bytes in try? JSONCursor.decodeExchange(bytes) }
        if let fast { return fast }
        // JSONDecoder takes every line the cursor rejects: it accepts what the
        // cursor leaves to it and words the error for a line that is invalid.
        do {
            return try JSONDecoder().decode(Exchange.self, from: line)
        } catch {
            throw CassetteError.corrupt(
                path: path, offset: offset,
                detail: "exchange \(number) is not valid JSON for format version 1 (\(error))")
        }
    }

    /// Reads every remaining exchange, calling `body` for each.
    public func forEach(_ body: (Exchange) throws -> Void) throws {
        while let exchange = try next() {
            try body(exchange)
        }
    }

    private func readHeader() throws {
        let first = try readChunk()
        if first.isEmpty { throw CassetteError.empty(path: path) }
        guard first.starts(with: CassetteReader.zstdMagic) else {
            throw CassetteError.notACassette(path: path, detail: "it does not start with the zstd magic number 28 B5 2F FD")
        }
        try decode(first)

        guard let line = try nextLine() else {
            throw CassetteError.notACassette(path: path, detail: "no header line could be decoded")
        }
        let header: CassetteHeader
        do {
            header = try JSONDecoder().decode(CassetteHeader.self, from: line)
        } catch {
            throw CassetteError.notACassette(path: path, detail: "the first line is not a tapedeck cassette header")
        }
        guard header.format == CassetteHeader.formatName else {
            throw CassetteError.notACassette(path: path, detail: "format is '\(header.format)', expected '\(CassetteHeader.formatName)'")
        }
        guard header.version == CassetteHeader.currentVersion else {
            throw CassetteError.unsupportedVersion(path: path, found: header.version)
        }
        self.header = header
    }

    /// Returns the next decoded line without its newline, or nil at the end.
    func nextLine() throws -> Data? {
        while true {
            let unread = pending.startIndex + pendingStart
            // memchr rather than firstIndex(of:), which walks Data byte by byte with
            // an exclusivity check on each step and took a quarter of load time.
            let start = pendingStart
            let found = pending.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) -> Int? in
                guard let base = buffer.baseAddress, start < buffer.count,
                      let hit = memchr(base + start, 0x0A, buffer.count - start) else { return nil }
                return UnsafeRawPointer(hit) - base
            }
            if let found {
                let line = pending.subdata(in: unread..<(pending.startIndex + found))
                pendingStart = found + 1
                return line
            }
            if pendingStart > 0 {
                pending.removeSubrange(pending.startIndex..<unread)
                pendingStart = 0
            }
            if reachedEnd {
                if !pending.isEmpty || !decompressor.atFrameBoundary {
                    truncation = Truncation(
                        exchangesRead: exchangesRead, compressedSize: compressedOffset, trailingBytes: pending.count)
                    pending.removeAll()
                }
                return nil
            }
            let chunk = try readChunk()
            if chunk.isEmpty {
                reachedEnd = true
            } else {
                try decode(chunk)
            }
        }
    }

    private func readChunk() throws -> Data {
        do {
            return try file.read(upToCount: CassetteReader.chunkSize) ?? Data()
        } catch {
            throw CassetteError.systemCallFailed(path: path, call: "read", errno: errno)
        }
    }

    private func decode(_ chunk: Data) throws {
        do {
            pending.append(try decompressor.decompress(chunk))
        } catch {
            throw CassetteError.corrupt(path: path, offset: compressedOffset, detail: error.description)
        }
        compressedOffset += Int64(chunk.count)
    }
}
