import Foundation

/// A forward-only reader over the bytes of one JSON text, for decoding cassette
/// lines without JSONDecoder. JSONDecoder, which first builds a tree of each line,
/// took about half of the time replay needed to load a 101 MB cassette (perf).
///
/// It accepts only strictly valid JSON (RFC 8259) and throws `Rejection` for
/// anything it does not handle: null, escaped keys, numbers that are not plain
/// integers of the requested type, nesting deeper than `maxDepth`. A rejected
/// line is then decoded by JSONDecoder, which decides what it means and words any
/// error, so the cursor only has to be right about what it accepts.
struct JSONCursor {
    struct Rejection: Error {}

    /// The range of a member name inside the text. Names never contain escapes.
    struct Key {
        var start: Int
        var count: Int
    }

    static let maxDepth = 64

    let base: UnsafePointer<UInt8>
    let count: Int
    var position = 0

    /// `bytes` must stay valid for as long as the cursor is used.
    init(_ bytes: UnsafeRawBufferPointer) {
        // An empty buffer may have no base address. Any valid pointer will do then,
        // because `byte(at:)` never reads at or past `count`.
        let empty: StaticString = ""
        base = bytes.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) } ?? empty.utf8Start
        count = bytes.count
    }

    /// Returns the byte at `index`, or 0 past the end. A NUL byte is invalid everywhere in
    /// JSON outside escapes, so callers reject it like any other unexpected byte.
    @inline(__always)
    func byte(at index: Int) -> UInt8 {
        index < count ? base[index] : 0
    }

    var current: UInt8 { byte(at: position) }

    // MARK: - Structure

    mutating func skipWhitespace() {
        while true {
            switch current {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    /// Skips whitespace and then `expected`, or throws.
    mutating func consume(_ expected: UInt8) throws(Rejection) {
        skipWhitespace()
        guard current == expected else { throw Rejection() }
        position += 1
    }

    /// Moves past `{` and returns true when a member follows.
    mutating func enterObject() throws(Rejection) -> Bool {
        try enter(opening: UInt8(ascii: "{"), closing: UInt8(ascii: "}"))
    }

    /// Moves past the `,` before the next member and returns true, or past the
    /// closing `}` and returns false.
    mutating func nextMember() throws(Rejection) -> Bool {
        try nextItem(closing: UInt8(ascii: "}"))
    }

    /// Reads an object, passing each member name to `member`. It reads the value
    /// and returns true, or returns false for an unknown member, which is skipped.
    mutating func readObject(_ member: (inout JSONCursor, Key) throws(Rejection) -> Bool) throws(Rejection) {
        var more = try enterObject()
        while more {
            let key = try readKey()
            if try !member(&self, key) { try skipValue() }
            more = try nextMember()
        }
    }

    /// Moves past `[` and returns true when an element follows.
    mutating func enterArray() throws(Rejection) -> Bool {
        try enter(opening: UInt8(ascii: "["), closing: UInt8(ascii: "]"))
    }

    /// Moves past the `,` before the next element and returns true, or past the
    /// closing `]` and returns false.
    mutating func nextElement() throws(Rejection) -> Bool {
        try nextItem(closing: UInt8(ascii: "]"))
    }

    private mutating func enter(opening: UInt8, closing: UInt8) throws(Rejection) -> Bool {
        try consume(opening)
        skipWhitespace()
        if current == closing {
            position += 1
            return false
        }
        return true
    }

    private mutating func nextItem(closing: UInt8) throws(Rejection) -> Bool {
        skipWhitespace()
        switch current {
        case UInt8(ascii: ","):
            position += 1
            return true
        case closing:
            position += 1
            return false
        default:
            throw Rejection()
        }
    }

    /// Reads a member name and the `:` after it.
    mutating func readKey() throws(Rejection) -> Key {
        try consume(UInt8(ascii: "\""))
        let start = position
        while true {
            let byte = current
            if byte == UInt8(ascii: "\"") { break }
            // Escaped or non-ASCII names are left to JSONDecoder.
            guard byte >= 0x20, byte < 0x80, byte != UInt8(ascii: "\\") else { throw Rejection() }
            position += 1
        }
        let key = Key(start: start, count: position - start)
        position += 1
        try consume(UInt8(ascii: ":"))
        return key
    }

    func key(_ key: Key, is name: StaticString) -> Bool {
        key.count == name.utf8CodeUnitCount && memcmp(base + key.start, name.utf8Start, key.count) == 0
    }

    /// Throws unless only whitespace follows.
    mutating func expectEnd() throws(Rejection) {
        skipWhitespace()
        guard position == count else { throw Rejection() }
    }

    // MARK: - Numbers

    /// Reads an integer written without fraction or exponent.
    mutating func readInt64() throws(Rejection) -> Int64 {
        skipWhitespace()
        let negative = current == UInt8(ascii: "-")
        if negative { position += 1 }
        let magnitude = try readDigits()
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { throw Rejection() }
            return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { throw Rejection() }
        return Int64(magnitude)
    }

    mutating func readInt() throws(Rejection) -> Int {
        Int(try readInt64())
    }

    mutating func readUInt64() throws(Rejection) -> UInt64 {
        skipWhitespace()
        return try readDigits()
    }

    /// Reads `0` or a digit run without a leading zero, rejecting overflow and any
    /// fraction or exponent that follows.
    private mutating func readDigits() throws(Rejection) -> UInt64 {
        let start = position
        var value: UInt64 = 0
        while case let digit = current, digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") {
            let (product, overflow) = value.multipliedReportingOverflow(by: 10)
            let (sum, carry) = product.addingReportingOverflow(UInt64(digit - UInt8(ascii: "0")))
            guard !overflow, !carry else { throw Rejection() }
            value = sum
            position += 1
        }
        let length = position - start
        guard length > 0, length == 1 || byte(at: start) != UInt8(ascii: "0") else { throw Rejection() }
        switch current {
        case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"): throw Rejection()
        default: return value
        }
    }

    // MARK: - Skipping unknown members

    /// Skips one value of any type, checking that it is valid JSON, because
    /// JSONDecoder rejects a line with an invalid value even in a member it ignores.
    mutating func skipValue(depth: Int = 0) throws(Rejection) {
        guard depth < JSONCursor.maxDepth else { throw Rejection() }
        skipWhitespace()
        switch current {
        case UInt8(ascii: "\""):
            _ = try scanString()
        case UInt8(ascii: "{"):
            var more = try enterObject()
            while more {
                _ = try scanString()
                try consume(UInt8(ascii: ":"))
                try skipValue(depth: depth + 1)
                more = try nextMember()
            }
        case UInt8(ascii: "["):
            var more = try enterArray()
            while more {
                try skipValue(depth: depth + 1)
                more = try nextElement()
            }
        case UInt8(ascii: "t"):
            try skipLiteral("true")
        case UInt8(ascii: "f"):
            try skipLiteral("false")
        case UInt8(ascii: "n"):
            try skipLiteral("null")
        default:
            try skipNumber()
        }
    }

    private mutating func skipLiteral(_ literal: StaticString) throws(Rejection) {
        let length = literal.utf8CodeUnitCount
        guard position + length <= count, memcmp(base + position, literal.utf8Start, length) == 0 else {
            throw Rejection()
        }
        position += length
    }

    /// Skips a number of the JSON grammar: `-? int frac? exp?`.
    private mutating func skipNumber() throws(Rejection) {
        if current == UInt8(ascii: "-") { position += 1 }
        if current == UInt8(ascii: "0") {
            position += 1
        } else {
            try skipDigitRun()
        }
        if current == UInt8(ascii: ".") {
            position += 1
            try skipDigitRun()
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            try skipDigitRun()
        }
    }

    private mutating func skipDigitRun() throws(Rejection) {
        let start = position
        while current >= UInt8(ascii: "0") && current <= UInt8(ascii: "9") { position += 1 }
        guard position > start else { throw Rejection() }
    }
}
