import COpenSSL
import Foundation

/// Password hashing with scrypt (OpenSSL `EVP_PBE_scrypt`) in PHC string format:
/// `$scrypt$ln=17,r=8,p=1$<salt>$<hash>` (unpadded standard base64).
public struct PasswordHasher: Sendable {
    /// scrypt's cost parameters.
    public struct Cost: Sendable, Equatable {
        /// log2 of N, the CPU/memory cost.
        public var logN: Int
        /// Block size.
        public var r: Int
        /// Parallelism.
        public var p: Int

        public init(logN: Int, r: Int, p: Int) {
            self.logN = logN
            self.r = r
            self.p = p
        }

        /// OWASP's recommendation: N=2^17, r=8, p=1 (128 MiB, the default).
        public static let owasp = Cost(logN: 17, r: 8, p: 1)
        /// Cheap, for tests only.
        public static let testing = Cost(logN: 10, r: 8, p: 1)

        var isValid: Bool { (1...20).contains(logN) && (1...32).contains(r) && (1...16).contains(p) }
        var memoryLimit: UInt64 { UInt64(128 * r) * (UInt64(1) << UInt64(logN) + UInt64(p) + 2) + (1 << 20) }
    }

    public let cost: Cost
    static let saltSize = 16
    static let hashSize = 32

    public init(cost: Cost = .owasp) {
        self.cost = cost
    }

    /// A PHC string for `password` with a fresh random salt.
    public func hash(_ password: String) throws -> String {
        let salt = try SecureRandom.bytes(Self.saltSize)
        let derived = try Self.scrypt(password: Array(password.utf8), salt: salt, cost: cost, length: Self.hashSize)
        return "$scrypt$ln=\(cost.logN),r=\(cost.r),p=\(cost.p)$\(Self.base64(salt))$\(Self.base64(derived))"
    }

    /// Whether `password` matches `phc`, compared in constant time. A malformed string throws.
    public func verify(_ password: String, against phc: String) throws -> Bool {
        let parsed = try Self.parse(phc)
        let derived = try Self.scrypt(
            password: Array(password.utf8), salt: parsed.salt, cost: parsed.cost, length: parsed.hash.count)
        return HMAC.constantTimeEqual(derived, parsed.hash)
    }

    /// True when `phc` was made with a cost other than this hasher's (rehash at next login).
    public func needsRehash(_ phc: String) -> Bool {
        (try? Self.parse(phc).cost) != cost
    }

    /// Raw scrypt (RFC 7914).
    public static func scrypt(password: [UInt8], salt: [UInt8], cost: Cost, length: Int) throws -> [UInt8] {
        guard cost.isValid, (16...64).contains(length) || length == 64 else {
            throw SealingError(.malformed, "scrypt parameters out of range")
        }
        var output = [UInt8](repeating: 0, count: length)
        let result = password.withUnsafeBufferPointer { pass in
            salt.withUnsafeBufferPointer { saltBytes in
                output.withUnsafeMutableBufferPointer { out in
                    pass.withMemoryRebound(to: CChar.self) { passChars in
                        EVP_PBE_scrypt(
                            passChars.baseAddress, pass.count, saltBytes.baseAddress, saltBytes.count,
                            UInt64(1) << UInt64(cost.logN), UInt64(cost.r), UInt64(cost.p), cost.memoryLimit,
                            out.baseAddress, length)
                    }
                }
            }
        }
        guard result == 1 else {
            ERR_clear_error()
            throw SealingError(.cryptoFailure, "scrypt failed")
        }
        return output
    }

    // MARK: - Stored-key login (the database keeps only SHA-256 of the derived key)

    /// The PHC prefix for this hasher's cost, without salt: `$scrypt$ln=17,r=8,p=1`.
    public var defaultParameters: String { "$scrypt$ln=\(cost.logN),r=\(cost.r),p=\(cost.p)" }

    /// Fresh PHC parameters with a random salt and no hash: `$scrypt$ln=17,r=8,p=1$<salt>`.
    public func newParameters() throws -> String {
        defaultParameters + "$" + Self.base64(try SecureRandom.bytes(Self.saltSize))
    }

    /// The key derived from `password` under PHC `parameters` (`$scrypt$ln=…$<salt>`, with or
    /// without a trailing hash). Only its SHA-256 (`storedKey(for:)`) is ever stored.
    public static func deriveKey(_ password: String, parameters: String) throws -> [UInt8] {
        let (cost, salt) = try parseParameters(parameters)
        return try scrypt(password: Array(password.utf8), salt: salt, cost: cost, length: hashSize)
    }

    /// What the database stores and compares: SHA-256 of a derived key.
    public static func storedKey(for derivedKey: [UInt8]) -> [UInt8] {
        SHA256.hash(derivedKey)
    }

    static func parseParameters(_ phc: String) throws -> (cost: Cost, salt: [UInt8]) {
        let malformed = SealingError(.malformed, "not scrypt PHC parameters")
        guard phc.utf8.count <= 512 else { throw malformed }
        let parts = phc.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 4 || parts.count == 5, parts[0].isEmpty, parts[1] == "scrypt" else { throw malformed }
        let cost = try parseCost(parts[2])
        guard let salt = unbase64(parts[3]), (8...64).contains(salt.count) else { throw malformed }
        return (cost, salt)
    }

    static func parseCost(_ text: Substring) throws -> Cost {
        let malformed = SealingError(.malformed, "not a scrypt PHC string")
        var values: [String: Int] = [:]
        for pair in text.split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, kv[1].count <= 3, let value = Int(kv[1]), values[String(kv[0])] == nil else {
                throw malformed
            }
            values[String(kv[0])] = value
        }
        guard values.count == 3, let logN = values["ln"], let r = values["r"], let p = values["p"] else {
            throw malformed
        }
        let cost = Cost(logN: logN, r: r, p: p)
        guard cost.isValid else { throw malformed }
        return cost
    }

    static func parse(_ phc: String) throws -> (cost: Cost, salt: [UInt8], hash: [UInt8]) {
        let malformed = SealingError(.malformed, "not a scrypt PHC string")
        guard phc.utf8.count <= 512 else { throw malformed }
        let parts = phc.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0].isEmpty, parts[1] == "scrypt" else { throw malformed }
        let cost = try parseCost(parts[2])
        guard let salt = unbase64(parts[3]), let hash = unbase64(parts[4]),
            (8...64).contains(salt.count), (16...64).contains(hash.count)
        else { throw malformed }
        return (cost, salt, hash)
    }

    static func base64(_ bytes: [UInt8]) -> String {
        var text = Data(bytes).base64EncodedString()
        while text.hasSuffix("=") { text.removeLast() }
        return text
    }

    static func unbase64(_ text: Substring) -> [UInt8]? {
        guard text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "+" || $0 == "/") }) else {
            return nil
        }
        let padded = String(text) + String(repeating: "=", count: (4 - text.count % 4) % 4)
        return Data(base64Encoded: padded).map(Array.init)
    }
}
