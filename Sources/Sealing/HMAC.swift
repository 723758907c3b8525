import COpenSSL

/// HMAC through OpenSSL.
public enum HMAC {
    /// The digest HMAC is built on.
    public enum Algorithm: Sendable {
        case sha1, sha256, sha512

        var digest: OpaquePointer? {
            switch self {
            case .sha1: EVP_sha1()
            case .sha256: EVP_sha256()
            case .sha512: EVP_sha512()
            }
        }

        var size: Int {
            switch self {
            case .sha1: 20
            case .sha256: 32
            case .sha512: 64
            }
        }
    }

    /// The MAC of `message` under `key`.
    public static func authenticationCode(
        _ algorithm: Algorithm = .sha256,
        key: UnsafeRawBufferPointer,
        message: some Collection<UInt8>
    ) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: algorithm.size)
        var length: UInt32 = 0
        let input = Array(message)
        let result = input.withUnsafeBytes { data in
            output.withUnsafeMutableBufferPointer { out in
                COpenSSL.HMAC(
                    algorithm.digest, key.baseAddress, Int32(key.count),
                    data.baseAddress?.assumingMemoryBound(to: UInt8.self), data.count, out.baseAddress, &length)
            }
        }
        guard result != nil, Int(length) == algorithm.size else {
            ERR_clear_error()
            throw SealingError(.cryptoFailure, "HMAC failed")
        }
        return output
    }

    /// The MAC of `message` under `key`.
    public static func authenticationCode(
        _ algorithm: Algorithm = .sha256,
        key: SecretBytes,
        message: some Collection<UInt8>
    ) throws -> [UInt8] {
        try key.withUnsafeBytes { try authenticationCode(algorithm, key: $0, message: message) }
    }

    /// Constant-time equality of two byte strings.
    public static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        return lhs.withUnsafeBytes { a in
            rhs.withUnsafeBytes { b in CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0 }
        }
    }
}
