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

    /// Seals `plaintext` for `context` under `key`: one allocation, the result.
    public static func seal(
        _ plaintext: some Collection<UInt8>,
        with key: DataKey,
        for context: FieldContext
    ) throws -> [UInt8] {
        try withContiguousBytes(plaintext) { plain in
            try [UInt8](unsafeUninitializedCapacity: overhead + plain.count) { buffer, initialized in
                let output = UnsafeMutableRawBufferPointer(buffer)
                output[0] = format
                withUnsafeBytes(of: key.version.bigEndian) {
                    UnsafeMutableRawBufferPointer(rebasing: output[1..<headerSize]).copyMemory(from: $0)
                }
                let nonce = UnsafeMutableRawBufferPointer(
                    rebasing: output[headerSize..<(headerSize + AES256GCM.nonceSize)])
                try key.cipher.nextNonce(into: nonce)
                try context.withAssociatedData(header: UnsafeRawBufferPointer(rebasing: output[0..<headerSize])) { ad in
                    try key.cipher.seal(
                        nonce: UnsafeRawBufferPointer(nonce), associatedData: ad, plaintext: plain,
                        into: UnsafeMutableRawBufferPointer(rebasing: output[(headerSize + AES256GCM.nonceSize)...]))
                }
                initialized = overhead + plain.count
            }
        }
    }

    /// The data key version a ciphertext was sealed with, to find the key that opens it.
    public static func keyVersion(of ciphertext: some Collection<UInt8>) throws -> UInt32 {
        guard ciphertext.count >= overhead, ciphertext.first == format else {
            throw SealingError(.malformed, "not an Enclave field ciphertext")
        }
        return UInt32(bigEndianBytes: ciphertext.dropFirst())
    }

    /// The same for an array, without the generic path (this runs once per field read).
    public static func keyVersion(of ciphertext: [UInt8]) throws -> UInt32 {
        guard ciphertext.count >= overhead, ciphertext[0] == format else {
            throw SealingError(.malformed, "not an Enclave field ciphertext")
        }
        return UInt32(ciphertext[1]) << 24 | UInt32(ciphertext[2]) << 16 | UInt32(ciphertext[3]) << 8
            | UInt32(ciphertext[4])
    }

    /// Opens a ciphertext sealed for `context`; throws on any tampering, truncation or move.
    public static func open(
        _ ciphertext: some Collection<UInt8>,
        with key: DataKey,
        for context: FieldContext
    ) throws -> [UInt8] {
        try withContiguousBytes(ciphertext) { sealed in
            guard sealed.count >= overhead, sealed[0] == format else {
                throw SealingError(.malformed, "not an Enclave field ciphertext")
            }
            let version = UInt32(bigEndianBytes: sealed[1..<headerSize])
            guard version == key.version else {
                throw SealingError(.wrongKeyVersion, "ciphertext needs data key version \(version), not \(key.version)")
            }
            let count = sealed.count - overhead
            return try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                try context.withAssociatedData(header: UnsafeRawBufferPointer(rebasing: sealed[0..<headerSize])) { ad in
                    try key.cipher.open(
                        nonce: UnsafeRawBufferPointer(
                            rebasing: sealed[headerSize..<(headerSize + AES256GCM.nonceSize)]),
                        associatedData: ad,
                        ciphertextAndTag: UnsafeRawBufferPointer(
                            rebasing: sealed[(headerSize + AES256GCM.nonceSize)...]),
                        into: UnsafeMutableRawBufferPointer(buffer))
                }
                initialized = count
            }
        }
    }
}

/// Lends `bytes` as contiguous raw memory, copying only a collection that has none.
func withContiguousBytes<R>(_ bytes: some Collection<UInt8>, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
    if let result = try bytes.withContiguousStorageIfAvailable({ try body(UnsafeRawBufferPointer($0)) }) {
        return result
    }
    return try Array(bytes).withUnsafeBytes(body)
}
