import Foundation
import Sealing
import Synchronization
import Testing

@Suite("Keyring cache")
struct KeyringTests {
    final class Counter: Sendable {
        let loads = Locked(0)
    }

    @Test("a cached key is loaded once")
    func cached() async throws {
        let keyring = Keyring()
        let counter = Counter()
        let id = Keyring.KeyID(tenantID: UUID(), purpose: "data", version: 1)
        for _ in 0..<10 {
            _ = try await keyring.material(for: id) {
                counter.loads.withLock { $0 += 1 }
                return try SecretBytes(randomCount: 32)
            }
        }
        #expect(counter.loads.value == 1)
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
            counter.loads.withLock { $0 += 1 }
            return try SecretBytes(randomCount: 32)
        }
        #expect(counter.loads.value == 1)
    }

    @Test("an expired key is loaded again; removing a tenant drops its keys")
    func expiry() async throws {
        let keyring = Keyring(timeToLive: .milliseconds(20))
        let counter = Counter()
        let id = Keyring.KeyID(tenantID: UUID(), purpose: "data", version: 1)
        let load: @Sendable () async throws -> SecretBytes = {
            counter.loads.withLock { $0 += 1 }
            return try SecretBytes(randomCount: 32)
        }
        _ = try await keyring.material(for: id, load: load)
        try await Task.sleep(for: .milliseconds(60))
        _ = try await keyring.material(for: id, load: load)
        #expect(counter.loads.value == 2)
        keyring.remove(tenantID: id.tenantID)
        #expect(keyring.count == 0)
    }
}

/// A lock-protected value for tests.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<T: Sendable>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }
    var value: Value { mutex.withLock { $0 } }
}
