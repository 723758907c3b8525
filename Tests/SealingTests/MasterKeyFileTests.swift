import Foundation
import Sealing
import Testing

@Suite("Master key files")
struct MasterKeyFileTests {
    func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("enclave-kek-\(UUID().uuidString)").path
    }

    func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1
    }

    @Test("init writes a 0600 file, refuses to overwrite it, and the key never appears in errors")
    func create() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try MasterKeyFile.create(path: path)
        #expect(try mode(path) == 0o600)
        #expect(file.versions == [1])
        #expect(throws: SealingError.self) { try MasterKeyFile.create(path: path) }
        let loaded = try MasterKeyFile.load(path: path)
        #expect(try loaded.keyIdentifier(version: 1) == file.keyIdentifier(version: 1))
    }

    @Test("wrap and unwrap a data key; another context or a tampered wrapping fails")
    func wrapping() async throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try MasterKeyFile.create(path: path)
        let dek = try SecretBytes(randomCount: 32)
        let context = KeyWrapContext(tenantID: UUID(), purpose: "data", version: 1)
        let wrapped = try await file.wrap(dek, version: 1, context: context)
        #expect(wrapped.count == WrappedKey.size)
        #expect(try WrappedKey.masterKeyVersion(of: wrapped) == 1)
        #expect(try await file.unwrap(wrapped, context: context).isEqual(to: dek))
        for other in [
            KeyWrapContext(tenantID: UUID(), purpose: "data", version: 1),
            KeyWrapContext(tenantID: context.tenantID, purpose: "index", version: 1),
            KeyWrapContext(tenantID: context.tenantID, purpose: "data", version: 2),
        ] {
            await #expect(throws: SealingError.self) { try await file.unwrap(wrapped, context: other) }
        }
        var tampered = wrapped
        tampered[30] ^= 0x40
        await #expect(throws: SealingError.self) { try await file.unwrap(tampered, context: context) }
    }

    @Test("versions are added and removed; removed keys can no longer unwrap")
    func versions() async throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = try MasterKeyFile.create(path: path)
        let context = KeyWrapContext(tenantID: UUID(), purpose: "data", version: 1)
        let dek = try SecretBytes(randomCount: 32)
        let underOne = try await first.wrap(dek, version: 1, context: context)
        let (second, version) = try first.addingVersion()
        #expect(version == 2)
        #expect(try mode(path) == 0o600)
        #expect(try MasterKeyFile.load(path: path).versions == [1, 2])
        let underTwo = try await second.wrap(dek, version: 2, context: context)
        let third = try second.removingVersion(1)
        #expect(try MasterKeyFile.load(path: path).versions == [2])
        #expect(try await third.unwrap(underTwo, context: context).isEqual(to: dek))
        await #expect(throws: SealingError(.keyUnavailable, "")) { try await third.unwrap(underOne, context: context) }
    }

    @Test("missing, unreadable, group- or world-readable and malformed files are refused clearly")
    func refusals() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try MasterKeyFile.create(path: path)
        let content = try String(contentsOfFile: path, encoding: .utf8)
        let keyText = try #require(content.split(separator: "\n").last?.split(separator: " ").last.map(String.init))

        func refusal(_ path: String) -> String {
            do {
                _ = try MasterKeyFile.load(path: path)
                return "accepted"
            } catch {
                let text = "\(error)"
                #expect(!text.contains(keyText))
                return text
            }
        }
        #expect(refusal(path + ".missing").contains("does not exist"))
        #expect(refusal(FileManager.default.temporaryDirectory.path).contains("is not a regular file"))
        for open in [0o644, 0o640, 0o604, 0o660] {
            try FileManager.default.setAttributes([.posixPermissions: open], ofItemAtPath: path)
            #expect(refusal(path).contains("accessible by group or others"))
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        for bad in [
            "", "key 1 " + keyText, "enclave-master-keys 1\nkey x " + keyText, "enclave-master-keys 1\nkey 1 short",
            "enclave-master-keys 1\nkey 1 \(keyText)\nkey 1 \(keyText)", "enclave-master-keys 2\nkey 1 \(keyText)",
        ] {
            try bad.write(toFile: path, atomically: false, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
            let message = refusal(path)
            #expect(message.hasPrefix("master key file \(path)"), "\(message)")
        }
    }
}
