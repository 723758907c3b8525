import Enclave
import Foundation
import HTTPTypes
import Hummingbird

/// An RFC 9457 problem: a stable type, a title safe to show, the status.
struct Problem: Error, Sendable {
    let status: HTTPResponse.Status
    let type: String
    let title: String
    /// Which part of the request is wrong (a field's path, never its value).
    var detail: String?

    init(_ status: HTTPResponse.Status, _ title: String, type: String? = nil, detail: String? = nil) {
        self.status = status
        self.title = title
        self.type = "https://enclave.dev/problems/" + (type ?? Self.slug(status))
        self.detail = detail
    }

    static func slug(_ status: HTTPResponse.Status) -> String {
        status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "-")
    }

    /// The problem for an error from the service layer, as the error describes itself
    /// (`DescribedError`); anything else becomes a bare 500 with no detail (the detail never
    /// leaves the process).
    init(_ error: any Error) {
        if let problem = error as? Problem {
            self = problem
        } else if let described = (error as? any DescribedError)?.problem {
            self.init(
                HTTPResponse.Status(code: described.status), described.title, type: described.type,
                detail: described.detail)
        } else {
            self.init(.internalServerError, "the request could not be completed", type: "internal")
        }
    }

    /// A complete problem+json response, for errors raised outside the generated handlers.
    func response(requestID: String?) -> Response {
        var object: [String: Any] = ["type": type, "title": title, "status": Int(status.code)]
        if let detail { object["detail"] = detail }
        let data =
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data()
        var headers = HTTPFields()
        headers[.contentType] = "application/problem+json"
        if let requestID { headers[.requestID] = requestID }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: Array(data))))
    }
}

extension Problem {
    /// Where a JSON body departs from the schema: the field's path (keys and indexes only,
    /// each cut to 64 characters), never a value.
    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context, adding key: (any CodingKey)? = nil) -> String {
            let keys = (context.codingPath + (key.map { [$0] } ?? [])).map { key in
                key.intValue.map { "[\($0)]" } ?? String(key.stringValue.prefix(64))
            }
            return keys.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "missing field '\(path(context, adding: key))'"
        case .typeMismatch(_, let context):
            return context.codingPath.isEmpty ? "the body has the wrong type" : "'\(path(context))' has the wrong type"
        case .valueNotFound(_, let context):
            return "'\(path(context))' must not be null"
        case .dataCorrupted(let context):
            if context.debugDescription.hasPrefix("Additional properties") { return "unknown field '\(path(context))'" }
            return context.codingPath.isEmpty ? "the body is not valid JSON" : "'\(path(context))' has an invalid value"
        @unknown default:
            return "the body does not match the schema"
        }
    }
}
