import Foundation
import Testing

@testable import Sealing

/// A small, seedable generator (SplitMix64), so that a failing run can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Feeds random and mutated inputs to every parser; passing means nothing crashed and every
/// rejection was a typed `SealingError`. Each test prints its seed; `ENCLAVE_FUZZ_SEED=N` replays
/// one run.
@Suite("Fuzzing the parsers")
struct FuzzTests {
    static let iterations = 100_000

    /// A generator seeded from `ENCLAVE_FUZZ_SEED`, or at random; the seed is printed.
    static func generator(_ test: String) -> SeededGenerator {
        let seed =
            ProcessInfo.processInfo.environment["ENCLAVE_FUZZ_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 0...UInt64.max)
        print("fuzz \(test): seed \(seed) (replay with ENCLAVE_FUZZ_SEED=\(seed))")
        return SeededGenerator(seed: seed)
    }

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
        var random = Self.generator("field ciphertexts")
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
        var random = Self.generator("streams")
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
        var random = Self.generator("PHC strings")
        let phc = try PasswordHasher(cost: .testing).hash("pw")
        let valid = Array(phc.utf8)
        #expect(throws: Never.self) { try PasswordHasher.parse(phc) }
        var rejected = 0
        for _ in 0..<Self.iterations {
            let input = String(decoding: Self.mutate(valid, &random), as: UTF8.self)
            do {
                _ = try PasswordHasher.parse(input)
            } catch let error as SealingError {
                #expect(error.code == .malformed, "a PHC string was refused as \(error.code), not malformed")
                rejected += 1
            }
        }
        // Most mutations break the string; a few (a changed salt byte) leave it well formed.
        #expect(rejected > Self.iterations / 2)
    }

    @Test("wrapped keys")
    func wrappedKeys() async throws {
        var random = Self.generator("wrapped keys")
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
    func phoneNumbers() throws {
        var random = Self.generator("phone numbers")
        let valid = Array("+1 (555) 123-4567".utf8)
        #expect(try PhoneNumber.normalize(String(decoding: valid, as: UTF8.self)) == "+15551234567")
        var normalized = 0
        for _ in 0..<Self.iterations {
            do {
                let number = try PhoneNumber.normalize(String(decoding: Self.mutate(valid, &random), as: UTF8.self))
                // Whatever it accepts comes out as E.164: a plus and 8 to 15 digits.
                #expect(
                    number.wholeMatch(of: /\+[1-9][0-9]{7,14}/) != nil,
                    "normalized to \(number.unicodeScalars.map { String($0.value, radix: 16) })")
                normalized += 1
            } catch let error as SealingError {
                #expect(error.code == .invalidPhoneNumber, "a number was refused as \(error.code)")
            }
        }
        #expect(normalized > 0 && normalized < Self.iterations)
    }
}
