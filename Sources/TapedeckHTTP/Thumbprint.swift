import Foundation
import TapedeckCore

/// Certificate thumbprints as vSphere shows them: SHA-256 of the DER certificate,
/// as upper-case hex pairs joined by colons.
public enum Thumbprint {
    /// Normalizes user input: case, and colons or spaces between pairs, are ignored.
    public static func normalize(_ text: String) -> String {
        let hex = text.uppercased().filter { $0.isHexDigit }
        return stride(from: 0, to: hex.count, by: 2).map { offset in
            let start = hex.index(hex.startIndex, offsetBy: offset)
            return String(hex[start..<hex.index(start, offsetBy: min(2, hex.count - offset))])
        }.joined(separator: ":")
    }

    public static func isValid(_ text: String) -> Bool {
        let hex = text.filter { $0.isHexDigit }
        return hex.count == 64 && text.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == " " }
    }

    public static func sha256(_ der: Data) -> String {
        SHA256.hash(der).map { String(format: "%02X", $0) }.joined(separator: ":")
    }

    public static func derFromPEM(_ pem: String) -> Data? {
        let base64 = pem.split(separator: "\n")
            .filter { !$0.hasPrefix("-----") }
            .joined()
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return Data(base64Encoded: base64)
    }
}
