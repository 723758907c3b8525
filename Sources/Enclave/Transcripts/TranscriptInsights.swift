import Foundation
import Sealing

/// What a transcript's keywords say of a call: the keyword sets it matched (tags), a score, and
/// the qualification the score suggests, which a person confirms. Sealed with the lead.
public struct TranscriptInsights: Sendable, Equatable, Codable {
    /// The names of the keyword sets matched, sorted.
    public var tags: [String]
    public var score: Int
    /// `qualified` or `unqualified`: a suggestion, never applied by itself.
    public var suggestion: String

    public init(tags: [String], score: Int, suggestion: String) {
        self.tags = tags
        self.score = score
        self.suggestion = suggestion
    }

    /// The score from which a call is suggested as qualified.
    public static let qualifyingScore = 3

    /// Matches `transcript` against `sets` and scores the call: each matched set adds its weight;
    /// a conversation of a minute or more adds one, of three minutes or more another; a call
    /// missed or sent to voicemail takes one away.
    public static func analyse(
        _ transcript: String, sets: [KeywordSet], durationSeconds: Int?, disposition: String?
    ) -> TranscriptInsights {
        let text = " " + KeywordSet.normalise(transcript) + " "
        let matched = sets.filter { set in set.phrases.contains { text.contains(" " + $0 + " ") } }
        var score = matched.reduce(0) { $0 + $1.weight }
        let seconds = durationSeconds ?? 0
        if seconds >= 60 { score += 1 }
        if seconds >= 180 { score += 1 }
        if let disposition, ["missed", "no-answer", "voicemail", "busy", "failed"].contains(disposition.lowercased()) {
            score -= 1
        }
        return TranscriptInsights(
            tags: matched.map(\.name).sorted(), score: score,
            suggestion: score >= qualifyingScore ? "qualified" : "unqualified")
    }
}

/// The blind-index tokens of a transcript: its redacted form's words (not the labels, not the
/// commonest words) and its tags, each an HMAC under the practice's index key, so that a search
/// or a tag filter is an index lookup and the database learns no word. Only the redacted form is
/// indexed: a name or a number is never a token, so none can be confirmed by guessing.
public enum TranscriptTokens {
    /// Bytes kept of each HMAC: collisions stay negligible, the index stays small.
    static let length = 16
    /// Tokens kept per transcript.
    static let maximum = 2_000

    /// Words too common to search for.
    static let stopWords: Set<String> = [
        "the", "and", "for", "you", "your", "are", "was", "were", "have", "has", "had", "this", "that", "with",
        "but", "not", "can", "will", "would", "could", "should", "what", "when", "where", "who", "how", "all",
        "any", "our", "out", "get", "got", "its", "yes", "okay", "just", "from", "they", "them",
        "there", "then", "than", "too", "very", "about", "into", "let", "like", "one", "well", "yeah", "um", "uh",
        "caller", "practice", "name", "phone", "number", "date", "email", "address",
    ]

    /// The words of `redacted` that are indexed, normalised and without repeats.
    public static func words(of redacted: String) -> [String] {
        var seen = Set<String>()
        var words: [String] = []
        for word in KeywordSet.normalise(redacted).split(separator: " ").map(String.init)
        where word.count >= 3 && !stopWords.contains(word) && !word.contains(where: \.isNumber) {
            if seen.insert(word).inserted { words.append(word) }
            if words.count == maximum { break }
        }
        return words
    }

    /// The token of a word (`word(of:)` normalises it).
    public static func word(_ word: String, _ index: BlindIndex) throws -> [UInt8] {
        Array(try index.index(normalized: "transcript.word:" + KeywordSet.normalise(word)).prefix(length))
    }

    /// The token of a tag (a keyword set's name).
    public static func tag(_ name: String, _ index: BlindIndex) throws -> [UInt8] {
        Array(try index.index(normalized: "transcript.tag:" + name).prefix(length))
    }

    /// Every token of a transcript: its words' and its tags'.
    public static func tokens(redacted: String, tags: [String], _ index: BlindIndex) throws -> [[UInt8]] {
        try words(of: redacted).map { try word($0, index) } + tags.map { try tag($0, index) }
    }
}
