import Foundation
import XCTest

/// Runs the examples in `examples/` as a user would, so that a change to replay
/// which breaks them fails here rather than in a user's suite.
///
/// Each example starts its own `tapedeck replay`, pointed at the binary that
/// SwiftPM built beside this test bundle through `TAPEDECK_BIN`.
final class ExampleTests: DirectoryTestCase {
    /// Runs `command` in the repository root, as the examples' README does, and
    /// fails with its output unless it exits 0.
    private func assertSucceeds(
        _ command: [String], environment: [String: String] = [:], timeout: TimeInterval,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        // ManagedProcess inherits the test's working directory, which need not
        // be the repository root. `env -C` changes it and then execs the
        // command, so the timeout still stops the command itself.
        let process = try ManagedProcess(
            URL(fileURLWithPath: "/usr/bin/env"), ["-C", Paths.repositoryRoot.path] + command,
            environment: environment.merging(["TAPEDECK_BIN": Paths.tapedeck.path]) { $1 },
            directory: directory)
        let status = try process.waitForExit(timeout: timeout)
        XCTAssertEqual(
            status, 0,
            "\(command.joined(separator: " ")) failed\nstdout:\n\(process.standardOutput)\nstderr:\n\(process.standardError)",
            file: file, line: line)
    }

    func testGoExamplePasses() throws {
        // GOPATH mode against Debian's govmomi sources, as scripts/build-peers
        // builds the Go peers. GOFLAGS is cleared so that a developer's own
        // flags cannot change how the example builds.
        var environment = ["GO111MODULE": "off", "GOPATH": "/usr/share/gocode", "GOFLAGS": ""]
        // Go refuses to build without a cache directory, and finds none when
        // HOME and XDG_CACHE_HOME are unset, as they can be in CI. This is the
        // cache that scripts/build-peers falls back to, so govmomi is usually
        // compiled there already.
        let inherited = ProcessInfo.processInfo.environment
        if ["GOCACHE", "HOME", "XDG_CACHE_HOME"].allSatisfy({ (inherited[$0] ?? "").isEmpty }) {
            environment["GOCACHE"] = Paths.peers.appendingPathComponent("gocache").path
        }
        // -count=1 rules out a cached result from an earlier run, which would
        // not show whether the binary under test still passes.
        // The timeout allows for compiling govmomi with an empty build cache.
        try assertSucceeds(["go", "test", "-count=1", "./examples/go/"], environment: environment, timeout: 300)
    }

    func testPytestExamplePasses() throws {
        // The cache provider would leave .pytest_cache in the repository.
        try assertSucceeds(["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/pytest"], timeout: 120)
    }
}
