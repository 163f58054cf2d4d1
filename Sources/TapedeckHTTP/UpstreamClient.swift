import CCurl
import Foundation
import Synchronization
import TapedeckCore

/// How to trust the upstream's TLS certificate.
public enum UpstreamTrust: Sendable, Equatable {
    /// Verify against the system's CA store, or against this CA file.
    case verify(caFile: String?)
    /// Accept any certificate whose SHA-256 fingerprint matches, the way vSphere
    /// clients pin a self-signed vCenter certificate.
    case thumbprint(String)
    /// Accept any certificate.
    case insecure
}

public struct UpstreamConfiguration: Sendable {
    /// Scheme, host and port of the server; each request's own path is appended.
    public var origin: String
    public var trust: UpstreamTrust = .verify(caFile: nil)
    /// Response bodies above this many bytes are spooled to an anonymous file.
    public var bodyMemoryLimit = 8 << 20
    public var connectTimeoutSeconds = 10

    public init(origin: String) {
        self.origin = origin
    }
}

public struct UpstreamResponse: Sendable {
    public var status: Int
    public var headers: [Header]
    public var body: MessageBody
    /// Clock readings when the first response byte and the last body byte arrived.
    public var startedAt: UInt64
    public var completedAt: UInt64
}

/// A failed upstream exchange: the libcurl call and code, libcurl's message, and
/// whether the caller cancelled it.
public struct UpstreamError: Error, Sendable, CustomStringConvertible {
    public var call: String
    public var code: Int
    public var message: String
    public var cancelled: Bool
    public var at: UInt64

    public init(call: String, code: Int, message: String, cancelled: Bool, at: UInt64) {
        self.call = call
        self.code = code
        self.message = message
        self.cancelled = cancelled
        self.at = at
    }

    public var description: String {
        code == 0 ? "\(call): \(message)" : "\(call) failed with CURLcode \(code): \(message)"
    }
}

/// Sends requests upstream with libcurl, reusing connections: each pooled easy
/// handle keeps its connection open between requests.
public final class UpstreamClient: @unchecked Sendable {
    public let configuration: UpstreamConfiguration
    private let clock: MonotonicClock
    private let pool = Mutex<[EasyHandle]>([])

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    public init(configuration: UpstreamConfiguration, clock: MonotonicClock) {
        _ = UpstreamClient.globalInit
        self.configuration = configuration
        self.clock = clock
    }

    deinit {
        pool.withLock { handles in
            handles.forEach { curl_easy_cleanup($0.pointer) }
            handles.removeAll()
        }
    }

    /// Sends one request and waits for the whole response. `shouldCancel` is polled
    /// during the transfer, at least once a second while the upstream is silent,
    /// and a true result abandons the request.
    public func send(
        method: String, path: String, headers: [Header], body: MessageBody,
        shouldCancel: @escaping @Sendable () -> Bool
    ) -> Result<UpstreamResponse, UpstreamError> {
        let handle = checkOut()
        defer { checkIn(handle) }

        let transfer = Transfer(clock: clock, bodyMemoryLimit: configuration.bodyMemoryLimit, shouldCancel: shouldCancel)
        transfer.handle = handle.pointer
        let headerList = makeHeaderList(headers)
        defer { curl_slist_free_all(headerList) }

        let code = withExtendedLifetime(transfer) { () -> CURLcode in
            configure(handle.pointer, method: method, path: path, headers: headerList, body: body, transfer: transfer)
            return perform(handle.pointer, body: body)
        }
        guard code == CURLE_OK else {
            return .failure(UpstreamError(
                call: "curl_easy_perform", code: Int(code.rawValue), message: transfer.errorMessage(code: code),
                cancelled: code == CURLE_ABORTED_BY_CALLBACK && transfer.cancelled, at: clock.elapsed()))
        }
        if transfer.body.failed {
            return .failure(UpstreamError(
                call: "write", code: 0, message: "could not spool the response body to a temporary file",
                cancelled: false, at: clock.elapsed()))
        }
        var status = 0
        tapedeck_curl_getinfo_long(handle.pointer, CURLINFO_RESPONSE_CODE, &status)
        return .success(UpstreamResponse(
            status: status, headers: transfer.headers, body: transfer.body.take(),
            startedAt: transfer.firstByteAt ?? clock.elapsed(), completedAt: clock.elapsed()))
    }

