import Enclave
import Foundation
import OpenAPIRuntime
import Postgres
import Sealing

/// Leads: a practice's leads, one lead, its recording (with Range) and the lead report.
extension EnclaveAPI {
    func listLeads(_ input: Operations.listLeads.Input) async throws -> Operations.listLeads.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            let practice = try Self.uuid(input.path.practiceId, "practiceId")
            if let caller = input.query.caller {
                let found = try await leads.find(
                    try token(), practice: practice, callerNumber: caller, context: values.context)
                return .ok(.init(body: .json(.init(leads: found.map(Self.lead)))))
            }
            let filter = LeadFilter(
                since: input.query.since, until: input.query.until, kind: input.query.kind?.rawValue,
                source: input.query.source, campaign: input.query.campaign, mentions: input.query.mentions,
                tag: input.query.tag, cursor: input.query.cursor, limit: input.query.limit ?? 50)
            let page = try await leads.list(try token(), practice: practice, filter: filter, context: values.context)
            return .ok(.init(body: .json(.init(leads: page.leads.map(Self.lead), next_cursor: page.nextCursor))))
        }
    }

    func getLead(_ input: Operations.getLead.Input) async throws -> Operations.getLead.Output {
        try await Self.respond(declaring: [
            400: { .notFound($0) }, 404: { .notFound($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            let practice = try Self.uuid(input.path.practiceId, "practiceId")
            let lead = try await leads.get(
                try token(), practice: practice, lead: try Self.uuid(input.path.leadId, "leadId"),
                context: values.context)
            return .ok(.init(body: .json(Self.lead(lead))))
        }
    }

    func getRecording(_ input: Operations.getRecording.Input) async throws -> Operations.getRecording.Output {
        try await Self.respond(declaring: [
            400: { .notFound($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 404: { .notFound($0) },
            416: { .rangeNotSatisfiable($0) }, 429: { .tooManyRequests($0) },
        ]) {
            let practice = try Self.uuid(input.path.practiceId, "practiceId")
            let lead = try Self.uuid(input.path.leadId, "leadId")
            let outcome = values.outcome
            let playback = try await leads.openRecording(
                try token(), practice: practice, lead: lead,
                range: { total in
                    switch ByteRange.resolve(input.headers.Range, total: total) {
                    case .whole: return nil
                    case .part(let part): return part
                    case .unsatisfiable:
                        outcome.set(header: "Content-Range", "bytes */\(total)")
                        throw Problem(
                            .rangeNotSatisfiable, "the range is outside the recording", type: "range-not-satisfiable")
                    }
                }, context: values.context)
            values.outcome.set(header: "Content-Type", playback.contentType)
            let pipe = RecordingPipe(timeout: writeTimeout)
            // Runs on its own: the response body reads from the pipe as the client takes bytes.
            // No transaction is open while the pipe waits for the client (see RecordingPlayback).
            Task {
                do {
                    try await playback.stream { try await pipe.send($0) }
                    pipe.finish()
                } catch {
                    pipe.finish(error)
                }
            }
            let body = HTTPBody(pipe.chunks, length: .known(playback.length), iterationBehavior: .single)
            guard let range = playback.range else {
                return .ok(.init(headers: .init(Accept_hyphen_Ranges: "bytes"), body: .audio__ast_(body)))
            }
            let total = playback.bytes
            // The generated code percent-encodes header values; the middleware sets the exact one.
            values.outcome.set(header: "Content-Range", "bytes \(range.lowerBound)-\(range.upperBound)/\(total)")
            return .partialContent(
                .init(
                    headers: .init(
                        Content_hyphen_Range: "bytes \(range.lowerBound)-\(range.upperBound)/\(total)",
                        Accept_hyphen_Ranges: "bytes"),
                    body: .audio__ast_(body)))
        }
    }

    func leadReport(_ input: Operations.leadReport.Input) async throws -> Operations.leadReport.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            let rows = try await services.reports.practice(
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
        }
    }

    static func lead(_ lead: Lead) -> Components.Schemas.Lead {
        .init(
            id: lead.id.uuidString.lowercased(), kind: .init(rawValue: lead.kind) ?? .call,
            occurred_at: lead.occurredAt,
            attribution: .init(
                source: lead.attribution.source, medium: lead.attribution.medium, campaign: lead.attribution.campaign,
                keyword: lead.attribution.keyword, landing_page: lead.attribution.landingPage,
                gclid: lead.attribution.gclid),
            duration_seconds: lead.durationSeconds, disposition: lead.disposition, caller_number: lead.callerNumber,
            caller_name: lead.callerName, transcript: lead.transcript,
            form_fields: lead.formFields.map { .init(additionalProperties: $0) }, page_url: lead.pageURL,
            recording_bytes: lead.recordingBytes, redacted: lead.redactedAt != nil,
            transcript_redacted: lead.redactedTranscript,
            transcript_status: lead.transcriptStatus.flatMap { .init(rawValue: $0) },
            insights: lead.insights.map {
                .init(
                    tags: $0.tags, score: $0.score,
                    suggested_qualification: .init(rawValue: $0.suggestion) ?? .unqualified)
            })
    }
}
