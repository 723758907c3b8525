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
            let functionFiles = try FunctionFile.load(from: schemaDirectory)
            #expect(files.count >= 3)
            #expect(functionFiles.count >= 5)
            // What /readyz expects is compiled in: raise it with each new migration.
            #expect(SchemaVersion.expected == files.map(\.version).max())
            let first = try await migrator(database).up()
            #expect(first.migrations.map(\.name) == files.map(\.name))
            #expect(first.functions.map(\.name) == functionFiles.map(\.name))
            let second = try await migrator(database).up()
            #expect(second.isEmpty)
            let status = try await migrator(database).status()
            #expect(status.migrations.allSatisfy { $0.state == .applied })
            #expect(status.migrations.map { $0.applied?.checksum } == files.map(\.checksum))
            #expect(status.migrations.allSatisfy { $0.applied?.checksum.count == 64 })
            #expect(status.functions.allSatisfy { $0.state == .applied })
            #expect(status.functions.map { $0.applied?.checksum } == functionFiles.map(\.checksum))
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

    @Test("every function in the application schemas is defined by a function file, and every one defined is there")
    func everyFunctionFromAFile() async throws {
        let defined = try FunctionFile.load(from: schemaDirectory).reduce(into: Set<String>()) {
            $0.formUnion($1.functionNames)
        }
        try await ScratchDatabase.migrated { database in
            let connection = try await database.connect()
            defer { Task { await connection.close() } }
            let rows = try await connection.query(
                """
                select distinct n.nspname || '.' || p.proname as name
                from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = any ($1)
                """,
                [SchemaMigrator.applicationSchemas])
            let inDatabase = Set(try rows.map { try $0.decode(String.self, "name") })
            #expect(inDatabase.count >= 50)
            #expect(inDatabase == defined, "functions defined in no file, or files whose functions are gone")
        }
    }

    @Test("no function of the application schemas is executable by PUBLIC")
    func noPublicExecute() async throws {
        try await ScratchDatabase.migrated { database in
            let connection = try await database.connect()
            defer { Task { await connection.close() } }
            let rows = try await connection.query(
                """
                select p.oid::regprocedure::text as signature
                from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                where n.nspname = any ($1)
                  and exists (select from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                              where a.grantee = 0)
                """,
                [SchemaMigrator.applicationSchemas])
            #expect(try rows.map { try $0.decode(String.self, "signature") } == [])
        }
    }

    @Test("a changed function file is applied again by up, and recorded in the history")
    func changedFunctionFile() async throws {
        try await ScratchDatabase.with { database in
            let directory = try copyOfDirectory(schemaDirectory)
            defer { try? FileManager.default.removeItem(at: directory) }
            try await migrator(database, directory: directory).up()
            let gate = directory.appendingPathComponent("functions/gate.sql")
            let source = try String(contentsOf: gate, encoding: .utf8)
            try source.replacingOccurrences(of: "-- Who reaches what.", with: "-- Who reaches what, edited.")
                .appending("\ncomment on function enclave_private.has_role(uuid,text,uuid,uuid) is 'edited';\n")
                .write(to: gate, atomically: true, encoding: .utf8)
            let status = try await migrator(database, directory: directory).status()
            #expect(status.functions.first { $0.name == "functions/gate.sql" }?.state == .changed)
            #expect(
                try await migrator(database, directory: directory).plan().functions.map(\.name) == [
                    "functions/gate.sql"
                ])
            // A file changed but not yet applied is pending, not a hand edit.
            #expect(try await migrator(database, directory: directory).verify().isEmpty)
            let outcome = try await migrator(database, directory: directory).up()
            #expect(outcome.migrations.isEmpty)
            #expect(outcome.functions.map(\.name) == ["functions/gate.sql"])
            let connection = try await database.connect()
            defer { Task { await connection.close() } }
            let history = try await connection.query(
                "select count(*)::int8 as n from enclave_meta.function_migrations where name = 'functions/gate.sql'")
            #expect(try history.first?.decode(Int.self, "n") == 2)
            let comment = try await connection.query(
                "select obj_description('enclave_private.has_role(uuid,text,uuid,uuid)'::regprocedure) as c")
            #expect(try comment.first?.decode(String.self, "c") == "edited")
            #expect(try await migrator(database, directory: directory).verify().isEmpty)
        }
    }

    @Test("verify reports a function dropped, added, re-granted or rewritten by hand, and changes nothing")
    func functionsChangedByHand() async throws {
        try await ScratchDatabase.migrated { database in
            let owner = try await database.connect("ENCLAVE_ADMIN_DATABASE_URL")
            defer { Task { await owner.close() } }
            try await owner.query("drop function enclave_private.schema_version()")
            try await owner.query(
                "create function enclave_private.has_role(person uuid) returns boolean language sql as $$ select true $$"
            )
            try await owner.query("create function enclave.backdoor() returns int language sql as $$ select 1 $$")
            try await owner.query(
                "grant execute on function enclave_private.append_audit_event("
                    + "uuid,uuid,text,uuid,text,text,text,text,text,inet,text,text,jsonb) to enclave_app")
            try await owner.query(
                """
                create or replace function enclave_private.bound_tenant() returns uuid
                language plpgsql stable set search_path = pg_catalog, pg_temp
                as $$ begin return current_setting('enclave.tenant_id', true)::uuid; end $$
                """)
            let problems = try await migrator(database).verify()
            func find(_ code: MigrationError.Code, _ text: String) -> MigrationError? {
                problems.first { $0.code == code && $0.description.contains(text) }
            }
            #expect(find(.functionMissing, "enclave_private.schema_version()")?.file == "functions/maintenance.sql")
            #expect(find(.functionUndeclared, "enclave_private.has_role(uuid)")?.file == "functions/gate.sql")
            #expect(find(.functionUndeclared, "enclave.backdoor()") != nil)
            #expect(find(.functionChanged, "enclave_private.append_audit_event(")?.file == "functions/audit.sql")
            #expect(find(.functionChanged, "enclave_private.bound_tenant()")?.file == "functions/gate.sql")
            #expect(problems.count == 5, "\(problems)")
            // Still as the hand left it: verify rolled its comparison back.
            let rows = try await owner.query(
                "select to_regprocedure('enclave_private.schema_version()') is null as dropped")
            #expect(try rows.first?.decode(Bool.self, "dropped") == true)
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
}
