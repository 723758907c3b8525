import Enclave
import EnclaveTestSupport
import Foundation
import Postgres
import Testing

@Suite("The first schema's promises, read from the catalog")
struct SchemaCatalogTests {
    /// Tables of the `enclave` schema that have a tenant_id column.
    static let tenantTablesQuery = """
        select c.relname as name, c.relrowsecurity as enabled, c.relforcerowsecurity as forced
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'enclave' and c.relkind in ('r', 'p')
          and exists (select from pg_attribute a where a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped)
        order by 1
        """

    @Test("the audit vocabulary in Swift is exactly the one the database accepts")
    func auditVocabulary() async throws {
        try await ScratchDatabase.migrated { database in
            let connection = try await database.connect()
            defer { Task { await connection.close() } }
            let rows = try await connection.query("select action from enclave.audit_actions")
            let accepted = Set(try rows.map { try $0.decode(String.self, "action") })
            #expect(accepted == Set(AuditAction.allCases.map(\.rawValue)))
            // The table is the vocabulary: an action it lacks cannot be stored, even by the owner.
            await #expect {
                try await connection.query(
                    """
                    insert into enclave.audit_events (tenant_id, seq, actor_kind, action, outcome)
                    values (gen_random_uuid(), 1, 'system', 'phi.sold', 'ok')
                    """)
            } throws: { ($0 as? PostgresError)?.sqlState == "23503" }
        }
    }

    @Test("enclave_app and enclave_maint are not superuser, do not bypass RLS, and own nothing")
    func roles() async throws {
        try await ScratchDatabase.migrated { database in
            let connection = try await database.connect()
            defer { Task { await connection.close() } }
            let roles = try await connection.query(
                "select rolname, rolsuper, rolbypassrls from pg_roles where rolname in ('enclave_app', 'enclave_maint') order by 1"
            )
            #expect(roles.count == 2)
            for role in roles {
                #expect(try role.decode(Bool.self, "rolsuper") == false)
                #expect(try role.decode(Bool.self, "rolbypassrls") == false)
            }
            let owned = try await connection.query(
                """
                select count(*)::int8 as n from pg_class c join pg_roles r on r.oid = c.relowner
                where r.rolname in ('enclave_app', 'enclave_maint')
                """
            )
            #expect(try owned.first?.decode(Int.self, "n") == 0)
            let ownedElsewhere = try await connection.query(
                """
                select (select count(*) from pg_namespace n join pg_roles r on r.oid = n.nspowner
                         where r.rolname in ('enclave_app', 'enclave_maint'))
                     + (select count(*) from pg_proc p join pg_roles r on r.oid = p.proowner
                         where r.rolname in ('enclave_app', 'enclave_maint')) as n
                """
            )
            #expect(try ownedElsewhere.first?.decode(Int.self, "n") == 0)
        }
    }

    @Test("a service or authentication session idle in a transaction for a minute is ended by PostgreSQL")
    func idleInTransaction() async throws {
        try await ScratchDatabase.migrated { database in
            for role in [DatabaseRole.app, DatabaseRole.auth] {
                let connection = try await database.connect(role.variable)
                defer { Task { await connection.close() } }
                let setting = try await connection.query("show idle_in_transaction_session_timeout").first?.decode(
                    String.self, "idle_in_transaction_session_timeout")
                #expect(setting == "1min", "\(role)")
            }
            // The backstop works: a transaction left idle past the limit loses its session.
            let app = try await database.connect(DatabaseRole.app.variable)
            defer { Task { await app.close() } }
            try await app.query("begin")
            try await app.query("set local idle_in_transaction_session_timeout = '200ms'")
            try await Task.sleep(for: .milliseconds(600))
            await #expect(throws: (any Error).self) { try await app.query("select 1") }
        }
    }

    @Test(
        "every tenant table forces row security with per-command, per-role policies; the service role reads through the gate and only ingest inserts"
    )
    func rowSecurity() async throws {
        try await ScratchDatabase.migrated { database in
            let connection = try await database.connect()
            defer { Task { await connection.close() } }
            let tables = try await connection.query(Self.tenantTablesQuery)
            #expect(tables.count == 14)
            for table in tables {
                let name = try table.decode(String.self, "name")
                #expect(try table.decode(Bool.self, "enabled"), "\(name) has row security disabled")
                #expect(try table.decode(Bool.self, "forced"), "\(name) does not force row security")
                let policies = try await connection.query(
                    """
                    select p.polname as policy, p.polcmd::text as command, p.polqual is not null as has_using,
                           p.polwithcheck is not null as has_check, p.polpermissive as permissive,
                           array(select r.rolname from pg_roles r where r.oid = any (p.polroles) order by 1)::text[] as roles
                    from pg_policy p where p.polrelid = ('enclave.' || $1)::regclass
                    """,
                    [name]
                )
                #expect(!policies.isEmpty, "\(name) has no policy")
                for policy in policies {
                    let label = "\(name).\(try policy.decode(String.self, "policy"))"
                    let command = try policy.decode(String.self, "command")
                    let roles = try policy.decode([String].self, "roles")
                    #expect(command != "*", "\(label) is FOR ALL")
                    #expect(roles.count == 1, "\(label) applies to \(roles), not one role")
                    // SELECT and DELETE filter rows (USING); INSERT checks new rows (WITH CHECK);
                    // UPDATE does both.
                    #expect(try policy.decode(Bool.self, "has_using") == (command != "a"), "\(label): USING")
                    #expect(
                        try policy.decode(Bool.self, "has_check") == ["a", "w"].contains(command),
                        "\(label): WITH CHECK")
                    if roles == ["enclave_app"] {
                        #expect(
                            command == "r" || (command == "a" && ["leads", "recordings"].contains(name)),
                            "\(label): the service role writes \(name) directly")
                    }
                }
                // Table privileges agree: the service role selects (where a read scope exists)
                // and inserts leads and recordings, nothing else.
                for privilege in ["INSERT", "UPDATE", "DELETE", "TRUNCATE"] {
                    let granted = try await connection.query(
                        "select has_table_privilege('enclave_app', ('enclave.' || $1)::regclass, $2) as granted",
                        [name, privilege]
                    ).first?.decode(Bool.self, "granted")
                    let expected = privilege == "INSERT" && ["leads", "recordings"].contains(name)
                    #expect(granted == expected, "enclave_app \(privilege) on \(name)")
                }
            }
        }
    }

    @Test(
        "every primary key, unique constraint, foreign key between tenant tables and index of a tenant table leads with tenant_id"
    )
    func tenantIdLeads() async throws {
        try await ScratchDatabase.migrated { database in
            let connection = try await database.connect()
            defer { Task { await connection.close() } }
            let constraints = try await connection.query(
                """
                select c.relname as table_name, k.conname as name, k.contype::text as kind,
                       a.attname = 'tenant_id' as leads
                from pg_constraint k
                join pg_class c on c.oid = k.conrelid
                join pg_namespace n on n.oid = c.relnamespace
                join pg_attribute a on a.attrelid = c.oid and a.attnum = k.conkey[1]
                where n.nspname = 'enclave' and k.contype in ('p', 'u', 'f')
                  and exists (select from pg_attribute t where t.attrelid = c.oid and t.attname = 'tenant_id')
                  -- A foreign key to a global table (a Citus reference table, such as the audit
                  -- vocabulary) spans no tenant and need not lead with tenant_id.
                  and (k.contype <> 'f' or exists (
                      select from pg_attribute t where t.attrelid = k.confrelid and t.attname = 'tenant_id'))
                """
            )
            #expect(constraints.count >= 8)
            for constraint in constraints {
                let name = try constraint.decode(String.self, "name")
                #expect(try constraint.decode(Bool.self, "leads"), "\(name) does not lead with tenant_id")
            }
            let indexes = try await connection.query(
                """
                select i.indexrelid::regclass::text as name, coalesce(a.attname = 'tenant_id', false) as leads
                from pg_index i
                join pg_class c on c.oid = i.indrelid
                join pg_namespace n on n.oid = c.relnamespace
                left join pg_attribute a on a.attrelid = c.oid and a.attnum = i.indkey[0]
                where n.nspname = 'enclave'
                  and exists (select from pg_attribute t where t.attrelid = c.oid and t.attname = 'tenant_id')
                """
            )
            #expect(indexes.count >= 8)
            for index in indexes {
                let name = try index.decode(String.self, "name")
                #expect(try index.decode(Bool.self, "leads"), "\(name) does not lead with tenant_id")
            }
        }
    }
}
