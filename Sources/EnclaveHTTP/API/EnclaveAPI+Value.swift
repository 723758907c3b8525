import Enclave
import Foundation
import OpenAPIRuntime

/// Value: qualification, ad spend, the ROI reports and the conversion export.
extension EnclaveAPI {
    func qualifyLead(_ input: Operations.qualifyLead.Input) async throws -> Operations.qualifyLead.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 404: { .notFound($0) },
        ]) {
            guard case .json(let body) = input.body,
                let qualification = LeadValue.Qualification(rawValue: body.qualification.rawValue)
            else {
                throw Problem(.badRequest, "qualification is qualified, unqualified or spam", type: "invalid-input")
            }
            try await value.qualify(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"),
                lead: try Self.uuid(input.path.leadId, "leadId"), as: qualification, valueCents: body.value_cents ?? 0)
            return .noContent(.init())
        }
    }

    func recordSpend(_ input: Operations.recordSpend.Input) async throws -> Operations.recordSpend.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            guard case .json(let body) = input.body else {
                throw Problem(.badRequest, "send the spend as JSON", type: "invalid-input")
            }
            try await value.recordSpend(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"), month: body.month,
                source: body.source, amountCents: body.amount_cents)
            return .noContent(.init())
        }
    }

    func roiReport(_ input: Operations.roiReport.Input) async throws -> Operations.roiReport.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            let report = try await value.report(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"), since: input.query.since,
                until: input.query.until)
            return .ok(.init(body: .json(Self.roi(report))))
        }
    }

    func roiReportAcrossPractices(_ input: Operations.roiReportAcrossPractices.Input) async throws
        -> Operations.roiReportAcrossPractices.Output
    {
        try await Self.respond(declaring: [400: { .badRequest($0) }, 401: { .unauthorized($0) }]) {
            let report = try await value.reportAcrossPractices(
                try token(), since: input.query.since, until: input.query.until)
            return .ok(.init(body: .json(Self.roi(report))))
        }
    }

    func conversionExport(_ input: Operations.conversionExport.Input) async throws
        -> Operations.conversionExport.Output
    {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            let conversions = try await value.conversions(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"), since: input.query.since,
                until: input.query.until, context: values.context)
            if input.query.format == .csv {
                let csv = LeadValue.googleAdsCSV(
                    conversions, conversionName: input.query.conversion_name ?? "Qualified lead")
                return .ok(.init(body: .csv(HTTPBody(csv))))
            }
            return .ok(
                .init(
                    body: .json(
                        conversions.map {
                            .init(gclid: $0.gclid, conversion_time: $0.at, value_cents: $0.valueCents)
                        })))
        }
    }

    static func roi(_ report: LeadValue.Report) -> Components.Schemas.RoiReport {
        .init(
            rows: report.rows.map {
                .init(
                    practice_id: text($0.practiceID), week: $0.week, source: $0.source, medium: $0.medium,
                    campaign: $0.campaign, leads: $0.leads, qualified: $0.qualified, value_cents: $0.valueCents)
            },
            sources: report.sources.map {
                .init(
                    practice_id: text($0.practiceID), week: $0.week, source: $0.source, leads: $0.leads,
                    qualified: $0.qualified, value_cents: $0.valueCents, spend_cents: $0.spendCents,
                    cost_per_lead_cents: $0.costPerLeadCents, roi: $0.roi)
            })
    }
}
