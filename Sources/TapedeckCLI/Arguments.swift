import Foundation

/// The words after the subcommand. Options are taken out as a command reads them;
/// whatever remains at the end is an error, so typos never pass silently.
struct Arguments {
    private var words: [String]

    init(_ words: [String]) {
        self.words = words
    }

    var isEmpty: Bool { words.isEmpty }

    /// Removes a flag such as `--insecure`, returning whether it was present.
    mutating func flag(_ names: String...) -> Bool {
        let before = words.count
        words.removeAll { names.contains($0) }
        return words.count != before
    }

    /// Removes every `--name VALUE` or `--name=VALUE`, returning the values in order.
    mutating func values(_ name: String) throws(UsageError) -> [String] {
        var found: [String] = []
        var index = 0
        while index < words.count {
            let word = words[index]
            if word == name {
                guard index + 1 < words.count, !words[index + 1].hasPrefix("--") else {
                    throw UsageError("\(name) needs a value")
                }
                found.append(words[index + 1])
                words.removeSubrange(index...index + 1)
            } else if word.hasPrefix(name + "=") {
                found.append(String(word.dropFirst(name.count + 1)))
                words.remove(at: index)
            } else {
                index += 1
            }
        }
        return found
    }

    /// Removes an option that may appear at most once.
    mutating func value(_ name: String) throws(UsageError) -> String? {
        let found = try values(name)
        guard found.count <= 1 else { throw UsageError("\(name) was given \(found.count) times; give it once") }
        return found.first
    }

    mutating func requiredValue(_ name: String, meaning: String) throws(UsageError) -> String {
        guard let value = try value(name) else {
            // A typo in a required option should be named as such, not reported as
            // the option missing.
            if let typo = words.first(where: { $0.hasPrefix("--") && editDistance($0, name) <= 2 }) {
                throw UsageError("unknown option '\(typo)'; did you mean \(name)?")
            }
            throw UsageError("missing \(name) \(meaning)")
        }
        return value
    }

    /// Removes and returns the words after `--`, which belong to another command.
    mutating func trailingCommand() -> [String] {
        guard let separator = words.firstIndex(of: "--") else { return [] }
        let command = Array(words[(separator + 1)...])
        words.removeSubrange(separator...)
        return command
    }

    /// Removes and returns the first word that is not an option.
    mutating func positional() -> String? {
        guard let index = words.firstIndex(where: { !$0.hasPrefix("-") || $0 == "-" }) else { return nil }
        return words.remove(at: index)
    }

    /// Rejects anything left over.
    func finish() throws(UsageError) {
        guard let first = words.first else { return }
        if first.hasPrefix("-") { throw UsageError("unknown option '\(first)'") }
        throw UsageError("unexpected argument '\(first)'")
    }
}

/// Returns the Levenshtein distance between two option names.
func editDistance(_ left: String, _ right: String) -> Int {
    let a = Array(left)
    let b = Array(right)
    guard !a.isEmpty else { return b.count }
    guard !b.isEmpty else { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
            current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
        }
        previous = current
    }
    return previous[b.count]
}

/// Rejects an output file whose directory does not exist, before any work starts,
/// so a typo does not surface only after a long replay or fuzz run.
func validateOutputFile(_ path: String?, option: String) throws(UsageError) {
    guard let path else { return }
    let directory = (path as NSString).deletingLastPathComponent
    if !directory.isEmpty && !FileManager.default.fileExists(atPath: directory) {
        throw UsageError("the directory '\(directory)' of \(option) does not exist", hint: "Create it first, or pick another path.")
    }
}

extension UsageError {
    static func invalid(_ option: String, _ value: String, expected: String) -> UsageError {
        UsageError("invalid value '\(value)' for \(option); expected \(expected)")
    }
}
