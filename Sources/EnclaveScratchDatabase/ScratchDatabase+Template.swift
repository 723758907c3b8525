import Enclave
import Foundation
import Postgres
import Sealing

extension ScratchDatabase {
    /// The repository's `sql/` directory.
    public static var schemaDirectory: URL {
        TestEnvironment.packageRoot.appendingPathComponent("sql", isDirectory: true)
    }

    /// Creates a database with every migration of `sql/` applied and runs `body` with it; drops
    /// it afterwards.
    ///
    /// The database is a copy (`CREATE DATABASE … TEMPLATE`) of one migrated template per
    /// content of `sql/`, built once and shared by every test and test process: copying takes
    /// milliseconds where migrating takes a second.
    public static func migrated<T: Sendable>(_ body: (ScratchDatabase) async throws -> T) async throws -> T {
        let template = try await MigratedTemplate.shared.name()
        return try await with(template: template, body)
    }
}

/// The migrated template database, named after a digest of `sql/`, so a changed schema gets a
/// template of its own and two test processes with the same schema share one.
actor MigratedTemplate {
    static let shared = MigratedTemplate()

    private var built: Task<String, any Error>?

    /// The template's name, building it the first time.
    func name() async throws -> String {
        if let built { return try await built.value }
        let task = Task { try await Self.build() }
        built = task
        return try await task.value
    }

    /// A digest of every file under `sql/`, with its path.
    private static func digest(of directory: URL) throws -> String {
        let root = directory.standardizedFileURL.path
        var bytes: [UInt8] = []
        let paths = (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []).sorted()
        for path in paths {
            var isDirectory: ObjCBool = false
            let full = root + "/" + path
            guard FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue
            else { continue }
            bytes += Array(path.utf8) + [0]
            bytes += Array(try Data(contentsOf: URL(fileURLWithPath: full))) + [0]
        }
        return String(SHA256.hexDigest(bytes).prefix(16))
    }

    private static func build() async throws -> String {
        let name = "enclave_template_" + (try digest(of: ScratchDatabase.schemaDirectory))
        let superuser = try await Connection.connect(TestEnvironment.configuration("ENCLAVE_SUPERUSER_DATABASE_URL"))
        do {
            // One builder at a time across test processes ("enclave template" in ASCII).
            try await superuser.query("select pg_advisory_lock(7308895163045129325)")
            let exists = try await superuser.query(
                "select exists (select from pg_database where datname = $1 and datistemplate) as present", [name])
            if try exists.first?.decode(Bool.self, "present") != true {
                // Names are generated from a hex digest, never input.
                try await superuser.query("drop database if exists \(name)_building with (force)")
                try await superuser.query("create database \(name)_building owner enclave_owner")
                let building = ScratchDatabase(name: "\(name)_building")
                try await SchemaMigrator(
                    configuration: building.configuration("ENCLAVE_ADMIN_DATABASE_URL"),
                    directory: ScratchDatabase.schemaDirectory
                ).up()
                try await superuser.query("alter database \(name)_building rename to \(name)")
                try await superuser.query("alter database \(name) with is_template true allow_connections false")
                // Templates of earlier schemas are of no more use.
                let stale = try await superuser.query(
                    "select datname from pg_database where datname like 'enclave_template_%' and datname <> $1", [name])
                for row in stale {
                    let old = try row.decode(String.self, "datname")
                    try await superuser.query("alter database \(old) is_template false")
                    try await superuser.query("drop database if exists \(old) with (force)")
                }
            }
            try await superuser.query("select pg_advisory_unlock(7308895163045129325)")
            await superuser.close()
            return name
        } catch {
            await superuser.close()
            throw error
        }
    }
}
