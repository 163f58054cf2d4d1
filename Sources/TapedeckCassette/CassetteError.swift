import Foundation

/// Why a cassette could not be written or read. Each message names the path and,
/// where it helps, the byte offset and what to do next.
public enum CassetteError: Error, CustomStringConvertible, Equatable {
    case alreadyExists(path: String)
    case notFound(path: String)
    case systemCallFailed(path: String, call: String, errno: Int32)
    case empty(path: String)
    case notACassette(path: String, detail: String)
    case unsupportedVersion(path: String, found: Int)
    case corrupt(path: String, offset: Int64, detail: String)

    public var description: String {
        switch self {
        case .alreadyExists(let path):
            return "cassette '\(path)' already exists; tapedeck never overwrites a cassette, so pass a new path or move the old file away"
        case .notFound(let path):
            return "cassette '\(path)' not found; check the path"
        case .systemCallFailed(let path, let call, let code):
            return "\(call) failed on '\(path)': \(String(cString: strerror(code)))"
        case .empty(let path):
            return "cassette '\(path)' is empty (0 bytes); it was never written, so record it again"
        case .notACassette(let path, let detail):
            return "'\(path)' is not a tapedeck cassette: \(detail)"
        case .unsupportedVersion(let path, let found):
            return "cassette '\(path)' has format version \(found), but this tapedeck reads version \(CassetteHeader.currentVersion); use a tapedeck release that supports version \(found)"
        case .corrupt(let path, let offset, let detail):
            return "cassette '\(path)' is corrupt at or after compressed byte \(offset): \(detail); the exchanges before the damage can still be read with tapedeck cat"
        }
    }
}
