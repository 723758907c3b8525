/// A tenant's data encryption key (DEK) of one version, unwrapped, for sealing PHI fields.
public struct DataKey: Sendable, CustomStringConvertible {
    /// The key's version; ciphertexts carry it so the right key can be found to open them.
    public let version: UInt32
    /// The 32 key bytes.
    public let material: SecretBytes
    /// The key scheduled for AES-256-GCM, shared by every copy of this value.
    public let cipher: GCMKey

    public init(version: UInt32, material: SecretBytes) throws {
        guard material.count == AES256GCM.keySize else {
            throw SealingError(.malformed, "a data key must be 32 bytes")
        }
        self.version = version
        self.material = material
        cipher = try GCMKey(material: material)
    }

    /// A new random key of `version`.
    public static func generate(version: UInt32) throws -> DataKey {
        try DataKey(version: version, material: SecretBytes(randomCount: AES256GCM.keySize))
    }

    public var description: String { "DataKey(version \(version))" }
}
