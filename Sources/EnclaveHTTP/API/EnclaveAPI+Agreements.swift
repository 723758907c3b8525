import Enclave
import Foundation
import OpenAPIRuntime
import Sealing

/// Agreements: the practices a user reaches, business associate agreements and agency staff assignments.
extension EnclaveAPI {
    func listPractices(_ input: Operations.listPractices.Input) async throws -> Operations.listPractices.Output {
        try await Self.respond(declaring: [401: { .unauthorized($0) }]) {
            let practices = try await agreements.reachablePractices(try token())
            return .ok(.init(body: .json(practices.map { .init(id: Self.text($0.id), name: $0.name, via: $0.via) })))
        }
    }

    func listAgreements(_ input: Operations.listAgreements.Input) async throws -> Operations.listAgreements.Output {
        try await Self.respond(declaring: [401: { .unauthorized($0) }]) {
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
        }
    }

    func proposeAgreement(_ input: Operations.proposeAgreement.Input) async throws
        -> Operations.proposeAgreement.Output
    {
        guard case .json(let body) = input.body else { throw Problem(.unsupportedMediaType, "send application/json") }
        return try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 409: { .conflict($0) },
        ]) {
            guard let digest = [UInt8](hex: body.document_sha256), digest.count == 32 else {
                throw Problem(.badRequest, "document_sha256 is 64 hex digits", type: "invalid-input")
            }
            let id = try await agreements.propose(
                try token(), agency: try Self.uuid(body.agency_id, "agency_id"),
                practice: try Self.uuid(body.practice_id, "practice_id"),
                scopes: body.scopes.compactMap { Scope(rawValue: $0.rawValue) },
                effectiveAt: body.effective_at ?? Date(),
                expiresAt: body.expires_at, documentSHA256: digest)
            return .created(.init(body: .json(.init(id: Self.text(id)))))
        }
    }

    func approveAgreement(_ input: Operations.approveAgreement.Input) async throws -> Operations.approveAgreement.Output
    {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 409: { .conflict($0) },
        ]) {
            try await services.agreements.approve(
                try token(), agreement: try Self.uuid(input.path.agreementId, "agreementId"))
            return .noContent(.init())
        }
    }

    func declineAgreement(_ input: Operations.declineAgreement.Input) async throws -> Operations.declineAgreement.Output
    {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 409: { .conflict($0) },
        ]) {
            try await agreements.decline(try token(), agreement: try Self.uuid(input.path.agreementId, "agreementId"))
            return .noContent(.init())
        }
    }

    func revokeAgreement(_ input: Operations.revokeAgreement.Input) async throws -> Operations.revokeAgreement.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 409: { .conflict($0) },
        ]) {
            try await services.agreements.revoke(
                try token(), agreement: try Self.uuid(input.path.agreementId, "agreementId"))
            return .noContent(.init())
        }
    }

    func assignMember(_ input: Operations.assignMember.Input) async throws -> Operations.assignMember.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            try await agreements.assign(
                try token(), agency: try Self.uuid(input.path.agencyId, "agencyId"),
                practice: try Self.uuid(input.path.practiceId, "practiceId"),
                member: try Self.uuid(input.path.userId, "userId"))
            return .noContent(.init())
        }
    }

    func unassignMember(_ input: Operations.unassignMember.Input) async throws -> Operations.unassignMember.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 404: { .notFound($0) },
        ]) {
            try await agreements.unassign(
                try token(), agency: try Self.uuid(input.path.agencyId, "agencyId"),
                practice: try Self.uuid(input.path.practiceId, "practiceId"),
                member: try Self.uuid(input.path.userId, "userId"))
            return .noContent(.init())
        }
    }
}
