import Enclave
import EnclaveTestSupport
import Foundation
import Postgres
import Testing

@Suite("Without a tenant context the service roles reach no tenant row")
struct NoContextIsolationTests {
    /// One row in every tenant table, written by the superuser (who bypasses RLS).
    static let seed = """
        insert into enclave.practices (id, name) values ('11111111-1111-1111-1111-111111111111', 'Seed Dental');
        insert into enclave.tracking_sources (tenant_id, id, kind, label)
            values ('11111111-1111-1111-1111-111111111111', '22222222-2222-2222-2222-222222222222', 'call', 'Main line');
        insert into enclave.tenant_keys (tenant_id, purpose, version, kek_version, wrapped, state)
            values ('11111111-1111-1111-1111-111111111111', 'data', 1, 1, '\\x00', 'active');
        insert into enclave.leads (tenant_id, id, source_id, kind, occurred_at)
            values ('11111111-1111-1111-1111-111111111111', '33333333-3333-3333-3333-333333333333',
                    '22222222-2222-2222-2222-222222222222', 'call', now());
        insert into enclave.recordings (tenant_id, lead_id, chunk_index, dek_version, ciphertext)
            values ('11111111-1111-1111-1111-111111111111', '33333333-3333-3333-3333-333333333333', 0, 1, '\\x00');
        insert into enclave.audit_events (tenant_id, seq, chain_seq, link, actor_kind, action, outcome, prev_hash, hash)
            values ('11111111-1111-1111-1111-111111111111', 1, 1, 2, 'system', 'tenant.created', 'ok',
                    decode(repeat('00', 32), 'hex'), decode(repeat('11', 32), 'hex'));
        insert into enclave.tenant_migrations (tenant_id, migration, status)
            values ('11111111-1111-1111-1111-111111111111', '0001_seed', 'done');
        insert into enclave.webhook_endpoints (tenant_id, id, url, signing_secret)
            values ('11111111-1111-1111-1111-111111111111', '44444444-4444-4444-4444-444444444444',
                    'https://example.com/hook', '\\x00');
        insert into enclave.outbox (tenant_id, kind, endpoint_id, payload)
            values ('11111111-1111-1111-1111-111111111111', 'webhook', '44444444-4444-4444-4444-444444444444', '{}');
        insert into enclave.ingest_replays (tenant_id, source_id, signature_hash)
            values ('11111111-1111-1111-1111-111111111111', '22222222-2222-2222-2222-222222222222', '\\x00');
        insert into enclave.recording_fetches (tenant_id, source_id, lead_id, recording_sid, media_url)
            values ('11111111-1111-1111-1111-111111111111', '22222222-2222-2222-2222-222222222222',
                    '33333333-3333-3333-3333-333333333333', 'RE' || repeat('ab', 16), 'https://api.twilio.com/r');
        insert into enclave.visitor_sessions (tenant_id, property_id, token_hash)
            values ('11111111-1111-1111-1111-111111111111', '55555555-5555-5555-5555-555555555555', sha256('x'));
        insert into enclave.ad_spend (tenant_id, month, source, amount_cents, recorded_by)
            values ('11111111-1111-1111-1111-111111111111', '2026-11-01', 'google', 100, gen_random_uuid());
        insert into enclave.keyword_sets (tenant_id, name, phrases)
            values ('11111111-1111-1111-1111-111111111111', 'insurance', '{insurance}')
        """

    @Test(
        "every tenant table returns zero rows and refuses writes, also with a tenant GUC set by hand",
        arguments: [DatabaseRole.app, DatabaseRole.maint]
    )
    func isolated(role: DatabaseRole) async throws {
        try await ScratchDatabase.migrated { database in
            let superuser = try await database.connect()
            defer { Task { await superuser.close() } }
            for statement in SQLScript(Self.seed).statements { try await superuser.query(statement.text) }
            let tables = try await superuser.query(SchemaCatalogTests.tenantTablesQuery).map {
                try $0.decode(String.self, "name")
            }
            #expect(tables.count == 14)

            let service = try await database.connect(role.variable)
            defer { Task { await service.close() } }
            for forged in [false, true] {
                if forged {
                    // What an injection might try: claim a tenant without any credential.
                    // enclave.maint_tenant is the maintenance role's context; it must mean nothing to the app.
                    let settings =
                        ["enclave.tenant_id", "enclave.practice_id", "app.tenant_id"]
                        + (role == .app ? ["enclave.maint_tenant"] : [])
                    for setting in settings {
                        try await service.query(
                            "select set_config($1, '11111111-1111-1111-1111-111111111111', false)", [setting])
                    }
                }
                for table in tables {
                    // Table names come from the catalog, never from input.
                    // A table the role may not read at all (42501) shows nothing either.
                    let count = try await visibleRows(
                        service, "select count(*)::int8 as n from enclave.\(table) /* test: isolation probe */")
                    #expect(count == 0, "\(role.variable): \(table) shows rows")
                    let row = try await superuser.query(
                        "select row_to_json(t)::text as row from enclave.\(table) t limit 1")
                    let json = try #require(try row.first?.decode(String.self, "row"))
                    do {
                        try await service.query(
                            "insert into enclave.\(table) overriding system value select * from json_populate_record(null::enclave.\(table), $1::json)",
                            [json]
                        )
                        Issue.record("\(role.variable) inserted into \(table)")
                    } catch let error as PostgresError {
                        #expect(error.sqlState == "42501", "\(table): \(error.debugDescription)")
                    }
                    let updated = try? await service.execute("update enclave.\(table) set tenant_id = tenant_id")
                    #expect(updated == nil || updated == 0, "\(role.variable) updated \(table)")
                }
            }
            // The superuser still sees every seeded row: nothing was removed.
            for table in tables {
                let count = try await superuser.query("select count(*)::int8 as n from enclave.\(table)")
                #expect(try count.first?.decode(Int.self, "n") == 1)
            }
        }
    }

    @Test("the service role cannot read global tables or create objects")
    func noGlobalAccess() async throws {
        try await ScratchDatabase.migrated { database in
            let app = try await database.connect(DatabaseRole.app.variable)
            defer { Task { await app.close() } }
            for statement in [
                "select count(*) from enclave.users",
                "select count(*) from enclave.sessions",
                "select count(*) from enclave_meta.schema_migrations",
                "create table enclave.sneaky (id int)",
                "create table public.sneaky (id int)",
                "create function enclave_private.reachable_tenant(required_scope text, x int) returns uuid language sql as 'select null::uuid'",
                "delete from enclave.audit_events",
            ] {
                await #expect(throws: PostgresError.self, "\(statement) was allowed") {
                    try await app.query(statement)
                }
            }
        }
    }
}

/// Rows a count query returns, with "permission denied" (42501) counted as none visible.
func visibleRows(_ connection: Connection, _ sql: String, _ bindings: [any PostgresEncodable] = []) async throws -> Int
{
    do {
        return try await connection.query(sql, bindings).first?.decode(Int.self, "n") ?? -1
    } catch let error as PostgresError where error.sqlState == "42501" {
        return 0
    }
}
