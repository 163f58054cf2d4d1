import Foundation

/// A bare TCP client for sending exactly the bytes a test wants, malformed ones
/// included, and reading whatever comes back until the server closes.
enum RawHTTP {
    struct Reply {
        var raw: Data
        var text: String { String(decoding: raw, as: UTF8.self) }

        /// The status code of the first response, or nil when none arrived.
        var status: Int? {
            guard text.hasPrefix("HTTP/") else { return nil }
            return Int(text.split(separator: " ").dropFirst().first ?? "")
        }

        func header(_ name: String) -> String? {
            let head = text.components(separatedBy: "\r\n\r\n").first ?? ""
            for line in head.components(separatedBy: "\r\n") {
                let parts = line.split(separator: ":", maxSplits: 1)
                if parts.count == 2, parts[0].lowercased() == name.lowercased() {
                    return parts[1].trimmingCharacters(in: .whitespaces)
                }
            }
            return nil
        }

        var body: String { text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n") }
    }

    /// Sends `bytes` to the server behind `url` and reads until it closes the
    /// connection or `timeout` seconds pass.
    static func send(_ bytes: Data, to url: String, timeout: TimeInterval = 10) throws -> Reply {
        guard let components = URLComponents(string: url), let port = components.port else {
            throw PeerError("no port in \(url)")
        }
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw PeerError("socket failed") }
        defer { close(descriptor) }

        var seconds = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &seconds, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw PeerError("connect to \(url) failed: \(String(cString: strerror(errno)))") }

        _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        var reply = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(descriptor, &buffer, buffer.count)
            if count <= 0 { break }
            reply.append(buffer, count: count)
        }
        return Reply(raw: reply)
    }

    /// Sends one SOAP call with `Connection: close`.
    static func soap(_ envelope: String, to url: String, cookie: String? = nil) throws -> Reply {
        var head = "POST /sdk HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\nSOAPAction: urn:vim25/7.0\r\n"
        if let cookie { head += "Cookie: \(cookie)\r\n" }
        head += "Content-Length: \(envelope.utf8.count)\r\nConnection: close\r\n\r\n"
        return try send(Data((head + envelope).utf8), to: url)
    }

    static let retrieveServiceContent = Fixtures.envelope(
        "<RetrieveServiceContent xmlns=\"urn:vim25\"><_this type=\"ServiceInstance\">ServiceInstance</_this></RetrieveServiceContent>")

    static func login(user: String, password: String) -> String {
        Fixtures.envelope(
            "<Login xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this><userName>\(user)</userName><password>\(password)</password></Login>")
    }
}
