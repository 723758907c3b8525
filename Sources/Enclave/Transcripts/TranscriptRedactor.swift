import Foundation

/// The minimum-necessary form of a call transcript (issue 30): phone numbers, runs of four or more
/// digits, dates, email addresses, street addresses and the names the platform knows for the call
/// (the caller ID name, a form's name fields, the practice's staff) replaced by labels. It reads
/// what a person said as a recognizer writes it ("five five five one two", "march fourth nineteen
/// eighty two", "john dot miller at gmail dot com") as well as typed forms ("555-0123",
/// "3/4/1982"), and errs toward removing too much: a run of number words that might be four digits
/// goes, and so does every part of a known name.
public struct TranscriptRedactor: Sendable {
    /// What a redacted span was.
    public enum Label: String, Sendable, CaseIterable {
        case name = "[NAME]"
        case phone = "[PHONE]"
        case number = "[NUMBER]"
        case date = "[DATE]"
        case email = "[EMAIL]"
        case address = "[ADDRESS]"
    }

    /// The parts of the names to remove, lowercased (two letters or more).
    private let nameParts: Set<String>

    /// A redactor that also removes every part of `knownNames`.
    public init(knownNames: [String] = []) {
        var parts = Set<String>()
        for name in knownNames {
            for part in name.lowercased().split(whereSeparator: { !$0.isLetter && $0 != "'" }) where part.count >= 2 {
                parts.insert(String(part))
            }
        }
        nameParts = parts
    }

    /// `transcript` with every span found replaced by its label; neighbouring spans of one label
    /// become one label. Lines stay lines (a dual-channel transcript's turns).
    public func redact(_ transcript: String) -> String {
        transcript.split(separator: "\n", omittingEmptySubsequences: false).map { redactLine(String($0)) }
            .joined(separator: "\n")
    }

    /// The label of each of `words` (nil: kept), as `redact` finds them: what the benchmark scores
    /// against a script's known PHI.
    public func labels(of words: [String]) -> [Label?] {
        var labels = [Label?](repeating: nil, count: words.count)
        let tokens = words.map(Token.init)
        markEmails(tokens, &labels)
        markDates(tokens, &labels)
        markAddresses(tokens, &labels)
        markNumbers(tokens, &labels)
        markNames(tokens, &labels)
        return labels
    }

    private func redactLine(_ line: String) -> String {
        let words = line.split(whereSeparator: \.isWhitespace).map(String.init)
        let labels = labels(of: words)
        let tokens = words.map(Token.init)
        var output: [String] = []
        var index = 0
        while index < words.count {
            guard let label = labels[index] else {
                output.append(words[index])
                index += 1
                continue
            }
            // One label for the span, with the punctuation that ended it.
            var end = index
            while end + 1 < words.count, labels[end + 1] == label { end += 1 }
            output.append(label.rawValue + tokens[end].trailingPunctuation)
            index = end + 1
        }
        return output.joined(separator: " ")
    }

    // MARK: - Tokens

    /// A word as the rules read it: lowercased, without the punctuation around it.
    struct Token {
        let text: String
        let trailingPunctuation: String

        init(_ word: String) {
            let lowered = word.lowercased()
            let trimmed = lowered.trimmingCharacters(in: CharacterSet(charactersIn: ",.;:!?\"()[]"))
            text = trimmed
            trailingPunctuation = [",", ".", ";", ":", "?", "!"].first { lowered.hasSuffix($0) } ?? ""
        }

        /// The digits a word stands for: "five" → 1, "twenty" → 2, "555-0123" → 7, "oh" → 1.
        var digits: Int? {
            if let value = TranscriptRedactor.numberWords[text] { return value }
            let characters = text.filter { !"-/.()+".contains($0) }
            guard !characters.isEmpty, characters.allSatisfy(\.isNumber) else {
                if let ordinal = TranscriptRedactor.ordinalWords[text] { return ordinal }
                let stripped = text.replacingOccurrences(of: "(st|nd|rd|th)$", with: "", options: .regularExpression)
                return !stripped.isEmpty && stripped.allSatisfy(\.isNumber) ? stripped.count : nil
            }
            return characters.count
        }

        var isNumeric: Bool { digits != nil || TranscriptRedactor.numberJoiners.contains(text) }
    }

    /// Number words and how many digits each contributes to a run.
    static let numberWords: [String: Int] = {
        var words: [String: Int] = ["zero": 1, "oh": 1, "o": 1, "double": 0, "triple": 0, "hundred": 2, "thousand": 3]
        for word in ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine"] { words[word] = 1 }
        for word in [
            "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
            "nineteen", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
        ] { words[word] = 2 }
        return words
    }()

