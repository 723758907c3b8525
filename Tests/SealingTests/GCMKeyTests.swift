import Foundation
import Sealing
import Testing

@Suite("One data key's cached cipher contexts")
struct GCMKeyTests {
    @Test("a cached context gives the same bytes as a fresh one-shot AES-256-GCM for the same nonce")
    func matchesOneShot() throws {
        let material = try SecretBytes(randomCount: 32)
        let key = try GCMKey(material: material)
        for size in [0, 1, 16, 33, 4096] {
            let plaintext = try SecureRandom.bytes(size)
            let nonce = try SecureRandom.bytes(12)
            let ad = try SecureRandom.bytes(size % 40)
            var expected: [UInt8] = []
            try material.withUnsafeBytes { k in
                try nonce.withUnsafeBytes { n in
                    try plaintext.withUnsafeBytes { p in
                        try ad.withUnsafeBytes { a in
                            try AES256GCM.seal(
                                key: k, nonce: n, plaintext: p, associatedData: a, appendingTo: &expected)
                        }
                    }
                }
            }
            // Twice: the second call reuses the pooled context with only a new IV.
            for _ in 0..<2 {
                var output = [UInt8](repeating: 0, count: size + 16)
                try nonce.withUnsafeBytes { n in
                    try plaintext.withUnsafeBytes { p in
                        try ad.withUnsafeBytes { a in
                            try output.withUnsafeMutableBytes {
                                try key.seal(nonce: n, associatedData: a, plaintext: p, into: $0)
                            }
                        }
                    }
                }
                #expect(output == expected)
            }
        }
    }

    @Test("8 threads sealing and opening with one key: every nonce distinct, every value opens, a bad tag fails")
    func concurrentUse() async throws {
        let key = try DataKey.generate(version: 3)
        let nonces = try await withThrowingTaskGroup(of: [[UInt8]].self) { group in
            for task in 0..<8 {
                group.addTask {
                    var seen: [[UInt8]] = []
                    for index in 0..<5_000 {
                        let context = FieldContext(tenantID: UUID(), table: "leads", column: "c\(task)", rowID: UUID())
                        let value = Array("value \(task) \(index)".utf8)
                        let sealed = try FieldCipher.seal(value, with: key, for: context)
                        #expect(try FieldCipher.open(sealed, with: key, for: context) == value)
                        var forged = sealed
                        forged[forged.count - 1] ^= 1
                        #expect(throws: SealingError.self) { try FieldCipher.open(forged, with: key, for: context) }
                        seen.append(Array(sealed[5..<17]))
                    }
                    return seen
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(nonces.count == 40_000)
        #expect(Set(nonces).count == 40_000)
    }
}
