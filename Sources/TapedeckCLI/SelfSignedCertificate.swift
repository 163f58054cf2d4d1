import Foundation

/// A throwaway certificate for `--tls-self-signed`, made by the openssl command
/// because the toolchain has no X.509 library.
struct SelfSignedCertificate {
    var certificatePEM: String
    var privateKeyPEM: String

    static func generate() throws -> SelfSignedCertificate {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tapedeck-tls-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let certificate = directory.appendingPathComponent("cert.pem").path
        let key = directory.appendingPathComponent("key.pem").path

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "30", "-subj", "/CN=tapedeck",
            "-addext", "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost",
            "-keyout", key, "-out", certificate,
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw RunError("--tls-self-signed needs the openssl command, which could not be started (\(error)); install the openssl package or pass --tls-cert and --tls-key")
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw RunError("openssl req exited with status \(process.terminationStatus) while making a self-signed certificate; pass --tls-cert and --tls-key instead")
        }
        return SelfSignedCertificate(
            certificatePEM: try String(contentsOfFile: certificate, encoding: .utf8),
            privateKeyPEM: try String(contentsOfFile: key, encoding: .utf8))
    }
}
