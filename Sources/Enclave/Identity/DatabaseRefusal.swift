import Postgres

/// A refusal a function in `sql/functions/` raises, by the stable code it raises as the
/// message. SQL names the case; the words shown to people live here.
enum DatabaseRefusal: String, CaseIterable, Sendable {
    case mfaRequired = "mfa_required"
    case sourcesNeedTrackingManage = "sources_need_tracking_manage"
    case redactNeedsPracticeOwner = "redact_needs_practice_owner"
    case agencyMembersNeedAgencyAdmin = "agency_members_need_agency_admin"
    case reachNeedsPracticeOwner = "reach_needs_practice_owner"
    case ingestCredentialRequired = "ingest_credential_required"
    case operatorsOnly = "operators_only"
    case auditLinksInvalid = "audit_links_invalid"
    case auditHeadMoved = "audit_head_moved"
    case auditLinkNotNew = "audit_link_not_new"
    case figuresPeriodInvalid = "figures_period_invalid"
    case figuresNeedAgencyMember = "figures_need_agency_member"
    case visitorSessionInvalid = "visitor_session_invalid"
    case numberTaken = "number_taken"
    case qualifyNeedsScope = "qualify_needs_scope"
    case qualificationInvalid = "qualification_invalid"
    case spendNeedsAgencyAdmin = "spend_needs_agency_admin"
    case accessDeniedEventInvalid = "access_denied_event_invalid"
    case proposeNeedsAgencyAdmin = "propose_needs_agency_admin"
    case decideNeedsPracticeOwner = "decide_needs_practice_owner"
    case proposerCannotDecide = "proposer_cannot_decide"
    case agreementNotProposed = "agreement_not_proposed"
    case revokeNeedsOwnerOrAgencyAdmin = "revoke_needs_owner_or_agency_admin"
    case agreementNotRevocable = "agreement_not_revocable"
    case assignNeedsAgencyAdmin = "assign_needs_agency_admin"
    case notAgencyMember = "not_agency_member"
    case auditNeedsPracticeOwner = "audit_needs_practice_owner"
    case disclosuresNeedPracticeOwner = "disclosures_need_practice_owner"
    case agencyAuditNeedsAgencyAdmin = "agency_audit_needs_agency_admin"
    case unknownTrackingSource = "unknown_tracking_source"
    case webhooksNeedPracticeOwner = "webhooks_need_practice_owner"
    case webhookURLInvalid = "webhook_url_invalid"
    case webhookPlainHTTPRefused = "webhook_plain_http_refused"
    case complianceNeedsPracticeOwner = "compliance_needs_practice_owner"
    case breakGlassNeedsResponder = "breakglass_needs_responder"
    case breakGlassInvalid = "breakglass_invalid"
    case complianceSettingsInvalid = "compliance_settings_invalid"
    case legalHoldInvalid = "legal_hold_invalid"
    case legalHoldActive = "legal_hold_active"
    case leadUnderLegalHold = "lead_under_legal_hold"
    case legalHoldNeedsOperator = "legal_hold_needs_operator"
    case retentionInvalid = "retention_invalid"
    case alertsNeedOwnerOrAdmin = "alerts_need_owner_or_admin"
    case auditRetentionTooYoung = "audit_retention_too_young"
    case unknownUser = "unknown_user"
    case sessionInvalid = "session_invalid"
    case practiceUnreachable = "practice_unreachable"
    case readLimitInvalid = "read_limit_invalid"
    case ingestCredentialInvalid = "ingest_credential_invalid"
    case ingestKeyChanged = "ingest_key_changed"
    case ingestReplayed = "ingest_replayed"
    case ingestConflict = "ingest_conflict"
    case patientRequestsNeedScope = "patient_requests_need_scope"
    case patientIdentifierInvalid = "patient_identifier_invalid"
    case patientLeadsInvalid = "patient_leads_invalid"
    case patientRequestInvalid = "patient_request_invalid"
    case erasureNeedsPracticeOwner = "erasure_needs_practice_owner"
    case staffScopesInvalid = "staff_scopes_invalid"
    case keywordsNeedOwnerOrTrackingManage = "keywords_need_owner_or_tracking_manage"
    case keywordSetInvalid = "keyword_set_invalid"

