import COpenSSL
import Foundation

/// Encryption in the format of the `age` tool (age-encryption.org/v1), so that whoever holds the
/// identity or the passphrase opens the file with `age -d`, without Enclave.
///
/// The file key (16 random bytes) is wrapped for one recipient: an X25519 public key
/// (`age1…`), or a passphrase (scrypt). The payload is ChaCha20-Poly1305 in 64 KiB chunks
/// (the STREAM construction), so memory stays one chunk whatever the size. Write with
/// `write(_:)`, end with `finish()`; every byte of output goes to `sink` as it is ready.
public final class AgeEncryptor {
    /// Who can open the file.
    public enum Recipient: Sendable {
        /// An age X25519 recipient, as `age-keygen` prints it: `age1…` (Bech32).
        case x25519(String)
        /// A passphrase, stretched with scrypt (work factor 2^logN; age's default is 18).
        case passphrase(String, logN: Int = 18)
    }

    static let chunkSize = 64 * 1024
    private let sink: ([UInt8]) throws -> Void
    private let payloadKey: [UInt8]
    private var buffer: [UInt8] = []
    private var counter: UInt64 = 0
    private var finished = false

    /// Writes the header and the payload nonce to `sink`.
    public init(to recipient: Recipient, sink: @escaping ([UInt8]) throws -> Void) throws {
        self.sink = sink
        let fileKey = try SecureRandom.bytes(16)
        let stanza: String
        switch recipient {
        case .x25519(let text):
            let publicKey = try Self.decodeRecipient(text)
            let ephemeral = try X25519.generate()
            let share = try ephemeral.publicKey()
            let shared = try ephemeral.agree(with: publicKey)
            guard shared.contains(where: { $0 != 0 }) else {
                throw SealingError(.malformed, "the age recipient is not a valid X25519 key")
            }
            let wrapKey = try HKDF.sha256(
                key: shared, salt: share + publicKey, info: Array("age-encryption.org/v1/X25519".utf8), length: 32)
            let body = try ChaCha20Poly1305.seal(key: wrapKey, nonce: [UInt8](repeating: 0, count: 12), fileKey)
            stanza = "-> X25519 \(Self.base64(share))\n\(Self.wrapped(Self.base64(body)))\n"
        case .passphrase(let passphrase, let logN):
            guard !passphrase.isEmpty, (10...22).contains(logN) else {
                throw SealingError(.malformed, "an age passphrase is not empty and its work factor is 10 to 22")
            }
            let salt = try SecureRandom.bytes(16)
            let wrapKey = try PasswordHasher.scrypt(
                password: Array(passphrase.utf8), salt: Array("age-encryption.org/v1/scrypt".utf8) + salt,
                cost: .init(logN: logN, r: 8, p: 1), length: 32)
            let body = try ChaCha20Poly1305.seal(key: wrapKey, nonce: [UInt8](repeating: 0, count: 12), fileKey)
            stanza = "-> scrypt \(Self.base64(salt)) \(logN)\n\(Self.wrapped(Self.base64(body)))\n"
        }
        let header = Array(("age-encryption.org/v1\n" + stanza + "---").utf8)
        let macKey = try HKDF.sha256(key: fileKey, salt: [], info: Array("header".utf8), length: 32)
        let mac = try macKey.withUnsafeBytes { try HMAC.authenticationCode(.sha256, key: $0, message: header) }
        let nonce = try SecureRandom.bytes(16)
        payloadKey = try HKDF.sha256(key: fileKey, salt: nonce, info: Array("payload".utf8), length: 32)
        try sink(header + Array(" \(Self.base64(mac))\n".utf8) + nonce)
    }

    /// Encrypts more plaintext; full chunks go out as they fill.
    public func write(_ bytes: some Collection<UInt8>) throws {
        guard !finished else { throw SealingError(.streamIncomplete, "the age stream is already finished") }
        buffer.append(contentsOf: bytes)
        // A full chunk goes out only once more follows: the last chunk carries the final flag.
        while buffer.count > Self.chunkSize {
            try emit(Array(buffer[0..<Self.chunkSize]), last: false)
            buffer.removeFirst(Self.chunkSize)
        }
    }

