import Enclave
import Foundation
import OpenAPIRuntime

/// Recordings (streamed both ways) and form ingest.
extension EnclaveAPI {
    func getRecording(_ input: Operations.getRecording.Input) async throws -> Operations.getRecording.Output {
        do {
            let practice = try Self.uuid(input.path.practiceId, "practiceId")
            let lead = try Self.uuid(input.path.leadId, "leadId")
            let token = try token()
            let context = values.context
            let info = try await leads.recordingInfo(token, practice: practice, lead: lead, context: context)
            let range: ClosedRange<Int64>?
            switch ByteRange.resolve(input.headers.Range, total: info.bytes) {
            case .whole: range = nil
            case .part(let part): range = part
            case .unsatisfiable:
                values.response.set(header: "Content-Range", "bytes */\(info.bytes)")
                throw Problem(.rangeNotSatisfiable, "the range is outside the recording", type: "range-not-satisfiable")
            }
            values.response.set(header: "Content-Type", info.contentType)
            let pipe = RecordingPipe()
            let leads = self.leads
            // Runs on its own: the response body reads from the pipe as the client takes bytes.
            Task {
                do {
                    try await leads.streamRecording(
                        token, practice: practice, lead: lead, range: range, context: context
                    ) {
                        try await pipe.send($0)
                    }
                    pipe.finish()
                } catch {
                    pipe.finish(error)
                }
            }
            let length = range.map { $0.upperBound - $0.lowerBound + 1 } ?? info.bytes
            let body = HTTPBody(pipe.chunks, length: .known(length), iterationBehavior: .single)
            guard let range else {
                return .ok(.init(headers: .init(Accept_hyphen_Ranges: "bytes"), body: .audio__ast_(body)))
            }
            // The generated code percent-encodes header values; the middleware sets the exact one.
            values.response.set(header: "Content-Range", "bytes \(range.lowerBound)-\(range.upperBound)/\(info.bytes)")
            return .partialContent(
                .init(
                    headers: .init(
                        Content_hyphen_Range: "bytes \(range.lowerBound)-\(range.upperBound)/\(info.bytes)",
                        Accept_hyphen_Ranges: "bytes"),
                    body: .audio__ast_(body)))
        } catch {
            return try Self.declared(
                error,
                [
                    400: { .notFound($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
                    404: { .notFound($0) }, 416: { .rangeNotSatisfiable($0) },
                ])
        }
    }

    func putRecording(_ input: Operations.putRecording.Input) async throws -> Operations.putRecording.Output {
        do {
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
        } catch {
            return try Self.declared(
                error,
                [
                    400: { .badRequest($0) }, 401: { .unauthorized($0) }, 404: { .notFound($0) },
                    409: { .conflict($0) },
                    413: { .contentTooLarge($0) }, 415: { .unsupportedMediaType($0) },
                ])
        }
    }

    func ingestForm(_ input: Operations.ingestForm.Input) async throws -> Operations.ingestForm.Output {
        do {
            let (created, body) = try await signedIngest(
                source: input.headers.Enclave_hyphen_Source, signature: input.headers.Enclave_hyphen_Signature,
                idempotencyKey: input.headers.Idempotency_hyphen_Key, store: ingest.ingestForm)
            return created ? .created(.init(body: .json(body))) : .ok(.init(body: .json(body)))
        } catch {
            return try Self.declared(
                error, [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 413: { .contentTooLarge($0) }])
        }
    }
}

/// One `Range: bytes=…` request header against a size (RFC 9110 §14). Several ranges, or a
/// header that does not parse, get the whole recording, as the RFC allows.
enum ByteRange: Equatable {
    case whole
    case part(ClosedRange<Int64>)
    case unsatisfiable

    static func resolve(_ header: String?, total: Int64) -> ByteRange {
        guard let header, header.hasPrefix("bytes="), !header.contains(",") else { return .whole }
        let spec = header.dropFirst(6).trimmingCharacters(in: .whitespaces)
        let parts = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return .whole }
        let first = parts[0].isEmpty ? nil : Int64(parts[0])
        let last = parts[1].isEmpty ? nil : Int64(parts[1])
        if !parts[0].isEmpty && first == nil || !parts[1].isEmpty && last == nil { return .whole }
        switch (first, last) {
        case (let first?, let last):
            if let last, last < first { return .whole }
            guard first < total else { return .unsatisfiable }
            return .part(first...min(last ?? total - 1, total - 1))
        case (nil, let suffix?):
            guard suffix > 0, total > 0 else { return .unsatisfiable }
            return .part(max(total - suffix, 0)...(total - 1))
        case (nil, nil):
            return .whole
        }
    }
}
