/// Why audio could not be transcribed. The message names the format or the setting at fault,
/// never what was said.
public struct SpeechError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, for callers that act on it.
    public struct Code: Hashable, Sendable {
        let name: String
        /// The audio is not in a format the decoder reads (WAV with PCM, µ-law or A-law samples).
        public static let unsupportedAudio = Code(name: "unsupportedAudio")
        /// The speech engine could not be started (a missing model, a broken installation).
        public static let engineUnavailable = Code(name: "engineUnavailable")
        /// The engine failed on this audio.
        public static let engineFailed = Code(name: "engineFailed")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