    /// The refusal as the person who asked sees it. `detail` is the database's DETAIL, where
    /// the code has one (an agreement's status; never data).
    func accessError(detail: String?) -> AccessError {
        let state = detail ?? "closed"
        return switch self {
        case .mfaRequired: AccessError(.mfaRequired, "verify a one-time code first")
        case .sourcesNeedTrackingManage:
            AccessError(.forbidden, "you may not manage this practice's tracking sources")
        case .redactNeedsPracticeOwner: AccessError(.forbidden, "only an owner of the practice may redact its leads")
        case .reachNeedsPracticeOwner:
            AccessError(.forbidden, "only an owner of the practice may see who can reach it")
        case .agencyMembersNeedAgencyAdmin: AccessError(.forbidden, "only an admin of the agency may see its members")
        case .ingestCredentialRequired:
            AccessError(.unauthenticated, "the signature does not match this source's secret")
        case .operatorsOnly: AccessError(.forbidden, "only the maintenance role may do that")
        case .auditLinksInvalid: AccessError(.invalidInput, "the links do not fit unlinked events of those chains")
        case .auditHeadMoved: AccessError(.conflict, "a chain's head moved while the links were computed; try again")
        case .figuresPeriodInvalid: AccessError(.invalidInput, "figures cover up to 400 days, ending after they start")
        case .figuresNeedAgencyMember: AccessError(.forbidden, "only the agency's own people may see its figures")
        case .auditLinkNotNew:
            AccessError(.invalidInput, "an event numbered at or below its chain's last linked event cannot be linked")
        case .visitorSessionInvalid:
            AccessError(.invalidInput, "a page view carries only the campaign parameters, each at most 200 bytes")
        case .numberTaken: AccessError(.conflict, "a number is already in another source's pool")
        case .qualifyNeedsScope:
            AccessError(.forbidden, "marking leads needs the practice's owner or an agreement granting leads.qualify")
        case .qualificationInvalid:
            AccessError(.invalidInput, "a lead is qualified, unqualified or spam, with a value of 0 or more")
        case .spendNeedsAgencyAdmin:
            AccessError(.forbidden, "ad spend is recorded by an admin of an agency with an agreement in force")
        case .accessDeniedEventInvalid: AccessError(.invalidInput, "a refusal is recorded with a fixed reason code")
        case .proposeNeedsAgencyAdmin: AccessError(.forbidden, "only an admin of the agency may propose an agreement")
        case .decideNeedsPracticeOwner:
            AccessError(.forbidden, "only an owner of the practice may decide on this agreement")
        case .proposerCannotDecide: AccessError(.forbidden, "the proposer of an agreement cannot approve or decline it")
        case .agreementNotProposed: AccessError(.conflict, "the agreement is \(state) and can no longer be decided")
        case .revokeNeedsOwnerOrAgencyAdmin:
            AccessError(.forbidden, "only an owner of the practice or an admin of the agency may revoke this agreement")
        case .agreementNotRevocable: AccessError(.conflict, "the agreement is \(state) and cannot be revoked")
        case .assignNeedsAgencyAdmin: AccessError(.forbidden, "only an admin of the agency may assign its members")
        case .notAgencyMember: AccessError(.invalidInput, "the user is not a member of the agency")
        case .auditNeedsPracticeOwner: AccessError(.forbidden, "only an owner of the practice may read its audit trail")
        case .disclosuresNeedPracticeOwner:
            AccessError(.forbidden, "only an owner of the practice may read its disclosures")
        case .agencyAuditNeedsAgencyAdmin:
            AccessError(.forbidden, "only an admin of the agency may read its audit events")
        case .unknownTrackingSource: AccessError(.forbidden, "no such tracking source for this practice")
        case .unknownUser: AccessError(.notFound, "no such user")
        case .webhooksNeedPracticeOwner:
            AccessError(.forbidden, "only an owner of the practice may add or remove webhook endpoints")
        case .webhookURLInvalid: AccessError(.invalidInput, "the endpoint must be an absolute http(s) URL")
        case .webhookPlainHTTPRefused: AccessError(.invalidInput, "plain-HTTP endpoints are refused in HIPAA mode")
        case .complianceNeedsPracticeOwner:
            AccessError(.forbidden, "only an owner of the practice may do that")
        case .breakGlassNeedsResponder:
            AccessError(.forbidden, "only a platform responder may open emergency access")
        case .breakGlassInvalid:
            AccessError(
                .invalidInput,
                "emergency access needs an active practice, a reason of 10 to 500 characters and at most an hour")
        case .complianceSettingsInvalid:
            AccessError(
                .invalidInput,
                "retention is 1 to 36,500 days or empty, hours are 0 to 24, the time zone an IANA name and the age key an age1… recipient"
            )
        case .legalHoldInvalid:
            AccessError(
                .invalidInput, "a legal hold needs a reason of 3 to 500 characters and a practice that still exists")
        case .legalHoldActive:
            AccessError(.conflict, "the practice is under a legal hold: release it before offboarding")
        case .leadUnderLegalHold:
            AccessError(.conflict, "the lead is under a legal hold: its PHI stays until the hold is released")
        case .legalHoldNeedsOperator:
            AccessError(.forbidden, "an operator placed this hold: only an operator may release it")
        case .retentionInvalid:
            AccessError(.invalidInput, "the purge needs a practice in context and a clock not ahead of the database's")
        case .alertsNeedOwnerOrAdmin:
            AccessError(.forbidden, "only an owner of the practice or an admin of the agency may see these alerts")
        case .sessionInvalid: AccessError(.unauthenticated, "sign in again: the session is not valid")
        case .practiceUnreachable: AccessError(.forbidden, "you do not have access to this practice's data")
        case .readLimitInvalid: AccessError(.invalidInput, "limit must be 1 to 100")
        case .ingestCredentialInvalid, .ingestKeyChanged:
            AccessError(.unauthenticated, "the signature does not match this source's secret")
        case .ingestReplayed: AccessError(.unauthenticated, "this signed request was already received (replay)")
        case .ingestConflict: AccessError(.conflict, "the lead could not be stored")
        case .patientRequestsNeedScope:
            AccessError(
                .forbidden, "patients' requests are answered by the practice's owners and the staff they allow")
        case .patientIdentifierInvalid: AccessError(.invalidInput, "give a phone number or an email address")
        case .patientLeadsInvalid: AccessError(.invalidInput, "a report covers 1 to 10,000 of the practice's leads")
        case .patientRequestInvalid:
            AccessError(
                .invalidInput,
                "a request is an access report, a copy, an erasure or a restriction, received in the last year, "
                    + "about the practice's own leads, and not done yet")
        case .erasureNeedsPracticeOwner:
            AccessError(.forbidden, "only an owner of the practice may erase or restrict a patient's leads")
        case .staffScopesInvalid: AccessError(.invalidInput, "staff may be granted patients.requests only")
        case .keywordsNeedOwnerOrTrackingManage:
            AccessError(
                .forbidden,
                "a practice's keyword sets are changed by its owners, or by agency staff with tracking.manage")
        case .keywordSetInvalid: AccessError(.invalidInput, Self.keywordSetProblem(detail))
        case .auditRetentionTooYoung:
            AccessError(.invalidInput, "audit events are kept at least six years: none that young can be removed")
        }
    }

    /// What is wrong with a keyword set, from the DETAIL save_keyword_set gives.
    static func keywordSetProblem(_ detail: String?) -> String {
        switch detail {
        case "name": "a keyword set's name is 1 to 40 lower-case letters, digits, spaces, _ or -"
        case "phrases": "a keyword set has 1 to 50 phrases of words, each up to 60 characters"
        case "weight": "a keyword set's weight is -10 to 10"
        default: "a practice has at most 50 keyword sets"
        }
    }
}
