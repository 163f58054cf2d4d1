import Foundation
import TapedeckCore
import TapedeckHTTP
import TapedeckReplay

enum ShippedCassette: String {
    case perCall = "govmomi-percall-20vm-c10"
    case shared = "govmomi-shared-20vm-c10"
    case pyvmomi = "pyvmomi-4vm-t4"

    var path: String {
        Paths.repositoryRoot.appendingPathComponent("Cassettes/\(rawValue).cassette").path
    }
}

extension Replayer {
    /// Starts an in-process replayer on a free loopback port.
    static func start(
        _ cassette: String, logHandler: any LogHandler = CapturingLogHandler(),
        configure: (inout ReplayConfiguration) -> Void = { _ in }
    ) throws -> Replayer {
        var configuration = ReplayConfiguration(cassettePath: cassette)
        configure(&configuration)
        return try Replayer(configuration: configuration, logger: Logger(label: "test.replay", level: .debug, handler: logHandler))
    }

    var sdkURL: String { url + "/sdk" }
}

extension Workloads {
    /// The per-call govmomi workload with the shipped cassettes' VM names.
    static func govmomiReplay(url: String, wait: String, waitTimeout: String = "15s", directory: URL) throws -> WorkloadRun {
        try govmomi(
            url: url, password: "not-checked-by-replay", wait: wait, waitTimeout: waitTimeout,
            extra: ["-name-prefix", "tapedeck-vm"], directory: directory)
    }

    static func pyvmomiReplay(url: String, directory: URL) throws -> WorkloadRun {
        try pyvmomi(url: url, password: "not-checked-by-replay", extra: ["--name-prefix", "tapedeck-py"], directory: directory)
    }
}
