import Foundation
import TapedeckCore

/// Parses the command line, runs one subcommand and returns its exit code.
public enum CommandLineTool {
    static var commands: [any Command.Type] {
        [
            RecordCommand.self, ReplayCommand.self, VerifyCommand.self, FuzzCommand.self, InspectCommand.self, CatCommand.self, ScanCommand.self,
        ]
    }

    static var overview: String {
        let width = commands.map { $0.name.count }.max() ?? 0
        let lines = commands.map { "  \($0.name.padding(toLength: width, withPad: " ", startingAt: 0))  \($0.summary)" }
        return """
            tapedeck \(tapedeckVersion): record, replay, verify and fuzz vSphere API traffic.

            Usage: tapedeck <command> [options]

            Commands:
            \(lines.joined(separator: "\n"))

            Run 'tapedeck <command> --help' for a command's options.
            """
    }

    public static func main(_ arguments: [String], context: CommandContext = .process) -> ExitCode {
        guard let name = arguments.first else {
            context.printError(overview)
            return .usage
        }
        if ["-h", "--help", "help"].contains(name) {
            if name == "help", arguments.count > 1, let command = command(named: arguments[1]) {
                context.print(command.help)
            } else {
                context.print(overview)
            }
            return .success
        }
        if name == "--version" {
            context.print("tapedeck \(tapedeckVersion)")
            return .success
        }
        guard let type = command(named: name) else {
            context.printError("Error: unknown command '\(name)'\n\n\(overview)")
            return .usage
        }
        return run(type, arguments: Array(arguments.dropFirst()), context: context)
    }

    private static func command(named name: String) -> (any Command.Type)? {
        commands.first { $0.name == name }
    }

    private static func run(_ type: any Command.Type, arguments: [String], context: CommandContext) -> ExitCode {
        var remaining = Arguments(arguments)
        if remaining.flag("-h", "--help") {
            context.print(type.help)
            return .success
        }
        let command: any Command
        do {
            command = try type.init(parsing: &remaining)
            try remaining.finish()
        } catch {
            let hint = error.hint ?? "Run 'tapedeck \(type.name) --help' for all options."
            context.printError("Error: \(error.message)\n\nUsage: \(type.usage)\n\nHint: \(hint)")
            return .usage
        }
        do {
            return try command.run(context)
        } catch {
            context.printError("Error: \(error)")
            return .usage
        }
    }
}
