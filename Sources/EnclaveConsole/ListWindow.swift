import Foundation
import Hummingbird

/// One page of a long list on a console page (the practices on the home page, the agreements on
/// the agency overview): at most `size` rows whose names contain the `q` filter, the `page`-th
/// such run (1-based), and the values `window.mustache` renders around it. An agency with
/// thousands of practices gets a page of fixed size, not one row per practice.
struct ListWindow {
    static let size = 50

    /// The filter, trimmed, at most 100 characters; empty for none.
    let filter: String
    let page: Int

    init(_ request: Request) {
        let query = request.uri.queryParameters
        filter = String((query["q"].map(String.init) ?? "").trimmingCharacters(in: .whitespaces).prefix(100))
        page = query["page"].flatMap { Int(String($0)) }.map { max(1, min($0, 1_000_000)) } ?? 1
    }

    /// Where this page starts, for a query that pages in the database.
    var offset: Int { (page - 1) * Self.size }

    /// The rows of this page among `items` (already in display order), and the window's values.
    func apply<Item>(_ items: [Item], name: (Item) -> String, path: String) -> (rows: [Item], values: [String: Any]) {
        let matching = filter.isEmpty ? items : items.filter { name($0).localizedCaseInsensitiveContains(filter) }
        let current = min(page, Self.pages(matching.count))
        let start = (current - 1) * Self.size
        let rows = Array(matching[start..<min(start + Self.size, matching.count)])
        return (rows, values(page: current, shown: rows.count, matching: matching.count, all: items.count, path: path))
    }

    /// The last page that holds one of `matching` rows (1 when there are none).
    static func pages(_ matching: Int) -> Int { max(1, (matching + size - 1) / size) }

    /// The window's values for page `current` showing `shown` of `matching` rows (of `all`).
    func values(page current: Int, shown: Int, matching: Int, all: Int, path: String) -> [String: Any] {
        let start = (current - 1) * Self.size
        let pages = Self.pages(matching)
        func link(_ page: Int) -> String {
            var components = URLComponents()
            components.path = path
            components.queryItems =
                (filter.isEmpty ? [] : [URLQueryItem(name: "q", value: filter)])
                + [URLQueryItem(name: "page", value: String(page))]
            return components.string ?? path
        }
        var values: [String: Any] = [
            "path": path, "filter": filter, "total": matching, "all": all,
            "first": shown == 0 ? 0 : start + 1, "last": start + shown,
            "filtered": !filter.isEmpty, "long": all > Self.size || !filter.isEmpty,
        ]
        if current > 1 { values["previous"] = link(current - 1) }
        if current < pages { values["next"] = link(current + 1) }
        return values
    }
}
