import Enclave
import EnclaveTestSupport
import Postgres
import Synchronization
import Testing

@Suite("Connection pool against PostgreSQL")
struct ConnectionPoolTests {
    func superuserPool(_ database: ScratchDatabase, size: Int, timeout: Duration = .seconds(30)) throws
        -> ConnectionPool
    {
        ConnectionPool(
            configuration: try database.configuration("ENCLAVE_SUPERUSER_DATABASE_URL")
                .setting("application_name", to: "pool-\(database.name)"),
            options: .init(maxConnections: size, checkoutTimeout: timeout)
        )
    }

    @Test(
        "prepared statements: one prepare per connection, then one round trip; a session that lost them falls back to unnamed statements"
    )
    func preparedStatements() async throws {
        try await ScratchDatabase.with { database in
            let pool = ConnectionPool(
                configuration: try database.configuration("ENCLAVE_SUPERUSER_DATABASE_URL"),
                options: .init(maxConnections: 1, preparedStatements: true))
            let sql = "select $1::int8 + 1 as n"
            #expect(try await pool.query(sql, [1]).first?.decode(Int.self, "n") == 2)
            let before = pool.roundTrips
            #expect(try await pool.query(sql, [2]).first?.decode(Int.self, "n") == 3)
            #expect(pool.roundTrips - before == 1)
            let prepared = try await pool.query("select count(*)::int8 as n from pg_prepared_statements")
            #expect(try prepared.first?.decode(Int.self, "n") ?? 0 >= 1)
            // The server forgets them (as when a pooler hands the session to another server
            // connection): the statement still answers, unnamed, and the pool stops preparing.
            try await pool.query("deallocate all")
            #expect(try await pool.query(sql, [3]).first?.decode(Int.self, "n") == 4)
            #expect(!pool.preparesStatements)
            #expect(try await pool.query(sql, [4]).first?.decode(Int.self, "n") == 5)
            await pool.close()
        }
    }

    @Test("200 concurrent tasks over a pool of 4 all finish")
    func twoHundredOverFour() async throws {
        try await ScratchDatabase.with { database in
            // What is tested is that every task gets a connection in turn (no deadlock, no leak),
            // not how fast: the last of 200 waits for about 50 queries before it, which on a
            // loaded 2-core CI machine running every suite at once took over 30 seconds.
            let pool = try superuserPool(database, size: 4, timeout: .seconds(300))
            let results = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<200 {
                    group.addTask {
                        let rows = try await pool.query("select $1::int8 as n, pg_sleep(0.002)", [index])
                        return try rows.first?.decode(Int.self, "n") ?? -1
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(results.sorted() == Array(0..<200))
            #expect(pool.usage.open <= 4)
            await pool.close()
        }
    }

    @Test("terminating every backend mid-run, then querying again, succeeds")
    func survivesTerminatedBackends() async throws {
        try await ScratchDatabase.with { database in
            let pool = try superuserPool(database, size: 4)
            let admin = try await database.connect()
            defer { Task { await admin.close() } }
            let failures = Locked(0)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<80 {
                    group.addTask {
                        do {
                            try await pool.query("select pg_sleep(0.05)")
                        } catch let error as PostgresError {
                            #expect(error.code == .connectionLost)
                            failures.withLock { $0 += 1 }
                        }
                    }
                }
                // Wait until pooled statements are running, then kill their backends mid-statement.
                try await waitUntil("pooled statements run") {
                    try await !admin.query(
                        "select 1 from pg_stat_activity where application_name = $1 and state = 'active'",
                        ["pool-\(database.name)"]
                    ).isEmpty
                }
                let killed = try await admin.query(
                    "select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1",
                    ["pool-\(database.name)"]
                )
                #expect(killed.count >= 1)
                try await group.waitForAll()
            }
            // Kill every pooled connection again, idle this time, and wait until the backends are
            // gone (pg_terminate_backend only signals); each later query must still work.
            let backends = "select pid from pg_stat_activity where application_name = $1"
            try await admin.query(
                "select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1",
                ["pool-\(database.name)"]
            )
            try await waitUntil("the terminated backends are gone") {
                try await admin.query(backends, ["pool-\(database.name)"]).isEmpty
            }
            #expect(pool.usage.idle >= 1)
            for index in 0..<8 {
                let value = try await pool.query("select $1::int8 as n", [index]).first?.decode(Int.self, "n")
                #expect(value == index)
            }
            await pool.close()
        }
    }

    @Test("a cancelled task's statement stops on the server")
    func cancellationStopsServerStatement() async throws {
        try await ScratchDatabase.with { database in
            let pool = try superuserPool(database, size: 2)
            let admin = try await database.connect()
            defer { Task { await admin.close() } }
            let task = Task { try await pool.query("select pg_sleep(60) as marker_cancel_me") }
            let running =
                "select pid from pg_stat_activity where query like 'select pg_sleep(60) as marker_cancel_me%' and state = 'active'"
            try await waitUntil("the statement runs") { try await !admin.query(running).isEmpty }
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
            // The server no longer runs it; and the connection went back to the pool usable.
            var attempts = 0
            while try await !admin.query(running).isEmpty, attempts < 100 {
                attempts += 1
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(try await admin.query(running).isEmpty)
            #expect(try await pool.query("select 1 as one").first?.decode(Int.self, "one") == 1)
            await pool.close()
        }
    }

    @Test("a write refused as read-only (a primary demoted to standby) is unavailable, and its connection is replaced")
    func readOnlyServerConnectionIsDiscarded() async throws {
        try await ScratchDatabase.with { database in
            let pool = try superuserPool(database, size: 1)
            // The session turns read-only, as a demoted primary's sessions do.
            let before = try await pool.query("select pg_backend_pid() as pid").first?.decode(Int32.self, "pid")
            try await pool.query("set default_transaction_read_only = on")
            await #expect {
                try await pool.query("create table written (x int)")
            } throws: { error in
                (error as? PostgresError)?.isReadOnlyServer == true && isDatabaseUnreachable(error)
            }
            // The next checkout opens a new connection, which writes.
            let after = try await pool.query("select pg_backend_pid() as pid").first?.decode(Int32.self, "pid")
            #expect(after != before)
            try await pool.query("create table written (x int)")
            await pool.close()
        }
    }

    @Test("a statement timeout cancels on the server and reports statementTimeout")
    func statementTimeout() async throws {
        let connection = try await Connection.connect(TestEnvironment.configuration("ENCLAVE_SUPERUSER_DATABASE_URL"))
        defer { Task { await connection.close() } }
        await #expect {
            try await connection.query("select pg_sleep(30)", timeout: .milliseconds(200))
        } throws: { error in
            (error as? PostgresError)?.code == .statementTimeout
        }
        #expect(try await connection.query("select 2 as two").first?.decode(Int.self, "two") == 2)
    }

