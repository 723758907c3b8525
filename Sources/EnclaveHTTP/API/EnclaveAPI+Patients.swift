import Enclave
import Foundation
import OpenAPIRuntime

/// Patients: a patient's requests, answered by the practice (issue 29).
extension EnclaveAPI {
    func lookupPatient(_ input: Operations.lookupPatient.Input) async throws -> Operations.lookupPatient.Output {
        guard case .json(let body) = input.body else { throw Problem(.unsupportedMediaType, "send application/json") }
        return try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            let leads = try await services.patients.find(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"),
                phoneNumber: body.phone_number, email: body.email, context: values.context)
            return .ok(
                .init(
                    body: .json(
                        leads.map {
                            .init(
                                id: Self.text($0.id), kind: .init(rawValue: $0.kind) ?? .call,
                                occurred_at: $0.occurredAt,
                                received_at: $0.receivedAt, redacted_at: $0.redactedAt,
                                restricted_at: $0.restrictedAt, held: $0.held, has_recording: $0.hasRecording)
                        })))
        }
    }

    func listPatientRequests(_ input: Operations.listPatientRequests.Input) async throws
        -> Operations.listPatientRequests.Output
    {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            let requests = try await services.patients.requests(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"))
            return .ok(
                .init(
                    body: .json(
                        requests.map {
                            .init(
                                id: Self.text($0.id), kind: .init(rawValue: $0.kind.rawValue) ?? .access_report,
                                received_on: $0.receivedOn, due_on: $0.dueOn, leads: $0.leads, logged_by: $0.loggedBy,
                                logged_at: $0.loggedAt, done_at: $0.doneAt, done_by: $0.doneBy, overdue: $0.overdue)
                        })))
        }
    }

    func logPatientRequest(_ input: Operations.logPatientRequest.Input) async throws
        -> Operations.logPatientRequest.Output
    {
        guard case .json(let body) = input.body else { throw Problem(.unsupportedMediaType, "send application/json") }
        return try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            guard let kind = PatientRights.RequestKind(rawValue: body.kind.rawValue) else {
                throw Problem(.badRequest, "kind is not a request kind", type: "invalid-input")
            }
            let id = try await services.patients.logRequest(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"), kind: kind,
                receivedOn: body.received_on, leads: try body.lead_ids.map { try Self.uuid($0, "lead_ids") })
            return .created(.init(body: .json(.init(id: Self.text(id)))))
        }
    }

    func patientAccessReport(_ input: Operations.patientAccessReport.Input) async throws
        -> Operations.patientAccessReport.Output
    {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 404: { .notFound($0) },
        ]) {
            let practice = try Self.uuid(input.path.practiceId, "practiceId")
            let token = try token()
            let request = try await services.patients.request(
                token, practice: practice, id: try Self.uuid(input.path.requestId, "requestId"))
            guard !request.leads.isEmpty else { return .ok(.init(body: .json([]))) }
            let events = try await services.patients.report(
                token, practice: practice, leads: request.leads, since: input.query.since, until: input.query.until)
            if input.query.format == .csv {
                return .ok(.init(body: .csv(HTTPBody(PatientRights.csv(events)))))
            }
            return .ok(
                .init(
                    body: .json(
                        events.map {
                            .init(
                                seq: $0.seq, at: $0.at, action: $0.action, access: $0.kind,
                                lead_id: $0.leadID.map(Self.text), reason: $0.reason, who: $0.who,
                                actor_kind: $0.actorKind, actor_id: $0.actorID.map(Self.text),
                                actor_email: $0.actorEmail, agency: $0.agencyName,
                                agreement_id: $0.agreementID.map(Self.text),
                                break_glass_id: $0.breakGlassID.map(Self.text), disclosure: $0.disclosure,
                                chain_seq: $0.chainSeq, linked: $0.linked && $0.linkIntact)
                        })))
        }
    }

    func completePatientRequest(_ input: Operations.completePatientRequest.Input) async throws
        -> Operations.completePatientRequest.Output
    {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }, 409: { .conflict($0) },
        ]) {
            let practice = try Self.uuid(input.path.practiceId, "practiceId")
            let id = try Self.uuid(input.path.requestId, "requestId")
            let token = try token()
            guard try await services.patients.request(token, practice: practice, id: id).kind == .accessReport else {
                throw Problem(
                    .badRequest, "only an access report is marked done by hand: the others are done by their action",
                    type: "invalid-input")
            }
            guard try await services.patients.complete(token, practice: practice, id: id, outcome: [:]) else {
                throw Problem(.conflict, "the request is done already", type: "conflict")
            }
            return .noContent(.init())
        }
    }

    func erasePatientLeads(_ input: Operations.erasePatientLeads.Input) async throws
        -> Operations.erasePatientLeads.Output
    {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            let result = try await services.patients.erase(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"),
                request: try Self.uuid(input.path.requestId, "requestId"), context: values.context)
            return .ok(.init(body: .json(.init(erased: result.erased, held: result.held))))
        }
    }

    func restrictPatientLeads(_ input: Operations.restrictPatientLeads.Input) async throws
        -> Operations.restrictPatientLeads.Output
    {
        try await Self.respond(declaring: [
            400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) },
        ]) {
            let restricted = try await services.patients.restrict(
                try token(), practice: try Self.uuid(input.path.practiceId, "practiceId"),
                request: try Self.uuid(input.path.requestId, "requestId"), context: values.context)
            return .ok(.init(body: .json(.init(restricted: restricted))))
        }
    }
}
