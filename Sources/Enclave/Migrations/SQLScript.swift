/// A SQL file split into single statements, each with the line it starts on.
///
/// Splitting follows PostgreSQL's lexical rules closely enough for migration files: semicolons
/// inside quotes, quoted identifiers, dollar-quoted bodies, comments and parentheses do not end
/// a statement. (SQL-standard `BEGIN ATOMIC` bodies are not supported; use `$$` bodies.)
public struct SQLScript: Sendable {
    /// One statement of the script.
    public struct Statement: Sendable, Equatable {
        /// The statement's text, from its first token to before its semicolon.
        public let text: String
        /// The 1-based line of the file where the statement starts.
        public let line: Int

        /// The file line of a 1-based character `position` reported by the server.
        public func line(atPosition position: Int) -> Int {
            line + text.unicodeScalars.prefix(max(0, position - 1)).filter { $0 == "\n" }.count
        }
    }

    /// The statements, in order.
    public let statements: [Statement]

    /// Splits `source` into statements.
    public init(_ source: String) {
        let scalars = Array(source.unicodeScalars)
        var statements: [Statement] = []
        var index = 0
        var line = 1
        var start: Int?
        var startLine = 0
        var depth = 0

        func isIdentifier(_ scalar: Unicode.Scalar) -> Bool {
            scalar == "_" || scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)
        }
        func advance() {
            if scalars[index] == "\n" { line += 1 }
            index += 1
        }
        func begin() {
            if start == nil {
                start = index
                startLine = line
            }
        }
        func finish() {
            if let begun = start {
                var text = String(String.UnicodeScalarView(scalars[begun..<index]))
                while let last = text.unicodeScalars.last, last.properties.isWhitespace {
                    text.unicodeScalars.removeLast()
                }
                statements.append(Statement(text: text, line: startLine))
            }
            start = nil
            depth = 0
        }

        while index < scalars.count {
            let scalar = scalars[index]
            let next = index + 1 < scalars.count ? scalars[index + 1] : nil
            switch scalar {
            case "-" where next == "-":
                while index < scalars.count, scalars[index] != "\n" { advance() }
            case "/" where next == "*":
                var nesting = 0
                repeat {
                    if scalars[index] == "/", index + 1 < scalars.count, scalars[index + 1] == "*" {
                        nesting += 1
                        advance()
                    } else if scalars[index] == "*", index + 1 < scalars.count, scalars[index + 1] == "/" {
                        nesting -= 1
                        advance()
                    }
                    advance()
                } while index < scalars.count && nesting > 0
            case "'", "\"":
                begin()
                let backslashEscapes =
                    scalar == "'" && index > 0 && (scalars[index - 1] == "E" || scalars[index - 1] == "e")
                    && (index < 2 || !isIdentifier(scalars[index - 2]))
                advance()
                while index < scalars.count {
                    if backslashEscapes, scalars[index] == "\\", index + 1 < scalars.count {
                        advance()
                        advance()
                        continue
                    }
                    if scalars[index] == scalar {
                        advance()
                        // A doubled quote is an escaped quote, not the end.
                        if index < scalars.count, scalars[index] == scalar { advance(); continue }
                        break
                    }
                    advance()
                }
            case "$" where index == 0 || !isIdentifier(scalars[index - 1]):
                begin()
                var end = index + 1
                while end < scalars.count, isIdentifier(scalars[end]),
                    !(end == index + 1 && ("0"..."9").contains(scalars[end]))
                {
                    end += 1
                }
                guard end < scalars.count, scalars[end] == "$" else {
                    advance()
                    continue
                }
                let tag = Array(scalars[index...end])
                while index <= end { advance() }
                while index < scalars.count {
                    if scalars[index] == "$", index + tag.count <= scalars.count,
                        Array(scalars[index..<(index + tag.count)]) == tag
                    {
                        for _ in 0..<tag.count { advance() }
                        break
                    }
                    advance()
                }
            case "(":
                begin()
                depth += 1
                advance()
            case ")":
                begin()
                depth = max(0, depth - 1)
                advance()
            case ";" where depth == 0:
                finish()
                advance()
            default:
                if !scalar.properties.isWhitespace { begin() }
                advance()
            }
        }
        finish()
        self.statements = statements
    }
}
