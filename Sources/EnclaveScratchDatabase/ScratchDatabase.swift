import Foundation
import Postgres

/// The environment `scripts/test` provides (through `scripts/dev-postgres env`).
public enum TestEnvironment {
    /// The value of `name`, or an error that says how to get it.
    public static func value(_ name: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
            throw TestSetupError(
                "\(name) is not set: run the tests with scripts/test, or eval \"$(scripts/dev-postgres env)\" first"
            )
        }
        return value
    }

    /// The configuration behind environment variable `name`.
    public static func configuration(_ name: String) throws -> ConnectionConfiguration {
        try ConnectionConfiguration(value(name))
    }

    /// The repository's root directory.
    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    /// The built `enclave` executable: `$ENCLAVE_BIN`, else this checkout's debug build.
    public static var enclaveExecutable: URL {
        if let path = ProcessInfo.processInfo.environment["ENCLAVE_BIN"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        return packageRoot.appendingPathComponent(".build/debug/enclave")
    }

    /// `scripts/python`: the project's virtual environment (made by `scripts/setup` from Debian's
    /// python3), never whichever `python3` is first on PATH. Arguments follow it as for python.
    public static var python: URL {
        packageRoot.appendingPathComponent("scripts/python")
    }
}

/// A failure to set up a test, with what to do about it.
public struct TestSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A database created for one test and dropped afterwards, owned by `enclave_owner`.
public struct ScratchDatabase: Sendable {
    /// The database's name.
    public let name: String

    init(name: String) { self.name = name }

    /// Creates an empty database and runs `body` with it; drops it afterwards.
    public static func with<T: Sendable>(_ body: (ScratchDatabase) async throws -> T) async throws -> T {
        try await with(template: nil, body)
    }

    /// Creates a database, empty or as a copy of `template`, and runs `body` with it; drops it
    /// afterwards.
    static func with<T: Sendable>(template: String?, _ body: (ScratchDatabase) async throws -> T) async throws -> T {
        // A test that already holds a slot (one database inside another) does not wait for a second.
        if holdsSlot { return try await create(template: template, body) }
        await ScratchSlots.shared.acquire()
        do {
            let value = try await $holdsSlot.withValue(true) { try await create(template: template, body) }
            await ScratchSlots.shared.release()
            return value
        } catch {
            await ScratchSlots.shared.release()
            throw error
        }
    }

    /// Whether the current task runs inside a scratch database's slot.
    @TaskLocal static var holdsSlot = false

    private static func create<T: Sendable>(template: String?, _ body: (ScratchDatabase) async throws -> T)
        async throws -> T
    {
        let name = "enclave_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        let database = ScratchDatabase(name: String(name))
        let superuser = try await Connection.connect(TestEnvironment.configuration("ENCLAVE_SUPERUSER_DATABASE_URL"))
        // CREATE DATABASE takes no parameters; the names are generated, never input.
        if let template {
            try await superuser.query("CREATE DATABASE \(database.name) OWNER enclave_owner TEMPLATE \(template)")
            // A copy does not inherit the template's database privileges: restore what 0001 set.
            try await superuser.query("REVOKE ALL ON DATABASE \(database.name) FROM PUBLIC")
            try await superuser.query(
                "GRANT CONNECT ON DATABASE \(database.name) TO enclave_app, enclave_maint, enclave_auth")
        } else {
            try await superuser.query("CREATE DATABASE \(database.name) OWNER enclave_owner")
        }
        do {
            let value = try await body(database)
            try await database.drop(using: superuser)
            await superuser.close()
            return value
        } catch {
            try? await database.drop(using: superuser)
            await superuser.close()
            throw error
        }
    }

    private func drop(using superuser: Connection) async throws {
        try await superuser.query("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// The configuration of environment variable `variable`, pointed at this database.
    public func configuration(_ variable: String) throws -> ConnectionConfiguration {
        try TestEnvironment.configuration(variable).setting("dbname", to: name)
    }

    /// The URL of environment variable `variable`, pointed at this database (for child processes).
    public func url(_ variable: String) throws -> String {
        var components = URLComponents(string: try TestEnvironment.value(variable))
        components?.path = "/" + name
        guard let url = components?.string else { throw TestSetupError("\(variable) is not a URL") }
        return url
    }

    /// Connects as the role behind `variable` (defaults to the superuser).
    public func connect(_ variable: String = "ENCLAVE_SUPERUSER_DATABASE_URL") async throws -> Connection {
        try await Connection.connect(configuration(variable))
    }
}

/// How many scratch databases a test process holds at once: every test holds one (and a
/// superuser connection to drop it) plus the connections of its pools, and a suite started all at
/// once would otherwise take more connections than the server allows. `ENCLAVE_TEST_DATABASES`
/// overrides the default of 24.
actor ScratchSlots {
    static let shared = ScratchSlots(
        limit: ProcessInfo.processInfo.environment["ENCLAVE_TEST_DATABASES"].flatMap(Int.init) ?? 24)

    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { free = max(1, limit) }

    func acquire() async {
        if free > 0 {
            free -= 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        if waiting.isEmpty {
            free += 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}
