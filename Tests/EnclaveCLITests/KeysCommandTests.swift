import Enclave
import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@Suite("enclave keys and practices, run as processes")
struct KeysCommandTests {
    func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("enclave-\(name)-\(UUID().uuidString)").path
    }

    /// The environment for maintenance commands on the migrated `database`.
    func environment(_ database: ScratchDatabase, keyFile: String) async throws -> [String: String?] {
        [
            "ENCLAVE_MAINT_DATABASE_URL": try database.url("ENCLAVE_MAINT_DATABASE_URL"),
            "ENCLAVE_MASTER_KEY_FILE": keyFile,
        ]
    }

    /// Every key-related row, to show that a refused command changed nothing.
    func snapshot(_ database: ScratchDatabase) async throws -> [String] {
        let connection = try await database.connect()
        defer { Task { await connection.close() } }
        var lines: [String] = []
        for query in [
            "select id::text || name as line from enclave.practices order by 1",
            "select tenant_id::text || purpose || version || kek_version || state || encode(wrapped, 'hex') as line from enclave.tenant_keys order by 1",
            "select version || key_id || state as line from enclave.master_keys order by 1",
        ] {
            lines += try await connection.query(query).map { try $0.decode(String.self, "line") }
        }
        return lines
    }

    @Test(
        "a missing, unreadable, world-readable or wrong master key file stops the process at start-up, changing nothing"
    )
    func badMasterKeyFiles() async throws {
        try await ScratchDatabase.migrated { database in
            let good = temporaryPath("kek")
            let wrong = temporaryPath("kek-wrong")
            let open = temporaryPath("kek-open")
            defer { [good, wrong, open].forEach { try? FileManager.default.removeItem(atPath: $0) } }
            var env = try await environment(database, keyFile: good)
            #expect(try await CLIProcess.run(["keys", "init"], environment: env).status == 0)
            let created = try await CLIProcess.run(["practices", "create", "--name", "Bright Smile"], environment: env)
            #expect(created.status == 0, "\(created.output)")
            _ = try MasterKeyFile.create(path: wrong)
            try FileManager.default.copyItem(atPath: good, toPath: open)
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: open)
            let before = try await snapshot(database)
            #expect(before.count == 4)

            let cases: [(String?, String)] = [
                (good + ".missing", "does not exist"),
                (FileManager.default.temporaryDirectory.path, "is not a regular file"),
                (open, "accessible by group or others"),
                (wrong, "does not match the database"),
                (nil, "ENCLAVE_MASTER_KEY_FILE is not set"),
            ]
            for (file, message) in cases {
                env["ENCLAVE_MASTER_KEY_FILE"] = file
                for command in [
                    ["keys", "rotate", "--all"], ["practices", "create", "--name", "Other"], ["keys", "rotate-master"],
                ] {
                    let result = try await CLIProcess.run(command, environment: env)
                    #expect(result.status == 1, "\(command) with \(file ?? "no file")")
                    #expect(result.standardError.contains(message), "\(result.standardError)")
                    #expect(result.standardOutput.isEmpty)
                }
            }
            #expect(try await snapshot(database) == before)
        }
    }

    @Test("no key material appears in any output of the key lifecycle, in hex or base64")
    func noKeyMaterialInOutput() async throws {
        try await ScratchDatabase.migrated { database in
            let keyFile = temporaryPath("kek")
            defer { try? FileManager.default.removeItem(atPath: keyFile) }
            let env = try await environment(database, keyFile: keyFile)
            var output = ""
            var secrets: [[UInt8]] = []
            func run(_ arguments: [String]) async throws -> CLIResult {
                let result = try await CLIProcess.run(arguments, environment: env)
                output += result.output
                return result
            }
            func collectMasterKeys() throws {
                let text = try String(contentsOfFile: keyFile, encoding: .utf8)
                for line in text.split(separator: "\n") where line.hasPrefix("key ") {
                    if let key = line.split(separator: " ").last, let bytes = Data(base64Encoded: String(key)) {
                        secrets.append(Array(bytes))
                    }
                }
            }
            func collectDataKeys() async throws {
                let file = try MasterKeyFile.load(path: keyFile)
                let connection = try await database.connect()
                defer { Task { await connection.close() } }
                for row in try await connection.query(
                    "select tenant_id, purpose, version, wrapped from enclave.tenant_keys where wrapped is not null")
                {
                    let context = KeyWrapContext(
                        tenantID: try row.decode(UUID.self, "tenant_id"),
                        purpose: try row.decode(String.self, "purpose"),
                        version: UInt32(try row.decode(Int32.self, "version")))
                    let key = try await file.unwrap(try row.decode([UInt8].self, "wrapped"), context: context)
                    secrets.append(key.withUnsafeBytes { Array($0) })
                }
            }

            #expect(try await run(["keys", "init"]).status == 0)
            try collectMasterKeys()
            #expect(try await run(["practices", "create", "--name", "Bright Smile"]).status == 0)
            #expect(try await run(["practices", "create", "--name", "Lakeside"]).status == 0)
            try await collectDataKeys()
            #expect(try await run(["keys", "rotate", "--all"]).status == 0)
            #expect(try await run(["keys", "rotate-master"]).status == 0)
            try collectMasterKeys()
            try await collectDataKeys()
            #expect(try await run(["keys", "status"]).status == 0)
            #expect(try await run(["keys", "destroy-master", "--version", "2"]).status == 1)
            #expect(try await run(["keys", "init"]).status == 1)
            #expect(try await run(["keys", "destroy-master", "--version", "1"]).status == 0)
            #expect(try await run(["keys", "status"]).status == 0)

            #expect(secrets.count >= 2 + 4 + 6)
            #expect(output.contains("master key version 2 is active"))
            for secret in secrets {
                let hex = secret.map { String(format: "%02x", $0) }.joined()
                let base64 = Data(secret).base64EncodedString()
                for form in [hex, hex.uppercased(), base64, String(base64.prefix(24)), String(hex.prefix(24))] {
                    #expect(!output.contains(form), "key material in command output")
                }
            }
        }
    }

    @Test("rotate needs exactly one of --tenant and --all, and a real practice")
    func rotateArguments() async throws {
        for arguments in [
            ["keys", "rotate"], ["keys", "rotate", "--all", "--tenant", UUID().uuidString],
            ["keys", "rotate", "--tenant", "nope"],
        ] {
            let result = try await CLIProcess.run(arguments)
            #expect(result.status != 0)
            #expect(!result.standardError.isEmpty)
        }
    }
}

