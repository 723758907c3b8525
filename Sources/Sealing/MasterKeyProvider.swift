import Foundation

/// Keeps the master keys (KEKs) that wrap tenants' data keys, outside the database.
///
/// The default is `MasterKeyFile`; a KMS (Vault transit, AWS KMS) fits behind the same
/// protocol: `wrap` and `unwrap` become calls to the KMS, with `KeyWrapContext` as its
/// encryption context, and key material never leaves it.
public protocol MasterKeyProvider: Sendable {
    /// A short name for the registry, such as `file`.
    var providerName: String { get }
    /// The master key versions this provider can use.
    var versions: [UInt32] { get }
    /// A non-secret identifier of a version's key, recorded in the database so that a wrong
    /// key is caught at start-up.
    func keyIdentifier(version: UInt32) throws -> String
    /// Wraps `key` under master key `version`, bound to `context`.
    func wrap(_ key: SecretBytes, version: UInt32, context: KeyWrapContext) async throws -> [UInt8]
    /// Unwraps a key wrapped for `context`; the master key version is read from `wrapped`.
    func unwrap(_ wrapped: [UInt8], context: KeyWrapContext) async throws -> SecretBytes
}

/// What a wrapped data key belongs to; bound into the wrapping as associated data, so a wrapped
/// key copied to another tenant, purpose or version fails to unwrap.
public struct KeyWrapContext: Sendable, Hashable {
    public var tenantID: UUID
    public var purpose: String
    public var version: UInt32

    public init(tenantID: UUID, purpose: String, version: UInt32) {
        self.tenantID = tenantID
        self.purpose = purpose
        self.version = version
    }

    func associatedData(header: some Collection<UInt8>) -> [UInt8] {
        let purpose = Array(self.purpose.utf8.prefix(255))
        return Array("enclave.dek.v1".utf8) + tenantID.bytes + UInt16(purpose.count).bigEndianBytes + purpose
            + version.bigEndianBytes + header
    }
}

/// The layout of a wrapped secret: `0x01 | kek_version (u32 BE) | nonce (12) | secret | tag (16)`,
/// AES-256-GCM under the master key with `KeyWrapContext` and the header as associated data.
/// Data keys are 32 bytes; other secrets (TOTP seeds, ingest secrets) may be 16 to 128 bytes.
public enum WrappedKey {
    static let format: UInt8 = 0x01
    static let overhead = 5 + AES256GCM.nonceSize + AES256GCM.tagSize
    /// Bytes in a wrapped 32-byte key.
    public static let size = overhead + 32

    /// The master key version that wrapped `wrapped`.
    public static func masterKeyVersion(of wrapped: some Collection<UInt8>) throws -> UInt32 {
        guard (overhead + 16...overhead + 128).contains(wrapped.count), wrapped.first == format else {
            throw SealingError(.malformed, "not an Enclave wrapped key")
        }
        return UInt32(bigEndianBytes: wrapped.dropFirst())
    }

    static func wrap(_ key: SecretBytes, masterKey: SecretBytes, version: UInt32, context: KeyWrapContext) throws
        -> [UInt8]
    {
        guard (16...128).contains(key.count) else {
            throw SealingError(.malformed, "a wrapped secret has 16 to 128 bytes")
        }
        let header = [format] + version.bigEndianBytes
        let nonce = try SecureRandom.bytes(AES256GCM.nonceSize)
        let associatedData = context.associatedData(header: header)
        var output = header + nonce
        try masterKey.withUnsafeBytes { kek in
            try key.withUnsafeBytes { plain in
                try nonce.withUnsafeBytes { nonceBytes in
                    try associatedData.withUnsafeBytes { ad in
                        try AES256GCM.seal(
                            key: kek, nonce: nonceBytes, plaintext: plain, associatedData: ad, appendingTo: &output)
                    }
                }
            }
        }
        return output
    }

    static func unwrap(_ wrapped: [UInt8], masterKey: SecretBytes, context: KeyWrapContext) throws -> SecretBytes {
        _ = try masterKeyVersion(of: wrapped)
        let associatedData = context.associatedData(header: wrapped[0..<5])
        var plain = try masterKey.withUnsafeBytes { kek in
            try wrapped.withUnsafeBytes { raw in
                try associatedData.withUnsafeBytes { ad in
                    try AES256GCM.open(
                        key: kek,
                        nonce: UnsafeRawBufferPointer(rebasing: raw[5..<17]),
                        ciphertextAndTag: UnsafeRawBufferPointer(rebasing: raw[17...]),
                        associatedData: ad
                    )
                }
            }
        }
        defer { plain.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        return SecretBytes(copying: plain)
    }
}
