import Foundation
import Postgres

/// An email, PHI-free by construction: its words come from a template that may use only the
/// whitelisted variables (names of the practice and agency, the console's address, fixed
/// phrases), never a lead's fields.
public struct MailMessage: Sendable, Equatable {
    public let from: String
    public let to: String
    public let subject: String
    public let body: String

    public init(from: String, to: String, subject: String, body: String) {
        self.from = from
        self.to = to
        self.subject = subject
        self.body = body
    }
}

/// Where mail goes: SMTP in production (EnclaveHTTP's SMTPTransport).
public protocol MailTransport: Sendable {
    func send(_ message: MailMessage) async throws
}

/// The notification templates. Each is `Subject: …`, a blank line, then the body, with
/// `{{variable}}` placeholders; any variable outside `allowed` is refused when templates load,
/// so no template can reach a lead's data.
public struct MailTemplates: Sendable {
    /// The only variables a template may use.
    public static let allowed: Set<String> = [
        "practice_name", "agency_name", "console_url", "lead_kind", "alert_summary",
    ]
    /// The notifications, by the outbox payload's `event`.
    public static let events = ["lead.created", "alert", "agreement.proposed"]

    static let builtIn: [String: String] = [
        "lead.created": """
        Subject: A new {{lead_kind}} for {{practice_name}}

        A new {{lead_kind}} for {{practice_name}}: sign in to view.

        {{console_url}}
        """,
        "alert": """
        Subject: Access alert for {{practice_name}}

        {{alert_summary}}.

        Sign in to see the alert and the audit events behind it: {{console_url}}
        """,
        "agreement.proposed": """
        Subject: {{agency_name}} proposed a Business Associate Agreement with {{practice_name}}

        {{agency_name}} proposed a Business Associate Agreement with {{practice_name}}. It grants nothing until an owner approves it.

        Sign in to review it: {{console_url}}
        """,
    ]

    let templates: [String: (subject: String, body: String)]

    /// The built-in templates, overridden by `<event>.txt` files in `directory` when given.
    /// - Throws: `ConfigurationError` naming the file and the variable a template may not use.
    public static func load(directory: String? = nil) throws -> MailTemplates {
        var sources = builtIn
        if let directory {
            for event in events {
                let path = (directory as NSString).appendingPathComponent("\(event).txt")
                guard FileManager.default.fileExists(atPath: path) else { continue }
                guard let data = FileManager.default.contents(atPath: path),
                    let text = String(data: data, encoding: .utf8)
                else { throw ConfigurationError("\(path): cannot be read") }
                sources[event] = text
            }
        }
        var templates: [String: (String, String)] = [:]
        for (event, text) in sources {
            templates[event] = try parse(text, name: directory.map { "\($0)/\(event).txt" } ?? event)
        }
        return MailTemplates(templates: templates)
    }

    /// Splits and checks one template.
    static func parse(_ text: String, name: String) throws -> (String, String) {
        for match in text.matches(of: /\{\{\s*([^}]*?)\s*\}\}/) {
            let variable = String(match.1)
            guard allowed.contains(variable) else {
                throw ConfigurationError(
                    "\(name): the variable {{\(variable)}} is not allowed in an email (allowed: \(allowed.sorted().joined(separator: ", ")))"
                )
            }
        }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard let first = lines.first, first.hasPrefix("Subject: "), lines.count >= 3, lines[1].isEmpty else {
            throw ConfigurationError("\(name): a template starts with a Subject: line, then a blank line")
        }
        return (String(first.dropFirst("Subject: ".count)), lines.dropFirst(2).joined(separator: "\n"))
    }

    /// The subject and body of `event` with `values` filled in (line breaks removed from values).
    func render(_ event: String, _ values: [String: String]) -> (subject: String, body: String)? {
        guard let template = templates[event] else { return nil }
        func fill(_ text: String) -> String {
            text.replacing(/\{\{\s*([^}]*?)\s*\}\}/) { match in
                (values[String(match.1)] ?? "").filter { $0 != "\r" && $0 != "\n" }
            }
        }
        return (fill(template.subject), fill(template.body))
    }
}

/// The mail worker: sends the outbox's notification rows (new leads, alerts, agreement
/// proposals) to the practice's owners and, for alerts about agency staff, the agency's
/// admins. Failures retry with backoff; after `maxAttempts` a notification is marked failed.
public struct Mailer: Sendable {
    public struct Summary: Sendable, Equatable {
        public var sent = 0
        public var notifications = 0
        public var retrying = 0
        public var failed = 0
        public init() {}
    }

