import COpenSSL

/// AES-256-GCM with 96-bit nonces and 128-bit tags, through OpenSSL EVP.
public enum AES256GCM {
    /// Key length in bytes.
    public static let keySize = 32
    /// Nonce length in bytes.
    public static let nonceSize = 12
    /// Tag length in bytes.
    public static let tagSize = 16

    /// Encrypts `plaintext` and appends ciphertext and tag to `output`.
    public static func seal(
        key: UnsafeRawBufferPointer,
        nonce: UnsafeRawBufferPointer,
        plaintext: UnsafeRawBufferPointer,
        associatedData: UnsafeRawBufferPointer,
        appendingTo output: inout [UInt8]
    ) throws {
        guard key.count == keySize, nonce.count == nonceSize else {
            throw SealingError(.cryptoFailure, "AES-256-GCM needs a 32-byte key and a 12-byte nonce")
        }
        let context = try CipherContext()
        try context.check(EVP_EncryptInit_ex(context.pointer, EVP_aes_256_gcm(), nil, nil, nil))
        try context.check(EVP_CIPHER_CTX_ctrl(context.pointer, EVP_CTRL_GCM_SET_IVLEN, Int32(nonceSize), nil))
        try context.check(EVP_EncryptInit_ex(context.pointer, nil, nil, bytes(key), bytes(nonce)))
        var length: Int32 = 0
        if associatedData.count > 0 {
            try context.check(
                EVP_EncryptUpdate(context.pointer, nil, &length, bytes(associatedData), Int32(associatedData.count)))
        }
        let start = output.count
        output += [UInt8](repeating: 0, count: plaintext.count + tagSize)
        try output.withUnsafeMutableBufferPointer { buffer in
            // The buffer holds at least the tag, so it has storage.
            guard let base = buffer.baseAddress else { throw SealingError(.cryptoFailure, "no output buffer") }
            let out = base + start
            var written: Int32 = 0
            if plaintext.count > 0 {
                try context.check(
                    EVP_EncryptUpdate(context.pointer, out, &written, bytes(plaintext), Int32(plaintext.count)))
            }
            var final: Int32 = 0
            try context.check(EVP_EncryptFinal_ex(context.pointer, out + Int(written), &final))
            try context.check(
                EVP_CIPHER_CTX_ctrl(context.pointer, EVP_CTRL_GCM_GET_TAG, Int32(tagSize), out + plaintext.count))
        }
    }

    /// Verifies and decrypts `ciphertextAndTag`; throws `.authenticationFailed` on any mismatch.
    public static func open(
        key: UnsafeRawBufferPointer,
        nonce: UnsafeRawBufferPointer,
        ciphertextAndTag: UnsafeRawBufferPointer,
        associatedData: UnsafeRawBufferPointer
    ) throws -> [UInt8] {
        guard key.count == keySize, nonce.count == nonceSize else {
            throw SealingError(.cryptoFailure, "AES-256-GCM needs a 32-byte key and a 12-byte nonce")
        }
        guard ciphertextAndTag.count >= tagSize else {
            throw SealingError(.malformed, "ciphertext is shorter than its tag")
        }
        let ciphertextCount = ciphertextAndTag.count - tagSize
        let context = try CipherContext()
        try context.check(EVP_DecryptInit_ex(context.pointer, EVP_aes_256_gcm(), nil, nil, nil))
        try context.check(EVP_CIPHER_CTX_ctrl(context.pointer, EVP_CTRL_GCM_SET_IVLEN, Int32(nonceSize), nil))
        try context.check(EVP_DecryptInit_ex(context.pointer, nil, nil, bytes(key), bytes(nonce)))
        var length: Int32 = 0
        if associatedData.count > 0 {
            try context.check(
                EVP_DecryptUpdate(context.pointer, nil, &length, bytes(associatedData), Int32(associatedData.count)))
        }
        var plaintext = [UInt8](repeating: 0, count: ciphertextCount)
        let verified = try plaintext.withUnsafeMutableBufferPointer { buffer -> Bool in
            var written: Int32 = 0
            if ciphertextCount > 0 {
                try context.check(
                    EVP_DecryptUpdate(
                        context.pointer, buffer.baseAddress, &written, bytes(ciphertextAndTag), Int32(ciphertextCount)))
            }
            // OpenSSL takes the expected tag through a non-const pointer; it only reads it.
            guard let input = ciphertextAndTag.baseAddress else { throw SealingError(.malformed, "empty ciphertext") }
            let tag = UnsafeMutableRawPointer(mutating: input + ciphertextCount)
            try context.check(EVP_CIPHER_CTX_ctrl(context.pointer, EVP_CTRL_GCM_SET_TAG, Int32(tagSize), tag))
            var final: Int32 = 0
            return EVP_DecryptFinal_ex(context.pointer, buffer.baseAddress.map { $0 + Int(written) }, &final) == 1
        }
        guard verified else {
            OPENSSL_cleanse(&plaintext, plaintext.count)
            throw SealingError(.authenticationFailed, "ciphertext failed authentication")
        }
        return plaintext
    }

    private static func bytes(_ buffer: UnsafeRawBufferPointer) -> UnsafePointer<UInt8>? {
        buffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
    }
}

/// An `EVP_CIPHER_CTX`, freed (and wiped by OpenSSL) when released. Used by one thread at a
/// time: `GCMKey` hands each out through its lock.
final class CipherContext: @unchecked Sendable {
    let pointer: OpaquePointer

    init() throws {
        guard let pointer = EVP_CIPHER_CTX_new() else {
            throw SealingError(.cryptoFailure, "OpenSSL could not allocate a cipher context")
        }
        self.pointer = pointer
    }

    deinit { EVP_CIPHER_CTX_free(pointer) }

    func check(_ result: Int32) throws {
        guard result == 1 else {
            ERR_clear_error()
            throw SealingError(.cryptoFailure, "an OpenSSL cipher call failed")
        }
    }
}
