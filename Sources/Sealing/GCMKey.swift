import COpenSSL
import Synchronization

/// AES-256-GCM under one key with its key schedule done once: a few EVP contexts that already
/// hold the expanded key, each lent to one caller at a time (so the key is safe to use from many
/// threads), and nonces from a per-instance counter instead of the random number generator.
/// Neither takes a lock: a nonce is one atomic increment, borrowing a context one atomic
/// compare-and-exchange on a bit mask, returning it one atomic AND.
///
/// Nonces are `prefix (8 bytes, random per instance) | counter (4 bytes BE)`. Every instance
/// draws its own prefix (and a new one after 2^32 nonces), so two instances of the same key, in
/// this process or another, repeat a nonce only if they draw the same 64-bit prefix.
public final class GCMKey: @unchecked Sendable {
    // @unchecked: `slots` is shared mutable memory; slot i of a direction is touched only by the
    // caller holding bit i of that direction's mask (acquired with a compare-and-exchange that
    // orders acquiring, released with an AND that orders releasing), so never by two at once.

    private let material: SecretBytes
    /// The first 2^32 - 1 nonces: the prefix drawn at creation and a counter.
    private let prefix: UInt64
    private let counter = Atomic<UInt64>(0)
    /// After those, each nonce under the lock, with a fresh prefix every 2^32.
    private let overflow: Mutex<(prefix: UInt64, counter: UInt32)>
    /// Contexts kept per direction (bit i of a mask set while slot i is lent); more concurrent
    /// callers make their own and drop them after.
    private static let poolSize = 16
    /// The bits above `poolSize` start set, so they are never lent.
    private static let noSlot = UInt32.max << UInt32(poolSize)
    private let encryptorsLent = Atomic<UInt32>(noSlot)
    private let decryptorsLent = Atomic<UInt32>(noSlot)
    private let slots: UnsafeMutablePointer<CipherContext?>

    public init(material: SecretBytes) throws {
        guard material.count == AES256GCM.keySize else {
            throw SealingError(.malformed, "an AES-256-GCM key must be 32 bytes")
        }
        self.material = material
        prefix = try Self.randomPrefix()
        overflow = Mutex((prefix: try Self.randomPrefix(), counter: 0))
        slots = .allocate(capacity: 2 * Self.poolSize)
        slots.initialize(repeating: nil, count: 2 * Self.poolSize)
    }

    deinit {
        slots.deinitialize(count: 2 * Self.poolSize)
        slots.deallocate()
    }

    private static func randomPrefix() throws -> UInt64 {
        var prefix: UInt64 = 0
        try withUnsafeMutableBytes(of: &prefix) { try SecureRandom.fill($0) }
        return prefix
    }

    /// Writes a fresh 12-byte nonce to `nonce`.
    public func nextNonce(into nonce: UnsafeMutableRawBufferPointer) throws {
        precondition(nonce.count == AES256GCM.nonceSize)
        var prefix = self.prefix
        let taken = counter.wrappingAdd(1, ordering: .relaxed).oldValue
        var counter = UInt32(truncatingIfNeeded: taken)
        if taken >= UInt64(UInt32.max) {
            // 2^32 - 1 nonces under the first prefix: the rest come from the overflow state,
            // which draws a new prefix (outside the lock) when its counter runs out.
            let fresh = try Self.randomPrefix()
            (prefix, counter) = overflow.withLock { state in
                if state.counter == UInt32.max { state = (fresh, 0) }
                defer { state.counter += 1 }
                return (state.prefix, state.counter)
            }
        }
        withUnsafeBytes(of: prefix.bigEndian) {
            UnsafeMutableRawBufferPointer(rebasing: nonce[0..<8]).copyMemory(from: $0)
        }
        withUnsafeBytes(of: counter.bigEndian) {
            UnsafeMutableRawBufferPointer(rebasing: nonce[8..<12]).copyMemory(from: $0)
        }
    }

