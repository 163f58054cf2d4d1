import Foundation

/// Creates an unlinked temporary file and returns its descriptor, so the file
/// disappears when the descriptor closes, even after a crash.
func makeAnonymousFile() -> Int32 {
    let directory = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
    var template = Array("\(directory)/tapedeck-body-XXXXXX".utf8CString)
    let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    if descriptor >= 0 {
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    }
    return descriptor
}

/// Appends bytes to a descriptor, returning false on a write error.
func appendAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
        if written < 0 {
            if errno == EINTR { continue }
            return false
        }
        offset += written
    }
    return true
}

/// Collects a message body in memory until it passes `limit` bytes, then moves it
/// to an anonymous file and appends there.
final class BodyAccumulator {
    private let limit: Int
    private var memory = Data()
    private var descriptor: Int32 = -1
    private(set) var size: Int64 = 0
    private(set) var failed = false

    init(limit: Int) {
        self.limit = limit
    }

    func append(_ bytes: UnsafeRawBufferPointer) {
        size += Int64(bytes.count)
        if descriptor < 0 && memory.count + bytes.count <= limit {
            memory.append(contentsOf: bytes)
            return
        }
        if descriptor < 0 {
            descriptor = makeAnonymousFile()
            guard descriptor >= 0 else { failed = true; return }
            memory.withUnsafeBytes { if !appendAll(descriptor, $0) { failed = true } }
            memory = Data()
        }
        if !appendAll(descriptor, bytes) { failed = true }
    }

    /// Hands the body over; the caller then owns any spool descriptor.
    func take() -> MessageBody {
        if descriptor >= 0 {
            let body = MessageBody.spooled(descriptor: descriptor, size: size)
            descriptor = -1
            return body
        }
        return .inMemory(memory)
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }
}
