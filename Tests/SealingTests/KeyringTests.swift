import Foundation
import Sealing
import Synchronization
import Testing

@Suite("Keyring cache")
struct KeyringTests {
    final class Counter: Sendable {
        let loads = Atomic(0)
    }

    @Test("a cached key is loaded once")
    func cached() async throws {
        let keyring = Keyring()
        let counter = Counter()
        let id = Keyring.KeyID(tenantID: UUID(), purpose: "data", version: 1)
        for _ in 0..<10 {
            _ = try await keyring.material(for: id) {
                counter.loads.add(1, ordering: .relaxed)
                return try SecretBytes(randomCount: 32)
            }
        }
        #expect(counter.loads.load(ordering: .relaxed) == 1)
    }

    @Test("the cache holds at most its capacity, dropping the least recently used")
    func bounded() async throws {
        let keyring = Keyring(capacity: 3)
        let tenant = UUID()
        for version in 1...5 {
            _ = try await keyring.material(for: .init(tenantID: tenant, purpose: "data", version: UInt32(version))) {
                try SecretBytes(randomCount: 32)
            }
        }
        #expect(keyring.count == 3)
        let counter = Counter()
        _ = try await keyring.material(for: .init(tenantID: tenant, purpose: "data", version: 1)) {
            counter.loads.add(1, ordering: .relaxed)
            return try SecretBytes(randomCount: 32)
        }
        #expect(counter.loads.load(ordering: .relaxed) == 1)
    }

    @Test("an expired key is loaded again; removing a tenant drops its keys")
    func expiry() async throws {
        let keyring = Keyring(timeToLive: .milliseconds(20))
        let counter = Counter()
        let id = Keyring.KeyID(tenantID: UUID(), purpose: "data", version: 1)
        let load: @Sendable () async throws -> SecretBytes = {
            counter.loads.add(1, ordering: .relaxed)
            return try SecretBytes(randomCount: 32)
        }
        _ = try await keyring.material(for: id, load: load)
        try await Task.sleep(for: .milliseconds(60))
        _ = try await keyring.material(for: id, load: load)
        #expect(counter.loads.load(ordering: .relaxed) == 2)
        keyring.remove(tenantID: id.tenantID)
        #expect(keyring.count == 0)
    }
}