    private func configure(
        _ handle: UnsafeMutableRawPointer, method: String, path: String, headers: UnsafeMutablePointer<curl_slist>?,
        body: MessageBody, transfer: Transfer
    ) {
        curl_easy_reset(handle)
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        tapedeck_curl_setopt_pointer(handle, CURLOPT_URL, configuration.origin + path)
        tapedeck_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        tapedeck_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT, configuration.connectTimeoutSeconds)
        tapedeck_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, headers)
        tapedeck_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, transfer.errorBuffer)
        tapedeck_curl_setopt_write(handle, CURLOPT_HEADERFUNCTION, receiveHeader)
        tapedeck_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, context)
        tapedeck_curl_setopt_write(handle, CURLOPT_WRITEFUNCTION, receiveBody)
        tapedeck_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, context)
        tapedeck_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0)
        tapedeck_curl_setopt_xferinfo(handle, CURLOPT_XFERINFOFUNCTION, checkCancellation)
        tapedeck_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, context)
        configureTrust(handle, transfer: transfer)

        switch (method, body) {
        case ("GET", .inMemory(let data)) where data.isEmpty:
            tapedeck_curl_setopt_long(handle, CURLOPT_HTTPGET, 1)
        case ("HEAD", _):
            tapedeck_curl_setopt_long(handle, CURLOPT_NOBODY, 1)
        case (_, .inMemory):
            tapedeck_curl_setopt_pointer(handle, CURLOPT_CUSTOMREQUEST, method)
        case (_, .spooled(let descriptor, let size)):
            lseek(descriptor, 0, SEEK_SET)
            transfer.uploadDescriptor = descriptor
            tapedeck_curl_setopt_pointer(handle, CURLOPT_CUSTOMREQUEST, method)
            tapedeck_curl_setopt_long(handle, CURLOPT_UPLOAD, 1)
            tapedeck_curl_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(size))
            tapedeck_curl_setopt_read(handle, CURLOPT_READFUNCTION, sendSpooledBody)
            tapedeck_curl_setopt_pointer(handle, CURLOPT_READDATA, context)
        }
    }

    /// Runs the transfer. An in-memory body is passed by pointer, so it must stay
    /// alive for the whole call.
    private func perform(_ handle: UnsafeMutableRawPointer, body: MessageBody) -> CURLcode {
        guard case .inMemory(let data) = body, !data.isEmpty else {
            return curl_easy_perform(handle)
        }
        return data.withUnsafeBytes { buffer in
            tapedeck_curl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(buffer.count))
            tapedeck_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, buffer.baseAddress)
            return curl_easy_perform(handle)
        }
    }

    private func configureTrust(_ handle: UnsafeMutableRawPointer, transfer: Transfer) {
        switch configuration.trust {
        case .verify(let caFile):
            if let caFile { tapedeck_curl_setopt_pointer(handle, CURLOPT_CAINFO, caFile) }
        case .insecure:
            tapedeck_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 0)
            tapedeck_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 0)
        case .thumbprint(let expected):
            // Chain verification is off, and the fingerprint check runs after the TLS
            // handshake but before any request byte is sent.
            tapedeck_curl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 0)
            tapedeck_curl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 0)
            tapedeck_curl_setopt_long(handle, CURLOPT_CERTINFO, 1)
            transfer.expectedThumbprint = Thumbprint.normalize(expected)
            tapedeck_curl_setopt_prereq(handle, checkThumbprint)
            tapedeck_curl_setopt_pointer(handle, CURLOPT_PREREQDATA, Unmanaged.passUnretained(transfer).toOpaque())
        }
    }

    private func makeHeaderList(_ headers: [Header]) -> UnsafeMutablePointer<curl_slist>? {
        var list: UnsafeMutablePointer<curl_slist>?
        for header in headers where !UpstreamClient.notForwarded.contains(header.name.lowercased()) {
            list = curl_slist_append(list, "\(header.name): \(header.value)")
        }
        // An empty value stops libcurl from adding the header itself.
        for suppressed in ["Expect:", "Accept:"] where !headers.contains(where: { suppressed.lowercased().hasPrefix($0.name.lowercased() + ":") }) {
            list = curl_slist_append(list, suppressed)
        }
        return list
    }

    /// Hop-by-hop headers, plus `Host` (libcurl sets it for the upstream) and
    /// `Accept-Encoding`, dropped so the upstream answers uncompressed and the
    /// cassette stores readable bodies.
    static let notForwarded: Set<String> = hopByHopHeaders.union(["host", "expect", "accept-encoding"])

    private func checkOut() -> EasyHandle {
        if let handle = pool.withLock({ $0.popLast() }) { return handle }
        return EasyHandle(pointer: curl_easy_init()!)
    }

    private func checkIn(_ handle: EasyHandle) {
        pool.withLock { $0.append(handle) }
    }
}

private struct EasyHandle: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
}
