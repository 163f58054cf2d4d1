import Foundation
import TapedeckReplay
import TapedeckVerify

/// A saved fuzz run: enough to replay its decisions and check its verdict.
public struct FuzzSchedule: Codable, Sendable {
    public var tool: String
    public var cassette: String
    /// SHA-256 of the cassette file, so a schedule is not replayed against another.
    public var cassetteSHA256: String
    public var client: [String]
    public var strategy: String
    public var seed: UInt64
    public var depth: Int
    public var settleMilliseconds: Double
    public var hangTimeoutMilliseconds: Double
    public var latency: String
    /// The `--fault` rules of the run, which a reproduction needs too.
    public var faults: [String] = []
    public var steps: [Scheduler.Step]
    public var verdict: VerificationReport

    public static func load(_ path: String) throws -> FuzzSchedule {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw FuzzError("schedule '\(path)' could not be read: \(error.localizedDescription)")
        }
        do {
            return try JSONDecoder().decode(FuzzSchedule.self, from: data)
        } catch {
            throw FuzzError("schedule '\(path)' is not a tapedeck fuzz schedule: \(error)")
        }
    }
}

public struct FuzzError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
