import Enclave
import Foundation
import OpenAPIRuntime
import Postgres

/// Health: liveness and readiness.
extension EnclaveAPI {
    func health(_ input: Operations.health.Input) async throws -> Operations.health.Output {
        .ok(.init(body: .plainText("ok")))
    }

    func ready(_ input: Operations.ready.Input) async throws -> Operations.ready.Output {
        let version = try? await identity.pool.query("select enclave_private.schema_version() as v").first?.decode(
            Int32.self, "v")
        let masterKey = (try? identity.masterKeys.keyIdentifier(version: identity.masterKeyVersion)) != nil
        let readiness = Components.Schemas.Readiness(
            database: version != nil, migrations: version.map { Int($0) >= expectedSchemaVersion } ?? false,
            master_key: masterKey)
        if readiness.database && readiness.migrations && readiness.master_key {
            return .ok(.init(body: .json(readiness)))
        }
        return .serviceUnavailable(.init(body: .json(readiness)))
    }
}
