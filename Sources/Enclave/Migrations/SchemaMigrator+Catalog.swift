import Foundation
import Postgres

extension SchemaMigrator {
    /// The schemas whose functions must each be defined by exactly one function file.
    public static let applicationSchemas = ["enclave", "enclave_private"]

    /// One function as the catalog has it.
    private struct CatalogFunction: Equatable {
        let signature: String
        let name: String
        let definition: String
        let grants: String
        let tuple: String
    }

    /// Compares the database's functions with the applied function files, in a transaction that
    /// is always rolled back: it strips the grants of the files' functions, runs every file that
    /// is applied and unchanged, and compares each function's definition and grants before and
    /// after. A difference is a change made by hand; a function the files create anew was
    /// missing; a function in the application schemas that no file rewrote is defined by none.
    func catalogProblems(
        _ files: [FunctionFile], appliedFunctions: [String: AppliedFunctionFile], _ connection: Connection
    ) async throws -> [MigrationError] {
        let current = files.filter { appliedFunctions[$0.name]?.checksum == $0.checksum }
        let pendingNames = files.filter { !current.contains($0) }.reduce(into: Set<String>()) {
            $0.formUnion($1.functionNames)
        }
        var fileOf: [String: String] = [:]
        for file in current { for name in file.functionNames { fileOf[name] = file.name } }

        try await connection.query("begin")
        do {
            let before = try await functions(connection)
            let grants = try await connection.query(
                """
                select format('revoke all on function %s from %s', p.oid::regprocedure,
                              case when a.grantee = 0 then 'public' else a.grantee::regrole::text end) as statement
                from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                cross join lateral aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                where n.nspname || '.' || p.proname = any ($1) and a.grantee <> p.proowner
                """,
                [Array(fileOf.keys)]
            )
            for row in grants { try await connection.query(try row.decode(String.self, "statement")) }
            let stripped = try await functions(connection)
            for file in current {
                try await run(try checkedScript(file.source, name: file.name), name: file.name, on: connection)
            }
            let after = try await functions(connection)
            try await connection.query("rollback")
            return compare(before: before, stripped: stripped, after: after, fileOf: fileOf, pending: pendingNames)
        } catch {
            _ = try? await connection.query("rollback")
            throw error
        }
    }

    private func compare(
        before: [String: CatalogFunction], stripped: [String: CatalogFunction], after: [String: CatalogFunction],
        fileOf: [String: String], pending: Set<String>
    ) -> [MigrationError] {
        var problems: [MigrationError] = []
        for signature in Set(before.keys).union(after.keys).sorted() {
            let old = before[signature]
            let new = after[signature]
            guard let name = old?.name ?? new?.name, !pending.contains(name) else { continue }
            guard let file = fileOf[name] else {
                problems.append(
                    MigrationError(
                        code: .functionUndeclared,
                        message: "function \(signature) is in the database but no file in "
                            + "\(FunctionFile.folder)/ defines it: add it to one, or drop it in a migration"))
                continue
            }
            switch (old, new) {
            case (nil, .some):
                problems.append(
                    MigrationError(
                        code: .functionMissing, file: file,
                        message: "defines \(signature), which is missing from the database (dropped by hand?)"))
            case (.some, .some(let new)) where stripped[signature]?.tuple == new.tuple:
                problems.append(
                    MigrationError(
                        code: .functionUndeclared, file: file,
                        message: "does not define \(signature), which is in the database (created by hand?)"))
            case (.some(let old), .some(let new)) where old.definition != new.definition:
                problems.append(
                    MigrationError(
                        code: .functionChanged, file: file,
                        message: "differs from the database's \(signature): its definition was changed by hand"))
            case (.some(let old), .some(let new)) where old.grants != new.grants:
                problems.append(
                    MigrationError(
                        code: .functionChanged, file: file,
                        message: "differs from the database's \(signature): its privileges were changed by hand "
                            + "(database: \(old.grants.isEmpty ? "none" : old.grants); "
                            + "file: \(new.grants.isEmpty ? "none" : new.grants))"))
            default:
                break
            }
        }
        return problems
    }

    /// The functions of the application schemas, by signature.
    private func functions(_ connection: Connection) async throws -> [String: CatalogFunction] {
        let rows = try await connection.query(
            """
            select p.oid::regprocedure::text as signature, n.nspname || '.' || p.proname as name,
                   pg_get_functiondef(p.oid) as definition, p.ctid::text as tuple,
                   coalesce((select string_agg(g.grant, ', ' order by g.grant)
                             from (select case when a.grantee = 0 then 'public' else a.grantee::regrole::text end
                                          || ' ' || a.privilege_type as grant
                                   from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                                   where a.grantee <> p.proowner) g), '') as grants
            from pg_proc p join pg_namespace n on n.oid = p.pronamespace
            where n.nspname = any ($1)
            """,
            [Self.applicationSchemas]
        )
        var functions: [String: CatalogFunction] = [:]
        for row in rows {
            let function = CatalogFunction(
                signature: try row.decode(String.self, "signature"),
                name: try row.decode(String.self, "name"),
                definition: try row.decode(String.self, "definition"),
                grants: try row.decode(String.self, "grants"),
                tuple: try row.decode(String.self, "tuple")
            )
            functions[function.signature] = function
        }
        return functions
    }
}
