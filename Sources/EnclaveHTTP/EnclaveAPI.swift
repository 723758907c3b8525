import Enclave
import Foundation
import OpenAPIRuntime
import Postgres

/// The API's handlers over the service layer. Each refusal becomes the problem+json response the
/// spec declares for the operation; anything else becomes a bare problem from the middleware.
public struct EnclaveAPI: APIProtocol {
    /// The service layer the handlers call.
    public let services: EnclaveServices
    /// The newest schema migration this build expects, for readiness.
    public let expectedSchemaVersion: Int
    /// The scheme, host and port providers reach this server at (behind a proxy, not what the
    /// request says); nil: `https://` and the request's Host. Providers sign the URL they call.
    public let publicBaseURL: String?
    let metrics: Metrics
    let captureLimits = CaptureLimits()

    public init(
        services: EnclaveServices, expectedSchemaVersion: Int = SchemaVersion.expected, publicBaseURL: String? = nil
    ) {
        self.services = services
        self.expectedSchemaVersion = expectedSchemaVersion
        self.publicBaseURL = publicBaseURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        metrics = Metrics(pool: services.pool)
    }

    var identity: IdentityService { services.identity }
    var leads: LeadService { services.leads }
    var ingest: IngestService { services.ingest }

    var values: RequestValues { RequestValues.current }

    func token() throws -> SessionToken {
        guard let token = values.token else {
            throw Problem(.unauthorized, "send Authorization: Bearer <token>", type: "unauthenticated")
        }
        return token
    }

    static func problem(_ error: any Error) -> (Int, Components.Responses.Problem) {
        let problem = Problem(error)
        return (
            Int(problem.status.code),
            .init(
                body: .application_problem_plus_json(
                    .init(
                        _type: problem._type, title: problem.title, status: Int(problem.status.code),
                        detail: problem.detail)))
        )
    }

    /// The response the operation declares for `error`'s status, or `error` itself for the
    /// middleware to render as problem+json.
    static func declared<Output>(
        _ error: any Error, _ responses: [Int: (Components.Responses.Problem) -> Output]
    ) throws -> Output {
        let (status, problem) = problem(error)
        guard let respond = responses[status] else { throw error }
        return respond(problem)
    }

