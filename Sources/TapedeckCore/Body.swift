import Foundation

/// A request or response body as stored in a cassette: UTF-8 text, binary bytes, or
/// a note that a body larger than the recording limit went through unrecorded.
public enum Body: Sendable, Equatable {
    case empty
    case bytes(Data)
    case omitted(size: Int64)

    public init(_ data: Data) {
        self = data.isEmpty ? .empty : .bytes(data)
    }

    /// The stored bytes, empty for an omitted body.
    public var data: Data {
        if case .bytes(let data) = self { return data }
        return Data()
    }

    /// The body's size on the wire, including an omitted one.
    public var size: Int64 {
        switch self {
        case .empty: 0
        case .bytes(let data): Int64(data.count)
        case .omitted(let size): size
        }
    }

    public var text: String? {
        String(data: data, encoding: .utf8)
    }
}

// Text bodies stay readable in the JSON (`{"text": …}`); others are base64
// (`{"base64": …}`); omitted ones record only their size (`{"omitted": N}`).
extension Body: Codable {
    private enum CodingKeys: String, CodingKey {
        case text, base64, omitted
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let text = try container.decodeIfPresent(String.self, forKey: .text) {
            self = .bytes(Data(text.utf8))
        } else if let encoded = try container.decodeIfPresent(String.self, forKey: .base64) {
            guard let data = Data(base64Encoded: encoded) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .base64, in: container, debugDescription: "body is not valid base64")
            }
            self = .bytes(data)
        } else if let size = try container.decodeIfPresent(Int64.self, forKey: .omitted) {
            self = .omitted(size: size)
        } else {
            self = .empty
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .empty:
            break
        case .bytes(let data):
            if let text = String(data: data, encoding: .utf8) {
                try container.encode(text, forKey: .text)
            } else {
                try container.encode(data.base64EncodedString(), forKey: .base64)
            }
        case .omitted(let size):
            try container.encode(size, forKey: .omitted)
        }
    }
}