    /// Encrypts `plaintext` under `nonce` with `associatedData`, writing ciphertext then tag to
    /// `output`, which must hold `plaintext.count + 16` bytes.
    public func seal(
        nonce: UnsafeRawBufferPointer, associatedData: UnsafeRawBufferPointer, plaintext: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) throws {
        guard nonce.count == AES256GCM.nonceSize, output.count >= plaintext.count + AES256GCM.tagSize,
            plaintext.count <= Int(Int32.max), associatedData.count <= Int(Int32.max)
        else { throw SealingError(.cryptoFailure, "AES-256-GCM needs a 12-byte nonce and room for the tag") }
        try withContext(encrypting: true) { context in
            try context.check(EVP_EncryptInit_ex(context.pointer, nil, nil, nil, bytes(nonce)))
            var length: Int32 = 0
            if associatedData.count > 0 {
                try context.check(
                    EVP_EncryptUpdate(context.pointer, nil, &length, bytes(associatedData), Int32(associatedData.count))
                )
            }
            guard let out = output.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
                throw SealingError(.cryptoFailure, "no output buffer")
            }
            var written: Int32 = 0
            if plaintext.count > 0 {
                try context.check(
                    EVP_EncryptUpdate(context.pointer, out, &written, bytes(plaintext), Int32(plaintext.count)))
            }
            var final: Int32 = 0
            try context.check(EVP_EncryptFinal_ex(context.pointer, out + Int(written), &final))
            try context.check(
                EVP_CIPHER_CTX_ctrl(
                    context.pointer, EVP_CTRL_GCM_GET_TAG, Int32(AES256GCM.tagSize), out + plaintext.count))
        }
    }

    /// Verifies and decrypts `ciphertextAndTag` into `output` (which must hold the ciphertext's
    /// length); throws `.authenticationFailed` on any mismatch, after wiping what it wrote.
    public func open(
        nonce: UnsafeRawBufferPointer, associatedData: UnsafeRawBufferPointer,
        ciphertextAndTag: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    ) throws {
        guard ciphertextAndTag.count >= AES256GCM.tagSize else {
            throw SealingError(.malformed, "ciphertext is shorter than its tag")
        }
        let count = ciphertextAndTag.count - AES256GCM.tagSize
        guard nonce.count == AES256GCM.nonceSize, output.count >= count, associatedData.count <= Int(Int32.max),
            count <= Int(Int32.max)
        else { throw SealingError(.cryptoFailure, "AES-256-GCM needs a 12-byte nonce and room for the plaintext") }
        let verified = try withContext(encrypting: false) { context -> Bool in
            try context.check(EVP_DecryptInit_ex(context.pointer, nil, nil, nil, bytes(nonce)))
            var length: Int32 = 0
            if associatedData.count > 0 {
                try context.check(
                    EVP_DecryptUpdate(context.pointer, nil, &length, bytes(associatedData), Int32(associatedData.count))
                )
            }
            let out = output.baseAddress?.assumingMemoryBound(to: UInt8.self)
            var written: Int32 = 0
            if count > 0 {
                try context.check(
                    EVP_DecryptUpdate(context.pointer, out, &written, bytes(ciphertextAndTag), Int32(count)))
            }
            // OpenSSL takes the expected tag through a non-const pointer; it only reads it.
            guard let input = ciphertextAndTag.baseAddress else { throw SealingError(.malformed, "empty ciphertext") }
            let tag = UnsafeMutableRawPointer(mutating: input + count)
            try context.check(EVP_CIPHER_CTX_ctrl(context.pointer, EVP_CTRL_GCM_SET_TAG, Int32(AES256GCM.tagSize), tag))
            var final: Int32 = 0
            return EVP_DecryptFinal_ex(context.pointer, out.map { $0 + Int(written) }, &final) == 1
        }
        guard verified else {
            if count > 0 { OPENSSL_cleanse(output.baseAddress, count) }
            ERR_clear_error()
            throw SealingError(.authenticationFailed, "ciphertext failed authentication")
        }
    }

    /// Lends a context with this key scheduled to `body`, then returns it to its slot.
    private func withContext<T>(encrypting: Bool, _ body: (CipherContext) throws -> T) throws -> T {
        let bit = encrypting ? Self.lend(encryptorsLent) : Self.lend(decryptorsLent)
        guard bit != 0 else {
            // Every slot is lent: a context of this call's own.
            return try body(try makeContext(encrypting: encrypting))
        }
        defer {
            if encrypting {
                encryptorsLent.bitwiseAnd(~bit, ordering: .releasing)
            } else {
                decryptorsLent.bitwiseAnd(~bit, ordering: .releasing)
            }
        }
        let slot = slots + (encrypting ? 0 : Self.poolSize) + bit.trailingZeroBitCount
        if slot.pointee == nil { slot.pointee = try makeContext(encrypting: encrypting) }
        guard let context = slot.pointee else { throw SealingError(.cryptoFailure, "no cipher context") }
        return try body(context)
    }

    /// Sets the lowest clear bit of `lent` and returns it; 0 when every slot is lent.
    private static func lend(_ lent: borrowing Atomic<UInt32>) -> UInt32 {
        var current = lent.load(ordering: .relaxed)
        while current != UInt32.max {
            let lowest = ~current & (0 &- ~current)
            let (exchanged, original) = lent.compareExchange(
                expected: current, desired: current | lowest, successOrdering: .acquiring, failureOrdering: .relaxed)
            if exchanged { return lowest }
            current = original
        }
        return 0
    }

    private func makeContext(encrypting: Bool) throws -> CipherContext {
        let context = try CipherContext()
        try material.withUnsafeBytes { key in
            let key = key.baseAddress?.assumingMemoryBound(to: UInt8.self)
            if encrypting {
                try context.check(EVP_EncryptInit_ex(context.pointer, EVP_aes_256_gcm(), nil, key, nil))
            } else {
                try context.check(EVP_DecryptInit_ex(context.pointer, EVP_aes_256_gcm(), nil, key, nil))
            }
        }
        return context
    }

    private func bytes(_ buffer: UnsafeRawBufferPointer) -> UnsafePointer<UInt8>? {
        buffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
    }
}
