import EnclaveTestSupport
import Foundation
import Postgres
import Testing

@Suite("Binding and decoding against PostgreSQL")
struct CodingTests {
    @Test("every supported type round-trips through a real server")
    func roundTrip() async throws {
        let connection = try await Connection.connect(TestEnvironment.configuration("ENCLAVE_SUPERUSER_DATABASE_URL"))
        defer { Task { await connection.close() } }
        let id = UUID()
        let ids = [UUID(), UUID()]
        let now = Date(timeIntervalSince1970: 1_780_000_000.123456)
        let bytes: [UInt8] = [0, 1, 2, 255, 0]
        let json = try JSONB(encoding: ["a": 1])
        let rows = try await connection.query(
            """
            select $1::uuid as id, $2::text as name, $3::bool as flag, $4::int2 as small, $5::int4 as medium,
                   $6::int8 as large, $7::float8 as ratio, $8::bytea as blob, $9::timestamptz as at,
                   $10::jsonb as doc, $11::text[] as names, $12::uuid[] as ids, $13::text as missing,
                   $14::text[] as empty
            """,
            [
                id, "Zoë 🦷", true, Int16(-7), Int32(1 << 30), Int64.max, 2.5, bytes, now, json,
                ["a", "b,c", "\"q\""], ids, String?.none, [String](),
            ]
        )
        let row = try #require(rows.first)
        #expect(try row.decode(UUID.self, "id") == id)
        #expect(try row.decode(String.self, "name") == "Zoë 🦷")
        #expect(try row.decode(Bool.self, "flag"))
        #expect(try row.decode(Int16.self, "small") == -7)
        #expect(try row.decode(Int32.self, "medium") == 1 << 30)
        #expect(try row.decode(Int64.self, "large") == .max)
        #expect(try row.decode(Double.self, "ratio") == 2.5)
        #expect(try row.decode([UInt8].self, "blob") == bytes)
        let at = try row.decode(Date.self, "at")
        #expect(abs(at.timeIntervalSince(now)) < 0.000_001)
        #expect(try row.decode(JSONB.self, "doc").decode([String: Int].self) == ["a": 1])
        #expect(try row.decode([String].self, "names") == ["a", "b,c", "\"q\""])
        #expect(try row.decode([UUID].self, "ids") == ids)
        #expect(try row.decode(String?.self, "missing") == nil)
        #expect(try row.decode([String].self, "empty") == [])
        #expect(try row.decode(Int.self, "medium") == 1 << 30)
    }

    @Test("a type mismatch and an unexpected NULL name the column")
    func mismatch() async throws {
        let connection = try await Connection.connect(TestEnvironment.configuration("ENCLAVE_SUPERUSER_DATABASE_URL"))
        defer { Task { await connection.close() } }
        let row = try #require(try await connection.query("select 'x'::text as label, null::int4 as count").first)
        #expect {
            try row.decode(Int.self, "label")
        } throws: { error in
            let error = error as? PostgresError
            return error?.code == .typeMismatch && error?.column == "label"
                && error?.description.contains("\"label\"") == true
        }
        #expect {
            try row.decode(Int.self, "count")
        } throws: { error in
            (error as? PostgresError)?.column == "count" && "\(error)".contains("NULL")
        }
        #expect(throws: PostgresError.self) { try row.decode(String.self, "nope") }
    }

    @Test("server errors carry SQLSTATE, constraint and position; description omits the message")
    func serverErrors() async throws {
        let connection = try await Connection.connect(TestEnvironment.configuration("ENCLAVE_SUPERUSER_DATABASE_URL"))
        defer { Task { await connection.close() } }
        try await connection.query("create temp table t (id int primary key, secret text)")
        try await connection.query("insert into t values (1, $1)", ["Jane Patient"])
        do {
            try await connection.query("insert into t values (1, $1)", ["Jane Patient"])
            Issue.record("duplicate accepted")
        } catch let error as PostgresError {
            #expect(error.sqlState == "23505")
            #expect(error.constraint == "t_pkey")
            #expect(error.detail?.contains("(id)=(1)") == true)
            #expect(!error.description.contains("1"))
        }
        do {
            try await connection.query("select id from t where nonexistent = 1")
            Issue.record("bad column accepted")
        } catch let error as PostgresError {
            #expect(error.sqlState == "42703")
            #expect(error.position == 24)  // the 1-based offset of "nonexistent"
        }
        // The connection is still usable after errors.
        #expect(try await connection.query("select 1 as one").first?.decode(Int.self, "one") == 1)
    }

    @Test("two statements in one call are refused (no stacking)")
    func noStacking() async throws {
        let connection = try await Connection.connect(TestEnvironment.configuration("ENCLAVE_SUPERUSER_DATABASE_URL"))
        defer { Task { await connection.close() } }
        await #expect(throws: PostgresError.self) { try await connection.query("select 1; select 2") }
    }
}
