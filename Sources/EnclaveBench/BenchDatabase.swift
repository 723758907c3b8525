import Enclave
import EnclaveScratchDatabase
import Foundation
import Postgres
import Sealing

/// Runs `body` with a freshly migrated scratch database on the dev cluster and a new master key
/// file; both are removed afterwards.
func withBenchDatabase(_ body: (ScratchDatabase, String) async throws -> Void) async throws {
    try await ScratchDatabase.migrated { database in
        let keyFile = FileManager.default.temporaryDirectory.appendingPathComponent(
            "enclave-bench-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: keyFile) }
        _ = try MasterKeyFile.create(path: keyFile)
        try await body(database, keyFile)
    }
}

/// What the benchmarks that go through the service need: the maintenance pool (two
/// connections), key management over it, the services with `connections` connections (testing
/// password cost), and a directory for users and roles.
struct BenchServices {
    let maint: ConnectionPool
    let keys: KeyManagement
    let services: EnclaveServices
    let directory: Directory

    init(_ database: ScratchDatabase, keyFile: String, connections: Int) async throws {
        maint = ConnectionPool(
            configuration: try database.configuration("ENCLAVE_MAINT_DATABASE_URL"), options: .init(maxConnections: 2))
        keys = try await KeyManagement.open(masterKeyFile: keyFile, maintenance: MaintenanceContext(pool: maint))
        services = try await EnclaveServices.open(
            database: try database.configuration("ENCLAVE_DATABASE_URL"),
            authDatabase: try database.configuration("ENCLAVE_AUTH_DATABASE_URL"), masterKeyFile: keyFile,
            options: .init(connections: connections, identity: .init(passwordCost: .testing)))
        directory = Directory(pool: maint, passwordCost: .testing)
    }
}
