import Enclave
import Foundation
import OpenAPIRuntime
import Sealing

/// Webhooks: a practice's outbound webhook endpoints.
extension EnclaveAPI {
    func listWebhooks(_ input: Operations.listWebhooks.Input) async throws -> Operations.listWebhooks.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            let list = try await webhooks.list(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"))
            return .ok(.init(body: .json(list.map(Self.webhook))))
        }
    }

    func createWebhook(_ input: Operations.createWebhook.Input) async throws -> Operations.createWebhook.Output {
        guard case .json(let body) = input.body else { throw Problem(.unsupportedMediaType, "send application/json") }
        return try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            let (endpoint, secret) = try await webhooks.create(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"), url: body.url,
                baaCovered: body.baa_covered ?? false, context: values.context)
            return .created(.init(body: .json(.init(endpoint: Self.webhook(endpoint), secret: secret))))
        }
    }

    func deleteWebhook(_ input: Operations.deleteWebhook.Input) async throws -> Operations.deleteWebhook.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 404: { .notFound($0) },
        ]) {
            try await webhooks.remove(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"),
                endpoint: try Self.uuid(input.path.webhookId, "webhookId"))
            return .noContent(.init())
        }
    }

    static func webhook(_ endpoint: WebhookEndpoint) -> Components.Schemas.WebhookEndpoint {
        .init(
            id: text(endpoint.id), url: endpoint.url, baa_covered: endpoint.baaCovered, active: endpoint.active,
            created_at: endpoint.createdAt)
    }
}
