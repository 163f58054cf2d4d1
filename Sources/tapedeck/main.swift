import Foundation
import TapedeckCLI

let code = CommandLineTool.main(Array(CommandLine.arguments.dropFirst()))
exit(code.rawValue)
