import Foundation
import Postgres
import Testing

@testable import Enclave

@Suite("Refusals raised by SQL, worded in Swift (no database)")
struct DatabaseRefusalTests {
    @Test("every code a function raises has words in Swift, and every worded code is raised")
    func catalogMatchesSQL() throws {
        var raised: Set<String> = []
        for file in try FunctionFile.load(from: schemaDirectory) {
            for match in file.source.matches(of: /raise exception '([a-z_]+)'/) { raised.insert(String(match.1)) }
            // The owner guard raises the refusal its caller names.
            for match in file.source.matches(of: /require_practice_owner\([^;]*?, '([a-z_]+)'\)/) {
                raised.insert(String(match.1))
            }
        }
        #expect(raised.count >= 10)
        #expect(raised == Set(DatabaseRefusal.allCases.map(\.rawValue)))
    }

    @Test("a refusal's code becomes its words; an unknown message never reaches a person")
    func mapping() {
        let error = PostgresError(
            code: .server, message: "agreement_not_proposed", sqlState: "55000", detail: "revoked")
        let mapped = AccessError.mapping(error) as? AccessError
        #expect(mapped?.code == .conflict)
        #expect(mapped?.message == "the agreement is revoked and can no longer be decided")
        let prose = PostgresError(code: .server, message: "permission denied for table users", sqlState: "42501")
        #expect((AccessError.mapping(prose) as? AccessError)?.message == "you may not do that")
    }
}

@Suite("An unreachable database is a 503")
struct UnreachableDatabaseTests {
    @Test(
        "no connection, a lost one, a pool timeout and a shutting-down server are 503 service-unavailable; other errors are not"
    )
    func unavailable() {
        for error in [
            PostgresError(code: .connectionFailed, message: "could not connect"),
            PostgresError(code: .connectionLost, message: "server closed the connection"),
            PostgresError(code: .poolTimeout, message: "no connection came free"),
            PostgresError(code: .server, message: "terminating connection", sqlState: "57P01"),
            PostgresError(code: .server, message: "the database system is starting up", sqlState: "57P03"),
            PostgresError(code: .server, message: "connection failure", sqlState: "08006"),
        ] {
            #expect(isDatabaseUnreachable(error))
            #expect(error.problem?.status == 503)
            #expect(error.problem?.type == "service-unavailable")
        }
        for error in [
            PostgresError(code: .server, message: "duplicate", sqlState: "23505"),
            PostgresError(code: .statementTimeout, message: "cancelled"),
            PostgresError(code: .typeMismatch, message: "column x"),
        ] {
            #expect(!isDatabaseUnreachable(error))
            #expect(error.problem == nil)
        }
    }
}
