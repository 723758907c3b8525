import Foundation

/// Time-based one-time passwords (RFC 6238) over HMAC (RFC 4226 truncation).
public struct TOTP: Sendable {
    public let secret: SecretBytes
    public let digits: Int
    public let period: Int
    public let algorithm: HMAC.Algorithm

    public init(secret: SecretBytes, digits: Int = 6, period: Int = 30, algorithm: HMAC.Algorithm = .sha1) throws {
        guard (6...8).contains(digits), period > 0, secret.count >= 16 else {
            throw SealingError(.malformed, "TOTP needs 6 to 8 digits, a positive period and a secret of 16+ bytes")
        }
        self.secret = secret
        self.digits = digits
        self.period = period
        self.algorithm = algorithm
    }

    /// The time step of `date`.
    public func step(at date: Date) -> UInt64 {
        UInt64(max(0, date.timeIntervalSince1970) / Double(period))
    }

    /// The code for time step `step`.
    public func code(forStep step: UInt64) throws -> String {
        let mac = try HMAC.authenticationCode(algorithm, key: secret, message: step.bigEndianBytes)
        let offset = Int(mac[mac.count - 1] & 0x0f)
        let binary =
            (UInt32(mac[offset] & 0x7f) << 24) | (UInt32(mac[offset + 1]) << 16) | (UInt32(mac[offset + 2]) << 8)
            | UInt32(mac[offset + 3])
        var modulus: UInt32 = 1
        for _ in 0..<digits { modulus *= 10 }
        let value = String(binary % modulus)
        return String(repeating: "0", count: digits - value.count) + value
    }

    /// The code at `date`.
    public func code(at date: Date) throws -> String {
        try code(forStep: step(at: date))
    }

    /// The step whose code equals `code`, within `window` steps of `date` either side, compared in
    /// constant time. The caller refuses a step at or before the last one it accepted (replay).
    public func matchingStep(for code: String, at date: Date, window: Int = 1) throws -> UInt64? {
        guard code.count == digits, code.allSatisfy(\.isASCII), code.allSatisfy(\.isNumber) else { return nil }
        let now = step(at: date)
        var match: UInt64?
        for delta in -window...window {
            let candidate = Int64(now) + Int64(delta)
            guard candidate >= 0 else { continue }
            let expected = try self.code(forStep: UInt64(candidate))
            if HMAC.constantTimeEqual(Array(expected.utf8), Array(code.utf8)) { match = UInt64(candidate) }
        }
        return match
    }
}
