import Foundation
import Sealing
import Synchronization
import Testing

@Suite("Field ciphertexts")
struct FieldCipherTests {
    let key: DataKey
    let context = FieldContext(tenantID: UUID(), table: "leads", column: "caller_name", rowID: UUID())

    init() throws {
        key = try DataKey.generate(version: 7)
    }

    @Test("open(seal(x)) == x for random sizes from 0 to 1 MiB")
    func roundTrip() throws {
        var sizes = [0, 1, 15, 16, 17, 32, 4096, 1 << 20]
        for _ in 0..<40 { sizes.append(Int.random(in: 0...(1 << 20))) }
        for size in sizes {
            let plaintext = try SecureRandom.bytes(size)
            let sealed = try FieldCipher.seal(plaintext, with: key, for: context)
            #expect(sealed.count == size + FieldCipher.overhead)
            #expect(try FieldCipher.keyVersion(of: sealed) == 7)
            #expect(try FieldCipher.keyVersion(of: sealed[...]) == 7)
            #expect(try FieldCipher.open(sealed, with: key, for: context) == plaintext)
        }
    }

    @Test("the same value sealed twice gives different ciphertexts (random nonces)")
    func nonceIsRandom() throws {
        let value = Array("Jane Patient".utf8)
        #expect(
            try FieldCipher.seal(value, with: key, for: context) != FieldCipher.seal(value, with: key, for: context))
    }

    @Test("forty threads sealing and opening under one key at once: every nonce differs, every value opens")
    func concurrentUseOfOneKey() throws {
        let key = self.key
        let context = self.context
        let threads = 40
        let perThread = 400
        let results = Mutex<[[UInt8]]>([])
        let failures = Mutex(0)
        let group = DispatchGroup()
        for thread in 0..<threads {
            group.enter()
            Thread {
                defer { group.leave() }
                var sealed: [[UInt8]] = []
                for index in 0..<perThread {
                    let value = Array("caller \(thread)-\(index)".utf8)
                    guard let ciphertext = try? FieldCipher.seal(value, with: key, for: context),
                        (try? FieldCipher.open(ciphertext, with: key, for: context)) == value
                    else {
                        failures.withLock { $0 += 1 }
                        continue
                    }
                    sealed.append(ciphertext)
                }
                results.withLock { $0.append(contentsOf: sealed) }
            }.start()
        }
        group.wait()
        #expect(failures.withLock { $0 } == 0)
        let all = results.withLock { $0 }
        #expect(all.count == threads * perThread)
        // The nonce follows the format byte and the key version (FieldCipher's layout).
        let nonces = Set(all.map { Array($0[5..<17]) })
        #expect(nonces.count == all.count)
    }

    @Test("every single-bit flip anywhere in a ciphertext is rejected")
    func bitFlips() throws {
        let sealed = try FieldCipher.seal(Array("+15551234567 Jane Patient, knee pain".utf8), with: key, for: context)
        var rejected = 0
        for byte in sealed.indices {
            for bit in 0..<8 {
                var tampered = sealed
                tampered[byte] ^= 1 << bit
                if (try? FieldCipher.open(tampered, with: key, for: context)) == nil { rejected += 1 }
            }
        }
        #expect(rejected == sealed.count * 8)
    }

    @Test("a ciphertext moved to another row, column, table or tenant is rejected")
    func moved() throws {
        let sealed = try FieldCipher.seal(Array("Jane Patient".utf8), with: key, for: context)
        var elsewhere: [FieldContext] = []
        for change in 0..<4 {
            var other = context
            switch change {
            case 0: other.rowID = UUID()
            case 1: other.column = "transcript"
            case 2: other.table = "recordings"
            default: other.tenantID = UUID()
            }
            elsewhere.append(other)
        }
        // Length prefixes: moving bytes between table and column does not give the same encoding.
        elsewhere.append(
            FieldContext(tenantID: context.tenantID, table: "leadsc", column: "aller_name", rowID: context.rowID))
        for other in elsewhere {
            #expect(throws: SealingError(.authenticationFailed, "")) {
                try FieldCipher.open(sealed, with: key, for: other)
            }
        }
    }

    @Test("another key version or another key is rejected with a typed error")
    func wrongKey() throws {
        let sealed = try FieldCipher.seal(Array("x".utf8), with: key, for: context)
        #expect(throws: SealingError(.wrongKeyVersion, "")) {
            try FieldCipher.open(sealed, with: DataKey.generate(version: 8), for: context)
        }
        #expect(throws: SealingError(.authenticationFailed, "")) {
            try FieldCipher.open(sealed, with: DataKey.generate(version: 7), for: context)
        }
        // Rewriting the version in the header is caught too: the header is authenticated.
        var relabelled = sealed
        relabelled[4] = 8
        #expect(throws: SealingError(.authenticationFailed, "")) {
            try FieldCipher.open(relabelled, with: DataKey(version: 8, material: key.material), for: context)
        }
    }

    @Test("truncated ciphertexts are rejected")
    func truncated() throws {
        let sealed = try FieldCipher.seal(Array("Jane".utf8), with: key, for: context)
        for length in 0..<sealed.count {
            #expect(throws: SealingError.self) { try FieldCipher.open(sealed.prefix(length), with: key, for: context) }
        }
    }
}
