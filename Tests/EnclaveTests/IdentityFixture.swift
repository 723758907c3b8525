import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@testable import Enclave

/// Two practices (A with a BAA, B without), an agency with an admin and a member assigned to A,
/// an owner for each practice; everyone signed in with MFA. One lead and one recording each.
struct IdentityFixture: Sendable {
    let keys: KeyFixture
    let services: EnclaveServices
    let identity: IdentityService
    let agreements: AgreementService
    let access: PracticeAccess
    let directory: Directory
    let practiceA: UUID
    let practiceB: UUID
    let agency: UUID
    let admin: UUID
    let member: UUID
    let ownerA: UUID
    let ownerB: UUID
    let memberToken: SessionToken
    let adminToken: SessionToken
    let ownerAToken: SessionToken
    let baa: UUID
    static let password = "correct horse battery staple"
    /// The clock the fixture's TOTP codes were made at; later codes use later steps.
    static let start = Date()

    static func with<T: Sendable>(
        scopes: [Scope] = [.leadsRead, .recordingsListen],
        _ body: (IdentityFixture) async throws -> T
    ) async throws -> T {
        try await KeyFixture.with { keyFixture in
            let keys = try await keyFixture.keys()
            let services = EnclaveServices(
                pool: ConnectionPool(
                    configuration: try keyFixture.database.configuration("ENCLAVE_DATABASE_URL"),
                    options: .init(maxConnections: 4)),
                authPool: ConnectionPool(
                    configuration: try keyFixture.database.configuration("ENCLAVE_AUTH_DATABASE_URL"),
                    options: .init(maxConnections: 2)),
                masterKeys: keys.masterKeys, masterKeyVersion: keys.activeMasterVersion,
                options: .init(identity: .init(passwordCost: .testing)))
            let identity = services.identity
            let agreements = services.agreements
            let directory = Directory(pool: keys.maintenance.pool, passwordCost: .testing)
            let registry = PracticeRegistry(keys: keys)
            let practiceA = try await registry.create(name: "Practice A")
            let practiceB = try await registry.create(name: "Practice B")
            for practice in [practiceA, practiceB] { try await seedLead(practice, keys.maintenance) }
            let agency = try await directory.createAgency(name: "Growth Agency")
            let admin = try await directory.createUser(
                email: "admin@agency.test", displayName: "Ada Admin", password: password)
            let member = try await directory.createUser(
                email: "member@agency.test", displayName: "Max Member", password: password)
            let ownerA = try await directory.createUser(
                email: "owner@a.test", displayName: "Olga Owner", password: password)
            let ownerB = try await directory.createUser(
                email: "owner@b.test", displayName: "Otto Owner", password: password)
            try await directory.grant(user: admin, role: .agencyAdmin, agency: agency)
            try await directory.grant(user: member, role: .agencyMember, agency: agency)
            try await directory.grant(user: ownerA, role: .practiceOwner, practice: practiceA)
            try await directory.grant(user: ownerB, role: .practiceOwner, practice: practiceB)
            // Accounts made a day ago, so that back-dating a session in a test keeps it newer
            // than the last password change.
            let superuser = try await keyFixture.database.connect()
            try await superuser.query("update enclave.users set password_changed_at = now() - interval '1 day'")
            await superuser.close()

            let memberToken = try await signInWithMFA(identity, keyFixture, "member@agency.test")
            var adminToken = try await signInWithMFA(identity, keyFixture, "admin@agency.test")
            var ownerAToken = try await signInWithMFA(identity, keyFixture, "owner@a.test")
            // Proposing and assigning are sensitive: password and TOTP in the last five minutes.
            adminToken = try await identity.reauthenticate(
                adminToken, password: password, code: try await code(keyFixture, "admin@agency.test", step: 1),
                at: start.addingTimeInterval(30))
            let baa = try await agreements.propose(
                adminToken, agency: agency, practice: practiceA, scopes: scopes,
                effectiveAt: Date().addingTimeInterval(-60), expiresAt: nil,
                documentSHA256: SHA256.hash(Array("signed".utf8)))
            ownerAToken = try await identity.reauthenticate(
                ownerAToken, password: password, code: try await code(keyFixture, "owner@a.test", step: 1),
                at: start.addingTimeInterval(30))
            try await agreements.approve(ownerAToken, agreement: baa)
            try await agreements.assign(adminToken, agency: agency, practice: practiceA, member: member)
            return try await body(
                IdentityFixture(
                    keys: keyFixture, services: services, identity: identity, agreements: agreements,
                    access: services.access,
                    directory: directory, practiceA: practiceA, practiceB: practiceB, agency: agency, admin: admin,
                    member: member, ownerA: ownerA, ownerB: ownerB, memberToken: memberToken, adminToken: adminToken,
                    ownerAToken: ownerAToken, baa: baa))
        }
    }