    /// Encrypts the last chunk.
    public func finish() throws {
        guard !finished else { return }
        try emit(buffer, last: true)
        buffer = []
        finished = true
    }

    private func emit(_ chunk: [UInt8], last: Bool) throws {
        var nonce = [UInt8](repeating: 0, count: 12)
        for index in 0..<8 { nonce[3 + index] = UInt8(truncatingIfNeeded: counter >> (8 * (7 - UInt64(index)))) }
        nonce[11] = last ? 1 : 0
        counter += 1
        try sink(try ChaCha20Poly1305.seal(key: payloadKey, nonce: nonce, chunk))
    }

    /// Base64 without padding, as age writes it.
    static func base64(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "=", with: "")
    }

    /// A stanza body in lines of 64 columns (a final short line; an empty one when it is full).
    static func wrapped(_ text: String) -> String {
        var lines: [Substring] = []
        var rest = Substring(text)
        while rest.count >= 64 {
            lines.append(rest.prefix(64))
            rest = rest.dropFirst(64)
        }
        lines.append(rest)
        return lines.joined(separator: "\n")
    }

    /// The 32-byte key of an `age1…` recipient; a clear error for anything else.
    public static func decodeRecipient(_ text: String) throws -> [UInt8] {
        guard let (hrp, data) = Bech32.decode(text.lowercased()), hrp == "age",
            let key = Bech32.convertBits(data, from: 5, to: 8, pad: false), key.count == 32
        else { throw SealingError(.malformed, "not an age recipient (age1… as age-keygen prints it)") }
        return key
    }
}

/// Bech32 (BIP 173), for age's recipients.
enum Bech32 {
    static let alphabet = Array("qpzry9x8gf2tvdw0s3jn54khce6mua7l".utf8)

    static func polymod(_ values: [UInt8]) -> UInt32 {
        let generator: [UInt32] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3]
        var check: UInt32 = 1
        for value in values {
            let top = check >> 25
            check = (check & 0x1ff_ffff) << 5 ^ UInt32(value)
            for index in 0..<5 where (top >> index) & 1 == 1 { check ^= generator[index] }
        }
        return check
    }

    static func expand(_ hrp: [UInt8]) -> [UInt8] {
        hrp.map { $0 >> 5 } + [0] + hrp.map { $0 & 31 }
    }

    /// The human-readable part and the 5-bit data of a valid Bech32 string, or nil.
    static func decode(_ text: String) -> (String, [UInt8])? {
        let bytes = Array(text.utf8)
        guard bytes.count <= 120, let separator = bytes.lastIndex(of: UInt8(ascii: "1")), separator >= 1,
            bytes.count - separator > 6
        else { return nil }
        let hrp = Array(bytes[..<separator])
        var data: [UInt8] = []
        for byte in bytes[(separator + 1)...] {
            guard let value = alphabet.firstIndex(of: byte) else { return nil }
            data.append(UInt8(value))
        }
        guard polymod(expand(hrp) + data) == 1 else { return nil }
        return (String(decoding: hrp, as: UTF8.self), Array(data.dropLast(6)))
    }

    static func convertBits(_ data: [UInt8], from: Int, to: Int, pad: Bool) -> [UInt8]? {
        var accumulator = 0
        var bits = 0
        var output: [UInt8] = []
        let maximum = (1 << to) - 1
        for value in data {
            guard Int(value) >> from == 0 else { return nil }
            accumulator = (accumulator << from) | Int(value)
            bits += from
            while bits >= to {
                bits -= to
                output.append(UInt8((accumulator >> bits) & maximum))
            }
        }
        if pad {
            if bits > 0 { output.append(UInt8((accumulator << (to - bits)) & maximum)) }
        } else if bits >= from || (accumulator << (to - bits)) & maximum != 0 {
            return nil
        }
        return output
    }
}