    static let ordinalWords: [String: Int] = {
        var words: [String: Int] = [:]
        for word in ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth"] {
            words[word] = 1
        }
        for word in [
            "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth",
            "eighteenth", "nineteenth", "twentieth", "thirtieth",
        ] { words[word] = 2 }
        return words
    }()

    /// Words inside a spoken number that carry no digit ("one hundred and five", "five dash two").
    static let numberJoiners: Set<String> = ["and", "dash", "-", "hyphen", "point"]

    static let months: Set<String> = [
        "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
        "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    ]

    static let streetSuffixes: Set<String> = [
        "street", "st", "avenue", "ave", "road", "rd", "drive", "dr", "lane", "ln", "boulevard", "blvd", "court", "ct",
        "way", "place", "pl", "circle", "cir", "parkway", "pkwy", "terrace", "highway", "hwy", "trail", "square",
    ]

    static let topLevelDomains: Set<String> = [
        "com", "net", "org", "edu", "gov", "us", "io", "co", "info", "biz", "me",
    ]

    // MARK: - Rules

    /// Typed addresses, and spoken ones: "<words> at <words> dot com".
    private func markEmails(_ tokens: [Token], _ labels: inout [Label?]) {
        for (index, token) in tokens.enumerated() where token.text.contains("@") && token.text.contains(".") {
            labels[index] = .email
        }
        for index in tokens.indices where tokens[index].text == "at" {
            // The domain: up to six words to a "dot <tld>".
            var end: Int?
            var cursor = index + 1
            while cursor + 1 < tokens.count, cursor <= index + 6 {
                if tokens[cursor].text == "dot", Self.topLevelDomains.contains(tokens[cursor + 1].text) {
                    end = cursor + 1
                    break
                }
                cursor += 1
            }
            guard let end, index > 0 else { continue }
            // The local part: back over words joined by "dot", "underscore" or digits, at least one.
            var start = index - 1
            while start - 2 >= 0, ["dot", "underscore", "dash"].contains(tokens[start - 1].text) { start -= 2 }
            for marked in start...end { labels[marked] = .email }
        }
    }

    /// "3/4/1982", "1982-03-04", and a month with the numbers around it ("march fourth nineteen
    /// eighty two", "the fourth of march", "march 4, 1982").
    private func markDates(_ tokens: [Token], _ labels: inout [Label?]) {
        for (index, token) in tokens.enumerated()
        where token.text.range(of: #"^\d{1,4}[/-]\d{1,2}([/-]\d{1,4})?$"#, options: .regularExpression) != nil {
            labels[index] = .date
        }
        for index in tokens.indices where Self.months.contains(tokens[index].text) {
            // "may" alone is a verb as often as a month: it needs a number next to it.
            var start = index
            var end = index
            var cursor = index + 1
            while cursor < tokens.count, tokens[cursor].isNumeric || tokens[cursor].text == "of" {
                end = cursor
                cursor += 1
            }
            cursor = index - 1
            while cursor >= 0, tokens[cursor].isNumeric || ["of", "the"].contains(tokens[cursor].text) {
                if tokens[cursor].isNumeric { start = cursor }
                cursor -= 1
            }
            guard start < index || end > index else { continue }
            for marked in start...end { labels[marked] = .date }
        }
    }

    /// A house number, up to four words, then a street suffix: "1234 oak street", "twelve
    /// thirty four north elm avenue".
    private func markAddresses(_ tokens: [Token], _ labels: inout [Label?]) {
        for index in tokens.indices where Self.streetSuffixes.contains(tokens[index].text) {
            var cursor = index - 1
            var start: Int?
            var words = 0
            while cursor >= 0, words < 4, !tokens[cursor].isNumeric {
                words += 1
                cursor -= 1
            }
            while cursor >= 0, tokens[cursor].isNumeric {
                start = cursor
                cursor -= 1
            }
            guard let start else { continue }
            var end = index
            // "apartment 4b", "suite two hundred", "unit 7".
            if end + 2 < tokens.count, ["apartment", "apt", "suite", "unit"].contains(tokens[end + 1].text) {
                end += 1
                while end + 1 < tokens.count, tokens[end + 1].isNumeric || tokens[end + 1].text.count <= 2 {
                    end += 1
                }
            }
            for marked in start...end where labels[marked] == nil { labels[marked] = .address }
        }
    }

    /// Runs of number words and digits: seven or more digits, or ten or eleven, are a phone
    /// number; four or more, a number.
    private func markNumbers(_ tokens: [Token], _ labels: inout [Label?]) {
        var index = 0
        while index < tokens.count {
            guard labels[index] == nil, tokens[index].digits != nil else {
                index += 1
                continue
            }
            var end = index
            var digits = 0
            var cursor = index
            while cursor < tokens.count, labels[cursor] == nil, tokens[cursor].isNumeric {
                if let count = tokens[cursor].digits {
                    digits += count
                    end = cursor
                }
                cursor += 1
            }
            // "double five" is two digits, "triple five" three.
            digits += tokens[index...end].filter { $0.text == "double" }.count
            digits += 2 * tokens[index...end].filter { $0.text == "triple" }.count
            if digits >= 4 {
                let label: Label = digits >= 7 ? .phone : .number
                for marked in index...end { labels[marked] = label }
            }
            index = end + 1
        }
    }

    private func markNames(_ tokens: [Token], _ labels: inout [Label?]) {
        guard !nameParts.isEmpty else { return }
        for (index, token) in tokens.enumerated() where labels[index] == nil {
            let bare = token.text.hasSuffix("'s") ? String(token.text.dropLast(2)) : token.text
            if nameParts.contains(bare) { labels[index] = .name }
        }
    }
}