    public let maintenance: MaintenanceContext
    public let transport: any MailTransport
    public let templates: MailTemplates
    public let from: String
    /// Where people sign in, for links (https://…).
    public let consoleURL: String
    public let maxAttempts: Int

    public init(
        maintenance: MaintenanceContext, transport: any MailTransport, templates: MailTemplates, from: String,
        consoleURL: String, maxAttempts: Int = 8
    ) {
        self.maintenance = maintenance
        self.transport = transport
        self.templates = templates
        self.from = from
        self.consoleURL = consoleURL
        self.maxAttempts = maxAttempts
    }

    /// One pass over due notifications.
    public func deliverDue(limit: Int = 100) async throws -> Summary {
        var summary = Summary()
        let due = try await maintenance.pool.query(
            "select tenant_id, id from enclave_private.due_notifications(now(), $1::int4)", [limit]
        ).map { (try $0.decode(UUID.self, "tenant_id"), try $0.decode(UUID.self, "id")) }
        for (practice, id) in due {
            let outcome = try await maintenance.withTenant(practice) { transaction in
                try await deliver(id, practice, transaction)
            }
            summary.notifications += 1
            switch outcome {
            case .sent(let count): summary.sent += count
            case .retrying: summary.retrying += 1
            case .failed: summary.failed += 1
            case .skipped: summary.notifications -= 1
            }
        }
        return summary
    }

    enum Outcome { case sent(Int), retrying, failed, skipped }

    private func deliver(_ id: UUID, _ practice: UUID, _ transaction: Transaction) async throws -> Outcome {
        guard
            let row = try await transaction.query(
                """
                select payload::text as payload, attempts from enclave.outbox
                where tenant_id = $1 and id = $2 and status = 'pending' for update skip locked
                """,
                [practice, id]
            ).first
        else { return .skipped }
        let payload =
            (try? JSONSerialization.jsonObject(with: Data(try row.decode(String.self, "payload").utf8)))
            as? [String: Any]
            ?? [:]
        let attempts = Int(try row.decode(Int32.self, "attempts")) + 1
        let event = payload["event"] as? String ?? ""
        guard
            let envelope = try await transaction.query(
                "select * from enclave_private.notification_envelope($1::text::jsonb)",
                [String(decoding: try JSONSerialization.data(withJSONObject: payload), as: UTF8.self)]
            ).first
        else { return .skipped }
        let recipients = try envelope.decode([String].self, "recipients")
        var values = [
            "practice_name": try envelope.decode(String.self, "practice_name"),
            "agency_name": try envelope.decode(String?.self, "agency_name") ?? "",
            "console_url": consoleURL,
            "lead_kind": (payload["kind"] as? String) == "form" ? "form submission" : "call",
        ]
        if let kind = try envelope.decode(String?.self, "alert_kind").flatMap(AccessAlert.Kind.init(rawValue:)) {
            values["alert_summary"] = kind.summary
        }
        guard let (subject, body) = templates.render(event, values) else {
            try await mark(
                transaction, practice, id, status: "failed", attempts: attempts, error: "no template for the event")
            return .failed
        }
        do {
            for recipient in recipients {
                try await transport.send(MailMessage(from: from, to: recipient, subject: subject, body: body))
            }
        } catch {
            let final = attempts >= maxAttempts
            try await mark(
                transaction, practice, id, status: final ? "failed" : "pending", attempts: attempts,
                error: String(logSafeDescription(of: error).prefix(200)))
            return final ? .failed : .retrying
        }
        try await mark(
            transaction, practice, id, status: "delivered", attempts: attempts,
            error: recipients.isEmpty ? "no recipients" : nil)
        return .sent(recipients.count)
    }

    private func mark(
        _ transaction: Transaction, _ practice: UUID, _ id: UUID, status: String, attempts: Int, error: String?
    ) async throws {
        let delay = min(3600.0, 30.0 * pow(2.0, Double(attempts - 1)))
        try await transaction.query(
            """
            update enclave.outbox set status = $3, attempts = $4::int4, last_error = $5,
                   delivered_at = case when $3 = 'delivered' then now() end,
                   next_attempt_at = now() + make_interval(secs => $6)
            where tenant_id = $1 and id = $2
            """,
            [practice, id, status, attempts, error, delay])
    }
}
