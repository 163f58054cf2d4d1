import Foundation
import TapedeckRecord

/// Redraws one status line on the terminal while recording.
final class ProgressDisplay: @unchecked Sendable {
    private let timer: DispatchSourceTimer
    private let output: @Sendable (String) -> Void

    init(recorder: Recorder, output: @escaping @Sendable (String) -> Void) {
        self.output = output
        timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now(), repeating: .milliseconds(500))
        timer.setEventHandler {
            let statistics = recorder.statistics
            let megabytes = String(format: "%.1f", Double(statistics.bytes) / 1_048_576)
            output("\r\u{1B}[Krecording: \(statistics.exchanges) exchanges, \(megabytes) MB, \(statistics.inFlight) in flight, \(statistics.unanswered) unanswered")
        }
        timer.resume()
    }

    func stop() {
        timer.cancel()
        output("\r\u{1B}[K")
    }
}
