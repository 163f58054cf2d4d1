import Foundation

/// The first line of a cassette.
public struct CassetteHeader: Codable, Sendable, Equatable {
    /// Always `tapedeck-cassette`, so a stray JSON-lines file is not taken for one.
    public var format: String
    public var version: Int
    /// The tapedeck version that wrote the cassette.
    public var tool: String
    /// The upstream URL with any user information removed.
    public var upstream: String
    /// Wall-clock start of the recording in ISO 8601, UTC.
    public var started: String

    public static let formatName = "tapedeck-cassette"
    public static let currentVersion = 1

    public init(tool: String, upstream: String, started: Date = Date()) {
        self.format = CassetteHeader.formatName
        self.version = CassetteHeader.currentVersion
        self.tool = tool
        self.upstream = upstream
        self.started = ISO8601DateFormatter().string(from: started)
    }
}
