import Enclave
import Foundation
import OpenAPIRuntime
import Postgres

/// Ingest: signed JSON calls and forms, and recording uploads, from custom integrations.
extension EnclaveAPI {
    func ingestCall(_ input: Operations.ingestCall.Input) async throws -> Operations.ingestCall.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 413: { .contentTooLarge($0) },
        ]) {
            let (created, body) = try await signedIngest(
                source: input.headers.Enclave_hyphen_Source, signature: input.headers.Enclave_hyphen_Signature,
                idempotencyKey: input.headers.Idempotency_hyphen_Key, store: ingest.ingestCall)
            return created ? .created(.init(body: .json(body))) : .ok(.init(body: .json(body)))
        }
    }

    /// A signed JSON ingest request (its raw body is what the signature covers), stored by
    /// `store`; returns whether it was new, and the response body.
    func signedIngest(
        source: String, signature: String, idempotencyKey: String?,
        store: (IngestRequest) async throws -> IngestResult
    ) async throws -> (Bool, Components.Schemas.IngestResult) {
        let request = IngestRequest(
            sourceID: try Self.uuid(source, "Enclave-Source"), signature: signature, idempotencyKey: idempotencyKey,
            body: values.rawBody ?? [], context: values.context)
        let result = try await store(request)
        return (result.created, .init(lead_id: Self.text(result.leadID), created: result.created))
    }

    func ingestForm(_ input: Operations.ingestForm.Input) async throws -> Operations.ingestForm.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 413: { .contentTooLarge($0) },
        ]) {
            let (created, body) = try await signedIngest(
                source: input.headers.Enclave_hyphen_Source, signature: input.headers.Enclave_hyphen_Signature,
                idempotencyKey: input.headers.Idempotency_hyphen_Key, store: ingest.ingestForm)
            return created ? .created(.init(body: .json(body))) : .ok(.init(body: .json(body)))
        }
    }

    func putRecording(_ input: Operations.putRecording.Input) async throws -> Operations.putRecording.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 404: { .notFound($0) }, 409: { .conflict($0) },
            413: { .contentTooLarge($0) }, 415: { .unsupportedMediaType($0) },
        ]) {
            guard case .audio__ast_(let body) = input.body else {
                throw Problem(.unsupportedMediaType, "send audio/*", type: "unsupported-media-type")
            }
            let lead = try Self.uuid(input.path.leadId, "leadId")
            let bytes = try await ingest.attachRecording(
                sourceID: try Self.uuid(input.headers.Enclave_hyphen_Source, "Enclave-Source"),
                signature: input.headers.Enclave_hyphen_Signature, leadID: lead,
                contentType: values.contentType ?? "", body: body.map { @Sendable in Array($0) },
                context: values.context)
            return .created(.init(body: .json(.init(lead_id: Self.text(lead), bytes: bytes))))
        }
    }
}
