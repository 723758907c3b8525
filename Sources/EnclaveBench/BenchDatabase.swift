import Enclave
import EnclaveScratchDatabase
import Foundation
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