    /// Signs in and enrolls TOTP (which verifies the session).
    static func signInWithMFA(_ identity: IdentityService, _ fixture: KeyFixture, _ email: String) async throws
        -> SessionToken
    {
        let user = try await identity.signInEnrollingMFA(email: email, password: password, at: start)
        secrets.withLock { $0[fixture.database.name + email] = user.totpSecret }
        return user.token
    }

    /// The TOTP code of `email` `step` periods after the fixture's start.
    static func code(_ fixture: KeyFixture, _ email: String, step: Int) async throws -> String {
        let secret = try #require(secrets.withLock { $0[fixture.database.name + email] })
        return try SignedInUser.code(secret: secret, at: start.addingTimeInterval(Double(step * 30)))
    }

    static let secrets = Locked<[String: String]>([:])

    static func seedLead(_ practice: UUID, _ maintenance: MaintenanceContext) async throws {
        try await maintenance.withTenant(practice) { transaction in
            let source = UUID()
            let lead = UUID()
            try await transaction.query(
                "insert into enclave.tracking_sources (tenant_id, id, kind, label) values ($1, $2, 'call', 'Main line')",
                [practice, source])
            try await transaction.query(
                "insert into enclave.leads (tenant_id, id, source_id, kind, occurred_at) values ($1, $2, $3, 'call', now())",
                [practice, lead, source])
            try await transaction.query(
                "insert into enclave.recordings (tenant_id, lead_id, chunk_index, dek_version, ciphertext) values ($1, $2, 0, 1, '\\x00')",
                [practice, lead])
        }
    }

    /// Counts a table's rows through the service path (checks the gate first).
    func serviceCount(_ token: SessionToken, practice: UUID, table: String = "leads", scope: Scope = .leadsRead)
        async throws -> Int
    {
        try await access.withPractice(token, practice: practice, scope: scope) { transaction in
            try await transaction.query("select count(*)::int8 as n from enclave.\(table) /* test: isolation probe */")
                .first?.decode(Int.self, "n")
                ?? -1
        }
    }

    /// What raw SQL as enclave_app sees with `token` bound for `practice`, skipping the service's
    /// checks: rows of `table`, and whether an insert into leads succeeded.
    func rawAccess(_ token: SessionToken?, practice: UUID, table: String = "leads") async throws -> (
        rows: Int, inserted: Bool
    ) {
        let superuser = try await keys.database.connect()
        let source = try await superuser.query(
            "select id from enclave.tracking_sources where tenant_id = $1 limit 1", [practice]
        ).first?.decode(UUID.self, "id")
        await superuser.close()
        let app = try await keys.database.connect(DatabaseRole.app.variable)
        defer { Task { await app.close() } }
        return try await app.withTransaction { transaction in
            try await transaction.query(
                "select set_config('enclave.session_token', $1, true), set_config('enclave.tenant_id', $2, true)",
                [token?.value ?? "", practice.uuidString])
            let rows =
                try await transaction.query(
                    "select count(*)::int8 as n from enclave.\(table) /* test: isolation probe */"
                ).first?.decode(
                    Int.self, "n") ?? -1
            var inserted = false
            do {
                try await transaction.query("savepoint probe")
                try await transaction.query(
                    "insert into enclave.leads (tenant_id, source_id, kind, occurred_at) values ($1, $2, 'call', now())",
                    [practice, source])
                inserted = true
            } catch let error as PostgresError {
                #expect(error.sqlState == "42501", "\(error.debugDescription)")
                try await transaction.query("rollback to savepoint probe")
            }
            // Leave nothing behind either way.
            try await transaction.query("rollback to savepoint probe")
            return (rows, inserted)
        }
    }

    func superuser(_ sql: String, _ bindings: [any PostgresEncodable] = []) async throws {
        let connection = try await keys.database.connect()
        defer { Task { await connection.close() } }
        try await connection.query(sql, bindings)
    }
}
