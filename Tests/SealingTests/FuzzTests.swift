import Foundation
import Testing

@testable import Sealing

/// Feeds random and mutated inputs to every parser; passing means nothing crashed and every
/// rejection was a typed `SealingError`.
@Suite("Fuzzing the parsers")
struct FuzzTests {
    static let iterations = 100_000

    /// A valid input with a few random bytes changed, cut or added; or pure noise.
    static func mutate(_ valid: [UInt8], _ random: inout some RandomNumberGenerator) -> [UInt8] {
        var bytes = valid
        switch Int.random(in: 0..<5, using: &random) {
        case 0:
            return (0..<Int.random(in: 0...(valid.count * 2), using: &random)).map { _ in
                UInt8.random(in: 0...255, using: &random)
            }
        case 1:
            bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &random)))
        case 2:
            bytes += (0..<Int.random(in: 1...16, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
        default:
            for _ in 0..<Int.random(in: 1...4, using: &random) where !bytes.isEmpty {
                bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
            }
        }
        return bytes
    }

    @Test("field ciphertexts")
    func fieldCiphertexts() throws {
        var random = SystemRandomNumberGenerator()
        let key = try DataKey.generate(version: 1)
        let context = FieldContext(tenantID: UUID(), table: "leads", column: "caller_name", rowID: UUID())
        let valid = try FieldCipher.seal(Array("Jane Patient".utf8), with: key, for: context)
        var opened = 0
        for _ in 0..<Self.iterations {
            let input = Self.mutate(valid, &random)
            do {
                _ = try FieldCipher.open(input, with: key, for: context)
                opened += 1
            } catch is SealingError {}
        }
        #expect(opened < Self.iterations / 100)
    }

    @Test("stream headers and chunks")
    func streams() throws {
        var random = SystemRandomNumberGenerator()
        let key = try DataKey.generate(version: 1)
        let context = FieldContext(tenantID: UUID(), table: "recordings", column: "audio", rowID: UUID())
        var sealer = try StreamSealer(key: key, context: context, chunkSize: 64)
        let chunk = try sealer.seal(Array(repeating: 7, count: 40), isLast: true)
        for _ in 0..<Self.iterations {
            let header = Self.mutate(sealer.header, &random)
            let body = Self.mutate(chunk, &random)
            do {
                var opener = try StreamOpener(header: header, key: key, context: context)
                _ = try opener.open(body, isLast: Bool.random(using: &random))
                try opener.finish()
            } catch is SealingError {}
        }
    }

    @Test("PHC strings")
    func phcStrings() throws {
        var random = SystemRandomNumberGenerator()
        let valid = Array(try PasswordHasher(cost: .testing).hash("pw").utf8)
        for _ in 0..<Self.iterations {
            let input = String(decoding: Self.mutate(valid, &random), as: UTF8.self)
            _ = try? PasswordHasher.parse(input)
        }
    }

    @Test("wrapped keys")
    func wrappedKeys() async throws {
        var random = SystemRandomNumberGenerator()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("enclave-fuzz-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try MasterKeyFile.create(path: path)
        let context = KeyWrapContext(tenantID: UUID(), purpose: "data", version: 1)
        let valid = try await file.wrap(SecretBytes(randomCount: 32), version: 1, context: context)
        for _ in 0..<Self.iterations {
            do {
                _ = try await file.unwrap(Self.mutate(valid, &random), context: context)
            } catch is SealingError {}
        }
    }

    @Test("phone numbers")
    func phoneNumbers() {
        var random = SystemRandomNumberGenerator()
        let valid = Array("+1 (555) 123-4567".utf8)
        for _ in 0..<Self.iterations {
            _ = try? PhoneNumber.normalize(String(decoding: Self.mutate(valid, &random), as: UTF8.self))
        }
    }
}
