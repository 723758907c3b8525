/// An error from sealing, opening, key handling or hashing.
///
/// Its description is safe to show anyone: it never contains key material, plaintext or
/// ciphertext bytes.
public struct SealingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// The ciphertext, tag or associated data do not match: tampered, truncated, moved or wrong key.
        public static let authenticationFailed = Code("authenticationFailed")
        /// The input is not in the expected format (too short, unknown format byte, bad field).
        public static let malformed = Code("malformed")
        /// The ciphertext names a key version other than the key offered to open it.
        public static let wrongKeyVersion = Code("wrongKeyVersion")
        /// No key of the needed version is available (never created, or destroyed).
        public static let keyUnavailable = Code("keyUnavailable")
        /// OpenSSL's random generator failed; nothing random was produced.
        public static let randomUnavailable = Code("randomUnavailable")
        /// An OpenSSL call failed unexpectedly.
        public static let cryptoFailure = Code("cryptoFailure")
        /// The master key file is missing, unreadable, too open or malformed.
        public static let masterKeyFile = Code("masterKeyFile")
        /// The value is not a phone number that can be normalized to E.164.
        public static let invalidPhoneNumber = Code("invalidPhoneNumber")
        public static let invalidEmailAddress = Code("invalidEmailAddress")
        /// A stream of chunks ended early, or went on after its last chunk.
        public static let streamIncomplete = Code("streamIncomplete")
        public var description: String { name }
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }

    public static func == (lhs: SealingError, rhs: SealingError) -> Bool { lhs.code == rhs.code }
}
