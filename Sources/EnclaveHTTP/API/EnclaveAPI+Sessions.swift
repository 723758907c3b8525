import Enclave
import Foundation
import OpenAPIRuntime
import Postgres

/// Sessions: sign-in, MFA, re-authentication, the signed-in user and their sessions.
extension EnclaveAPI {
    func login(_ input: Operations.login.Input) async throws -> Operations.login.Output {
        guard case .json(let body) = input.body else { throw Problem(.unsupportedMediaType, "send application/json") }
        return try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 429: { .tooManyRequests($0) },
        ]) {
            let login = try await identity.login(
                email: body.email, password: body.password, client: values.context.client)
            return .ok(.init(body: .json(.init(token: login.token.value, mfa_enrolled: login.mfaEnrolled))))
        }
    }

    func verifyMFA(_ input: Operations.verifyMFA.Input) async throws -> Operations.verifyMFA.Output {
        guard case .json(let body) = input.body else { throw Problem(.unsupportedMediaType, "send application/json") }
        return try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 409: { .conflict($0) },
            429: { .tooManyRequests($0) },
        ]) {
            try await identity.verifyMFA(try token(), code: body.code)
            return .noContent(.init())
        }
    }

    func logout(_ input: Operations.logout.Input) async throws -> Operations.logout.Output {
        try await Self.respond(declaring: [401: { .unauthorized($0) }]) {
            try await identity.logout(try token())
            return .noContent(.init())
        }
    }

    func me(_ input: Operations.me.Input) async throws -> Operations.me.Output {
        try await Self.respond(declaring: [401: { .unauthorized($0) }]) {
            let me = try await identity.me(try token())
            return .ok(
                .init(
                    body: .json(
                        .init(
                            user_id: me.userID.uuidString.lowercased(), email: me.email, display_name: me.displayName,
                            mfa_verified: me.mfaVerified,
                            memberships: me.memberships.compactMap { membership in
                                guard let role = Components.Schemas.Membership.rolePayload(rawValue: membership.role)
                                else { return nil }
                                return .init(
                                    role: role, agency_id: membership.agency?.uuidString.lowercased(),
                                    practice_id: membership.practice?.uuidString.lowercased())
                            }))))
        }
    }

    func reauthenticate(_ input: Operations.reauthenticate.Input) async throws -> Operations.reauthenticate.Output {
        guard case .json(let body) = input.body else { throw Problem(.unsupportedMediaType, "send application/json") }
        return try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 429: { .tooManyRequests($0) },
        ]) {
            let fresh = try await identity.reauthenticate(try token(), password: body.password, code: body.code)
            return .ok(.init(body: .json(.init(token: fresh.value))))
        }
    }

    func listSessions(_ input: Operations.listSessions.Input) async throws -> Operations.listSessions.Output {
        try await Self.respond(declaring: [401: { .unauthorized($0) }]) {
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
        }
    }

    func revokeSession(_ input: Operations.revokeSession.Input) async throws -> Operations.revokeSession.Output {
        try await Self.respond(declaring: [401: { .unauthorized($0) }, 400: { .notFound($0) }, 404: { .notFound($0) }])
        {
            try await identity.revokeSession(try token(), sessionID: try Self.uuid(input.path.sessionId, "sessionId"))
            return .noContent(.init())
        }
    }
}
