import Foundation
import TapedeckCore

/// Appends exchanges to a new cassette file.
///
/// The file is created with `O_EXCL`, so an existing cassette is never replaced.
/// Each append compresses one JSON line and flushes the zstd stream to the file, so a
/// process killed at any moment leaves every earlier exchange readable. Not
/// thread-safe: one writer thread owns it.
public final class CassetteWriter {
    public let path: String
    private var descriptor: Int32
    private let compressor: ZstdCompressor
    private let encoder: JSONEncoder
    public private(set) var exchangeCount = 0
    public private(set) var compressedBytes: Int64 = 0

    public init(path: String, header: CassetteHeader, compressionLevel: Int32 = 3) throws {
        self.path = path
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if descriptor < 0 {
            if errno == EEXIST { throw CassetteError.alreadyExists(path: path) }
            throw CassetteError.systemCallFailed(path: path, call: "open", errno: errno)
        }
        self.descriptor = descriptor
        compressor = try ZstdCompressor(level: compressionLevel)
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try writeLine(encoder.encode(header))
    }

    deinit {
        if descriptor >= 0 { Foundation.close(descriptor) }
    }

    public func append(_ exchange: Exchange) throws {
        try writeLine(encoder.encode(exchange))
        exchangeCount += 1
    }

    /// Ends the zstd frame, syncs the file to disk and closes it.
    public func close() throws {
        guard descriptor >= 0 else { return }
        try writeAll(compressor.finish())
        if fsync(descriptor) != 0 {
            throw CassetteError.systemCallFailed(path: path, call: "fsync", errno: errno)
        }
        Foundation.close(descriptor)
        descriptor = -1
    }

    private func writeLine(_ json: Data) throws {
        var line = json
        line.append(0x0A)
        try writeAll(compressor.compress(line))
    }

    private func writeAll(_ data: Data) throws {
        try data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw CassetteError.systemCallFailed(path: path, call: "write", errno: errno)
                }
                offset += written
            }
        }
        compressedBytes += Int64(data.count)
    }
}
