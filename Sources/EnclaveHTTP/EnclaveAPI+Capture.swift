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
