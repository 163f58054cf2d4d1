import Foundation
import XCTest

/// vcsim from Debian's govmomi 0.24.2, on a free loopback port.
final class VCSim {
    let process: ManagedProcess
    /// The `/sdk` URL, such as `http://127.0.0.1:40123/sdk`.
    let sdkURL: String
    let user = "admin"
    let password: String
    /// The server certificate in PEM, when serving HTTPS.
    let certificateFile: URL?

    var origin: String { String(sdkURL.dropLast("/sdk".count)) }

    init(tls: Bool = false, password: String = Fixtures.distinctivePassword(), directory: URL) throws {
        self.password = password
        let ready = directory.appendingPathComponent("vcsim-\(UUID().uuidString.prefix(8)).url")
        var arguments = ["-listen", "127.0.0.1:0", "-user", user, "-ready-file", ready.path]
        if tls {
            let certificate = directory.appendingPathComponent("vcsim-\(UUID().uuidString.prefix(8)).pem")
            arguments += ["-tls", "-cert-file", certificate.path]
            certificateFile = certificate
        } else {
            certificateFile = nil
        }
        process = try ManagedProcess(
            try Paths.peer("vcsim"), arguments, environment: ["TAPEDECK_PASSWORD": password], directory: directory)
        sdkURL = try process.waitForReadyFile(ready)
    }

    func stop() {
        process.signal(SIGTERM)
        _ = try? process.waitForExit(timeout: 10)
    }
}

/// `tapedeck record` running as a separate process, as users run it.
final class RecorderProcess {
    let process: ManagedProcess
    let cassette: URL
    /// The proxy's base URL, such as `http://127.0.0.1:40124`.
    let url: String

    init(upstream: String, cassette: URL, arguments: [String] = [], directory: URL) throws {
        self.cassette = cassette
        let ready = directory.appendingPathComponent("recorder-\(UUID().uuidString.prefix(8)).url")
        process = try ManagedProcess(
            Paths.tapedeck,
            ["record", "--upstream", upstream, "--cassette", cassette.path, "--ready-file", ready.path] + arguments,
            directory: directory)
        url = try process.waitForReadyFile(ready)
    }

    var sdkURL: String { url + "/sdk" }

    /// Sends SIGTERM and returns the exit status once the cassette is closed.
    @discardableResult
    func stop(timeout: TimeInterval = 20) throws -> Int32 {
        process.signal(SIGTERM)
        return try process.waitForExit(timeout: timeout)
    }
}

/// The JSON line that each workload prints when it ends.
struct WorkloadResult: Decodable, Equatable {
    var completed: Int
    var blocked: Int
    var errors: Int
    var roundTrips: Int?

    enum CodingKeys: String, CodingKey {
        case completed, blocked, errors
        case roundTrips = "round_trips"
    }
}

struct WorkloadRun {
    var status: Int32
    var result: WorkloadResult
    var standardError: String
}

enum Workloads {
    /// Runs the govmomi 0.24.2 workload: `wait` is `percall` or `shared`.
    static func govmomi(
        url: String, password: String, wait: String, vms: Int = 20, concurrency: Int = 10,
        waitTimeout: String = "15s", extra: [String] = [], directory: URL, timeout: TimeInterval = 120
    ) throws -> WorkloadRun {
        let process = try ManagedProcess(
            try Paths.peer("govmomi-workload"),
            ["-url", url, "-user", "admin", "-wait", wait, "-vms", "\(vms)", "-concurrency", "\(concurrency)",
             "-wait-timeout", waitTimeout] + extra,
            environment: ["TAPEDECK_PASSWORD": password], directory: directory)
        let status = try process.waitForExit(timeout: timeout)
        return WorkloadRun(status: status, result: try parse(process), standardError: process.standardError)
    }

    /// Runs the pyvmomi workload from PyPI's pyvmomi.
    static func pyvmomi(
        url: String, password: String, vms: Int = 4, threads: Int = 4, extra: [String] = [], directory: URL,
        timeout: TimeInterval = 180
    ) throws -> WorkloadRun {
        let script = Paths.repositoryRoot.appendingPathComponent("Tests/Peers/pyvmomi/workload.py")
        let process = try ManagedProcess(
            URL(fileURLWithPath: "/usr/bin/env"),
            ["python3", script.path, "--url", url, "--user", "admin", "--vms", "\(vms)", "--threads", "\(threads)"] + extra,
            environment: ["TAPEDECK_PASSWORD": password], directory: directory)
        let status = try process.waitForExit(timeout: timeout)
        return WorkloadRun(status: status, result: try parse(process), standardError: process.standardError)
    }

    private static func parse(_ process: ManagedProcess) throws -> WorkloadResult {
        guard let line = process.standardOutput.split(separator: "\n").last(where: { $0.hasPrefix("{") }) else {
            throw PeerError("\(process.name) printed no JSON result; stderr:\n\(process.standardError)")
        }
        return try JSONDecoder().decode(WorkloadResult.self, from: Data(line.utf8))
    }
}
