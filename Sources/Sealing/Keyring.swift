import Foundation
import Synchronization

/// A bounded, time-limited cache of unwrapped data keys, so the hot path does not unwrap a key
/// per field. Only key material is cached, never which version is active: that is read from
/// the database in each unit of work, so a rotation takes effect at once.
///
/// An evicted or expired key's bytes are wiped (`OPENSSL_cleanse`, in `SecretBytes`' deinit)
/// as soon as no seal or open in flight still holds it.
public final class Keyring: Sendable {
    /// Identifies one cached key: the same triple that binds its wrapping (tenant, purpose, version).
    public typealias KeyID = KeyWrapContext

    private struct Entry {
        let material: SecretBytes
        let expires: ContinuousClock.Instant
        var lastUse: UInt64
    }

    private struct State {
        var entries: [KeyID: Entry] = [:]
        var tick: UInt64 = 0
    }

    /// The most keys held at once.
    public let capacity: Int
    /// How long a key stays after it was loaded.
    public let timeToLive: Duration
    private let state = Mutex(State())

    public init(capacity: Int = 1024, timeToLive: Duration = .seconds(300)) {
        self.capacity = max(1, capacity)
        self.timeToLive = timeToLive
    }

    /// Keys held now.
    public var count: Int { state.withLock { $0.entries.count } }

    /// The key `id`, from the cache or else from `load` (which unwraps it).
    public func material(for id: KeyID, load: () async throws -> SecretBytes) async throws -> SecretBytes {
        let now = ContinuousClock.now
        let cached: SecretBytes? = state.withLock { state in
            guard var entry = state.entries[id] else { return nil }
            guard entry.expires > now else {
                state.entries[id] = nil
                return nil
            }
            state.tick += 1
            entry.lastUse = state.tick
            state.entries[id] = entry
            return entry.material
        }
        if let cached { return cached }
        let material = try await load()
        state.withLock { state in
            state.tick += 1
            state.entries[id] = Entry(material: material, expires: now + timeToLive, lastUse: state.tick)
            state.entries = state.entries.filter { $0.value.expires > now }
            while state.entries.count > capacity,
                let oldest = state.entries.min(by: { $0.value.lastUse < $1.value.lastUse })?.key
            {
                state.entries[oldest] = nil
            }
        }
        return material
    }

    /// Drops every key of `tenantID` (after rotation or destruction).
    public func remove(tenantID: UUID) {
        state.withLock { $0.entries = $0.entries.filter { $0.key.tenantID != tenantID } }
    }

    /// Drops every key.
    public func removeAll() {
        state.withLock { $0.entries = [:] }
    }
}
