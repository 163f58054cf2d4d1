import Dispatch
import Foundation

/// Turns SIGINT and SIGTERM into a value the main thread can wait for, so the
/// recorder shuts down in order instead of dying mid-write.
final class SignalWatcher: @unchecked Sendable {
    private let received = DispatchSemaphore(value: 0)
    private var name = ""
    private var sources: [DispatchSourceSignal] = []

    init() {
        for (number, label) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                name = label
                received.signal()
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Blocks until a signal arrives and returns its name.
    func wait() -> String {
        received.wait()
        return name
    }

    /// Writes to a closed socket must fail with EPIPE rather than kill the process.
    static func ignoreBrokenPipes() {
        signal(SIGPIPE, SIG_IGN)
    }
}