@Suite("enclave agencies, users and baa, run as processes")
struct DirectoryCommandTests {
    @Test(
        "an operator creates an agency and a user (password from stdin, never echoed), grants a role, disables the user"
    )
    func directory() async throws {
        try await ScratchDatabase.migrated { database in
            let env: [String: String?] = [
                "ENCLAVE_ADMIN_DATABASE_URL": try database.url("ENCLAVE_ADMIN_DATABASE_URL"),
                "ENCLAVE_MAINT_DATABASE_URL": try database.url("ENCLAVE_MAINT_DATABASE_URL"),
            ]
            let agency = try await CLIProcess.run(["agencies", "create", "--name", "Growth Co"], environment: env)
            #expect(agency.status == 0)
            let agencyID = agency.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(UUID(uuidString: agencyID) != nil)
            let created = try await CLIProcess.run(
                ["users", "create", "--email", "ada@growth.test", "--name", "Ada"], environment: env,
                input: "a long enough passphrase\n")
            #expect(created.status == 0, "\(created.output)")
            #expect(!created.output.contains("a long enough passphrase"))
            let grant = try await CLIProcess.run(
                ["users", "grant", "--email", "ADA@growth.test", "--role", "agency_admin", "--agency", agencyID],
                environment: env)
            #expect(grant.status == 0, "\(grant.output)")
            let bad = try await CLIProcess.run(
                ["users", "grant", "--email", "ada@growth.test", "--role", "practice_owner", "--agency", agencyID],
                environment: env)
            #expect(bad.status == 1)
            #expect(bad.standardError.contains("practice_owner needs a practice"))
            let weak = try await CLIProcess.run(
                ["users", "create", "--email", "bob@growth.test", "--name", "Bob"], environment: env, input: "short\n")
            #expect(weak.status == 1)
            #expect(weak.standardError.contains("at least 12 characters"))
            #expect(
                try await CLIProcess.run(["users", "disable", "--email", "ada@growth.test"], environment: env).status
                    == 0)
            let connection = try await database.connect()
            defer { Task { await connection.close() } }
            let rows = try await connection.query(
                "select count(*) filter (where disabled_at is not null)::int8 as disabled, count(*)::int8 as n from enclave.users"
            )
            #expect(try rows.first?.decode(Int.self, "disabled") == 1)
            #expect(try rows.first?.decode(Int.self, "n") == 1)
        }
    }
}

