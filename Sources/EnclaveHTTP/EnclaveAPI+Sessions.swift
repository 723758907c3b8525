import Enclave
import Foundation
import OpenAPIRuntime

extension EnclaveAPI {
    func reauthenticate(_ input: Operations.reauthenticate.Input) async throws -> Operations.reauthenticate.Output {
        guard case .json(let body) = input.body else { throw Problem(.unsupportedMediaType, "send application/json") }
        do {
            let fresh = try await identity.reauthenticate(try token(), password: body.password, code: body.code)
            return .ok(.init(body: .json(.init(token: fresh.value))))
        } catch {
            return try Self.declared(
                error, [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 429: { .tooManyRequests($0) }])
        }
    }

    func listSessions(_ input: Operations.listSessions.Input) async throws -> Operations.listSessions.Output {
        do {
            let sessions = try await identity.sessions(try token())
            return .ok(
                .init(
                    body: .json(
                        sessions.map {
                            .init(
                                id: $0.id.uuidString.lowercased(), created_at: $0.createdAt,
                                last_seen_at: $0.lastSeenAt,
                                client_address: $0.clientAddress, user_agent: $0.userAgent, current: $0.current)
                        })))
        } catch {
            return try Self.declared(error, [401: { .unauthorized($0) }])
        }
    }

    func revokeSession(_ input: Operations.revokeSession.Input) async throws -> Operations.revokeSession.Output {
        do {
            try await identity.revokeSession(try token(), sessionID: try Self.uuid(input.path.sessionId, "sessionId"))
            return .noContent(.init())
        } catch {
            return try Self.declared(
                error, [401: { .unauthorized($0) }, 400: { .notFound($0) }, 404: { .notFound($0) }])
        }
    }

    func listAgreements(_ input: Operations.listAgreements.Input) async throws -> Operations.listAgreements.Output {
        do {
            let agreements = try await services.agreements.list(try token())
            return .ok(
                .init(
                    body: .json(
                        agreements.map {
                            .init(
                                id: $0.id.uuidString.lowercased(), agency_id: $0.agencyID.uuidString.lowercased(),
                                agency_name: $0.agencyName, practice_id: $0.practiceID.uuidString.lowercased(),
                                scopes: $0.scopes.compactMap { .init(rawValue: $0.rawValue) },
                                status: .init(rawValue: $0.status) ?? .proposed, effective_at: $0.effectiveAt,
                                expires_at: $0.expiresAt, in_force: $0.inForce,
                                document_sha256: $0.documentSHA256.map { String(format: "%02x", $0) }.joined())
                        })))
        } catch {
            return try Self.declared(error, [401: { .unauthorized($0) }])
        }
    }

    func approveAgreement(_ input: Operations.approveAgreement.Input) async throws -> Operations.approveAgreement.Output
    {
        do {
            try await services.agreements.approve(
                try token(), agreement: try Self.uuid(input.path.agreementId, "agreementId"))
            return .noContent(.init())
        } catch {
            return try Self.declared(
                error,
                [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 409: { .conflict($0) }])
        }
    }

    func revokeAgreement(_ input: Operations.revokeAgreement.Input) async throws -> Operations.revokeAgreement.Output {
        do {
            try await services.agreements.revoke(
                try token(), agreement: try Self.uuid(input.path.agreementId, "agreementId"))
            return .noContent(.init())
        } catch {
            return try Self.declared(
                error,
                [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 409: { .conflict($0) }])
        }
    }
}