/// HKDF (RFC 5869) over HMAC-SHA-256.
enum HKDF {
    static func sha256(key: [UInt8], salt: [UInt8], info: [UInt8], length: Int) throws -> [UInt8] {
        let saltKey = salt.isEmpty ? [UInt8](repeating: 0, count: 32) : salt
        let prk = try saltKey.withUnsafeBytes { try HMAC.authenticationCode(.sha256, key: $0, message: key) }
        var output: [UInt8] = []
        var previous: [UInt8] = []
        var counter: UInt8 = 1
        while output.count < length {
            previous = try prk.withUnsafeBytes {
                try HMAC.authenticationCode(.sha256, key: $0, message: previous + info + [counter])
            }
            output += previous
            counter += 1
        }
        return Array(output.prefix(length))
    }
}

/// ChaCha20-Poly1305 (RFC 8439) sealing through OpenSSL EVP.
enum ChaCha20Poly1305 {
    static func seal(key: [UInt8], nonce: [UInt8], _ plaintext: [UInt8]) throws -> [UInt8] {
        guard key.count == 32, nonce.count == 12 else {
            throw SealingError(.cryptoFailure, "ChaCha20-Poly1305 needs a 32-byte key and a 12-byte nonce")
        }
        let context = try CipherContext()
        try context.check(EVP_EncryptInit_ex(context.pointer, EVP_chacha20_poly1305(), nil, key, nonce))
        var output = [UInt8](repeating: 0, count: plaintext.count + 16)
        var written: Int32 = 0
        try output.withUnsafeMutableBufferPointer { out in
            guard let base = out.baseAddress else { throw SealingError(.cryptoFailure, "no output buffer") }
            if !plaintext.isEmpty {
                try context.check(EVP_EncryptUpdate(context.pointer, base, &written, plaintext, Int32(plaintext.count)))
            }
            var final: Int32 = 0
            try context.check(EVP_EncryptFinal_ex(context.pointer, base + Int(written), &final))
            try context.check(
                EVP_CIPHER_CTX_ctrl(context.pointer, EVP_CTRL_AEAD_GET_TAG, 16, base + plaintext.count))
        }
        return output
    }
}

/// X25519 key agreement through OpenSSL EVP.
final class X25519 {
    private let key: OpaquePointer

    private init(_ key: OpaquePointer) { self.key = key }
    deinit { EVP_PKEY_free(key) }

    static func generate() throws -> X25519 {
        guard let context = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, nil) else {
            throw SealingError(.cryptoFailure, "OpenSSL could not allocate an X25519 context")
        }
        defer { EVP_PKEY_CTX_free(context) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(context) == 1, EVP_PKEY_keygen(context, &key) == 1, let key else {
            ERR_clear_error()
            throw SealingError(.cryptoFailure, "X25519 key generation failed")
        }
        return X25519(key)
    }

    func publicKey() throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        var length = 32
        guard EVP_PKEY_get_raw_public_key(key, &output, &length) == 1, length == 32 else {
            ERR_clear_error()
            throw SealingError(.cryptoFailure, "X25519 public key export failed")
        }
        return output
    }

    func agree(with peer: [UInt8]) throws -> [UInt8] {
        guard let peerKey = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nil, peer, peer.count) else {
            ERR_clear_error()
            throw SealingError(.malformed, "the age recipient is not a valid X25519 key")
        }
        defer { EVP_PKEY_free(peerKey) }
        guard let context = EVP_PKEY_CTX_new(key, nil) else {
            throw SealingError(.cryptoFailure, "OpenSSL could not allocate an X25519 context")
        }
        defer { EVP_PKEY_CTX_free(context) }
        var output = [UInt8](repeating: 0, count: 32)
        var length = 32
        guard EVP_PKEY_derive_init(context) == 1, EVP_PKEY_derive_set_peer(context, peerKey) == 1,
            EVP_PKEY_derive(context, &output, &length) == 1, length == 32
        else {
            ERR_clear_error()
            throw SealingError(.cryptoFailure, "X25519 key agreement failed")
        }
        return output
    }
}
