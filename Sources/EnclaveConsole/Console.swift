import Enclave
import Foundation
import HTTPTypes
import Hummingbird
import Sealing

/// The web console: server-rendered pages over the same service layer and sessions as the API.
///
/// The session token travels in a `__Host-` cookie (Secure, HttpOnly, SameSite=Strict); every
/// form carries a CSRF token; every page has a strict Content-Security-Policy and
/// `Cache-Control: no-store`; URLs and titles carry ids, never PHI. Refusals are pages: a
/// practice the caller no longer reaches shows "access to this practice has ended".
public struct Console: Sendable {
    let services: EnclaveServices
    let assets: ConsoleAssets
    /// Who the request in progress comes from (set by `addRoutes`).
    private(set) var client: @Sendable () -> ClientInfo = { ClientInfo() }

    /// The session cookie's name, for the API's recording playback.
    public static let sessionCookieName = ConsoleSecurity.sessionCookie

    public static func load(services: EnclaveServices) async throws -> Console {
        Console(services: services, assets: try await ConsoleAssets.load())
    }

    /// Adds the console's routes to `router`. `client` says who the request in progress comes
    /// from (its address and user agent), as the host's middleware found it: sign-in throttles
    /// and audit events key on it.
    public func addRoutes<Context: Hummingbird.RequestContext>(
        to router: Router<Context>, client: @escaping @Sendable () -> ClientInfo
    ) {
        var console = self
        console.client = client
        console.addRoutesWithClient(to: router)
    }

