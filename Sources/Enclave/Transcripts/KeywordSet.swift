import Foundation

/// Phrases a practice wants to know its calls mention ("new patient", "insurance"), with a weight
/// toward the call's score. Practice configuration, not PHI.
public struct KeywordSet: Sendable, Equatable, Codable {
    public var id: UUID
    /// Lower case letters, digits, spaces, `_` and `-`; up to 40.
    public var name: String
    /// Normalised (`normalise`): lower case words separated by one space.
    public var phrases: [String]
    /// -10 to 10.
    public var weight: Int

    public init(id: UUID, name: String, phrases: [String], weight: Int) {
        self.id = id
        self.name = name
        self.phrases = phrases
        self.weight = weight
    }

    /// Text as keywords are matched: lower case, runs of anything but letters and digits made one
    /// space (the database normalises phrases the same way, save_keyword_set).
    public static func normalise(_ text: String) -> String {
        var output = ""
        var space = false
        for character in text.lowercased() {
            if character.isASCII && (character.isLetter || character.isNumber) {
                if space && !output.isEmpty { output.append(" ") }
                output.append(character)
                space = false
            } else {
                space = true
            }
        }
        return output
    }
}
