import Enclave
import EnclaveTestSupport
import Foundation
import Postgres
import Testing

/// The repository's `sql/` directory.
let schemaDirectory = TestEnvironment.packageRoot.appendingPathComponent("sql", isDirectory: true)

func migrator(_ database: ScratchDatabase, directory: URL = schemaDirectory) throws -> SchemaMigrator {
    try SchemaMigrator(configuration: database.configuration("ENCLAVE_ADMIN_DATABASE_URL"), directory: directory)
}

/// Copies a directory of migrations somewhere the test may edit.
func copyOfDirectory(_ source: URL) throws -> URL {
    let target = FileManager.default.temporaryDirectory.appendingPathComponent("enclave-sql-\(UUID().uuidString)")
    try FileManager.default.copyItem(at: source, to: target)
    return target
}

@Suite("Schema migrations against PostgreSQL")
struct SchemaMigratorTests {
    @Test("migrations apply to an empty database; a second up changes nothing; status shows checksums")
    func applyTwice() async throws {
        try await ScratchDatabase.with { database in
            let files = try MigrationFile.load(from: schemaDirectory)
            #expect(files.count >= 3)
            let first = try await migrator(database).up()
            #expect(first.map(\.name) == files.map(\.name))
            let second = try await migrator(database).up()
            #expect(second.isEmpty)
            let status = try await migrator(database).status()
            #expect(status.allSatisfy { $0.state == .applied })
            #expect(status.map { $0.applied?.checksum } == files.map(\.checksum))
            #expect(status.allSatisfy { $0.applied?.checksum.count == 64 })
            #expect(try await migrator(database).plan().isEmpty)
            #expect(try await migrator(database).verify().isEmpty)
        }
    }

    @Test("editing an applied file makes verify and up fail, naming the file")
    func editedFile() async throws {
        try await ScratchDatabase.with { database in
            let directory = try copyOfDirectory(schemaDirectory)
            defer { try? FileManager.default.removeItem(at: directory) }
            try await migrator(database, directory: directory).up()
            let edited = directory.appendingPathComponent("0002_organizations_and_identity.sql")
            try (String(contentsOf: edited, encoding: .utf8) + "\n-- an innocent edit\n").write(
                to: edited, atomically: true, encoding: .utf8)
            let problems = try await migrator(database, directory: directory).verify()
            #expect(problems.map(\.code) == [.checksumMismatch])
            #expect(problems.first?.description.contains("0002_organizations_and_identity.sql") == true)
            await #expect {
                try await migrator(database, directory: directory).up()
            } throws: { error in
                (error as? MigrationError)?.file == "0002_organizations_and_identity.sql"
            }
        }
    }

    @Test(
        "a failing migration leaves the database and schema_migrations unchanged; the error names file, SQLSTATE and line"
    )
    func failingMigration() async throws {
        try await ScratchDatabase.with { database in
            let fixture = try #require(
                Bundle.module.url(forResource: "failing", withExtension: nil, subdirectory: "Fixtures"))
            let failing = try migrator(database, directory: fixture)
            var caught: MigrationError?
            do {
                try await failing.up()
            } catch let error as MigrationError {
                caught = error
            }
            let error = try #require(caught)
            #expect(error.file == "0002_fixture_fails.sql")
            #expect(error.sqlState == "42P01")
            #expect(error.line == 6)
            #expect(error.description.hasPrefix("0002_fixture_fails.sql:6: SQLSTATE 42P01: "))
            #expect(error.description.contains("fixture_missing_table"))

            let connection = try await database.connect()
            defer { Task { await connection.close() } }
            let applied = try await connection.query("select name from enclave_meta.schema_migrations order by version")
            #expect(try applied.map { try $0.decode(String.self, "name") } == ["0001_fixture_ok.sql"])
            let partial = try await connection.query("select to_regclass('fixture_partial') is null as gone")
            #expect(try partial.first?.decode(Bool.self, "gone") == true)
            // Running again fails the same way and still changes nothing.
            await #expect(throws: MigrationError.self) { try await failing.up() }
            #expect(try await connection.query("select 1 from enclave_meta.schema_migrations").count == 1)
        }
    }

    @Test("migrations refuse to run as a superuser, whose tables would bypass row-level security")
    func refusesSuperuser() async throws {
        try await ScratchDatabase.with { database in
            let asSuperuser = try SchemaMigrator(
                configuration: database.configuration("ENCLAVE_SUPERUSER_DATABASE_URL"),
                directory: schemaDirectory
            )
            await #expect {
                try await asSuperuser.up()
            } throws: { error in
                let error = error as? MigrationError
                return error?.file == "0001_roles_and_schemas.sql" && error?.sqlState == "P0001"
            }
        }
    }

    @Test("a bad timeout option is refused before anything runs")
    func badOption() throws {
        #expect(throws: MigrationError.self) {
            try SchemaMigrator(
                configuration: ConnectionConfiguration("postgresql://x@127.0.0.1/db"),
                directory: schemaDirectory,
                options: .init(lockTimeout: "5 seconds; drop table x")
            )
        }
    }

    @Test("a misnamed file and a duplicate version are refused, naming the file")
    func badNames() throws {
        for names in [["1_short.sql"], ["0001_Upper.sql"], ["0001_a.sql", "0001_b.sql"]] {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "enclave-bad-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            for name in names {
                try "select 1;".write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
            }
            #expect {
                try MigrationFile.load(from: directory)
            } throws: { error in
                (error as? MigrationError)?.file == names.last
            }
        }
    }
}
