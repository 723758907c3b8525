import Postgres
import Testing

@Suite("Connection configuration and transport policy (no database)")
struct ConnectionConfigurationTests {
    @Test("a remote host without sslmode gets verify-full")
    func remoteDefaultsToVerifyFull() throws {
        let configuration = try ConnectionConfiguration("postgresql://app:pw@db.example.com/enclave")
        #expect(configuration.value(for: "sslmode") == "verify-full")
    }

    @Test(
        "a remote host with a weaker sslmode is refused",
        arguments: ["disable", "allow", "prefer", "require", "verify-ca"])
    func remoteWeakSSLRefused(mode: String) {
        #expect {
            try ConnectionConfiguration("postgresql://app:pw@db.example.com/enclave?sslmode=\(mode)")
        } throws: { error in
            let error = error as? PostgresError
            return error?.code == .insecureConnection && error?.description.contains("verify-full") == true
        }
    }

    @Test("the explicit insecure flag admits a weaker sslmode to a remote host")
    func insecureFlag() throws {
        let configuration = try ConnectionConfiguration(
            "postgresql://app:pw@10.1.2.3/enclave?sslmode=disable",
            allowInsecureTransport: true
        )
        #expect(configuration.value(for: "sslmode") == "disable")
    }

    @Test(
        "loopback and Unix sockets need no TLS",
        arguments: [
            "postgresql://app:pw@127.0.0.1:5432/enclave?sslmode=disable",
            "postgresql://app:pw@localhost/enclave?sslmode=disable",
            "postgresql://app:pw@[::1]/enclave?sslmode=disable",
            "host=/var/run/postgresql dbname=enclave sslmode=disable",
            "postgresql://app@%2Fvar%2Frun%2Fpostgresql/enclave",
        ]
    )
    func localNeedsNoTLS(string: String) throws {
        _ = try ConnectionConfiguration(string)
    }

    @Test("every host of a multi-host string is checked")
    func multiHost() {
        #expect(throws: PostgresError.self) {
            try ConnectionConfiguration("host=127.0.0.1,db.example.com dbname=enclave sslmode=prefer")
        }
    }

    @Test(
        "a malformed URL is a clear error that never shows the password",
        arguments: [
            "postgresql://app:hunter2secret@127.0.0.1:notaport/enclave",
            "postgresql://app:hunter2secret@127.0.0.1/enclave?bogus_option=1",
            "host=127.0.0.1 password=hunter2secret nonsense",
            "postgresql://app:hunter2secret@[::1/enclave",
        ]
    )
    func malformed(string: String) {
        do {
            _ = try ConnectionConfiguration(string)
            Issue.record("accepted \(string)")
        } catch let error as PostgresError {
            #expect(error.code == .invalidConnectionString)
            #expect(error.description.hasPrefix("invalid connection string"))
            #expect(!error.description.contains("hunter2secret"))
            #expect(!error.debugDescription.contains("hunter2secret"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("description hides the password")
    func descriptionHidesPassword() throws {
        let configuration = try ConnectionConfiguration("postgresql://app:hunter2secret@127.0.0.1/enclave")
        #expect(!configuration.description.contains("hunter2secret"))
        #expect(configuration.description.contains("password=***"))
    }
}

@Suite("Connection failures in logs")
struct ConnectionFailureDescriptionTests {
    @Test("libpq's several lines become one, so a log line stays one line")
    func oneLine() {
        let error = PostgresError(
            code: .connectionFailed,
            message:
                "could not connect to PostgreSQL: connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?\n"
        )
        #expect(!error.description.contains("\n"))
        #expect(
            error.description.hasSuffix(
                "Connection refused Is the server running on that host and accepting TCP/IP connections?"))
    }

    @Test("a connection lost mid-statement is one line too (a failover's log)")
    func lostConnectionOneLine() {
        let error = PostgresError(
            code: .connectionLost,
            message:
                "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n\tbefore or while processing the request.\n"
        )
        #expect(
            error.description
                == "PostgreSQL connectionLost: server closed the connection unexpectedly This probably means the server terminated abnormally before or while processing the request."
        )
    }
}
