import COpenSSL

/// Key material in memory that is wiped with `OPENSSL_cleanse` when the last reference goes.
///
/// It never prints its bytes: `description` shows only the length.
public final class SecretBytes: @unchecked Sendable, CustomStringConvertible {
    // Immutable after init; freed and cleansed only in deinit.
    private let storage: UnsafeMutableRawBufferPointer

    /// `count` fresh random bytes from OpenSSL's CSPRNG.
    public init(randomCount count: Int) throws {
        storage = .allocate(byteCount: max(count, 1), alignment: 16)
        do {
            try SecureRandom.fill(UnsafeMutableRawBufferPointer(rebasing: storage[0..<count]))
        } catch {
            storage.deallocate()
            throw error
        }
        self.count = count
    }

    /// A copy of `bytes`. The caller should wipe its own copy where it can.
    public init(copying bytes: some Collection<UInt8>) {
        count = bytes.count
        storage = .allocate(byteCount: max(count, 1), alignment: 16)
        _ = UnsafeMutableRawBufferPointer(rebasing: storage[0..<count]).copyBytes(from: bytes)
    }

    deinit {
        OPENSSL_cleanse(storage.baseAddress, storage.count)
        storage.deallocate()
    }

    /// The number of bytes.
    public let count: Int

    /// Lends the bytes to `body`; do not let them escape.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<count]))
    }

    /// Constant-time comparison.
    public func isEqual(to other: SecretBytes) -> Bool {
        guard count == other.count else { return false }
        return withUnsafeBytes { lhs in
            other.withUnsafeBytes { rhs in CRYPTO_memcmp(lhs.baseAddress, rhs.baseAddress, count) == 0 }
        }
    }

    public var description: String { "SecretBytes(\(count) bytes)" }
}
