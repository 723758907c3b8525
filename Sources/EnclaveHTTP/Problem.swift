import Enclave
import Foundation
import HTTPTypes
import Hummingbird

/// An RFC 9457 problem: a stable type, a title safe to show, the status.
struct Problem: Error, Sendable {
    let status: HTTPResponse.Status
    let type: String
    let title: String

    init(_ status: HTTPResponse.Status, _ title: String, type: String? = nil) {
        self.status = status
        self.title = title
        self.type = "https://enclave.dev/problems/" + (type ?? Self.slug(status))
    }

    static func slug(_ status: HTTPResponse.Status) -> String {
        status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "-")
    }

    /// The problem for an error from the service layer; anything unexpected becomes a bare 500
    /// with no detail (the detail never leaves the process).
    init(_ error: any Error) {
        switch error {
        case let problem as Problem:
            self = problem
        case let access as AccessError:
            switch access.code {
            case .unauthenticated: self.init(.unauthorized, access.message, type: "unauthenticated")
            case .invalidCredentials: self.init(.unauthorized, access.message, type: "invalid-credentials")
            case .throttled: self.init(.tooManyRequests, access.message, type: "throttled")
            case .mfaRequired: self.init(.forbidden, access.message, type: "mfa-required")
            case .reauthenticationRequired: self.init(.forbidden, access.message, type: "reauthentication-required")
            case .forbidden: self.init(.forbidden, access.message, type: "forbidden")
            case .invalidInput: self.init(.badRequest, access.message, type: "invalid-input")
            case .notFound: self.init(.notFound, access.message, type: "not-found")
            case .conflict: self.init(.conflict, access.message, type: "conflict")
            default: self.init(.internalServerError, "the request could not be completed", type: "internal")
            }
        default:
            self.init(.internalServerError, "the request could not be completed", type: "internal")
        }
    }

    var body: [String: any Sendable] { ["type": type, "title": title, "status": Int(status.code)] }

    /// A complete problem+json response, for errors raised outside the generated handlers.
    func response(requestID: String?) -> Response {
        let data =
            (try? JSONSerialization.data(
                withJSONObject: ["type": type, "title": title, "status": Int(status.code)], options: [.sortedKeys]))
            ?? Data()
        var headers = HTTPFields()
        headers[.contentType] = "application/problem+json"
        if let requestID { headers[.requestID] = requestID }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: Array(data))))
    }
}
