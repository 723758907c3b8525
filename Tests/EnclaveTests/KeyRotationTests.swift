import EnclaveTestSupport
import Foundation
import Postgres
import Sealing
import Testing

@testable import Enclave

@Suite("Key rotation and shredding against PostgreSQL")
struct KeyRotationTests {
    func context(_ tenant: UUID) -> FieldContext {
        FieldContext(tenantID: tenant, table: "leads", column: "caller_name", rowID: UUID())
    }

    @Test("a practice gets a data key and an index key when it is created")
    func provisioning() async throws {
        try await KeyFixture.with { fixture in
            let keys = try await fixture.keys()
            let tenant = try await PracticeRegistry(keys: keys).create(name: "Bright Smile Dental")
            let status = try await keys.status(tenants: [tenant])
            #expect(status.first?.keys.map(\.purpose) == [.data, .index])
            #expect(status.first?.keys.allSatisfy { $0.state == "active" && $0.version == 1 } == true)
            await #expect(throws: ConfigurationError.self) { try await PracticeRegistry(keys: keys).create(name: "  ") }
        }
    }

    @Test("rotating a data key: new seals use the new version, old ciphertext still opens")
    func rotateDataKey() async throws {
        try await KeyFixture.with { fixture in
            let keys = try await fixture.keys()
            let tenant = try await PracticeRegistry(keys: keys).create(name: "Lakeside Ortho")
            let first = context(tenant)
            let before = try await keys.seal("Jane Patient", tenant: tenant, context: first)
            #expect(try FieldCipher.keyVersion(of: before) == 1)
            let rotated = try await keys.rotate(tenants: [tenant])
            #expect(rotated.first?.version == 2)
            let second = context(tenant)
            let after = try await keys.seal("John Patient", tenant: tenant, context: second)
            #expect(try FieldCipher.keyVersion(of: after) == 2)
            let fresh = try await fixture.keys()
            #expect(try await fresh.open(before, tenant: tenant, context: first) == "Jane Patient")
            #expect(try await fresh.open(after, tenant: tenant, context: second) == "John Patient")
        }
    }

    @Test("rotating the master key re-wraps every data key; after destroying the old version everything opens")
    func rotateMaster() async throws {
        try await KeyFixture.with { fixture in
            let keys = try await fixture.keys()
            let registry = PracticeRegistry(keys: keys)
            var sealed: [(UUID, FieldContext, [UInt8])] = []
            for index in 0..<3 {
                let tenant = try await registry.create(name: "Practice \(index)")
                let where_ = context(tenant)
                sealed.append(
                    (tenant, where_, try await keys.seal("patient \(index)", tenant: tenant, context: where_)))
            }
            _ = try await keys.rotate(tenants: [sealed[0].0])
            let rotation = try await keys.rotateMaster()
            #expect(rotation.activeVersion == 2)
            #expect(rotation.rewrapped == 7)  // 3 practices × (data + index), plus one rotated data key
            #expect(!rotation.resumed)
            #expect(rotation.destroyable == [1])
            let afterRotation = try await fixture.keys()
            try await afterRotation.destroyMaster(version: 1)
            #expect(try MasterKeyFile.load(path: fixture.keyFile).versions == [2])
            let fresh = try await fixture.keys()
            for (index, item) in sealed.enumerated() {
                #expect(try await fresh.open(item.2, tenant: item.0, context: item.1) == "patient \(index)")
            }
            let states = try await MasterKeyRegistry.entries(fresh.maintenance.pool).map(\.state)
            #expect(states == ["destroyed", "active"])
        }
    }

    @Test(
        "an interrupted master rotation: destroy-master refuses while a data key depends on the old version; rotate-master resumes"
    )
    func interruptedRotation() async throws {
        try await KeyFixture.with { fixture in
            let keys = try await fixture.keys()
            let tenant = try await PracticeRegistry(keys: keys).create(name: "Interrupted Dental")
            let where_ = context(tenant)
            let ciphertext = try await keys.seal("Jane Patient", tenant: tenant, context: where_)
            // What a crash right after writing and registering the new version leaves behind.
            let added = try keys.masterKeys.addingVersion()
            try await MasterKeyRegistry.activate(added.version, provider: added.file, pool: keys.maintenance.pool)

            let interrupted = try await fixture.keys()
            #expect(interrupted.activeMasterVersion == 2)
            await #expect {
                try await interrupted.destroyMaster(version: 1)
            } throws: { error in
                "\(error)".contains("still wraps 2 data keys")
            }
            #expect(try MasterKeyFile.load(path: fixture.keyFile).versions == [1, 2])

            let resumed = try await interrupted.rotateMaster()
            #expect(resumed.resumed)
            #expect(resumed.activeVersion == 2)
            #expect(resumed.rewrapped == 2)
            try await fixture.keys().destroyMaster(version: 1)
            #expect(try await fixture.keys().open(ciphertext, tenant: tenant, context: where_) == "Jane Patient")
        }
    }

    @Test("destroying a practice's keys erases the wrapped material; nothing of it opens again")
    func shredding() async throws {
        try await KeyFixture.with { fixture in
            let keys = try await fixture.keys()
            let tenant = try await PracticeRegistry(keys: keys).create(name: "Closing Clinic")
            let where_ = context(tenant)
            let ciphertext = try await keys.seal("Jane Patient", tenant: tenant, context: where_)
            let destroyed = try await keys.maintenance.withTenant(tenant) { transaction in
                try await keys.store.destroyAll(tenant, in: transaction)
            }
            #expect(destroyed == 2)
            await #expect(throws: SealingError(.keyUnavailable, "")) {
                try await keys.open(ciphertext, tenant: tenant, context: where_)
            }
            let superuser = try await fixture.database.connect()
            defer { Task { await superuser.close() } }
            let remaining = try await superuser.query(
                "select count(*)::int8 as n from enclave.tenant_keys where tenant_id = $1 and wrapped is not null",
                [tenant])
            #expect(try remaining.first?.decode(Int.self, "n") == 0)
        }
    }

    @Test("the maintenance context reaches one tenant only; the service role gets nothing from it")
    func maintenanceContextConfines() async throws {
        try await KeyFixture.with { fixture in
            let keys = try await fixture.keys()
            let a = try await PracticeRegistry(keys: keys).create(name: "A")
            let b = try await PracticeRegistry(keys: keys).create(name: "B")
            let seen = try await keys.maintenance.withTenant(a) { transaction in
                try await transaction.query("select distinct tenant_id from enclave.tenant_keys").map {
                    try $0.decode(UUID.self, "tenant_id")
                }
            }
            #expect(seen == [a])
            await #expect(throws: PostgresError.self) {
                try await keys.maintenance.withTenant(a) { transaction in
                    try await transaction.query(
                        "insert into enclave.tenant_keys (tenant_id, purpose, version, kek_version, wrapped, state) values ($1, 'data', 9, 1, '\\x00', 'retired')",
                        [b])
                }
            }
            let app = try await fixture.database.connect(DatabaseRole.app.variable)
            defer { Task { await app.close() } }
            try await app.query("select set_config('enclave.maint_tenant', $1, false)", [a.uuidString])
            #expect(try await app.query("select 1 from enclave.tenant_keys /* test: isolation probe */").isEmpty)
        }
    }
}
