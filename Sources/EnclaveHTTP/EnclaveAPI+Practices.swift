import Enclave
import Foundation
import OpenAPIRuntime
import Sealing

/// Agencies and practices: reachable practices, agreements, assignments, tracking sources,
/// reports, the audit trail and webhook endpoints.
extension EnclaveAPI {
    var agreements: AgreementService { services.agreements }
    var sources: TrackingSources { services.sources }
    var webhooks: WebhookEndpoints { services.webhooks }

    func listPractices(_ input: Operations.listPractices.Input) async throws -> Operations.listPractices.Output {
        do {
            let practices = try await agreements.reachablePractices(try token())
            return .ok(.init(body: .json(practices.map { .init(id: Self.text($0.id), name: $0.name, via: $0.via) })))
        } catch {
            return try Self.declared(error, [401: { .unauthorized($0) }])
        }
    }

    func proposeAgreement(_ input: Operations.proposeAgreement.Input) async throws
        -> Operations.proposeAgreement.Output
    {
        guard case .json(let body) = input.body else { throw Problem(.unsupportedMediaType, "send application/json") }
        do {
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
        } catch {
            return try Self.declared(
                error,
                [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 409: { .conflict($0) }])
        }
    }

    func declineAgreement(_ input: Operations.declineAgreement.Input) async throws -> Operations.declineAgreement.Output
    {
        do {
            try await agreements.decline(try token(), agreement: try Self.uuid(input.path.agreementId, "agreementId"))
            return .noContent(.init())
        } catch {
            return try Self.declared(
                error,
                [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 409: { .conflict($0) }])
        }
    }

