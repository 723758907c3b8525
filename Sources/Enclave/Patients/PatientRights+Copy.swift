import Foundation
import Postgres
import Sealing

extension PatientRights {
    /// The patient's copy of their records (45 CFR 164.524) for a copy request: a ZIP the
    /// patient opens without Enclave (`leads.csv`, `leads.json`, `recordings/`, `README.txt`),
    /// encrypted in the `age` format to `passphrase` when one is given (the practice tells the
    /// patient the passphrase apart from the file), written to a new file at `path` (mode 0600).
    ///
    /// Behind a re-authentication. Recorded as `phi.disclosed` to the individual for each lead,
    /// with the day the request was received and the day of delivery, in the transaction that
    /// reads the leads: if the events cannot be written, no copy is made; if the copy cannot be
    /// written, the events roll back and the file is removed.
    public func copy(
        _ token: SessionToken, practice: UUID, request: UUID, passphrase: String?, path: String,
        context: RequestContext = RequestContext()
    ) async throws -> PracticeArchive.Counts {
        if let passphrase, passphrase.count < 12 {
            throw AccessError(.invalidInput, "a passphrase has at least 12 characters")
        }
        guard !FileManager.default.fileExists(atPath: path) else {
            throw ConfigurationError("\(path) already exists; not overwriting it")
        }
        let keys = self.keys
        return try await identity.withSession(token, tenant: practice) { transaction in
            guard
                let recorded = try await transaction.query(
                    """
                    select lead_ids, received_on::text as received_on
                    from enclave_private.record_patient_copy($1, $2, $3, $4, $5::text::inet, $6)
                    """,
                    [
                        practice, request, passphrase != nil, context.requestID, context.client.address,
                        context.client.userAgent,
                    ]
                ).first
            else { throw AccessError(.notFound, "no such request") }
            let leads = try recorded.decode([UUID].self, "lead_ids")
            let received = try recorded.decode(String.self, "received_on")
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
                let handle = FileHandle(forWritingAtPath: path)
            else { throw ConfigurationError("\(path): cannot be created") }
            do {
                let encryptor = try passphrase.map { passphrase in
                    try AgeEncryptor(to: .passphrase(passphrase)) { try handle.write(contentsOf: $0) }
                }
                var zip = ZipWriter { bytes in
                    if let encryptor { try encryptor.write(bytes) } else { try handle.write(contentsOf: bytes) }
                }
                let counts = try await PracticeArchive.writeContents(
                    practice, transaction, keys, only: leads, withRestricted: true, &zip
                ) { counts in
                    """
                    Your records, as this practice holds them (45 CFR 164.524).

                    Requested on \(received); delivered on \(Date().formatted(.iso8601.year().month().day())).
                    leads.csv and leads.json hold the same \(counts.leads) calls and forms (JSON keeps exact values; \
                    CSV fields a spreadsheet would run as formulas start with '). recordings/ holds \
                    \(counts.recordings) call recordings, named by the id in those files. A field that is empty was \
                    not recorded, or was erased.

                    """
                }
                try zip.finish()
                try encryptor?.finish()
                try handle.synchronize()
                try handle.close()
                return counts
            } catch {
                try? handle.close()
                try? FileManager.default.removeItem(atPath: path)
                throw error
            }
        }
    }
}
