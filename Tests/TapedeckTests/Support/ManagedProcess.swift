import Foundation
import XCTest

/// Where the tests find the package, the tapedeck binary and the built peers.
enum Paths {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `scripts/build-peers` puts the Go peers here.
    static let peers = repositoryRoot.appendingPathComponent(".build/peers")

    /// The tapedeck binary that SwiftPM built beside the test bundle.
    static var tapedeck: URL {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0])
        var directory = bundle.deletingLastPathComponent()
        if directory.lastPathComponent == "Contents" || bundle.pathExtension != "xctest" {
            directory = Bundle.main.bundleURL.deletingLastPathComponent()
        }
        return directory.appendingPathComponent("tapedeck")
    }

    static func peer(_ name: String) throws -> URL {
        let url = peers.appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw PeerError("peer '\(url.path)' is missing; run scripts/build-peers (scripts/test does it)")
        }
        return url
    }
}

struct PeerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A child process whose output goes to files, so a chatty peer can never block on
/// a full pipe. Killed when released, so a failing test leaves nothing running.
final class ManagedProcess {
    let process = Process()
    let name: String
    private let outputFile: URL
    private let errorFile: URL

    init(_ executable: URL, _ arguments: [String], environment: [String: String] = [:], directory: URL) throws {
        name = executable.lastPathComponent
        outputFile = directory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8)).out")
        errorFile = directory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8)).err")
        _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)

        process.executableURL = executable
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = try FileHandle(forWritingTo: outputFile)
        process.standardError = try FileHandle(forWritingTo: errorFile)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    var standardOutput: String { (try? String(contentsOf: outputFile, encoding: .utf8)) ?? "" }
    var standardError: String { (try? String(contentsOf: errorFile, encoding: .utf8)) ?? "" }

    func signal(_ number: Int32) {
        if process.isRunning { kill(process.processIdentifier, number) }
    }

    /// Waits for the process to exit and returns its status, killing it and
    /// throwing after `timeout` seconds.
    @discardableResult
    func waitForExit(timeout: TimeInterval) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.01)
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw PeerError("\(name) did not exit within \(timeout) s; stderr:\n\(standardError)")
        }
        return process.terminationStatus
    }

    /// Waits until `file` exists and returns its first line. Both tapedeck and the
    /// vcsim launcher write ready files by renaming a finished temporary file, so
    /// any content is complete.
    func waitForReadyFile(_ file: URL, timeout: TimeInterval = 30) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let text = try? String(contentsOf: file, encoding: .utf8), !text.isEmpty {
                return text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard process.isRunning else {
                throw PeerError("\(name) exited with status \(process.terminationStatus) before it was ready; stderr:\n\(standardError)")
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
        throw PeerError("\(name) was not ready within \(timeout) s; stderr:\n\(standardError)")
    }
}
