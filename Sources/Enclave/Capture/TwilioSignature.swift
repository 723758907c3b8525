import Foundation
import Sealing

/// `X-Twilio-Signature`: base64 of HMAC-SHA1, keyed by the account's auth token, of the URL the
/// provider requested (scheme, host, port if it gave one, path and query) followed by each POST
/// parameter's name and value, sorted by name (values of a repeated name sorted too).
public enum TwilioSignature {
    /// The expected signature of a request to `url` with `form`.
    public static func expected(url: String, form: FormBody, authToken: String) throws -> String {
        let sorted = form.pairs.sorted { ($0.name, $0.value) < ($1.name, $1.value) }
        let message = sorted.reduce(url) { $0 + $1.name + $1.value }
        let mac = try Array(authToken.utf8).withUnsafeBytes {
            try HMAC.authenticationCode(.sha1, key: $0, message: Array(message.utf8))
        }
        return Data(mac).base64EncodedString()
    }

    /// Whether `header` is the signature of this request, compared in constant time.
    public static func matches(_ header: String, url: String, form: FormBody, authToken: String) throws -> Bool {
        let expected = try expected(url: url, form: form, authToken: authToken)
        guard let given = Data(base64Encoded: header), let wanted = Data(base64Encoded: expected) else { return false }
        return given.count == wanted.count && HMAC.constantTimeEqual(Array(given), Array(wanted))
    }
}
