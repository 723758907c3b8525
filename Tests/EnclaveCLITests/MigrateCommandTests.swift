import Enclave
import EnclaveTestSupport
import Foundation
import Postgres
import Testing

@Suite("enclave migrate, run as a process")
struct MigrateCommandTests {
    let sql = TestEnvironment.packageRoot.appendingPathComponent("sql").path

    @Test("up applies, a second up applies nothing, status lists checksums, verify passes")
    func upStatusVerify() async throws {
        try await ScratchDatabase.with { database in
            let env: [String: String?] = ["ENCLAVE_ADMIN_DATABASE_URL": try database.url("ENCLAVE_ADMIN_DATABASE_URL")]
            let plan = try await CLIProcess.run(["migrate", "plan", "--dir", sql], environment: env)
            #expect(plan.status == 0)
            #expect(plan.standardOutput.contains("would apply 0001_roles_and_schemas.sql"))
            let up = try await CLIProcess.run(["migrate", "up", "--dir", sql], environment: env)
            #expect(up.status == 0, "\(up.output)")
            #expect(up.standardOutput.contains("applied 0003_tenant_tables.sql"))
            #expect(up.standardOutput.contains("applied 0004_row_level_security.sql"))
            #expect(up.standardOutput.contains("applied functions/gate.sql"))
            // The function files (the policies last) apply after every numbered file.
            let output = up.standardOutput
            let lastMigration = try #require(
                output.range(of: "applied " + String(format: "%04d_", SchemaVersion.expected)))
            let gate = try #require(output.range(of: "applied functions/gate.sql"))
            let policies = try #require(output.range(of: "applied functions/policies.sql"))
            #expect(lastMigration.lowerBound < gate.lowerBound && gate.lowerBound < policies.lowerBound)
            let again = try await CLIProcess.run(["migrate", "up", "--dir", sql], environment: env)
            #expect(again.status == 0)
            #expect(again.standardOutput.contains("nothing to apply"))
            let status = try await CLIProcess.run(["migrate", "status", "--dir", sql], environment: env)
            #expect(status.status == 0)
            for file in try MigrationFile.load(from: URL(fileURLWithPath: sql)) {
                #expect(
                    status.standardOutput.contains(String(file.checksum.prefix(16))), "\(file.name) checksum missing")
            }
            #expect(status.standardOutput.split(separator: "\n").filter { $0.contains(" applied ") }.count >= 3)
            #expect(status.standardOutput.contains("functions/gate.sql"))
            let verify = try await CLIProcess.run(["migrate", "verify", "--dir", sql], environment: env)
            #expect(verify.status == 0, "\(verify.output)")
        }
    }

    @Test("a function changed in the database by hand makes verify exit non-zero, naming the function and its file")
    func functionChangedByHand() async throws {
        try await ScratchDatabase.with { database in
            let env: [String: String?] = ["ENCLAVE_ADMIN_DATABASE_URL": try database.url("ENCLAVE_ADMIN_DATABASE_URL")]
            #expect(try await CLIProcess.run(["migrate", "up", "--dir", sql], environment: env).status == 0)
            let owner = try await database.connect("ENCLAVE_ADMIN_DATABASE_URL")
            defer { Task { await owner.close() } }
            // What an attacker with the owner's password, or a hurried DBA, might do.
            try await owner.query(
                """
                create or replace function enclave_private.has_role(person uuid, role_name text, agency uuid, practice uuid)
                returns boolean language sql stable security definer set search_path = pg_catalog, pg_temp
                as $$ select true $$
                """)
            let verify = try await CLIProcess.run(["migrate", "verify", "--dir", sql], environment: env)
            #expect(verify.status != 0)
            #expect(verify.standardError.contains("functions/gate.sql"), "\(verify.output)")
            #expect(verify.standardError.contains("enclave_private.has_role(uuid,text,uuid,uuid)"), "\(verify.output)")
            #expect(verify.standardError.contains("changed by hand"), "\(verify.output)")
            // The verify left the hand edit in place: it changes nothing.
            let still = try await owner.query(
                "select prosrc from pg_proc where proname = 'has_role' and pronamespace = 'enclave_private'::regnamespace"
            )
            #expect(try still.first?.decode(String.self, "prosrc").contains("select true") == true)
        }
    }

    @Test("two up processes started together both succeed and apply each file once")
    func concurrentRunners() async throws {
        try await ScratchDatabase.with { database in
            let env: [String: String?] = ["ENCLAVE_ADMIN_DATABASE_URL": try database.url("ENCLAVE_ADMIN_DATABASE_URL")]
            async let first = CLIProcess.run(["migrate", "up", "--dir", sql], environment: env)
            async let second = CLIProcess.run(["migrate", "up", "--dir", sql], environment: env)
            let results = try await [first, second]
            for result in results { #expect(result.status == 0, "\(result.output)") }
            let files = try MigrationFile.load(from: URL(fileURLWithPath: sql)).count
            let applied = results.map { $0.standardOutput.components(separatedBy: "applied 0").count - 1 }
            #expect(applied.reduce(0, +) == files, "each file applied exactly once across both runners")
            let connection = try await database.connect()
            defer { Task { await connection.close() } }
            let rows = try await connection.query(
                "select count(*)::int8 as n, count(distinct version)::int8 as d from enclave_meta.schema_migrations")
            #expect(try rows.first?.decode(Int.self, "n") == files)
            #expect(try rows.first?.decode(Int.self, "d") == files)
            let functionFiles = try FunctionFile.load(from: URL(fileURLWithPath: sql)).count
            let history = try await connection.query(
                "select count(*)::int8 as n, count(distinct name)::int8 as d from enclave_meta.function_migrations")
            #expect(try history.first?.decode(Int.self, "n") == functionFiles)
            #expect(try history.first?.decode(Int.self, "d") == functionFiles)
        }
    }

    @Test("editing an applied file makes verify and up exit non-zero, naming the file")
    func editedFile() async throws {
        try await ScratchDatabase.with { database in
            let env: [String: String?] = ["ENCLAVE_ADMIN_DATABASE_URL": try database.url("ENCLAVE_ADMIN_DATABASE_URL")]
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "enclave-cli-\(UUID().uuidString)")
            try FileManager.default.copyItem(atPath: sql, toPath: directory.path)
            defer { try? FileManager.default.removeItem(at: directory) }
            #expect(try await CLIProcess.run(["migrate", "up", "--dir", directory.path], environment: env).status == 0)
            let file = directory.appendingPathComponent("0001_roles_and_schemas.sql")
            try (String(contentsOf: file, encoding: .utf8) + " ").write(to: file, atomically: true, encoding: .utf8)
            for command in ["verify", "up", "status"] {
                let result = try await CLIProcess.run(["migrate", command, "--dir", directory.path], environment: env)
                #expect(result.status != 0, "\(command) accepted an edited file")
                #expect(result.output.contains("0001_roles_and_schemas.sql"))
            }
        }
    }

    @Test("a failing file: exit 1, the message names file, line and SQLSTATE, nothing is recorded")
    func failingFile() async throws {
        try await ScratchDatabase.with { database in
            let env: [String: String?] = ["ENCLAVE_ADMIN_DATABASE_URL": try database.url("ENCLAVE_ADMIN_DATABASE_URL")]
            let fixture = TestEnvironment.packageRoot.appendingPathComponent("Tests/EnclaveTests/Fixtures/failing").path
            let result = try await CLIProcess.run(["migrate", "up", "--dir", fixture], environment: env)
            #expect(result.status == 1)
            #expect(result.standardError.contains("enclave: 0002_fixture_fails.sql:6: SQLSTATE 42P01: "))
            #expect(!result.standardError.contains("Fatal error"))
            let connection = try await database.connect()
            defer { Task { await connection.close() } }
            let rows = try await connection.query("select count(*)::int8 as n from enclave_meta.schema_migrations")
            #expect(try rows.first?.decode(Int.self, "n") == 1)
        }
    }

    @Test("a missing variable, a malformed URL and a wrong password each give a clear error without the password")
    func connectionErrors() async throws {
        let missing = try await CLIProcess.run(["migrate", "status"], environment: ["ENCLAVE_ADMIN_DATABASE_URL": nil])
        #expect(missing.status == 1)
        #expect(missing.standardError.contains("ENCLAVE_ADMIN_DATABASE_URL is not set"))

        let malformed = try await CLIProcess.run(
            ["migrate", "status"],
            environment: ["ENCLAVE_ADMIN_DATABASE_URL": "postgresql://enclave_owner:s3cr3t-pw@127.0.0.1:99999x/enclave"]
        )
        #expect(malformed.status == 1)
        #expect(malformed.standardError.contains("ENCLAVE_ADMIN_DATABASE_URL: invalid connection string"))
        #expect(!malformed.output.contains("s3cr3t-pw"))

        let url = try TestEnvironment.value("ENCLAVE_ADMIN_DATABASE_URL")
        let wrong = url.replacingOccurrences(
            of: #"(://[^:]+:)[^@]+@"#, with: "$1not-the-password-42@", options: .regularExpression)
        #expect(wrong != url)
        let refused = try await CLIProcess.run(
            ["migrate", "status"], environment: ["ENCLAVE_ADMIN_DATABASE_URL": wrong])
        #expect(refused.status == 1)
        #expect(refused.standardError.contains("password authentication failed"))
        #expect(!refused.output.contains("not-the-password-42"))

        // A database nobody answers for: said plainly.
        let down = try await CLIProcess.run(
            ["migrate", "status"],
            environment: ["ENCLAVE_ADMIN_DATABASE_URL": "postgresql://enclave_owner:pw@127.0.0.1:1/enclave"])
        #expect(down.status == 1)
        #expect(down.standardError.hasPrefix("enclave: cannot connect to the database: "), "\(down.standardError)")

        let remote = try await CLIProcess.run(
            ["migrate", "status"],
            environment: [
                "ENCLAVE_ADMIN_DATABASE_URL": "postgresql://enclave_owner:pw@db.example.com/enclave?sslmode=require"
            ]
        )
        #expect(remote.status == 1)
        #expect(remote.standardError.contains("verify-full"))
    }

    @Test("a bad option value names the option and changes nothing")
    func badOption() async throws {
        let result = try await CLIProcess.run(["migrate", "up", "--lock-timeout", "soon"])
        #expect(result.status == 1)
        #expect(result.standardError.contains("--lock-timeout soon"))
    }
}
