import Enclave
import Foundation
import OpenAPIRuntime

/// Telephony providers' own webhook formats (issue 15): Twilio-compatible voice.
extension EnclaveAPI {
    var twilio: TwilioCapture { TwilioCapture(ingest: ingest) }

    func twilioVoice(_ input: Operations.twilioVoice.Input) async throws -> Operations.twilioVoice.Output {
        do {
            let (_, twiml) = try await twilio.incomingCall(
                try captureRequest(input.path.sourceId, input.headers.X_hyphen_Twilio_hyphen_Signature))
            return .ok(.init(body: .xml(HTTPBody(twiml))))
        } catch {
            return try Self.declared(error, [400: { .badRequest($0) }, 403: { .forbidden($0) }])
        }
    }

    func twilioStatus(_ input: Operations.twilioStatus.Input) async throws -> Operations.twilioStatus.Output {
        do {
            let twiml = try await twilio.callStatus(
                try captureRequest(input.path.sourceId, input.headers.X_hyphen_Twilio_hyphen_Signature))
            return .ok(.init(body: .xml(HTTPBody(twiml))))
        } catch {
            return try Self.declared(
                error, [400: { .badRequest($0) }, 403: { .forbidden($0) }, 404: { .notFound($0) }])
        }
    }

    func twilioRecording(_ input: Operations.twilioRecording.Input) async throws -> Operations.twilioRecording.Output {
        do {
            try await twilio.recordingReady(
                try captureRequest(input.path.sourceId, input.headers.X_hyphen_Twilio_hyphen_Signature))
            return .noContent(.init())
        } catch {
            return try Self.declared(
                error, [400: { .badRequest($0) }, 403: { .forbidden($0) }, 404: { .notFound($0) }])
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
}

/// The website snippet's endpoints: public, cross-origin from the property's own sites.
extension EnclaveAPI {
    var web: WebCapture { WebCapture(ingest: ingest) }

    func captureSnippet(_ input: Operations.captureSnippet.Input) async throws -> Operations.captureSnippet.Output {
        guard input.path.script.wholeMatch(of: /pk_[A-Za-z0-9_-]{20,64}\.js/) != nil else {
            return .notFound(Self.problem(AccessError(.notFound, "no such script")).1)
        }
        values.response.set(header: "Cache-Control", "public, max-age=300")
        values.response.set(header: "Cross-Origin-Resource-Policy", "cross-origin")
        return .ok(.init(body: .text_javascript(HTTPBody(CaptureSnippet.source))))
    }

    struct PageViewBody: Decodable {
        var session: String?
        var path: String?
        var params: [String: String]?
    }

    func captureView(_ input: Operations.captureView.Input) async throws -> Operations.captureView.Output {
        do {
            try captureLimits.admit(key: input.path.publicKey, address: values.context.client.address, cost: 1)
            let body: PageViewBody = try Self.snippetBody(values.rawBody)
            let view = try await web.view(
                publicKey: input.path.publicKey, origin: input.headers.Origin, token: body.session,
                landingPath: body.path, parameters: body.params ?? [:])
            allowOrigin(input.headers.Origin)
            return .ok(
                .init(body: .json(.init(session: view.token, number: view.number, main_number: view.mainNumber))))
        } catch {
            return try Self.declared(
                error,
                [
                    400: { .badRequest($0) }, 403: { .forbidden($0) }, 404: { .notFound($0) },
                    429: { .tooManyRequests($0) },
                ])
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
        do {
            try captureLimits.admit(key: input.path.publicKey, address: values.context.client.address, cost: 10)
            let body: FormBody = try Self.snippetBody(values.rawBody)
            _ = try await web.submit(
                publicKey: input.path.publicKey, origin: input.headers.Origin,
                .init(
                    token: body.session, fields: body.fields, honeypot: body.honeypot,
                    elapsedMilliseconds: body.elapsed_ms, pageURL: body.page),
                context: values.context)
            allowOrigin(input.headers.Origin)
            return .noContent(.init())
        } catch {
            return try Self.declared(
                error,
                [
                    400: { .badRequest($0) }, 403: { .forbidden($0) }, 404: { .notFound($0) },
                    429: { .tooManyRequests($0) },
                ])
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
        values.response.set(header: "Access-Control-Allow-Origin", origin)
        values.response.set(header: "Vary", "Origin")
    }
}

/// Setting capture up: Twilio sources, pools of numbers, web properties.
extension EnclaveAPI {
    func createTwilioSource(_ input: Operations.createTwilioSource.Input) async throws
        -> Operations.createTwilioSource.Output
    {
        do {
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
        } catch {
            return try Self.declared(
                error, [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }])
        }
    }

    func addPoolNumbers(_ input: Operations.addPoolNumbers.Input) async throws -> Operations.addPoolNumbers.Output {
        do {
            guard case .json(let body) = input.body else {
                throw Problem(.unsupportedMediaType, "send application/json")
            }
            let added = try await services.sources.addNumbers(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"),
                source: try Self.uuid(input.path.sourceId, "sourceId"), numbers: body.numbers)
            return .ok(.init(body: .json(.init(added: added))))
        } catch {
            return try Self.declared(
                error,
                [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 409: { .conflict($0) }])
        }
    }

    func createWebProperty(_ input: Operations.createWebProperty.Input) async throws
        -> Operations.createWebProperty.Output
    {
        do {
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
        } catch {
            return try Self.declared(
                error, [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }])
        }
    }
}
