import Foundation
import Postgres
import Sealing

/// The database's record of master key versions (`enclave.master_keys`): ids and states,
/// never key material. It says which version is active, and lets a process check at start-up
/// that its master key provider holds the very keys that wrapped the stored data keys.
public struct MasterKeyRegistry: Sendable {
    /// One registered master key version.
    public struct Entry: Sendable, Equatable {
        public let version: UInt32
        public let provider: String
        public let keyID: String
        public let state: String
    }

    /// Every registered version, oldest first.
    public static func entries(_ pool: ConnectionPool) async throws -> [Entry] {
        try await pool.query("select version, provider, key_id, state from enclave.master_keys order by version").map {
            Entry(
                version: UInt32(try $0.decode(Int32.self, "version")),
                provider: try $0.decode(String.self, "provider"),
                keyID: try $0.decode(String.self, "key_id"),
                state: try $0.decode(String.self, "state")
            )
        }
    }

    /// Checks `provider` against the registry and returns the active version.
    ///
    /// On an empty registry (a new installation) the provider's versions are registered, the
    /// highest active. Otherwise every version the registry still uses must be in the provider
    /// with the same key id; anything else is an error that names the version, before any work.
    @discardableResult
    public static func reconcile(_ provider: any MasterKeyProvider, pool: ConnectionPool) async throws -> UInt32 {
        var entries = try await entries(pool)
        if entries.isEmpty {
            guard let highest = provider.versions.last else {
                throw ConfigurationError("the master key provider holds no keys")
            }
            for version in provider.versions {
                try await register(
                    version, provider: provider, state: version == highest ? "active" : "retired", pool: pool)
            }
            entries = try await self.entries(pool)
        }
        let available = Set(provider.versions)
        for entry in entries where entry.state != "destroyed" {
            guard available.contains(entry.version) else {
                throw ConfigurationError(
                    "master key version \(entry.version) (key id \(entry.keyID)) is registered as \(entry.state) "
                        + "but the master key provider (\(provider.providerName)) does not hold it"
                )
            }
            let keyID = try provider.keyIdentifier(version: entry.version)
            guard keyID == entry.keyID else {
                throw ConfigurationError(
                    "master key version \(entry.version) does not match the database: the provider's key id is "
                        + "\(keyID), the registry's is \(entry.keyID). Wrong master key file?"
                )
            }
        }
        guard let active = entries.first(where: { $0.state == "active" }) else {
            throw ConfigurationError("the master key registry has no active version")
        }
        return active.version
    }

    /// Checks `provider` against the registry without writing (for the service role): every
    /// version the registry uses must be in the provider with the same key id. Returns the
    /// active version.
    public static func verify(_ provider: any MasterKeyProvider, pool: ConnectionPool) async throws -> UInt32 {
        let entries = try await entries(pool)
        guard let active = entries.first(where: { $0.state == "active" }) else {
            throw ConfigurationError(
                "no master key is registered yet: run an operator key command first (enclave keys status)")
        }
        for entry in entries where entry.state != "destroyed" {
            guard provider.versions.contains(entry.version),
                try provider.keyIdentifier(version: entry.version) == entry.keyID
            else {
                throw ConfigurationError(
                    "master key version \(entry.version) does not match the database. Wrong master key file?")
            }
        }
        return active.version
    }

    /// Registers `version` of `provider` (skipped if already there).
    static func register(
        _ version: UInt32,
        provider: any MasterKeyProvider,
        state: String,
        pool: ConnectionPool
    ) async throws {
        try await pool.query(
            """
            insert into enclave.master_keys (version, provider, key_id, state) values ($1, $2, $3, $4)
            on conflict (version) do nothing
            """,
            [Int32(version), provider.providerName, try provider.keyIdentifier(version: version), state]
        )
    }

    /// Makes `version` (already in the provider) the active one; the previous becomes retired.
    static func activate(_ version: UInt32, provider: any MasterKeyProvider, pool: ConnectionPool) async throws {
        let keyID = try provider.keyIdentifier(version: version)
        try await pool.withTransaction { transaction in
            try await transaction.query("lock table enclave.master_keys in share row exclusive mode")
            try await transaction.query("update enclave.master_keys set state = 'retired' where state = 'active'")
            try await transaction.query(
                """
                insert into enclave.master_keys (version, provider, key_id, state) values ($1, $2, $3, 'active')
                on conflict (version) do update set state = 'active'
                """,
                [Int32(version), provider.providerName, keyID]
            )
        }
    }

    /// Records that `version` was destroyed.
    static func markDestroyed(_ version: UInt32, pool: ConnectionPool) async throws {
        try await pool.query(
            "update enclave.master_keys set state = 'destroyed', destroyed_at = now() where version = $1",
            [Int32(version)])
    }
}
