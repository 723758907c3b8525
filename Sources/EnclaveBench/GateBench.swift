import Enclave
import EnclaveScratchDatabase
import Foundation
import Postgres
import Sealing

/// The gate's price: pgbench lists a practice's 50 newest leads as the service does (the
/// service role, a session token and tenant bound in the transaction, row-level security
/// deciding), against the same query with a hand-written `WHERE tenant_id` as a role without
/// row-level security, same data, same clients, alternating rounds.
///
/// Every session belongs to agency staff assigned to the practice under an active agreement:
/// the gate's longest path (a session, no membership of the practice, an assignment, a BAA).
func gateBenchmark(
    practices: Int = 2_000, leads: Int = 1_000, clients: Int = 4,
    seconds: Int = Int(ProcessInfo.processInfo.environment["ENCLAVE_BENCH_SECONDS"] ?? "") ?? 10
) async throws {
    try await withBenchDatabase { database, keyFile in
        let pool = ConnectionPool(
            configuration: try database.configuration("ENCLAVE_MAINT_DATABASE_URL"), options: .init(maxConnections: 6))
        let keys = try await KeyManagement.open(masterKeyFile: keyFile, maintenance: MaintenanceContext(pool: pool))
        let started = Date()
        let ids = try await Seeder(keys: keys).seed(practices: practices, leadsPerPractice: leads, jobs: 4)
        print(
            String(
                format: "Seeded %d practices × %d leads in %.0f s (enclave tenants seed's code)", practices, leads,
                Date().timeIntervalSince(started)))
        result("gate_seed_seconds", Date().timeIntervalSince(started))
        await pool.close()
        let superuser = try await database.connect()
        try await prepareGateSessions(superuser, practices: ids)
        await superuser.close()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("enclave-gate-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let figures = try runGateRounds(
            database: database, directory: directory, practices: ids.count, clients: clients, seconds: seconds)
        print(
            "Gate: 50 newest leads of a random practice, \(clients) clients, pgbench -M extended, medians of 3 rounds of \(seconds) s"
        )
        print(String(format: "  through the gate (enclave_app, RLS)   %8.0f tps", figures.gated))
        print(String(format: "  hand-written WHERE tenant_id, no RLS  %8.0f tps", figures.reference))
        print(
            String(
                format: "  ratio                                 %8.2f×  (goal ≥ 0.90×)",
                figures.gated / figures.reference))
        result("gate_ratio", figures.gated / figures.reference)
    }
}

/// One agency; per practice an active agreement, an agency member assigned to it and that
/// member's MFA-verified session, whose token `public.bench_sessions` lists for pgbench.
func prepareGateSessions(_ superuser: Connection, practices: [UUID]) async throws {
    for statement in [
        "create table public.bench_sessions (n int primary key, tenant uuid not null, token text not null)",
        "grant usage on schema public to enclave_app", "grant select on public.bench_sessions to enclave_app",
    ] { try await superuser.query(statement) }
    try await superuser.query(
        """
        with agency as (insert into enclave.agencies (name) values ('Bench Agency') returning id),
        admin as (
            insert into enclave.users (email, display_name) values ('admin@bench.test', 'Bench Admin') returning id),
        admin_membership as (
            insert into enclave.memberships (user_id, agency_id, role)
            select admin.id, agency.id, 'agency_admin' from admin, agency),
        practice as (select p, n from unnest($1::uuid[]) with ordinality as t(p, n)),
        staff as (
            insert into enclave.users (email, display_name)
            select 'staff' || n || '@bench.test', 'Staff ' || n from practice returning id, email),
        numbered as (
            select staff.id as user_id, practice.p, practice.n from staff
            join practice on staff.email = 'staff' || practice.n || '@bench.test'),
        staff_membership as (
            insert into enclave.memberships (user_id, agency_id, role)
            select numbered.user_id, agency.id, 'agency_member' from numbered, agency),
        agreement as (
            insert into enclave.baas (agency_id, practice_id, scopes, status, effective_at, document_sha256, proposed_by)
            select agency.id, numbered.p, array['leads.read', 'recordings.listen'], 'active', now() - interval '1 day',
                   sha256('bench'), admin.id
            from numbered, agency, admin),
        assignment as (
            insert into enclave.agency_assignments (agency_id, practice_id, user_id, assigned_by)
            select agency.id, numbered.p, numbered.user_id, admin.id from numbered, agency, admin),
        tokens as (select numbered.*, encode(sha256(convert_to(gen_random_uuid()::text || clock_timestamp()::text, 'UTF8')), 'hex') as token from numbered),
        sessions as (
            insert into enclave.sessions (user_id, token_hash, mfa_verified_at, idle_timeout, absolute_timeout)
            select user_id, sha256(convert_to(token, 'UTF8')), now(), interval '1 day', interval '1 day' from tokens)
        insert into public.bench_sessions (n, tenant, token) select n, p, token from tokens
        """,
        [practices])
    try await superuser.query("vacuum analyze")
}

