import CCurl
import Foundation
import TapedeckCore

/// The state of one upstream transfer, which libcurl's callbacks reach through
/// their context pointer.
final class Transfer {
    let clock: MonotonicClock
    let shouldCancel: @Sendable () -> Bool
    let body: BodyAccumulator
    let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))
    var headers: [Header] = []
    var firstByteAt: UInt64?
    var cancelled = false
    var uploadDescriptor: Int32 = -1
    var expectedThumbprint: String?
    var presentedThumbprint: String?
    var handle: UnsafeMutableRawPointer?

    init(clock: MonotonicClock, bodyMemoryLimit: Int, shouldCancel: @escaping @Sendable () -> Bool) {
        self.clock = clock
        self.shouldCancel = shouldCancel
        body = BodyAccumulator(limit: bodyMemoryLimit)
        errorBuffer.initialize(to: 0)
    }

    deinit {
        errorBuffer.deallocate()
    }

    func errorMessage(code: CURLcode) -> String {
        if let expected = expectedThumbprint, code == CURLE_ABORTED_BY_CALLBACK, !cancelled {
            let presented = presentedThumbprint ?? "none"
            return "upstream certificate SHA-256 thumbprint \(presented) does not match --thumbprint \(expected)"
        }
        let detail = String(cString: errorBuffer)
        return detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
    }
}

let receiveHeader: curl_write_callback = { data, size, count, context in
    let length = size * count
    guard let data, let context else { return length }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    if transfer.firstByteAt == nil { transfer.firstByteAt = transfer.clock.elapsed() }

    let line = String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
        .trimmingCharacters(in: .newlines)
    if line.hasPrefix("HTTP/") {
        // A new status line: an interim 1xx response came first, so start over.
        transfer.headers = []
    } else if let colon = line.firstIndex(of: ":") {
        let name = String(line[..<colon])
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        transfer.headers.append(Header(name, value))
    }
    return length
}

let receiveBody: curl_write_callback = { data, size, count, context in
    let length = size * count
    guard let data, let context else { return length }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    transfer.body.append(UnsafeRawBufferPointer(start: data, count: length))
    // Returning a short count makes libcurl fail the transfer with CURLE_WRITE_ERROR.
    return transfer.body.failed ? 0 : length
}

let sendSpooledBody: curl_read_callback = { buffer, size, count, context in
    guard let buffer, let context else { return Int(CURL_READFUNC_ABORT) }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let read = Foundation.read(transfer.uploadDescriptor, buffer, size * count)
    return read < 0 ? Int(CURL_READFUNC_ABORT) : read
}

let checkCancellation: curl_xferinfo_callback = { context, _, _, _, _ in
    guard let context else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    if transfer.shouldCancel() {
        transfer.cancelled = true
        return 1
    }
    return 0
}

/// Compares the leaf certificate's SHA-256 fingerprint with the expected one after
/// the handshake and before the request is sent.
let checkThumbprint: curl_prereq_callback = { context, _, _, _, _ in
    guard let context else { return Int32(CURL_PREREQFUNC_ABORT) }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    guard let handle = transfer.handle, let expected = transfer.expectedThumbprint else {
        return Int32(CURL_PREREQFUNC_ABORT)
    }
    var info: UnsafeMutablePointer<curl_certinfo>?
    guard tapedeck_curl_getinfo_certinfo(handle, &info) == CURLE_OK, let info, info.pointee.num_of_certs > 0,
          let leaf = info.pointee.certinfo[0]
    else { return Int32(CURL_PREREQFUNC_ABORT) }

    var entry: UnsafeMutablePointer<curl_slist>? = leaf
    while let current = entry {
        let field = String(cString: current.pointee.data)
        if field.hasPrefix("Cert:"), let der = Thumbprint.derFromPEM(String(field.dropFirst(5))) {
            let presented = Thumbprint.sha256(der)
            transfer.presentedThumbprint = presented
            return presented == expected ? Int32(CURL_PREREQFUNC_OK) : Int32(CURL_PREREQFUNC_ABORT)
        }
        entry = current.pointee.next
    }
    return Int32(CURL_PREREQFUNC_ABORT)
}
