import Enclave
import Foundation
import OpenAPIRuntime

/// Capture: providers' own webhook formats (Twilio-compatible voice) and the website snippet's public endpoints.
extension EnclaveAPI {
    func twilioVoice(_ input: Operations.twilioVoice.Input) async throws -> Operations.twilioVoice.Output {
        try await Self.respond(declaring: [400: { .badRequest($0) }, 403: { .forbidden($0) }]) {
            let (_, twiml) = try await twilio.incomingCall(
                try captureRequest(input.path.sourceId, input.headers.X_hyphen_Twilio_hyphen_Signature))
            return .ok(.init(body: .xml(HTTPBody(twiml))))
        }
    }

    func twilioStatus(_ input: Operations.twilioStatus.Input) async throws -> Operations.twilioStatus.Output {
        try await Self.respond(declaring: [400: { .badRequest($0) }, 403: { .forbidden($0) }, 404: { .notFound($0) }]) {
            let twiml = try await twilio.callStatus(
                try captureRequest(input.path.sourceId, input.headers.X_hyphen_Twilio_hyphen_Signature))
            return .ok(.init(body: .xml(HTTPBody(twiml))))
        }
    }

    func twilioRecording(_ input: Operations.twilioRecording.Input) async throws -> Operations.twilioRecording.Output {
        try await Self.respond(declaring: [400: { .badRequest($0) }, 403: { .forbidden($0) }, 404: { .notFound($0) }]) {
            try await twilio.recordingReady(
                try captureRequest(input.path.sourceId, input.headers.X_hyphen_Twilio_hyphen_Signature))
            return .noContent(.init())
        }
    }

    /// The request as the provider made it: the URL it called (the public base URL, or https and
    /// the Host it sent), the signature, the raw form body the signature covers.
    func captureRequest(_ source: String, _ signature: String) throws -> CaptureRequest {
        let refused = Problem(.forbidden, "the request's signature does not match this source", type: "forbidden")
        guard let id = try? Self.uuid(source, "sourceId") else { throw refused }
        let base = publicBaseURL ?? values.host.map { "https://" + $0 }
        guard let base else { throw refused }
        return CaptureRequest(
            sourceID: id, url: base + values.target, baseURL: base, signature: signature, body: values.rawBody ?? [],
            context: values.context)
    }

    func captureSnippet(_ input: Operations.captureSnippet.Input) async throws -> Operations.captureSnippet.Output {
        try await Self.respond(declaring: [404: { .notFound($0) }]) {
            guard input.path.script.wholeMatch(of: /pk_[A-Za-z0-9_-]{20,64}\.js/) != nil else {
                throw AccessError(.notFound, "no such script")
            }
            values.outcome.set(header: "Cache-Control", "public, max-age=300")
            values.outcome.set(header: "Cross-Origin-Resource-Policy", "cross-origin")
            return .ok(.init(body: .text_javascript(HTTPBody(CaptureSnippet.source))))
        }
    }

    struct PageViewBody: Decodable {
        var session: String?
        var path: String?
        var params: [String: String]?
    }

    func captureView(_ input: Operations.captureView.Input) async throws -> Operations.captureView.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 403: { .forbidden($0) }, 404: { .notFound($0) }, 429: { .tooManyRequests($0) },
        ]) {
            let body: PageViewBody = try Self.snippetBody(values.rawBody)
            let view = try await web.view(
                publicKey: input.path.publicKey, origin: input.headers.Origin, token: body.session,
                landingPath: body.path, parameters: body.params ?? [:], client: values.context.client.address)
            allowOrigin(input.headers.Origin)
            return .ok(
                .init(body: .json(.init(session: view.token, number: view.number, main_number: view.mainNumber))))
        }
    }

    struct FormBody: Decodable {
        var session: String?
        var fields: [String: String]
        var honeypot: String?
        var elapsed_ms: Int
        var page: String?
    }

    func captureForm(_ input: Operations.captureForm.Input) async throws -> Operations.captureForm.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 403: { .forbidden($0) }, 404: { .notFound($0) }, 429: { .tooManyRequests($0) },
        ]) {
            let body: FormBody = try Self.snippetBody(values.rawBody)
            _ = try await web.submit(
                publicKey: input.path.publicKey, origin: input.headers.Origin,
                .init(
                    token: body.session, fields: body.fields, honeypot: body.honeypot,
                    elapsedMilliseconds: body.elapsed_ms, pageURL: body.page),
                context: values.context)
            allowOrigin(input.headers.Origin)
            return .noContent(.init())
        }
    }

    /// The snippet's JSON, sent as text/plain (no preflight); an error names no value.
    static func snippetBody<Body: Decodable>(_ raw: [UInt8]?) throws -> Body {
        do {
            return try JSONDecoder().decode(Body.self, from: Data(raw ?? []))
        } catch let error as DecodingError {
            throw Problem(
                .badRequest, "the body does not match the schema", type: "invalid-input",
                detail: Problem.describe(error))
        }
    }

    /// CORS for an origin the property allows (checked by the service before this runs).
    func allowOrigin(_ origin: String?) {
        guard let origin else { return }
        values.outcome.set(header: "Access-Control-Allow-Origin", origin)
        values.outcome.set(header: "Vary", "Origin")
    }
}
