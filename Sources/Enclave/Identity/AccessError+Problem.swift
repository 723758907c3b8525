extension AccessError: DescribedError {
    public var problem: ProblemDescription? {
        let (status, type): (Int, String) =
            switch code {
            case .unauthenticated: (401, "unauthenticated")
            case .invalidCredentials: (401, "invalid-credentials")
            case .throttled: (429, "throttled")
            case .mfaRequired: (403, "mfa-required")
            case .reauthenticationRequired: (403, "reauthentication-required")
            case .forbidden: (403, "forbidden")
            case .invalidInput: (400, "invalid-input")
            case .notFound: (404, "not-found")
            case .conflict: (409, "conflict")
            default: (500, "internal")
            }
        return ProblemDescription(status: status, type: type, title: message)
    }

    public var logDescription: String { "access: \(code)" }
}
