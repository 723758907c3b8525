import Enclave
import Foundation
import Postgres
import Testing

/// The repository's root directory.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
let schemaDirectory = packageRoot.appendingPathComponent("sql", isDirectory: true)

@Suite("Migration files (no database)")
struct MigrationFileTests {
    @Test("no function is defined in two files of sql/, nor in a numbered migration")
    func everyFunctionOnce() throws {
        var definedIn: [String: [String]] = [:]
        for file in try MigrationFile.load(from: schemaDirectory) {
            for name in FunctionFile.definedFunctions(in: file.source) {
                definedIn[name, default: []].append(file.name)
            }
        }
        for file in try FunctionFile.load(from: schemaDirectory) {
            for name in file.functionNames { definedIn[name, default: []].append(file.name) }
        }
        #expect(definedIn.count >= 50)
        for (name, files) in definedIn {
            #expect(files.count == 1, "\(name) is defined in \(files.joined(separator: ", "))")
            #expect(files.allSatisfy { $0.hasPrefix("functions/") }, "\(name) is defined in a numbered migration")
        }
    }

    @Test("function names are read from create statements, not from comments or bodies")
    func definedFunctions() {
        let names = FunctionFile.definedFunctions(
            in: """
                -- create function enclave_private.in_a_comment() is not one
                create or replace function enclave_private.gate(scope text) returns uuid language plpgsql
                as $$ begin perform 'create function enclave.in_a_body()'; return null; end $$;
                CREATE FUNCTION Enclave.Upper() RETURNS int LANGUAGE sql AS $$ select 1 $$;
                """)
        #expect(names == ["enclave_private.gate", "enclave.upper"])
    }

    @Test("function files not in the manifest, or listed but missing, are refused by name")
    func badManifest() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("enclave-fn-\(UUID().uuidString)")
        let functions = directory.appendingPathComponent("functions")
        try FileManager.default.createDirectory(at: functions, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "a.sql\n".write(to: functions.appendingPathComponent("order"), atomically: true, encoding: .utf8)
        try "select 1;".write(to: functions.appendingPathComponent("b.sql"), atomically: true, encoding: .utf8)
        #expect { try FunctionFile.load(from: directory) } throws: {
            ($0 as? MigrationError)?.file == "functions/b.sql"
        }
        try "a.sql\nb.sql\n".write(to: functions.appendingPathComponent("order"), atomically: true, encoding: .utf8)
        #expect { try FunctionFile.load(from: directory) } throws: {
            ($0 as? MigrationError)?.file == "functions/a.sql"
        }
        try "select 1;".write(to: functions.appendingPathComponent("a.sql"), atomically: true, encoding: .utf8)
        #expect(try FunctionFile.load(from: directory).map(\.name) == ["functions/a.sql", "functions/b.sql"])
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
