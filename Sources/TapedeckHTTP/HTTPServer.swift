import CMicroHTTPD
import Foundation
import Synchronization
import TapedeckCore

/// Receives each complete request and responds through its `HTTPResponder`, at
/// once or later. Under `HTTPServerThreading.eventLoop` a handler must not block,
/// because one event-loop thread serves many connections.
public protocol HTTPRequestHandler: AnyObject, Sendable {
    func handle(_ request: IncomingRequest, responder: HTTPResponder)
}

/// A handler that computes each response on the connection's own thread, blocking
/// as long as it needs to. Only for `HTTPServerThreading.threadPerConnection`.
public protocol BlockingHTTPRequestHandler: HTTPRequestHandler {
    /// Returns the response, or nil to close the connection without one.
    func handle(_ request: IncomingRequest) -> OutgoingResponse?
}

extension BlockingHTTPRequestHandler {
    public func handle(_ request: IncomingRequest, responder: HTTPResponder) {
        responder.respond(handle(request))
    }
}

/// The division of connections among the server's threads.
public enum HTTPServerThreading: Sendable, Equatable {
    /// A thread for each connection, so a handler may block (on an upstream long
    /// poll, say) without holding up other connections. Each costs a thread stack.
    case threadPerConnection
    /// A fixed number of epoll threads for all connections. A request without a
    /// response yet is suspended and costs no thread, so thousands of held long
    /// polls cost little more than their connection buffers.
    case eventLoop(threads: Int)
}

public struct HTTPServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port: UInt16 = 0
    /// PEM certificate and key; both set means the server speaks HTTPS.
    public var certificatePEM: String?
    public var privateKeyPEM: String?
    /// Request bodies above this many bytes are spooled to an anonymous file.
    public var bodyMemoryLimit = 8 << 20
    /// Bytes per connection for the request line and headers; larger headers get
    /// 431 Request Header Fields Too Large from libmicrohttpd.
    public var headerMemoryLimit = 64 << 10
    /// Connections open at once. libmicrohttpd's own default is about 1,020.
    public var connectionLimit = 20_000
    public var threading = HTTPServerThreading.threadPerConnection

    public init() {}
}

public enum HTTPServerError: Error, CustomStringConvertible {
    case invalidHost(String)
    case startFailed(address: String, detail: String)

    public var description: String {
        switch self {
        case .invalidHost(let host):
            "invalid listen host '\(host)'; use an IPv4 or IPv6 address such as 127.0.0.1, or localhost"
        case .startFailed(let address, let detail):
            "MHD_start_daemon failed to listen on \(address): \(detail)"
        }
    }
}

/// An HTTP/1.1 server on libmicrohttpd, with a thread per connection or a small
/// pool of event-loop threads (see `HTTPServerThreading`).
public final class HTTPServer: @unchecked Sendable {
    public let clock: MonotonicClock
    public private(set) var port: UInt16 = 0
    public let isTLS: Bool
    public let threading: HTTPServerThreading

    let handler: any HTTPRequestHandler
    let logger: Logger
    let bodyMemoryLimit: Int
    let waiting = WaitingRequests()
    private let nextConnectionID = Atomic<Int>(0)
    private let daemon = Mutex<DaemonHandle?>(nil)
    private let logTarget: UnsafeMutablePointer<tapedeck_log_target>
    private var tlsStrings: [UnsafeMutablePointer<CChar>] = []
    private var watcher: Thread?

    public init(
        configuration: HTTPServerConfiguration, clock: MonotonicClock, logger: Logger,
        handler: any HTTPRequestHandler
    ) throws {
        self.clock = clock
        self.logger = logger
        self.handler = handler
        threading = configuration.threading
        bodyMemoryLimit = configuration.bodyMemoryLimit
        isTLS = configuration.certificatePEM != nil && configuration.privateKeyPEM != nil
        logTarget = .allocate(capacity: 1)

        let address = try SocketAddress(host: configuration.host, port: configuration.port)
        var flags = MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_ITC.rawValue | MHD_USE_ERROR_LOG.rawValue
        switch threading {
        case .threadPerConnection:
            flags |= MHD_USE_THREAD_PER_CONNECTION.rawValue | MHD_USE_POLL.rawValue
        case .eventLoop:
            flags |= MHD_USE_EPOLL.rawValue | MHD_ALLOW_SUSPEND_RESUME.rawValue
        }
        if address.isIPv6 { flags |= MHD_USE_IPv6.rawValue }
        if isTLS { flags |= MHD_USE_TLS.rawValue }

        var started: OpaquePointer?
        let context = Unmanaged.passUnretained(self).toOpaque()
        withOptions(configuration, address: address) { options in
            started = tapedeck_mhd_start(UInt32(flags), accessHandler, context, options)
        }
        guard let started else {
            // deinit frees logTarget, because every stored property is set by now.
            throw HTTPServerError.startFailed(
                address: address.display,
                detail: "\(String(cString: strerror(errno))) (is the port in use, or the TLS key and certificate mismatched?)")
        }
        port = tapedeck_mhd_bound_port(started)
        daemon.withLock { $0 = DaemonHandle(pointer: started) }
        startWatcher()
        logger.debug("listening", ["http.address": address.display, "http.port": "\(port)"])
    }