    @Test("a checkout waits, then times out when every connection stays busy")
    func checkoutTimeout() async throws {
        try await ScratchDatabase.with { database in
            let pool = try superuserPool(database, size: 1, timeout: .milliseconds(300))
            try await pool.withConnection { _ in
                await #expect {
                    try await pool.query("select 1")
                } throws: { error in
                    (error as? PostgresError)?.code == .poolTimeout
                }
            }
            #expect(try await pool.query("select 1 as one").count == 1)
            await pool.close()
        }
    }

    @Test("blocking libpq calls leave Swift's cooperative threads free")
    func offTheCooperativePool() async throws {
        try await ScratchDatabase.with { database in
            // More blocked statements than this machine has cooperative threads: each waits on an
            // advisory lock the admin connection holds, so all are blocked in libpq at once.
            let pool = try superuserPool(database, size: 12)
            let order = Locked<[String]>([])
            let admin = try await database.connect()
            defer { Task { await admin.close() } }
            try await admin.query("select pg_advisory_lock(4242)")
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<12 {
                    group.addTask {
                        try await pool.query("select pg_advisory_lock_shared(4242), pg_advisory_unlock_shared(4242)")
                        order.withLock { $0.append("blocked") }
                    }
                }
                let deadline = ContinuousClock.now + .seconds(60)
                while try await admin.query(
                    "select 1 from pg_locks where locktype = 'advisory' and objid = 4242 and not granted"
                ).count < 12 {
                    #expect(ContinuousClock.now < deadline, "the statements never all blocked")
                    if ContinuousClock.now >= deadline { break }
                    try await Task.sleep(for: .milliseconds(10))
                }
                // Twelve OS threads are blocked in libpq; a plain task must still run.
                let quick = Task { order.withLock { $0.append("quick") } }
                await quick.value
                try await admin.query("select pg_advisory_unlock(4242)")
                try await group.waitForAll()
            }
            #expect(order.value.first == "quick")
            #expect(order.value.count == 13)
            await pool.close()
        }
    }
}

@Suite("Connecting")
struct ConnectingTests {
    @Test("a wrong password is a clear error that never shows the password")
    func wrongPassword() async throws {
        let url = try TestEnvironment.value("ENCLAVE_DATABASE_URL")
        let wrong = "wrongpassword-\(Int.random(in: 1000...9999))"
        var components = try #require(URLComponentsLite(url))
        components.password = wrong
        do {
            _ = try await Connection.connect(ConnectionConfiguration(components.string))
            Issue.record("connected with a wrong password")
        } catch let error as PostgresError {
            #expect(error.code == .connectionFailed)
            // PostgreSQL says "password authentication failed"; PgBouncer, "SASL authentication failed".
            #expect(
                error.description.contains("password authentication failed")
                    || error.description.contains("SASL authentication failed"))
            #expect(!error.description.contains(wrong))
            #expect(!error.debugDescription.contains(wrong))
        }
    }
}

/// Swaps the password of a `postgresql://user:password@host` URL.
struct URLComponentsLite {
    var prefix: String
    var user: String
    var password: String
    var rest: String

    init?(_ url: String) {
        guard let scheme = url.range(of: "://"), let at = url.range(of: "@") else { return nil }
        let userInfo = url[scheme.upperBound..<at.lowerBound].split(separator: ":", maxSplits: 1)
        guard userInfo.count == 2 else { return nil }
        prefix = String(url[..<scheme.upperBound])
        user = String(userInfo[0])
        password = String(userInfo[1])
        rest = String(url[at.lowerBound...])
    }

    var string: String { prefix + user + ":" + password + rest }
}
