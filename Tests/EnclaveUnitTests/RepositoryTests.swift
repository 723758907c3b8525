import Foundation
import Testing

@Suite("The repository's documents (no database)")
struct RepositoryTests {
    /// A path a document points at.
    struct Pointer: Equatable {
        let path: String
        /// Markdown links are relative to the document; backticked paths to the repository.
        let fromDocument: Bool
    }

    /// Paths a document points at: Markdown link targets, and backticked paths that start with a
    /// top-level folder (or leave the repository).
    static func pointers(in text: String) -> [Pointer] {
        var found: [Pointer] = []
        for match in text.matches(of: /\]\(([^)\s#]+)(#[^)]*)?\)/) where !match.1.contains("://") {
            found.append(Pointer(path: String(match.1), fromDocument: true))
        }
        let roots = /`((?:\.\.\/|\.\/)?(?:docs|sql|tenants|scripts|Sources|Tests|\.ci|\.\.)\/[A-Za-z0-9_.\/-]*)`/
        for match in text.matches(of: roots) { found.append(Pointer(path: String(match.1), fromDocument: false)) }
        return found
    }

    @Test("every path the README and docs/ point at exists in the repository, and none leaves it")
    func pointersResolve() throws {
        let documents = [
            "README.md", "SECURITY.md", "docs/architecture.md", "docs/threat-model.md", "docs/operations.md",
        ]
        var checked = 0
        for document in documents {
            let url = packageRoot.appendingPathComponent(document)
            let text = try String(contentsOf: url, encoding: .utf8)
            for pointer in Self.pointers(in: text) {
                let base = pointer.fromDocument ? url.deletingLastPathComponent() : packageRoot
                let resolved = base.appendingPathComponent(pointer.path).standardizedFileURL
                #expect(
                    resolved.path.hasPrefix(packageRoot.standardizedFileURL.path + "/"),
                    "\(document) points outside the repository: \(pointer.path)")
                // A placeholder such as `tenants/NNNN_description.sql` names a pattern, not a file.
                if pointer.path.contains("NNNN") { continue }
                #expect(
                    FileManager.default.fileExists(atPath: resolved.path),
                    "\(document) points at \(pointer.path), which does not exist")
                checked += 1
            }
        }
        #expect(checked >= 10)
    }

    @Test("the pointer reader finds links and paths, and would catch one outside the repository")
    func pointerReader() {
        let pointers = Self.pointers(in: "see [the design](../shared/DESIGN.md), `sql/functions/gate.sql` and `x`")
        #expect(pointers.map(\.path) == ["../shared/DESIGN.md", "sql/functions/gate.sql"])
        #expect(pointers.map(\.fromDocument) == [true, false])
    }
}
