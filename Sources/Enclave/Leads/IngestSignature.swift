import Foundation
import Sealing

/// The signature a provider sends with each ingest request:
/// `Enclave-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
public struct IngestSignature: Sendable, Equatable {
    /// Requests older or newer than this are refused.
    public static let tolerance: TimeInterval = 300

    public let timestamp: Int64
    public let mac: [UInt8]

    public init(timestamp: Int64, mac: [UInt8]) {
        self.timestamp = timestamp
        self.mac = mac
    }

    /// Parses the header value.
    public init(header: String) throws {
        var timestamp: Int64?
        var mac: [UInt8]?
        for part in header.split(separator: ",") {
            let pair = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            guard pair.count == 2 else { continue }
            switch pair[0] {
            case "t": timestamp = Int64(pair[1])
            case "v1" where pair[1].count == 64: mac = hexBytes(String(pair[1]))
            default: continue
            }
        }
        guard let timestamp, let mac, mac.count == 32 else {
            throw AccessError(.unauthenticated, "the signature header must be t=<unix seconds>,v1=<64 hex digits>")
        }
        self.timestamp = timestamp
        self.mac = mac
    }

    /// The header value for `body` signed with `secret` at `timestamp` (for providers and tests).
    public static func sign(_ body: some Collection<UInt8>, secret: String, timestamp: Int64) throws -> String {
        let message = Array("\(timestamp).".utf8) + Array(body)
        let mac = try Array(secret.utf8).withUnsafeBytes {
            try HMAC.authenticationCode(.sha256, key: $0, message: message)
        }
        return "t=\(timestamp),v1=\(mac.hex)"
    }

    /// Refuses a timestamp outside the tolerance window.
    func checkFreshness(now: Date) throws {
        guard abs(now.timeIntervalSince1970 - Double(timestamp)) <= Self.tolerance else {
            throw AccessError(.unauthenticated, "the signature's timestamp is outside the 5-minute tolerance")
        }
    }

    /// A stable id for replay detection.
    var replayID: [UInt8] { SHA256.hash(Array("\(timestamp):".utf8) + mac) }
}
