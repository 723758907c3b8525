import EnclaveTestSupport
import Postgres
import Testing

@Suite("Transactions")
struct TransactionTests {
    struct Planned: Error {}

    @Test("commit on return, roll back on throw")
    func commitAndRollback() async throws {
        try await ScratchDatabase.with { database in
            let connection = try await database.connect()
            defer { Task { await connection.close() } }
            try await connection.query("create table t (n int)")
            try await connection.withTransaction { tx in try await tx.query("insert into t values (1)") }
            await #expect(throws: Planned.self) {
                try await connection.withTransaction { tx in
                    try await tx.query("insert into t values (2)")
                    throw Planned()
                }
            }
            let rows = try await connection.query("select n from t order by n")
            #expect(try rows.map { try $0.decode(Int.self, "n") } == [1])
        }
    }

    @Test("roll back when the task is cancelled")
    func rollbackOnCancellation() async throws {
        try await ScratchDatabase.with { database in
            let setup = try await database.connect()
            defer { Task { await setup.close() } }
            try await setup.query("create table t (n int)")
            let configuration = try database.configuration("ENCLAVE_SUPERUSER_DATABASE_URL")
            let task = Task {
                let connection = try await Connection.connect(configuration)
                defer { Task { await connection.close() } }
                try await connection.withTransaction { tx in
                    try await tx.query("insert into t values (1)")
                    try await tx.query("select pg_sleep(30)")
                }
            }
            // Wait until the insert has happened and the sleep runs, then cancel.
            try await waitUntil("the sleep runs") {
                try await !setup.query("select 1 from pg_stat_activity where query = 'select pg_sleep(30)'").isEmpty
            }
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
            let count = try await setup.query("select count(*)::int8 as n from t").first?.decode(Int.self, "n")
            #expect(count == 0)
        }
    }
}
