import Foundation

/// The client under test, started with the replay URL in `TAPEDECK_URL` and in
/// place of `{url}` in its arguments. Its output goes to files that are removed
/// when it finishes, so a chatty client cannot block on a full pipe.
final class ClientProcess {
    private let process = Process()
    private let directory: URL
    private let outputFile: URL

    init(_ command: [String], url: String) throws {
        guard let executable = command.first else { throw FuzzError("the client command is empty; give it after --") }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tapedeck-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let output = directory.appendingPathComponent("client.log")
        outputFile = output
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)

        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + command.dropFirst().map { $0.replacingOccurrences(of: "{url}", with: url) }
        process.environment = ProcessInfo.processInfo.environment.merging(["TAPEDECK_URL": url]) { $1 }
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw FuzzError("the client command '\(executable)' could not be started: \(error.localizedDescription)")
        }
    }

    var isRunning: Bool { process.isRunning }

    /// The client's standard output and standard error, kept by `finish()`
    /// before it removes the file.
    private(set) var output = Data()

    /// Ends the client if it still runs (SIGTERM, then SIGKILL after a second) and
    /// returns its exit status, or nil when it had to be stopped.
    func finish() -> Int32? {
        defer {
            output = (try? Data(contentsOf: outputFile)) ?? Data()
            try? FileManager.default.removeItem(at: directory)
        }
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(1)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return nil
    }
}
