import HTTPTypes

extension HTTPField.Name {
    /// `X-Request-Id`: echoed, or generated, for every request; also recorded in audit events.
    static let requestID = constant("X-Request-Id")
    /// `X-Content-Type-Options`: always `nosniff`.
    static let contentTypeOptions = constant("X-Content-Type-Options")
    /// `X-Forwarded-For`: read only from a trusted proxy (`serve --trusted-proxy`).
    static let xForwardedFor = constant("X-Forwarded-For")

    /// A header name written in this file; the names above are valid, so this never fails.
    private static func constant(_ name: String) -> HTTPField.Name {
        guard let field = HTTPField.Name(name) else { preconditionFailure("invalid header name \(name)") }
        return field
    }
}
