import COpenSSL

/// HMAC-SHA256 over data that arrives in pieces (a streamed upload), through OpenSSL EVP_MAC.
public final class HMACStream {
    // Owned EVP_MAC and EVP_MAC_CTX, freed in deinit.
    private let mac: OpaquePointer
    private let context: OpaquePointer

    /// Starts a MAC under `key`.
    public init(key: some Collection<UInt8>) throws {
        guard let mac = EVP_MAC_fetch(nil, "HMAC", nil) else {
            throw SealingError(.cryptoFailure, "OpenSSL has no HMAC")
        }
        guard let context = EVP_MAC_CTX_new(mac) else {
            EVP_MAC_free(mac)
            throw SealingError(.cryptoFailure, "OpenSSL could not allocate a MAC context")
        }
        self.mac = mac
        self.context = context
        let keyBytes = Array(key)
        let ok = "digest".withCString { name in
            "SHA256".withCString { digest in
                var parameters = [
                    OSSL_PARAM_construct_utf8_string(name, UnsafeMutablePointer(mutating: digest), 0),
                    OSSL_PARAM_construct_end(),
                ]
                return keyBytes.withUnsafeBufferPointer { keyBuffer in
                    EVP_MAC_init(context, keyBuffer.baseAddress, keyBuffer.count, &parameters)
                }
            }
        }
        guard ok == 1 else {
            ERR_clear_error()
            throw SealingError(.cryptoFailure, "HMAC init failed")
        }
    }

    deinit {
        EVP_MAC_CTX_free(context)
        EVP_MAC_free(mac)
    }

    /// Adds `bytes` to the MAC.
    public func update(_ bytes: some Collection<UInt8>) throws {
        let input = Array(bytes)
        let ok = input.withUnsafeBufferPointer { EVP_MAC_update(context, $0.baseAddress, $0.count) }
        guard ok == 1 else { throw SealingError(.cryptoFailure, "HMAC update failed") }
    }

    /// The 32-byte MAC.
    public func finalize() throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        var length = 0
        let ok = output.withUnsafeMutableBufferPointer { EVP_MAC_final(context, $0.baseAddress, &length, 32) }
        guard ok == 1, length == 32 else { throw SealingError(.cryptoFailure, "HMAC final failed") }
        return output
    }
}