@Suite("enclave audit, run as processes")
struct AuditCommandTests {
    @Test(
        "verify passes an intact trail, and exits 1 naming chain and sequence for an edit or a truncation caught by a checkpoint"
    )
    func verifyAndCheckpoint() async throws {
        try await ScratchDatabase.migrated { database in
            let keyFile = FileManager.default.temporaryDirectory.appendingPathComponent(
                "enclave-kek-\(UUID().uuidString)"
            ).path
            let auditKey = keyFile + ".audit"
            let checkpoint = auditKey + ".checkpoints"
            defer { [keyFile, auditKey, checkpoint].forEach { try? FileManager.default.removeItem(atPath: $0) } }
            let env: [String: String?] = [
                "ENCLAVE_ADMIN_DATABASE_URL": try database.url("ENCLAVE_ADMIN_DATABASE_URL"),
                "ENCLAVE_MAINT_DATABASE_URL": try database.url("ENCLAVE_MAINT_DATABASE_URL"),
                "ENCLAVE_MASTER_KEY_FILE": keyFile, "ENCLAVE_AUDIT_KEY_FILE": auditKey,
            ]
            #expect(try await CLIProcess.run(["keys", "init"], environment: env).status == 0)
            let practice = try await CLIProcess.run(["practices", "create", "--name", "Audited"], environment: env)
            let id = practice.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
            for _ in 0..<3 {
                #expect(try await CLIProcess.run(["keys", "rotate", "--all"], environment: env).status == 0)
            }
            // Nothing linked yet: verify counts the events and passes.
            let created = try await CLIProcess.run(["audit", "checkpoint"], environment: env)
            #expect(created.status == 0, "\(created.output)")
            #expect(created.standardOutput.contains("created audit key file"), "\(created.output)")
            let early = try await CLIProcess.run(["audit", "verify", "--no-checkpoints"], environment: env)
            #expect(early.status == 0, "\(early.output)")
            #expect(early.standardOutput.contains("not linked yet"), "\(early.output)")
            #expect(!early.standardOutput.contains(", 0 not linked yet"), "\(early.output)")
            let chained = try await CLIProcess.run(["audit", "chain", "--once"], environment: env)
            #expect(chained.status == 0, "\(chained.output)")
            #expect(chained.standardOutput.contains("linked"), "\(chained.output)")
            #expect(FileManager.default.fileExists(atPath: checkpoint))
            let intact = try await CLIProcess.run(["audit", "verify"], environment: env)
            #expect(intact.status == 0, "\(intact.output)")
            #expect(intact.standardOutput.contains("against the checkpoint log"), "\(intact.output)")
            // No log, no pass: without it, a cut tail would go unseen.
            try FileManager.default.moveItem(atPath: checkpoint, toPath: checkpoint + ".aside")
            let missing = try await CLIProcess.run(["audit", "verify"], environment: env)
            #expect(missing.status == 1 && missing.standardError.contains("missing or empty"), "\(missing.output)")
            FileManager.default.createFile(atPath: checkpoint, contents: Data())
            #expect(try await CLIProcess.run(["audit", "verify"], environment: env).status == 1)
            try FileManager.default.removeItem(atPath: checkpoint)
            try FileManager.default.moveItem(atPath: checkpoint + ".aside", toPath: checkpoint)

            let superuser = try await database.connect()
            defer { Task { await superuser.close() } }
            try await superuser.query("set session_replication_role = replica")
            try await superuser.query(
                "delete from enclave.audit_events where tenant_id = $1 and chain_seq = 4", [UUID(uuidString: id)])
            try await superuser.query(
                "update enclave_private.audit_heads h set seq = 3, hash = e.hash from enclave.audit_events e where h.chain_id = $1 and e.tenant_id = $1 and e.chain_seq = 3",
                [UUID(uuidString: id)])
            #expect(try await CLIProcess.run(["audit", "verify", "--no-checkpoints"], environment: env).status == 0)
            let caught = try await CLIProcess.run(["audit", "verify"], environment: env)
            #expect(caught.status == 1)
            #expect(caught.standardError.contains("chain \(id) seq 4"), "\(caught.output)")
            #expect(caught.standardError.contains("truncated"))

            try await superuser.query(
                "update enclave.audit_events set reason = 'edited' where tenant_id = $1 and chain_seq = 2",
                [UUID(uuidString: id)])
            let edited = try await CLIProcess.run(["audit", "verify", "--tenant", id], environment: env)
            #expect(edited.status == 1)
            #expect(edited.standardError.contains("chain \(id) seq 2: content does not match its authentication code"))
        }
    }
}