/// Alternating rounds of the gated and the reference script; median tps of each.
func runGateRounds(database: ScratchDatabase, directory: URL, practices: Int, clients: Int, seconds: Int) throws
    -> (gated: Double, reference: Double)
{
    let columns =
        "id, kind, occurred_at, source, medium, campaign, duration_seconds, disposition, caller_number, caller_name"
    let lookup = """
        \\set n random(1, \(practices))
        BEGIN;
        SELECT tenant, token FROM public.bench_sessions WHERE n = :n \\gset
        SELECT set_config('enclave.tenant_id', :tenant, true), set_config('enclave.session_token', :token, true);

        """
    let gated = directory.appendingPathComponent("gated.sql")
    try (lookup + "SELECT \(columns) FROM enclave.leads ORDER BY occurred_at DESC, id DESC LIMIT 50;\nCOMMIT;\n")
        .write(to: gated, atomically: true, encoding: .utf8)
    let reference = directory.appendingPathComponent("reference.sql")
    try
        (lookup
        + "SELECT \(columns) FROM enclave.leads WHERE tenant_id = :tenant ORDER BY occurred_at DESC, id DESC LIMIT 50;\nCOMMIT;\n")
        .write(to: reference, atomically: true, encoding: .utf8)
    var gatedRates: [Double] = []
    var referenceRates: [Double] = []
    for round in 0..<4 {
        let rateGated = try pgbench(
            url: try database.url("ENCLAVE_DATABASE_URL"), script: gated, clients: clients, seconds: seconds)
        let rateReference = try pgbench(
            url: try database.url("ENCLAVE_SUPERUSER_DATABASE_URL"), script: reference, clients: clients,
            seconds: seconds)
        if round > 0 {  // the first round warms caches
            gatedRates.append(rateGated)
            referenceRates.append(rateReference)
        }
    }
    return (median(gatedRates), median(referenceRates))
}

/// Runs pgbench and returns its tps (excluding connection time).
func pgbench(url: String, script: URL, clients: Int, seconds: Int) throws -> Double {
    let process = Process()
    // Through python3 to clear the signal mask the child inherits: pgbench ends a -T run on
    // SIGALRM, which would otherwise stay blocked, and the run would never end.
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [
        "python3", "-c",
        "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execvp('pgbench', sys.argv[1:])",
        "pgbench", "-n", "-M", "extended", "-c", "\(clients)", "-j", "\(min(clients, 2))", "-T", "\(seconds)",
        "-f", script.path, url,
    ]
    let pipe = Pipe()
    process.standardOutput = pipe
    // pgbench's errors go to a file: a full, unread pipe would stall it.
    let errorPath = script.path + ".err"
    FileManager.default.createFile(atPath: errorPath, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: errorPath) }
    process.standardError = FileHandle(forWritingAtPath: errorPath)
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    let failure = (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
    guard process.terminationStatus == 0,
        let line = output.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
        let tps = Double(line.dropFirst(6).prefix { $0 != " " })
    else { throw ConfigurationError("pgbench failed: \(failure.suffix(500))") }
    return tps
}
