/// The versioned ciphertext of one PHI field:
/// `0x01 | dek_version (u32 BE) | nonce (12, random) | ciphertext | tag (16)`.
///
/// The five header bytes are part of the associated data with the field's `FieldContext`, so
/// changing the version byte or moving the value to another tenant, table, column or row makes
/// it fail to open.
public enum FieldCipher {
    /// The format byte of this layout.
    public static let format: UInt8 = 0x01
    static let headerSize = 5
    /// The size of a sealed empty value.
    public static let overhead = headerSize + AES256GCM.nonceSize + AES256GCM.tagSize

    /// Seals `plaintext` for `context` under `key`.
    public static func seal(
        _ plaintext: some Collection<UInt8>,
        with key: DataKey,
        for context: FieldContext
    ) throws -> [UInt8] {
        let header = [format] + key.version.bigEndianBytes
        let nonce = try SecureRandom.bytes(AES256GCM.nonceSize)
        let associatedData = try context.associatedData(header: header)
        var output = header + nonce
        output.reserveCapacity(overhead + plaintext.count)
        let input = Array(plaintext)
        try key.material.withUnsafeBytes { keyBytes in
            try input.withUnsafeBytes { plain in
                try nonce.withUnsafeBytes { nonceBytes in
                    try associatedData.withUnsafeBytes { ad in
                        try AES256GCM.seal(
                            key: keyBytes, nonce: nonceBytes, plaintext: plain, associatedData: ad, appendingTo: &output
                        )
                    }
                }
            }
        }
        return output
    }

    /// The data key version a ciphertext was sealed with, to find the key that opens it.
    public static func keyVersion(of ciphertext: some Collection<UInt8>) throws -> UInt32 {
        guard ciphertext.count >= overhead, ciphertext.first == format else {
            throw SealingError(.malformed, "not an Enclave field ciphertext")
        }
        return UInt32(bigEndianBytes: ciphertext.dropFirst())
    }

    /// Opens a ciphertext sealed for `context`; throws on any tampering, truncation or move.
    public static func open(
        _ ciphertext: some Collection<UInt8>,
        with key: DataKey,
        for context: FieldContext
    ) throws -> [UInt8] {
        let sealed = Array(ciphertext)
        let version = try keyVersion(of: sealed)
        guard version == key.version else {
            throw SealingError(.wrongKeyVersion, "ciphertext needs data key version \(version), not \(key.version)")
        }
        let associatedData = try context.associatedData(header: sealed[0..<headerSize])
        return try key.material.withUnsafeBytes { keyBytes in
            try sealed.withUnsafeBytes { raw in
                try associatedData.withUnsafeBytes { ad in
                    try AES256GCM.open(
                        key: keyBytes,
                        nonce: UnsafeRawBufferPointer(rebasing: raw[headerSize..<(headerSize + AES256GCM.nonceSize)]),
                        ciphertextAndTag: UnsafeRawBufferPointer(rebasing: raw[(headerSize + AES256GCM.nonceSize)...]),
                        associatedData: ad
                    )
                }
            }
        }
    }
}