    func assignMember(_ input: Operations.assignMember.Input) async throws -> Operations.assignMember.Output {
        do {
            try await agreements.assign(
                try token(), agency: try Self.uuid(input.path.agencyId, "agencyId"),
                practice: try Self.uuid(input.path.practiceId, "practiceId"),
                member: try Self.uuid(input.path.userId, "userId"))
            return .noContent(.init())
        } catch {
            return try Self.declared(
                error, [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }])
        }
    }

    func unassignMember(_ input: Operations.unassignMember.Input) async throws -> Operations.unassignMember.Output {
        do {
            try await agreements.unassign(
                try token(), agency: try Self.uuid(input.path.agencyId, "agencyId"),
                practice: try Self.uuid(input.path.practiceId, "practiceId"),
                member: try Self.uuid(input.path.userId, "userId"))
            return .noContent(.init())
        } catch {
            return try Self.declared(
                error,
                [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 404: { .notFound($0) }])
        }
    }

    func listSources(_ input: Operations.listSources.Input) async throws -> Operations.listSources.Output {
        do {
            let list = try await sources.list(try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"))
            return .ok(.init(body: .json(list.map(Self.source))))
        } catch {
            return try Self.declared(
                error, [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }])
        }
    }

    func createSource(_ input: Operations.createSource.Input) async throws -> Operations.createSource.Output {
        guard case .json(let body) = input.body else { throw Problem(.unsupportedMediaType, "send application/json") }
        do {
            let defaults = body.default_attribution
            let (source, secret) = try await sources.create(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"), kind: body.kind.rawValue,
                label: body.label, trackingNumber: body.tracking_number,
                defaults: Attribution(
                    source: defaults?.source, medium: defaults?.medium, campaign: defaults?.campaign))
            return .created(.init(body: .json(.init(source: Self.source(source), secret: secret))))
        } catch {
            return try Self.declared(
                error, [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }])
        }
    }

    func rotateSourceSecret(_ input: Operations.rotateSourceSecret.Input) async throws
        -> Operations.rotateSourceSecret.Output
    {
        do {
            let practice = try Self.uuid(input.path.practiceId, "practiceId")
            let source = try Self.uuid(input.path.sourceId, "sourceId")
            let token = try token()
            guard try await sources.list(token, practice: practice).contains(where: { $0.id == source }) else {
                throw AccessError(.notFound, "no such source")
            }
            return .ok(
                .init(
                    body: .json(
                        .init(secret: try await sources.rotateSecret(token, practice: practice, source: source))))
            )
        } catch {
            return try Self.declared(
                error,
                [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 404: { .notFound($0) }])
        }
    }

    func leadReport(_ input: Operations.leadReport.Input) async throws -> Operations.leadReport.Output {
        do {
            let rows = try await LeadReports(access: leads.access, agreements: agreements).practice(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"), since: input.query.since,
                until: input.query.until)
            return .ok(
                .init(
                    body: .json(
                        rows.map {
                            .init(
                                day: $0.day, source: $0.source, medium: $0.medium, campaign: $0.campaign,
                                leads: $0.leads, calls: $0.calls, forms: $0.forms, answered: $0.answered,
                                missed: $0.missed, call_seconds: $0.callSeconds)
                        })))
        } catch {
            return try Self.declared(
                error, [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }])
        }
    }

    func practiceAudit(_ input: Operations.practiceAudit.Input) async throws -> Operations.practiceAudit.Output {
        do {
            var action: AuditAction?
            if let name = input.query.action?.rawValue {
                guard let known = AuditAction(rawValue: name) else {
                    throw Problem(.badRequest, "action is not a known audit action", type: "invalid-input")
                }
                action = known
            }
            let entries = try await AuditLog(identity: identity).practiceEvents(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"),
                filter: .init(
                    since: input.query.since, until: input.query.until, action: action,
                    beforeSeq: input.query.before_seq, limit: input.query.limit ?? 100))
            return .ok(.init(body: .json(entries.map(Self.entry))))
        } catch {
            return try Self.declared(
                error, [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }])
        }
    }

    func practiceDisclosures(_ input: Operations.practiceDisclosures.Input) async throws
        -> Operations.practiceDisclosures.Output
    {
        do {
            let entries = try await AuditLog(identity: identity).disclosures(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"), since: input.query.since,
                until: input.query.until)
            return .ok(.init(body: .json(entries.map(Self.entry))))
        } catch {
            return try Self.declared(
                error, [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }])
        }
    }

    func listWebhooks(_ input: Operations.listWebhooks.Input) async throws -> Operations.listWebhooks.Output {
        do {
            let list = try await webhooks.list(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"))
            return .ok(.init(body: .json(list.map(Self.webhook))))
        } catch {
            return try Self.declared(
                error, [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }])
        }
    }

    func createWebhook(_ input: Operations.createWebhook.Input) async throws -> Operations.createWebhook.Output {
        guard case .json(let body) = input.body else { throw Problem(.unsupportedMediaType, "send application/json") }
        do {
            let (endpoint, secret) = try await webhooks.create(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"), url: body.url,
                baaCovered: body.baa_covered ?? false, context: values.context)
            return .created(.init(body: .json(.init(endpoint: Self.webhook(endpoint), secret: secret))))
        } catch {
            return try Self.declared(
                error, [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }])
        }
    }

    func deleteWebhook(_ input: Operations.deleteWebhook.Input) async throws -> Operations.deleteWebhook.Output {
        do {
            try await webhooks.remove(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"),
                endpoint: try Self.uuid(input.path.webhookId, "webhookId"))
            return .noContent(.init())
        } catch {
            return try Self.declared(
                error,
                [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 404: { .notFound($0) }])
        }
    }

    // MARK: - Representations

    static func text(_ id: UUID) -> String { id.uuidString.lowercased() }

    static func source(_ source: TrackingSource) -> Components.Schemas.TrackingSource {
        .init(
            id: text(source.id), kind: .init(rawValue: source.kind) ?? .call, label: source.label,
            tracking_number: source.trackingNumber,
            default_attribution: .init(
                source: source.defaults.source, medium: source.defaults.medium, campaign: source.defaults.campaign),
            disabled: source.disabled)
    }

    static func entry(_ entry: AuditLog.Entry) -> Components.Schemas.AuditEntry {
        .init(
            seq: entry.seq, at: entry.at, actor_id: entry.actorID.map(text), actor_email: entry.actorEmail,
            agency: entry.agency, action: entry.action, object_type: entry.objectType, object_id: entry.objectID,
            outcome: .init(rawValue: entry.outcome) ?? .ok, reason: entry.reason)
    }

    static func webhook(_ endpoint: WebhookEndpoint) -> Components.Schemas.WebhookEndpoint {
        .init(
            id: text(endpoint.id), url: endpoint.url, baa_covered: endpoint.baaCovered, active: endpoint.active,
            created_at: endpoint.createdAt)
    }
}
