import Foundation
import TapedeckCore
import TapedeckHTTP
import TapedeckRecord
import TapedeckSOAP

struct RecordCommand: Command {
    static let name = "record"
    static let summary = "Record client traffic to vCenter into a new cassette."
    static let usage = "tapedeck record --upstream URL --cassette PATH [options]"
    static let options = """
          --upstream URL         vCenter or ESXi to forward to, such as https://vcenter.example.com (required)
          --cassette PATH        cassette file to create; an existing file is never overwritten (required)
          --listen HOST:PORT     address to listen on (default 127.0.0.1:0; port 0 picks a free port)
          --ready-file FILE      write the listen URL to FILE once the proxy accepts connections
          --insecure             do not verify the upstream's TLS certificate
          --ca-file FILE         verify the upstream's certificate against this PEM CA bundle
          --thumbprint SHA256    accept only an upstream certificate with this SHA-256 thumbprint
          --tls-cert FILE        PEM certificate for an HTTPS listener, with --tls-key
          --tls-key FILE         PEM private key for an HTTPS listener, with --tls-cert
          --tls-self-signed      serve HTTPS with a new self-signed certificate for 127.0.0.1 and localhost
          --redact RULE          also redact header:NAME, element:NAME, json:KEY or regex:PATTERN (repeatable)
          --max-body-bytes N     record bodies up to N bytes; larger ones pass through unrecorded (default 8388608)
          --grace SECONDS        on SIGINT or SIGTERM, let in-flight exchanges finish for this long (default 2)
          --log-level LEVEL      debug, info, warning or error (default info)
          -h, --help             show this help
        """

    enum ListenerTLS {
        case none
        case files(certificate: String, key: String)
        case selfSigned
    }

    var upstream: String
    var cassette: String
    var host = "127.0.0.1"
    var port: UInt16 = 0
    var readyFile: String?
    var trust = UpstreamTrust.verify(caFile: nil)
    var listenerTLS = ListenerTLS.none
    var rules: [RedactionRule] = []
    var maxBodyBytes = 8 << 20
    var graceSeconds = 2.0
    var logLevel = Logger.Level.info

    init(parsing arguments: inout Arguments) throws(UsageError) {
        upstream = try Self.parseUpstream(arguments.requiredValue("--upstream", meaning: "(the vCenter URL to forward to)"))
        cassette = try arguments.requiredValue("--cassette", meaning: "(the cassette file to create)")
        if let listen = try arguments.value("--listen") {
            (host, port) = try Self.parseListen(listen)
        }
        readyFile = try arguments.value("--ready-file")
        try validateOutputFile(readyFile, option: "--ready-file")
        trust = try Self.parseTrust(&arguments)
        listenerTLS = try Self.parseListenerTLS(&arguments)
        for rule in try arguments.values("--redact") {
            do {
                rules.append(try RedactionRule(parsing: rule))
            } catch {
                throw UsageError(error.description)
            }
        }
        if let text = try arguments.value("--max-body-bytes") {
            guard let value = Int(text), value >= 0 else {
                throw .invalid("--max-body-bytes", text, expected: "a whole number of bytes, 0 or more")
            }
            maxBodyBytes = value
        }
        if let text = try arguments.value("--grace") {
            guard let value = Double(text), value >= 0, value.isFinite else {
                throw .invalid("--grace", text, expected: "a number of seconds, 0 or more")
            }
            graceSeconds = value
        }
        logLevel = try parseLogLevel(&arguments)
        try validateCassettePath()
    }

    func run(_ context: CommandContext) throws -> ExitCode {
        let logger = context.logger(label: "tapedeck.record", level: logLevel)
        var configuration = RecorderConfiguration(cassettePath: cassette, upstream: UpstreamConfiguration(origin: upstream))
        configuration.upstream.trust = trust
        configuration.listen.host = host
        configuration.listen.port = port
        configuration.redactionRules = rules
        configuration.maxBodyBytes = maxBodyBytes
        configuration.gracePeriod = .milliseconds(Int(graceSeconds * 1000))
        configuration.toolVersion = "tapedeck \(tapedeckVersion)"
        let thumbprint = try loadListenerTLS(into: &configuration.listen)

        SignalWatcher.ignoreBrokenPipes()
        let signals = SignalWatcher()
        let recorder = try Recorder(configuration: configuration, logger: logger)
        if let thumbprint {
            context.printError("listener certificate SHA-256 thumbprint: \(thumbprint)")
        }
        try announce(recorder.listenURL, readyFile: readyFile, context: context)

        let progress = context.isTerminal ? ProgressDisplay(recorder: recorder, output: context.standardError) : nil
        let signal = signals.wait()
        progress?.stop()
        logger.info("signal received", ["signal": signal])
        try recorder.stop()

        let statistics = recorder.statistics
        context.printError("recorded \(statistics.exchanges) exchanges (\(statistics.unanswered) unanswered) to \(cassette)")
        return .success
    }

    private func validateCassettePath() throws(UsageError) {
        if FileManager.default.fileExists(atPath: cassette) {
            throw UsageError(
                "cassette '\(cassette)' already exists",
                hint: "tapedeck never overwrites a cassette; pass a new --cassette path or move the old file away.")
        }
        let directory = (cassette as NSString).deletingLastPathComponent
        if !directory.isEmpty && !FileManager.default.fileExists(atPath: directory) {
            throw UsageError("the directory '\(directory)' of --cassette does not exist", hint: "Create it first, or pick another path.")
        }
    }
}
