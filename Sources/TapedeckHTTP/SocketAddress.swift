import Foundation

/// A numeric listen address. Names other than `localhost` are rejected rather than
/// resolved, so a typo cannot make the server listen somewhere unexpected.
struct SocketAddress {
    private let storage: sockaddr_storage
    let isIPv6: Bool
    let display: String

    init(host: String, port: UInt16) throws(HTTPServerError) {
        let literal = host == "localhost" ? "127.0.0.1" : host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        var ipv4 = sockaddr_in()
        var ipv6 = sockaddr_in6()
        var storage = sockaddr_storage()
        if inet_pton(AF_INET, literal, &ipv4.sin_addr) == 1 {
            ipv4.sin_family = sa_family_t(AF_INET)
            ipv4.sin_port = port.bigEndian
            withUnsafeBytes(of: ipv4) { source in
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) }
            }
            isIPv6 = false
            display = "\(literal):\(port)"
        } else if inet_pton(AF_INET6, literal, &ipv6.sin6_addr) == 1 {
            ipv6.sin6_family = sa_family_t(AF_INET6)
            ipv6.sin6_port = port.bigEndian
            withUnsafeBytes(of: ipv6) { source in
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: source) }
            }
            isIPv6 = true
            display = "[\(literal)]:\(port)"
        } else {
            throw .invalidHost(host)
        }
        self.storage = storage
    }

    func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>) -> Result) -> Result {
        withUnsafeBytes(of: storage) { body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self)) }
    }
}
