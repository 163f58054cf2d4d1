import CZstd
import Foundation

/// A failed libzstd call: the C function and libzstd's own error name.
public struct ZstdError: Error, CustomStringConvertible {
    public let call: String
    public let message: String

    init(call: String, code: Int) {
        self.call = call
        self.message = String(cString: ZSTD_getErrorName(code))
    }

    public var description: String { "\(call) failed: \(message)" }
}

private func check(_ code: Int, _ call: String) throws(ZstdError) -> Int {
    if ZSTD_isError(code) != 0 { throw ZstdError(call: call, code: code) }
    return code
}

/// One streaming zstd frame. Each `compress(_:)` ends with a flush, so everything
/// handed in so far can be decoded from the output alone, while the frame keeps
/// its history: repeated SOAP envelopes cost little after the first.
final class ZstdCompressor {
    private let context: OpaquePointer
    private var scratch = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())

    init(level: Int32) throws(ZstdError) {
        guard let context = ZSTD_createCCtx() else {
            throw ZstdError(call: "ZSTD_createCCtx", code: -1)
        }
        self.context = context
        do {
            _ = try check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level), "ZSTD_CCtx_setParameter")
            _ = try check(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1), "ZSTD_CCtx_setParameter")
        } catch {
            ZSTD_freeCCtx(context)
            throw error
        }
    }

    deinit {
        ZSTD_freeCCtx(context)
    }

    /// Compresses `data` and flushes, returning the bytes to append to the file.
    func compress(_ data: Data) throws(ZstdError) -> Data {
        try run(data, directive: ZSTD_e_flush)
    }

    /// Ends the frame, returning its last bytes and checksum.
    func finish() throws(ZstdError) -> Data {
        try run(Data(), directive: ZSTD_e_end)
    }

    private func run(_ data: Data, directive: ZSTD_EndDirective) throws(ZstdError) -> Data {
        var output = Data()
        let result: Result<Void, ZstdError> = data.withUnsafeBytes { source in
            var input = ZSTD_inBuffer(src: source.baseAddress, size: source.count, pos: 0)
            return scratch.withUnsafeMutableBytes { buffer in
                while true {
                    var out = ZSTD_outBuffer(dst: buffer.baseAddress, size: buffer.count, pos: 0)
                    let remaining = ZSTD_compressStream2(context, &out, &input, directive)
                    if ZSTD_isError(remaining) != 0 {
                        return .failure(ZstdError(call: "ZSTD_compressStream2", code: remaining))
                    }
                    output.append(buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), count: out.pos)
                    if remaining == 0 && input.pos == input.size { return .success(()) }
                }
            }
        }
        try result.get()
        return output
    }
}

/// A streaming zstd decoder that tolerates input ending mid-frame, so that a
/// cassette cut short by a crash still yields every block written before it.
final class ZstdDecompressor {
    private let context: OpaquePointer
    private var scratch = [UInt8](repeating: 0, count: ZSTD_DStreamOutSize())

    /// False while the decoder is inside a frame that has not ended yet.
    private(set) var atFrameBoundary = true

    init() throws(ZstdError) {
        guard let context = ZSTD_createDCtx() else {
            throw ZstdError(call: "ZSTD_createDCtx", code: -1)
        }
        self.context = context
    }

    deinit {
        ZSTD_freeDCtx(context)
    }

    /// Decodes `input` completely and returns the decoded bytes.
    func decompress(_ input: Data) throws(ZstdError) -> Data {
        var output = Data()
        var boundary = atFrameBoundary
        let result: Result<Void, ZstdError> = input.withUnsafeBytes { source in
            var inBuffer = ZSTD_inBuffer(src: source.baseAddress, size: source.count, pos: 0)
            return scratch.withUnsafeMutableBytes { buffer in
                while true {
                    var out = ZSTD_outBuffer(dst: buffer.baseAddress, size: buffer.count, pos: 0)
                    let hint = ZSTD_decompressStream(context, &out, &inBuffer)
                    if ZSTD_isError(hint) != 0 {
                        return .failure(ZstdError(call: "ZSTD_decompressStream", code: hint))
                    }
                    output.append(buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), count: out.pos)
                    boundary = hint == 0
                    // A full output buffer may hide more decoded bytes, so loop until
                    // the input is consumed and the decoder had room to spare.
                    if inBuffer.pos == inBuffer.size && out.pos < out.size { return .success(()) }
                }
            }
        }
        try result.get()
        atFrameBoundary = boundary
        return output
    }
}
