import Enclave
import Foundation
import OpenAPIRuntime

/// Transcripts: a practice's keyword sets and the calls they tagged per day.
extension EnclaveAPI {
    func listKeywordSets(_ input: Operations.listKeywordSets.Input) async throws -> Operations.listKeywordSets.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            let sets = try await services.keywords.list(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"), context: values.context)
            return .ok(.init(body: .json(sets.map(Self.keywordSet))))
        }
    }

    func saveKeywordSet(_ input: Operations.saveKeywordSet.Input) async throws -> Operations.saveKeywordSet.Output {
        guard case .json(let body) = input.body else { throw Problem(.unsupportedMediaType, "send application/json") }
        return try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            let practice = try Self.uuid(input.path.practiceId, "practiceId")
            let id = try await services.keywords.save(
                try token(), practice: practice, name: body.name, phrases: body.phrases, weight: body.weight ?? 1,
                context: values.context)
            let saved = try await services.keywords.list(try token(), practice: practice, context: values.context)
                .first { $0.id == id }
            guard let saved else { throw AccessError(.notFound, "no such keyword set") }
            return .ok(.init(body: .json(Self.keywordSet(saved))))
        }
    }

    func deleteKeywordSet(_ input: Operations.deleteKeywordSet.Input) async throws -> Operations.deleteKeywordSet.Output
    {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 404: { .notFound($0) },
        ]) {
            try await services.keywords.delete(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"),
                keywordSet: try Self.uuid(input.path.keywordSetId, "keywordSetId"), context: values.context)
            return .noContent(.init())
        }
    }

    func tagCounts(_ input: Operations.tagCounts.Input) async throws -> Operations.tagCounts.Output {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            guard input.query.since < input.query.until,
                input.query.until.timeIntervalSince(input.query.since) <= 400 * 86_400
            else { throw AccessError(.invalidInput, "since must come before until, at most 400 days before") }
            let counts = try await services.keywords.tagCounts(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"), since: input.query.since,
                until: input.query.until, context: values.context)
            return .ok(.init(body: .json(counts.map { .init(day: $0.day, tag: $0.tag, calls: $0.calls) })))
        }
    }

    static func keywordSet(_ set: KeywordSet) -> Components.Schemas.KeywordSet {
        .init(id: text(set.id), name: set.name, phrases: set.phrases, weight: set.weight)
    }
}