    private func addRoutesWithClient<Context: Hummingbird.RequestContext>(to router: Router<Context>) {
        router.get("/") { request, _ in
            request.cookies[ConsoleSecurity.sessionCookie] == nil
                ? ConsoleAssets.redirect("/sign-in") : ConsoleAssets.redirect("/home")
        }
        router.get("/static/console.css") { _, _ in staticFile(assets.stylesheet, "text/css; charset=utf-8") }
        router.get("/static/console.js") { _, _ in staticFile(assets.script, "text/javascript; charset=utf-8") }
        router.get("/sign-in") { request, _ in signInPage(request) }
        router.post("/sign-in") { request, context in try await signIn(request, context) }
        router.get("/sign-in/code") { request, _ in guarded(request) { _ in page("code", [:], request) } }
        router.post("/sign-in/code") { request, context in try await verifyCode(request, context) }
        router.get("/enroll") { request, _ in await enrollPage(request) }
        router.post("/enroll") { request, context in try await confirmEnrollment(request, context) }
        router.post("/sign-out") { request, context in try await signOut(request, context) }
        router.get("/signed-out") { request, _ in
            var response = page("signed-out", [:], request)
            response.setCookie(ConsoleSecurity.cookie(ConsoleSecurity.sessionCookie, "", maxAge: 0))
            return response
        }
        router.get("/home") { request, _ in await home(request) }
        router.get("/agency") { request, _ in await agencyOverview(request) }
        router.get("/roi") { request, _ in await agencyROI(request) }
        router.get("/roi.csv") { request, _ in await agencyROICSV(request) }
        router.post("/agency/proposals") { request, context in try await propose(request, context) }
        router.post("/agency/assignments") { request, context in try await assignment(request, context) }
        router.get("/account") { request, _ in await account(request) }
        router.post("/account/sessions/:session/revoke") { request, context in try await revokeSession(request, context)
        }
        router.post("/account/password") { request, context in try await changePassword(request, context) }
        router.get("/practices/:practice/audit") { request, context in await auditTrail(request, context) }
        router.post("/practices/:practice/audit/export") { request, context in try await exportAudit(request, context) }
        router.get("/practices/:practice/reach") { request, context in await reach(request, context) }
        router.get("/practices/:practice/sources") { request, context in await sourcesPage(request, context) }
        router.get("/practices/:practice/keywords") { request, context in await keywordsPage(request, context) }
        router.post("/practices/:practice/keywords") { request, context in try await saveKeywordSet(request, context) }
        router.post("/practices/:practice/keywords/:set/delete") { request, context in
            try await deleteKeywordSet(request, context)
        }
        router.get("/practices/:practice/webhooks") { request, context in await webhooksPage(request, context) }
        router.post("/practices/:practice/webhooks") { request, context in try await createWebhook(request, context) }
        router.post("/practices/:practice/webhooks/:webhook/delete") { request, context in
            try await deleteWebhook(request, context)
        }
        router.post("/practices/:practice/sources") { request, context in try await createSource(request, context) }
        router.post("/practices/:practice/sources/twilio") { request, context in
            try await createTwilio(request, context)
        }
        router.post("/practices/:practice/sources/:source/numbers") { request, context in
            try await addNumbers(request, context)
        }
        router.post("/practices/:practice/web-properties") { request, context in
            try await createProperty(request, context)
        }
        router.post("/practices/:practice/sources/:source/rotate") { request, context in
            try await rotateSource(request, context)
        }
        router.get("/practices/:practice") { request, context in await dashboard(request, context) }
        router.get("/practices/:practice/leads") { request, context in await leads(request, context) }
        router.post("/practices/:practice/leads/:lead/redact") { request, context in try await redact(request, context)
        }
        router.get("/practices/:practice/leads/:lead") { request, context in await lead(request, context) }
        router.get("/practices/:practice/agreements") { request, context in await agreements(request, context) }
        router.get("/practices/:practice/roi") { request, context in await roi(request, context) }
        router.get("/practices/:practice/roi.csv") { request, context in await roiCSV(request, context) }
        router.post("/practices/:practice/spend") { request, context in try await spend(request, context) }
        router.post("/practices/:practice/leads/:lead/qualify") { request, context in
            try await qualify(request, context)
        }
        router.post("/agreements/:agreement/:decision") { request, context in try await decide(request, context) }
        router.get("/practices/:practice/compliance") { request, context in await compliancePage(request, context) }
        router.post("/practices/:practice/compliance") { request, context in
            try await saveCompliance(request, context)
        }
        router.post("/practices/:practice/holds") { request, context in try await placeHold(request, context) }
        router.post("/practices/:practice/holds/:hold/release") { request, context in
            try await releaseHold(request, context)
        }
        router.post("/practices/:practice/break-glass/:glass/acknowledge") { request, context in
            try await acknowledgeBreakGlass(request, context)
        }
        router.post("/practices/:practice/export") { request, context in try await exportPractice(request, context) }
        router.get("/practices/:practice/patients") { request, context in await patientsPage(request, context) }
        router.post("/practices/:practice/patients/staff") { request, context in
            try await setStaffScope(request, context)
        }
        router.post("/practices/:practice/patients/lookup") { request, context in
            try await lookupPatient(request, context)
        }
        router.post("/practices/:practice/patients/requests") { request, context in
            try await logPatientRequest(request, context)
        }
        router.get("/practices/:practice/patients/requests/:request/report") { request, context in
            await patientReport(request, context)
        }
        router.get("/practices/:practice/patients/requests/:request/report.csv") { request, context in
            await patientReportCSV(request, context)
        }
        router.post("/practices/:practice/patients/requests/:request/complete") { request, context in
            try await completePatientRequest(request, context)
        }
        router.post("/practices/:practice/patients/requests/:request/copy") { request, context in
            try await patientCopy(request, context)
        }
        router.post("/practices/:practice/patients/requests/:request/erase") { request, context in
            try await erasePatient(request, context)
        }
        router.post("/practices/:practice/patients/requests/:request/restrict") { request, context in
            try await restrictPatient(request, context)
        }
        router.get("/alerts/:alert") { request, context in await alertPage(request, context) }
        router.post("/alerts/:alert/acknowledge") { request, context in try await acknowledgeAlert(request, context) }
        router.get("/break-glass") { request, _ in await breakGlassPage(request) }
        router.post("/break-glass") { request, context in try await openBreakGlass(request, context) }
        router.post("/break-glass/:glass/end") { request, context in try await endBreakGlass(request, context) }
    }
}

/// Forms that carry the CSRF token.
protocol CSRFCarrying {
    var csrfToken: String { get }
}

extension Console.CodeForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.CSRFForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.DecisionForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.RedactForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.PasswordForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.SourceForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.WebhookForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.ProposalForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.AssignmentForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.AuditExportForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.QualifyForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.TwilioForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.NumbersForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.PropertyForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.SpendForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.ComplianceForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.HoldForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.BackForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.ExportForm: CSRFCarrying { var csrfToken: String { csrf } }
extension Console.BreakGlassForm: CSRFCarrying { var csrfToken: String { csrf } }