    /// A path, query or header id: a canonical UUID (8-4-4-4-12 hex digits) and nothing before
    /// or after it. Foundation's parser alone accepts trailing bytes (`…%00`).
    static func uuid(_ text: String, _ name: String) throws -> UUID {
        let canonical = /[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/
        guard text.wholeMatch(of: canonical) != nil, let id = UUID(uuidString: text) else {
            throw Problem(.badRequest, "\(name) is not a UUID", type: "invalid-input")
        }
        return id
    }

    func health(_ input: Operations.health.Input) async throws -> Operations.health.Output {
        .ok(.init(body: .plainText("ok")))
    }

    func ready(_ input: Operations.ready.Input) async throws -> Operations.ready.Output {
        let version = try? await identity.pool.query("select enclave_private.schema_version() as v").first?.decode(
            Int32.self, "v")
        let masterKey = (try? identity.masterKeys.keyIdentifier(version: identity.masterKeyVersion)) != nil
        let readiness = Components.Schemas.Readiness(
            database: version != nil, migrations: version.map { Int($0) >= expectedSchemaVersion } ?? false,
            master_key: masterKey)
        if readiness.database && readiness.migrations && readiness.master_key {
            return .ok(.init(body: .json(readiness)))
        }
        return .serviceUnavailable(.init(body: .json(readiness)))
    }

    func login(_ input: Operations.login.Input) async throws -> Operations.login.Output {
        guard case .json(let body) = input.body else { throw Problem(.unsupportedMediaType, "send application/json") }
        do {
            let login = try await identity.login(
                email: body.email, password: body.password, client: values.context.client)
            return .ok(.init(body: .json(.init(token: login.token.value, mfa_enrolled: login.mfaEnrolled))))
        } catch {
            return try Self.declared(
                error, [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 429: { .tooManyRequests($0) }])
        }
    }

    func verifyMFA(_ input: Operations.verifyMFA.Input) async throws -> Operations.verifyMFA.Output {
        guard case .json(let body) = input.body else { throw Problem(.unsupportedMediaType, "send application/json") }
        do {
            try await identity.verifyMFA(try token(), code: body.code)
            return .noContent(.init())
        } catch {
            return try Self.declared(
                error, [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 409: { .conflict($0) }])
        }
    }

    func logout(_ input: Operations.logout.Input) async throws -> Operations.logout.Output {
        do {
            try await identity.logout(try token())
            return .noContent(.init())
        } catch {
            return try Self.declared(error, [401: { .unauthorized($0) }])
        }
    }

    func me(_ input: Operations.me.Input) async throws -> Operations.me.Output {
        do {
            let me = try await identity.me(try token())
            return .ok(
                .init(
                    body: .json(
                        .init(
                            user_id: me.userID.uuidString.lowercased(), email: me.email, display_name: me.displayName,
                            mfa_verified: me.mfaVerified,
                            memberships: me.memberships.compactMap { membership in
                                guard let role = Components.Schemas.Membership.rolePayload(rawValue: membership.role)
                                else { return nil }
                                return .init(
                                    role: role, agency_id: membership.agency?.uuidString.lowercased(),
                                    practice_id: membership.practice?.uuidString.lowercased())
                            }))))
        } catch {
            return try Self.declared(error, [401: { .unauthorized($0) }])
        }
    }

    func listLeads(_ input: Operations.listLeads.Input) async throws -> Operations.listLeads.Output {
        do {
            let practice = try Self.uuid(input.path.practiceId, "practiceId")
            if let caller = input.query.caller {
                let found = try await leads.find(
                    try token(), practice: practice, callerNumber: caller, context: values.context)
                return .ok(.init(body: .json(.init(leads: found.map(Self.lead)))))
            }
            let filter = LeadFilter(
                since: input.query.since, until: input.query.until, kind: input.query.kind?.rawValue,
                source: input.query.source, campaign: input.query.campaign, cursor: input.query.cursor,
                limit: input.query.limit ?? 50)
            let page = try await leads.list(try token(), practice: practice, filter: filter, context: values.context)
            return .ok(.init(body: .json(.init(leads: page.leads.map(Self.lead), next_cursor: page.nextCursor))))
        } catch {
            return try Self.declared(
                error, [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }])
        }
    }

    func getLead(_ input: Operations.getLead.Input) async throws -> Operations.getLead.Output {
        do {
            let practice = try Self.uuid(input.path.practiceId, "practiceId")
            let lead = try await leads.get(
                try token(), practice: practice, lead: try Self.uuid(input.path.leadId, "leadId"),
                context: values.context)
            return .ok(.init(body: .json(Self.lead(lead))))
        } catch {
            return try Self.declared(
                error,
                [400: { .notFound($0) }, 404: { .notFound($0) }, 401: { .unauthorized($0) }, 403: { .forbidden($0) }])
        }
    }

    func ingestCall(_ input: Operations.ingestCall.Input) async throws -> Operations.ingestCall.Output {
        do {
            let (created, body) = try await signedIngest(
                source: input.headers.Enclave_hyphen_Source, signature: input.headers.Enclave_hyphen_Signature,
                idempotencyKey: input.headers.Idempotency_hyphen_Key, store: ingest.ingestCall)
            return created ? .created(.init(body: .json(body))) : .ok(.init(body: .json(body)))
        } catch {
            return try Self.declared(
                error, [400: { .badRequest($0) }, 401: { .unauthorized($0) }, 413: { .contentTooLarge($0) }])
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
            recording_bytes: lead.recordingBytes, redacted: lead.redactedAt != nil)
    }
}

extension Problem {
    var _type: String { type }
}
