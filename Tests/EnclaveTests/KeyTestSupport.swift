import Enclave
import EnclaveTestSupport
import Foundation
import Postgres
import Sealing

/// A migrated scratch database with a master key file, for key tests.
struct KeyFixture: Sendable {
    let database: ScratchDatabase
    let keyFile: String

    static func with<T: Sendable>(_ body: (KeyFixture) async throws -> T) async throws -> T {
        try await ScratchDatabase.migrated { database in
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("enclave-kek-\(UUID().uuidString)")
                .path
            defer { try? FileManager.default.removeItem(atPath: path) }
            _ = try MasterKeyFile.create(path: path)
            return try await body(KeyFixture(database: database, keyFile: path))
        }
    }

    func maintenance() throws -> MaintenanceContext {
        MaintenanceContext(
            pool: ConnectionPool(
                configuration: try database.configuration("ENCLAVE_MAINT_DATABASE_URL"),
                options: .init(maxConnections: 2)))
    }

    /// Fresh key machinery (and so an empty key cache), as a new process would have.
    func keys() async throws -> KeyManagement {
        try await KeyManagement.open(masterKeyFile: keyFile, maintenance: try maintenance())
    }
}

extension KeyManagement {
    /// Seals `text` for a tenant with its active data key.
    func seal(_ text: String, tenant: UUID, context: FieldContext) async throws -> [UInt8] {
        let store = self.store
        return try await maintenance.withTenant(tenant) { transaction in
            let keys = try await store.keys(tenant, in: transaction)
            return try FieldCipher.seal(Array(text.utf8), with: try await keys.activeDataKey(), for: context)
        }
    }

    /// Opens `ciphertext` for a tenant with whichever version sealed it.
    func open(_ ciphertext: [UInt8], tenant: UUID, context: FieldContext) async throws -> String {
        let store = self.store
        return try await maintenance.withTenant(tenant) { transaction in
            let keys = try await store.keys(tenant, in: transaction)
            return String(decoding: try await keys.open(ciphertext, for: context), as: UTF8.self)
        }
    }
}

/// The audit key of this test process, outside every scratch database.
let testAuditKey: MasterKeyFile = {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("enclave-audit-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    // swift-format-ignore: NeverUseForceTry
    return try! MasterKeyFile.create(path: path)
}()

extension MaintenanceContext {
    /// The chainer under the test audit key, appending to `log` if given.
    func chainer(log: CheckpointLog? = nil) -> AuditChainer {
        AuditChainer(maintenance: self, key: testAuditKey, log: log)
    }

    /// The verifier under the test audit key.
    func verifier() -> AuditVerifier { AuditVerifier(maintenance: self, key: testAuditKey) }

    /// Links every event written so far, then verifies `chains` (default: all).
    func linkAndVerify(chains: [UUID]? = nil, checkpoint: Checkpoint? = nil) async throws -> AuditVerifier.Report {
        _ = try await chainer().linkPending()
        return try await verifier().verify(chains: chains, checkpoint: checkpoint)
    }
}
