import Enclave
import Foundation
import OpenAPIRuntime
import Postgres

/// The API's handlers over the service layer, one file per tag of the spec (`EnclaveAPI+Tag`).
/// Each refusal becomes the problem+json response the spec declares for the operation (see
/// `respond(declaring:_:)`); anything else becomes a bare problem from `ProblemMiddleware`.
public struct EnclaveAPI: APIProtocol {
    /// The service layer the handlers call.
    public let services: EnclaveServices
    /// The newest schema migration this build expects, for readiness.
    public let expectedSchemaVersion: Int
    /// The scheme, host and port providers reach this server at (behind a proxy, not what the
    /// request says); nil: `https://` and the request's Host. Providers sign the URL they call.
    public let publicBaseURL: String?
    let metrics: Metrics
    /// How long a recording stream waits for its client to take the next chunk (the server's
    /// write timeout, set from `EnclaveServer.Listen`).
    var writeTimeout: Duration = .seconds(30)

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
    var agreements: AgreementService { services.agreements }
    var sources: TrackingSources { services.sources }
    var webhooks: WebhookEndpoints { services.webhooks }
    var twilio: TwilioCapture { services.twilio }
    var web: WebCapture { services.web }
    var value: LeadValue { services.value }

    /// What the middleware learned about this request.
    var values: RequestValues { RequestValues.current }

    /// The request's bearer token, or 401.
    func token() throws -> SessionToken {
        guard let token = values.token else {
            throw Problem(.unauthorized, "send Authorization: Bearer <token>", type: "unauthenticated")
        }
        return token
    }

    /// Runs a handler's `body`. A refusal it throws becomes the response the operation declares
    /// for the refusal's status (`responses`, by status code); any other error goes on to
    /// `ProblemMiddleware`, which renders it as a bare problem.
    static func respond<Output>(
        declaring responses: [Int: (Components.Responses.Problem) -> Output], _ body: () async throws -> Output
    ) async throws -> Output {
        do {
            return try await body()
        } catch {
            let problem = Problem(error)
            guard let respond = responses[Int(problem.status.code)] else { throw error }
            if let refusal = error as? AccessError, let after = refusal.retryAfter {
                RequestValues.current.outcome.set(
                    header: "Retry-After", String(max(1, Int(after.timeIntervalSinceNow.rounded(.up)))))
            }
            return respond(
                .init(
                    body: .application_problem_plus_json(
                        .init(
                            _type: problem.type, title: problem.title, status: Int(problem.status.code),
                            detail: problem.detail))))
        }
    }

    /// A path, query or header id: a canonical UUID (8-4-4-4-12 hex digits) and nothing before
    /// or after it. Foundation's parser alone accepts trailing bytes (`…%00`).
    static func uuid(_ text: String, _ name: String) throws -> UUID {
        // The canonical 8-4-4-4-12 form only (checked by hand: a Regex here cost a tenth of a
        // lead list's CPU in the profile).
        let bytes = Array(text.utf8)
        let canonical =
            bytes.count == 36
            && bytes.indices.allSatisfy { index in
                [8, 13, 18, 23].contains(index) ? bytes[index] == UInt8(ascii: "-") : bytes[index].isHexDigit
            }
        guard canonical, let id = UUID(uuidString: text) else {
            throw Problem(.badRequest, "\(name) is not a UUID", type: "invalid-input")
        }
        return id
    }

    /// An id as the API writes it: lowercase.
    static func text(_ id: UUID) -> String { id.uuidString.lowercased() }
}

extension UInt8 {
    /// An ASCII hexadecimal digit.
    fileprivate var isHexDigit: Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(self)
            || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(self)
    }
}
