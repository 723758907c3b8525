/// A word an engine heard, with when it started in its channel.
public struct HeardWord: Sendable, Equatable {
    public var text: String
    /// Seconds from the start of the recording.
    public var start: Double

    public init(_ text: String, at start: Double) {
        self.text = text
        self.start = start
    }
}

/// Speech to text on this machine. Implementations never open a network connection: the audio
/// and the words are PHI, and no sub-processor may see them.
public protocol Transcriber: Sendable {
    /// The engine and model, as recorded with each transcript ("pocketsphinx-0.8/en-us").
    var engine: String { get }

    /// The words of one channel of 16 kHz mono audio, in order.
    func words(in samples: [Int16]) async throws -> [HeardWord]
}

extension Transcriber {
    /// The sample rate `words(in:)` takes.
    public static var sampleRate: Int { 16_000 }

    /// The text of a call: one channel as it was heard; two channels (a dual-channel call, the
    /// caller first) as turns in time order, each line opened by who spoke.
    public func transcript(of audio: PCMAudio) async throws -> String {
        var channels: [[HeardWord]] = []
        for index in audio.channels.indices {
            channels.append(try await words(in: audio.channel(index, at: Self.sampleRate)))
        }
        return Self.turns(channels)
    }

    /// The lines of a transcript from each channel's words.
    static func turns(_ channels: [[HeardWord]]) -> String {
        guard channels.count > 1 else { return channels.first.map { $0.map(\.text).joined(separator: " ") } ?? "" }
        let speakers = ["Caller", "Practice"]
        let merged = channels.enumerated().flatMap { channel, words in words.map { (channel, $0) } }
            .sorted { ($0.1.start, $0.0) < ($1.1.start, $1.0) }
        var lines: [String] = []
        var current: Int?
        for (channel, word) in merged {
            if channel == current {
                lines[lines.count - 1] += " " + word.text
            } else {
                lines.append("\(speakers[min(channel, speakers.count - 1)]): \(word.text)")
                current = channel
            }
        }
        return lines.joined(separator: "\n")
    }
}
