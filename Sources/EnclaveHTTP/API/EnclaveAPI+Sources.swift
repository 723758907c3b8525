import Enclave
import Foundation
import OpenAPIRuntime
import Sealing

/// Sources: tracking sources and their secrets, Twilio lines, pools of numbers and web properties.
extension EnclaveAPI {
    func listSources(_ input: Operations.listSources.Input) async throws -> Operations.listSources.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            let list = try await sources.list(try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"))
            return .ok(.init(body: .json(list.map(Self.source))))
        }
    }

    func createSource(_ input: Operations.createSource.Input) async throws -> Operations.createSource.Output {
        guard case .json(let body) = input.body else { throw Problem(.unsupportedMediaType, "send application/json") }
        return try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            let defaults = body.default_attribution
            let (source, secret) = try await sources.create(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"), kind: body.kind.rawValue,
                label: body.label, trackingNumber: body.tracking_number,
                defaults: Attribution(
                    source: defaults?.source, medium: defaults?.medium, campaign: defaults?.campaign))
            return .created(.init(body: .json(.init(source: Self.source(source), secret: secret))))
        }
    }

    func rotateSourceSecret(_ input: Operations.rotateSourceSecret.Input) async throws
        -> Operations.rotateSourceSecret.Output
    {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 404: { .notFound($0) },
        ]) {
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
        }
    }

    func createTwilioSource(_ input: Operations.createTwilioSource.Input) async throws
        -> Operations.createTwilioSource.Output
    {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            guard case .json(let body) = input.body else {
                throw Problem(.unsupportedMediaType, "send application/json")
            }
            let defaults = body.default_attribution
            let source = try await services.sources.createTwilio(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"), label: body.label,
                trackingNumber: nil,
                defaults: Attribution(source: defaults?.source, medium: defaults?.medium, campaign: defaults?.campaign),
                twilio: TwilioSettings(
                    accountSID: body.account_sid, authToken: body.auth_token, forwardTo: body.forward_to,
                    announceRecording: body.announce_recording ?? false))
            return .created(.init(body: .json(Self.source(source))))
        }
    }

    func addPoolNumbers(_ input: Operations.addPoolNumbers.Input) async throws -> Operations.addPoolNumbers.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 409: { .conflict($0) },
        ]) {
            guard case .json(let body) = input.body else {
                throw Problem(.unsupportedMediaType, "send application/json")
            }
            let added = try await services.sources.addNumbers(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"),
                source: try Self.uuid(input.path.sourceId, "sourceId"), numbers: body.numbers)
            return .ok(.init(body: .json(.init(added: added))))
        }
    }

    func createWebProperty(_ input: Operations.createWebProperty.Input) async throws
        -> Operations.createWebProperty.Output
    {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            guard case .json(let body) = input.body else {
                throw Problem(.unsupportedMediaType, "send application/json")
            }
            let property = try await services.sources.createWebProperty(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"), name: body.name,
                origins: body.origins, callSource: try body.call_source_id.map { try Self.uuid($0, "call_source_id") },
                formSource: try body.form_source_id.map { try Self.uuid($0, "form_source_id") },
                mainNumber: body.main_number)
            let base = publicBaseURL ?? values.host.map { "https://" + $0 } ?? ""
            return .created(
                .init(
                    body: .json(
                        .init(
                            id: Self.text(property.id), public_key: property.publicKey, origins: property.origins,
                            script: #"<script src="\#(base)/v1/capture/snippet/\#(property.publicKey).js"></script>"#)))
            )
        }
    }

    static func source(_ source: TrackingSource) -> Components.Schemas.TrackingSource {
        .init(
            id: text(source.id), kind: .init(rawValue: source.kind) ?? .call, label: source.label,
            tracking_number: source.trackingNumber,
            default_attribution: .init(
                source: source.defaults.source, medium: source.defaults.medium, campaign: source.defaults.campaign),
            disabled: source.disabled)
    }
}
