import EnclaveTestSupport
import Foundation
import Postgres
import Testing

@testable import Enclave

/// Holds hold (issue 25): a held lead cannot be redacted; releasing a hold needs a fresh
/// re-authentication, and a hold an operator placed is released only by an operator.
@Suite("Legal holds hold against redaction and casual release")
struct LegalHoldTests {
    @Test("a held lead is not redacted; a lead the hold does not name is")
    func redactionRefused() async throws {
        try await IdentityFixture.with { fixture in
            let clock = Date().addingTimeInterval(-3600)
            let (held, free) = try await RetentionTests.seed(fixture, clock: clock)
            let owner = try await fixture.freshUser("owner2@a.test", role: .practiceOwner, practice: fixture.practiceA)
            _ = try await fixture.compliance.placeHold(
                owner, practice: fixture.practiceA, leads: [held], reason: "litigation 2026-114")
            await #expect(
                throws: AccessError(
                    .conflict, "the lead is under a legal hold: its PHI stays until the hold is released")
            ) {
                try await fixture.services.leads.redact(
                    owner, practice: fixture.practiceA, lead: held, fields: [.transcript])
            }
            #expect(
                try await fixture.count(
                    "select count(*)::int8 as n from enclave.leads where id = $1 and transcript is not null", [held])
                    == 1)
            try await fixture.services.leads.redact(
                owner, practice: fixture.practiceA, lead: free, fields: [.transcript])
            #expect(
                try await fixture.count(
                    "select count(*)::int8 as n from enclave.leads where id = $1 and transcript is null", [free]) == 1)
        }
    }

    @Test("releasing needs a re-authentication; an operator's hold is the operator's to release; both audited")
    func release() async throws {
        try await IdentityFixture.with { fixture in
            let owner = try await fixture.freshUser("owner2@a.test", role: .practiceOwner, practice: fixture.practiceA)
            let hold = try await fixture.compliance.placeHold(
                owner, practice: fixture.practiceA, leads: nil, reason: "subpoena")
            // The re-authentication is older than five minutes: refused.
            try await fixture.superuser(
                "update enclave.sessions set authenticated_at = now() - interval '10 minutes' where user_id <> $1",
                [UUID()])
            await #expect(throws: AccessError.self) {
                try await fixture.compliance.releaseHold(owner, id: hold)
            }
            // Re-authenticated again (as the dialog would): released.
            try await fixture.superuser(
                "update enclave.sessions set authenticated_at = now() where user_id <> $1", [UUID()])
            let fresh = owner
            #expect(try await fixture.compliance.releaseHold(fresh, id: hold))
            // An operator's hold: the owner, however fresh, may not release it; the operator may.
            let operations = try await fixture.operations()
            let operators = try await operations.placeHold(
                practice: fixture.practiceA, leads: nil, reason: "regulator inquiry")
            await #expect(
                throws: AccessError(.forbidden, "an operator placed this hold: only an operator may release it")
            ) {
                try await fixture.compliance.releaseHold(fresh, id: operators)
            }
            try await operations.releaseHold(operators)
            #expect(
                try await fixture.count(
                    """
                    select count(*)::int8 as n from enclave.audit_events
                    where tenant_id = $1 and action = 'legal_hold.released'
                    """, [fixture.practiceA]) == 2)
        }
    }
}
