import Foundation

extension JSONCursor {
    /// A string value found in the text: the bytes between its quotes, still escaped.
    struct StringToken {
        var start: Int
        var end: Int
        var hasEscapes: Bool
    }

    /// Reads a string value.
    mutating func readString() throws(Rejection) -> String {
        let token = try scanString()
        if !token.hasEscapes {
            // The scan checked that the bytes are valid UTF-8, so nothing is repaired.
            return String(decoding: UnsafeBufferPointer(start: base + token.start, count: token.end - token.start), as: UTF8.self)
        }
        let bytes = [UInt8](unsafeUninitializedCapacity: token.end - token.start) { buffer, initialized in
            initialized = buffer.baseAddress.map { unescape(token, into: $0) } ?? 0
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads a string value as its UTF-8 bytes, without building a `String`.
    mutating func readUTF8Data() throws(Rejection) -> Data {
        let token = try scanString()
        let rawCount = token.end - token.start
        guard rawCount > 0 else { return Data() }
        if !token.hasEscapes {
            return Data(bytes: base + token.start, count: rawCount)
        }
        // Unescaping only shrinks the text, so the escaped length is enough room.
        guard let buffer = malloc(rawCount)?.assumingMemoryBound(to: UInt8.self) else { throw Rejection() }
        let written = unescape(token, into: buffer)
        // Shrinking in place returns the unused tail to the allocator.
        let shrunk = realloc(buffer, max(written, 1)) ?? UnsafeMutableRawPointer(buffer)
        return Data(bytesNoCopy: shrunk, count: written, deallocator: .free)
    }

    /// Moves past a string value, checking its escapes and UTF-8, and returns where
    /// its contents are.
    mutating func scanString() throws(Rejection) -> StringToken {
        try consume(UInt8(ascii: "\""))
        let start = position
        var hasEscapes = false
        var hasNonASCII = false
        while true {
            skipPlainASCII()
            let byte = current
            if byte == UInt8(ascii: "\"") { break }
            if byte == UInt8(ascii: "\\") {
                hasEscapes = true
                try skipEscape()
                continue
            }
            // Raw control characters are invalid in JSON strings, and 0 also marks the
            // end of the text.
            guard byte >= 0x20 else { throw Rejection() }
            if byte >= 0x80 { hasNonASCII = true }
            position += 1
        }
        let token = StringToken(start: start, end: position, hasEscapes: hasEscapes)
        position += 1
        // Escapes are ASCII and never split a multi-byte sequence, so checking the
        // escaped bytes checks the decoded ones.
        if hasNonASCII {
            let raw = UnsafeBufferPointer(start: base + start, count: token.end - start)
            guard String(validating: raw, as: UTF8.self) != nil else { throw Rejection() }
        }
        return token
    }

    /// Moves past 8-byte words of printable ASCII that contain no quote or
    /// backslash. Such words are the bulk of a body, and checking them a word at
    /// a time is faster than checking each byte.
    private mutating func skipPlainASCII() {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highBits: UInt64 = 0x8080_8080_8080_8080
        while position + 8 <= count {
            let word = UnsafeRawPointer(base + position).loadUnaligned(as: UInt64.self)
            // A byte is zero in `word ^ (c * ones)` where `word` has byte `c`, and
            // `(x - ones) & ~x & highBits` is nonzero when some byte of x is zero.
            // Bytes below 0x20 show the same way in `word - 0x20 * ones`, and bytes
            // of 0x80 and above have their high bit set in `word` itself.
            let quotes = word ^ (UInt64(UInt8(ascii: "\"")) &* ones)
            let backslashes = word ^ (UInt64(UInt8(ascii: "\\")) &* ones)
            let special = ((quotes &- ones) & ~quotes) | ((backslashes &- ones) & ~backslashes)
                | (word &- 0x20 &* ones) | word
            guard special & highBits == 0 else { return }
            position += 8
        }
    }

    /// Moves past one escape sequence, rejecting unknown escapes and unpaired
    /// UTF-16 surrogates.
    private mutating func skipEscape() throws(Rejection) {
        switch byte(at: position + 1) {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
             UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            position += 2
        case UInt8(ascii: "u"):
            let unit = try hexUnit(at: position + 2)
            position += 6
            if (0xDC00...0xDFFF).contains(unit) { throw Rejection() }
            if (0xD800...0xDBFF).contains(unit) {
                guard byte(at: position) == UInt8(ascii: "\\"), byte(at: position + 1) == UInt8(ascii: "u"),
                      (0xDC00...0xDFFF).contains(try hexUnit(at: position + 2))
                else { throw Rejection() }
                position += 6
            }
        default:
            throw Rejection()
        }
    }

    /// Reads the four hex digits of a `\u` escape starting at `index`.
    private func hexUnit(at index: Int) throws(Rejection) -> UInt32 {
        var unit: UInt32 = 0
        for offset in 0..<4 {
            let digit: UInt8
            switch byte(at: index + offset) {
            case let byte where byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case let byte where byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case let byte where byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw Rejection()
            }
            unit = unit << 4 | UInt32(digit)
        }
        return unit
    }

    /// Writes the decoded bytes of a scanned string to `output` and returns how many
    /// it wrote, at most the escaped length. `scanString` has validated every escape.
    private func unescape(_ token: StringToken, into output: UnsafeMutablePointer<UInt8>) -> Int {
        var written = 0
        var index = token.start
        while index < token.end {
            // Copy the run up to the next backslash in one step.
            let remaining = token.end - index
            let backslash = memchr(base + index, Int32(UInt8(ascii: "\\")), remaining)
                .map { UnsafeRawPointer($0).assumingMemoryBound(to: UInt8.self) - base } ?? token.end
            (output + written).update(from: base + index, count: backslash - index)
            written += backslash - index
            index = backslash
            guard index < token.end else { break }
            index = unescapeOne(at: index, into: output, written: &written)
        }
        return written
    }

    /// Decodes the escape at `index` and returns the index after it.
    private func unescapeOne(at index: Int, into output: UnsafeMutablePointer<UInt8>, written: inout Int) -> Int {
        let simple: UInt8
        switch byte(at: index + 1) {
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "t"): simple = 0x09
        case UInt8(ascii: "u"):
            return unescapeUnicode(at: index, into: output, written: &written)
        case let other: simple = other
        }
        output[written] = simple
        written += 1
        return index + 2
    }

    private func unescapeUnicode(at index: Int, into output: UnsafeMutablePointer<UInt8>, written: inout Int) -> Int {
        // Validated by scanString, so neither call can throw here.
        var scalar = (try? hexUnit(at: index + 2)) ?? 0xFFFD
        var next = index + 6
        if (0xD800...0xDBFF).contains(scalar) {
            let low = (try? hexUnit(at: next + 2)) ?? 0xDC00
            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            next += 6
        }
        var count = written
        UTF8.encode(Unicode.Scalar(scalar) ?? "\u{FFFD}") { unit in
            output[count] = unit
            count += 1
        }
        written = count
        return next
    }
}
