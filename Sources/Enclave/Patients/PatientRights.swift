import Foundation
import Postgres
import Sealing

/// A patient's rights, answered by the practice (issue 29): finding the patient's leads by phone
/// number or email address through blind indexes (never by decrypting every lead), the access
/// report and accounting of disclosures over them (45 CFR 164.528 and HITECH's access report),
/// the request log with each request's deadline, erasure and restriction.
///
/// Owners, and staff an owner granted `patients.requests`; agency users never. The functions of
/// `sql/functions/patients.sql` check the caller themselves.
public struct PatientRights: Sendable {
    public let identity: IdentityService
    public let keys: TenantKeyStore

    public init(identity: IdentityService, keys: TenantKeyStore) {
        self.identity = identity
        self.keys = keys
    }

    /// One of the patient's leads, as the lookup finds it (no PHI).
    public struct FoundLead: Sendable, Equatable {
        public let id: UUID
        public let kind: String
        public let occurredAt: Date
        public let receivedAt: Date
        public let redactedAt: Date?
        public let restrictedAt: Date?
        /// Under an active legal hold: erasure leaves it.
        public let held: Bool
        public let hasRecording: Bool
    }

    /// The practice's leads from `phoneNumber` (any format; normalized to E.164 as the blind
    /// index is) or carrying `email`, oldest first. Recorded as `patient.looked_up` with the count.
    ///
    /// - Throws: `.invalidInput` when neither is given or one is not a phone number or an email
    ///   address; `.forbidden` for a caller who may not answer patients' requests.
    public func find(
        _ token: SessionToken, practice: UUID, phoneNumber: String?, email: String?,
        context: RequestContext = RequestContext()
    ) async throws -> [FoundLead] {
        let phone = phoneNumber.flatMap { $0.isEmpty ? nil : $0 }
        let address = email.flatMap { $0.isEmpty ? nil : $0 }
        guard phone != nil || address != nil else {
            throw AccessError(.invalidInput, "give a phone number or an email address")
        }
        let normalizedPhone: String?
        let normalizedEmail: String?
        do {
            normalizedPhone = try phone.map { try PhoneNumber.normalize($0) }
        } catch {
            throw AccessError(.invalidInput, "not a phone number")
        }
        do {
            normalizedEmail = try address.map { try EmailAddress.normalize($0) }
        } catch {
            throw AccessError(.invalidInput, "not an email address")
        }
        return try await identity.withSession(token, tenant: practice) { transaction in
            try await transaction.query("select enclave_private.check_patient_requests($1)", [practice])
            let index = try await keys.keys(practice, in: transaction).blindIndex()
            let rows = try await transaction.query(
                "select * from enclave_private.find_patient($1, $2, $3, $4, $5::text::inet, $6)",
                [
                    practice, try normalizedPhone.map { try index.index(normalized: $0) },
                    try normalizedEmail.map { try index.index(emailAddress: $0) }, context.requestID,
                    context.client.address, context.client.userAgent,
                ])
            return try rows.map {
                FoundLead(
                    id: try $0.decode(UUID.self, "id"), kind: try $0.decode(String.self, "kind"),
                    occurredAt: try $0.decode(Date.self, "occurred_at"),
                    receivedAt: try $0.decode(Date.self, "created_at"),
                    redactedAt: try $0.decode(Date?.self, "redacted_at"),
                    restrictedAt: try $0.decode(Date?.self, "restricted_at"),
                    held: try $0.decode(Bool.self, "held"), hasRecording: try $0.decode(Bool.self, "has_recording"))
            }
        }
    }

    /// Grants (or, with an empty list, withdraws) `patients.requests` for the member of the
    /// practice's staff with email address `staff`. Owners only. False when no member of the
    /// practice's staff has that address.
    @discardableResult
    public func setStaffScopes(_ token: SessionToken, practice: UUID, staff: String, scopes: [String]) async throws
        -> Bool
    {
        try await identity.withSession(token, tenant: practice) {
            try await $0.query(
                "select enclave_private.set_staff_scopes($1, $2, $3::text[]) as done", [practice, staff, scopes]
            ).first?.decode(Bool.self, "done") ?? false
        }
    }
}