    deinit {
        stop()
        logTarget.deallocate()
        tlsStrings.forEach { free($0) }
    }

    /// Stops accepting connections; requests already received still complete.
    public func stopAccepting() {
        daemon.withLock { daemon in
            guard let daemon else { return }
            let socket = MHD_quiesce_daemon(daemon.pointer)
            if socket >= 0 { close(socket) }
        }
    }

    /// Stops the server, closing every connection. Requests still waiting for a
    /// response are cancelled and closed without one; waits for handlers to return.
    public func stop() {
        let running = daemon.withLock { daemon -> DaemonHandle? in
            defer { daemon = nil }
            return daemon
        }
        guard let running else { return }

        // libmicrohttpd must not stop with a connection still suspended, so every
        // waiting request is closed first, and none may start waiting after this.
        for responder in waiting.closeAll() {
            responder.cancel()
            responder.respond(nil)
        }
        MHD_stop_daemon(running.pointer)
    }

    func makeConnectionID() -> Int {
        nextConnectionID.add(1, ordering: .relaxed).newValue
    }

    /// Builds the option array, whose callback contexts all point at this server.
    /// The server outlives the daemon, so unretained pointers are safe.
    private func withOptions(
        _ configuration: HTTPServerConfiguration, address: SocketAddress,
        _ body: (UnsafeMutablePointer<MHD_OptionItem>) -> Void
    ) {
        let context = Unmanaged.passUnretained(self).toOpaque()
        logTarget.initialize(to: tapedeck_log_target(callback: logFromLibrary, context: context))

        // The logger goes first so that messages about the later options reach it.
        var items: [MHD_OptionItem] = [
            option(.EXTERNAL_LOGGER, function: tapedeck_mhd_log_trampoline_pointer(), context: UnsafeMutableRawPointer(logTarget)),
            option(.CONNECTION_MEMORY_LIMIT, value: configuration.headerMemoryLimit),
            option(.CONNECTION_TIMEOUT, value: 0),
            option(.CONNECTION_LIMIT, value: configuration.connectionLimit),
            option(.URI_LOG_CALLBACK, function: unsafeBitCast(beginRequest as MHD_LogUriCallbackPointer, to: UnsafeRawPointer.self), context: context),
            option(.NOTIFY_COMPLETED, function: unsafeBitCast(completeRequest as MHD_CompletedPointer, to: UnsafeRawPointer.self), context: context),
            option(.NOTIFY_CONNECTION, function: unsafeBitCast(notifyConnection as MHD_ConnectionPointer, to: UnsafeRawPointer.self), context: context),
        ]
        if case .eventLoop(let threads) = threading, threads > 1 {
            items.append(option(.THREAD_POOL_SIZE, value: threads))
        }
        if isTLS, let certificate = configuration.certificatePEM, let key = configuration.privateKeyPEM {
            let certificateString = strdup(certificate)!
            let keyString = strdup(key)!
            tlsStrings = [certificateString, keyString]
            items.append(option(.HTTPS_MEM_CERT, pointer: certificateString))
            items.append(option(.HTTPS_MEM_KEY, pointer: keyString))
        }
        address.withSockaddr { sockaddr in
            items.append(option(.SOCK_ADDR, pointer: UnsafeMutableRawPointer(mutating: sockaddr)))
            items.append(MHD_OptionItem(option: .END, value: 0, ptr_value: nil))
            items.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
        }
    }
}

/// A running daemon. libmicrohttpd's calls on it are thread-safe.
private struct DaemonHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}

private typealias MHD_LogUriCallbackPointer = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?, OpaquePointer?) -> UnsafeMutableRawPointer?
private typealias MHD_CompletedPointer = @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, MHD_RequestTerminationCode) -> Void
private typealias MHD_ConnectionPointer = @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, MHD_ConnectionNotificationCode) -> Void

private func option(_ kind: MHD_OPTION, value: Int) -> MHD_OptionItem {
    MHD_OptionItem(option: kind, value: value, ptr_value: nil)
}

private func option(_ kind: MHD_OPTION, pointer: UnsafeMutableRawPointer) -> MHD_OptionItem {
    MHD_OptionItem(option: kind, value: 0, ptr_value: pointer)
}

/// libmicrohttpd takes a callback and its context as two pointers, the first
/// stored in the item's integer field.
private func option(_ kind: MHD_OPTION, function: UnsafeRawPointer?, context: UnsafeMutableRawPointer) -> MHD_OptionItem {
    MHD_OptionItem(option: kind, value: Int(bitPattern: function), ptr_value: context)
}
