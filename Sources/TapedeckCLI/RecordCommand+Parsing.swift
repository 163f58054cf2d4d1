import Foundation
import TapedeckCore
import TapedeckHTTP

extension RecordCommand {
    /// Reduces the upstream URL to scheme, host and port, because clients send
    /// their own paths (`/sdk`, `/api`, `/folder`).
    static func parseUpstream(_ text: String) throws(UsageError) -> String {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
              ["http", "https"].contains(scheme), let host = components.host, !host.isEmpty
        else {
            throw .invalid("--upstream", text, expected: "an http or https URL such as https://vcenter.example.com")
        }
        if components.user != nil || components.password != nil {
            throw UsageError(
                "--upstream must not contain credentials",
                hint: "Remove the user and password from the URL; clients log in through the proxy themselves.")
        }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        let portPart = components.port.map { ":\($0)" } ?? ""
        return "\(scheme)://\(hostPart)\(portPart)"
    }

    static func parseListen(_ text: String) throws(UsageError) -> (String, UInt16) {
        guard let colon = text.lastIndex(of: ":") else {
            throw .invalid("--listen", text, expected: "HOST:PORT such as 127.0.0.1:8989 or [::1]:0")
        }
        let host = String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        guard let port = UInt16(text[text.index(after: colon)...]), !host.isEmpty else {
            throw .invalid("--listen", text, expected: "HOST:PORT with a port from 0 to 65535")
        }
        return (host, port)
    }

    static func parseTrust(_ arguments: inout Arguments) throws(UsageError) -> UpstreamTrust {
        let insecure = arguments.flag("--insecure")
        let caFile = try arguments.value("--ca-file")
        let thumbprint = try arguments.value("--thumbprint")
        guard [insecure, caFile != nil, thumbprint != nil].filter({ $0 }).count <= 1 else {
            throw UsageError("--insecure, --ca-file and --thumbprint exclude each other; give one")
        }
        if let caFile {
            guard FileManager.default.isReadableFile(atPath: caFile) else {
                throw UsageError("--ca-file '\(caFile)' is not a readable file")
            }
            return .verify(caFile: caFile)
        }
        if let thumbprint {
            guard Thumbprint.isValid(thumbprint) else {
                throw .invalid("--thumbprint", thumbprint, expected: "a SHA-256 thumbprint: 32 hex pairs, with or without colons")
            }
            return .thumbprint(thumbprint)
        }
        return insecure ? .insecure : .verify(caFile: nil)
    }

    static func parseListenerTLS(_ arguments: inout Arguments) throws(UsageError) -> ListenerTLS {
        let certificate = try arguments.value("--tls-cert")
        let key = try arguments.value("--tls-key")
        let selfSigned = arguments.flag("--tls-self-signed")
        switch (certificate, key, selfSigned) {
        case (nil, nil, false):
            return .none
        case (nil, nil, true):
            return .selfSigned
        case (let certificate?, let key?, false):
            for (option, path) in [("--tls-cert", certificate), ("--tls-key", key)]
            where !FileManager.default.isReadableFile(atPath: path) {
                throw UsageError("\(option) '\(path)' is not a readable file")
            }
            return .files(certificate: certificate, key: key)
        case (_, _, true):
            throw UsageError("--tls-self-signed excludes --tls-cert and --tls-key; give one or the other")
        default:
            throw UsageError("--tls-cert and --tls-key go together; give both")
        }
    }

    /// Loads or makes the listener's certificate, returning its thumbprint when it
    /// was generated so the user can pin it.
    func loadListenerTLS(into listen: inout HTTPServerConfiguration) throws -> String? {
        switch listenerTLS {
        case .none:
            return nil
        case .files(let certificate, let key):
            listen.certificatePEM = try String(contentsOfFile: certificate, encoding: .utf8)
            listen.privateKeyPEM = try String(contentsOfFile: key, encoding: .utf8)
            return nil
        case .selfSigned:
            let generated = try SelfSignedCertificate.generate()
            listen.certificatePEM = generated.certificatePEM
            listen.privateKeyPEM = generated.privateKeyPEM
            return Thumbprint.derFromPEM(generated.certificatePEM).map(Thumbprint.sha256)
        }
    }
}

func parseLogLevel(_ arguments: inout Arguments) throws(UsageError) -> Logger.Level {
    guard let text = try arguments.value("--log-level") else { return .info }
    guard let level = Logger.Level(name: text) else {
        throw .invalid("--log-level", text, expected: "debug, info, warning or error")
    }
    return level
}
