import Foundation
import Testing

/// What the repository's documents and spec point at, checked against the tree (no database;
/// the spec's audit actions against the database are in EnclaveTests, `RepositorySpecTests`).
enum RepositoryCheck {
    /// A path a document points at.
    struct Pointer: Equatable {
        let path: String
        /// Markdown links are relative to the document; backticked paths to the repository.
        let fromDocument: Bool
    }

    /// A backticked path with one of these names a pattern (`sql/NNNN_description.sql`), not a file.
    static let placeholders = ["…", "*", "{", "<", "NNNN", "$"]

    /// The documents: README.md, CONTRIBUTING.md, SECURITY.md, BENCHMARKS.md and every page of docs/.
    static func documents(in root: URL) throws -> [String] {
        let pages = try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("docs").path)
        return ["README.md", "CONTRIBUTING.md", "SECURITY.md", "BENCHMARKS.md"]
            + pages.filter { $0.hasSuffix(".md") }.sorted().map { "docs/" + $0 }
    }

    /// Paths a document points at: Markdown link targets (not URLs, not anchors of the same page),
    /// and the first word of a backticked text when it starts with a top-level folder or leaves
    /// the repository (`scripts/demo stop` points at `scripts/demo`).
    static func pointers(in text: String) -> [Pointer] {
        var found: [Pointer] = []
        for match in text.matches(of: /\]\(([^)\s#]+)(#[^)]*)?\)/) where !match.1.contains(":") {
            found.append(Pointer(path: String(match.1), fromDocument: true))
        }
        let rooted = /^(?:\.\.\/|\.\/)?(?:docs|sql|tenants|scripts|Sources|Tests|\.ci|\.\.)\//
        for match in text.matches(of: /`([^`\n]+)`/) {
            guard let word = match.1.split(separator: " ").first, word.prefixMatch(of: rooted) != nil,
                !placeholders.contains(where: { word.contains($0) })
            else { continue }
            found.append(Pointer(path: String(word), fromDocument: false))
        }
        return found
    }

    /// The pointers of `text` (the document at `document`) that leave the repository or lead
    /// nowhere, each with why.
    static func problems(in text: String, document: String, root: URL) -> [String] {
        let base = root.appendingPathComponent(document).deletingLastPathComponent()
        return pointers(in: text).compactMap { pointer in
            let resolved = (pointer.fromDocument ? base : root).appendingPathComponent(pointer.path).standardizedFileURL
            if !resolved.path.hasPrefix(root.standardizedFileURL.path + "/") {
                return "\(document) points outside the repository: \(pointer.path)"
            }
            if !FileManager.default.fileExists(atPath: resolved.path) {
                return "\(document) points at \(pointer.path), which does not exist"
            }
            return nil
        }
    }

    /// Each operation and its tag, as the spec declares them.
    static func operationTags(_ spec: String) -> [(operation: String, tag: String)] {
        spec.matches(of: /operationId: (\w+)\n\s+tags: \[(\w+)\]/).map { (String($0.1), String($0.2)) }
    }
}

@Suite("The repository's documents and handlers (no database)")
struct RepositoryTests {
    @Test("every link and backticked path in the README, CONTRIBUTING.md and docs/ exists and stays inside")
    func pointersResolve() throws {
        var checked = 0
        for document in try RepositoryCheck.documents(in: packageRoot) {
            let text = try String(contentsOf: packageRoot.appendingPathComponent(document), encoding: .utf8)
            let problems = RepositoryCheck.problems(in: text, document: document, root: packageRoot)
            #expect(problems.isEmpty, "\(problems)")
            checked += RepositoryCheck.pointers(in: text).count
        }
        #expect(checked >= 50)
    }

    @Test("the checks catch a broken link, a missing path and a path outside the repository")
    func checksFail() {
        let text =
            "see [it](nowhere.md), [ok](cli.md#keys), `scripts/nowhere --fast`, `scripts/demo stop`, "
            + "`sql/NNNN_x.sql`, [out](../../etc/passwd) and `enclave migrate up`"
        #expect(
            RepositoryCheck.problems(in: text, document: "docs/page.md", root: packageRoot) == [
                "docs/page.md points at nowhere.md, which does not exist",
                "docs/page.md points outside the repository: ../../etc/passwd",
                "docs/page.md points at scripts/nowhere, which does not exist",
            ])
    }

    @Test("README.md stays short: at most 200 lines")
    func shortReadme() throws {
        let text = try String(contentsOf: packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        #expect(text.split(separator: "\n", omittingEmptySubsequences: false).count <= 201)
    }

    @Test("each operation of the spec is handled in the file of its tag (API/EnclaveAPI+Tag.swift)")
    func handlersByTag() throws {
        let spec = try String(
            contentsOf: packageRoot.appendingPathComponent("Sources/EnclaveHTTP/openapi.yaml"), encoding: .utf8)
        let operations = RepositoryCheck.operationTags(spec)
        #expect(operations.count == spec.matches(of: /operationId:/).count, "an operation without a tag")
        for (operation, tag) in operations {
            let file = packageRoot.appendingPathComponent("Sources/EnclaveHTTP/API/EnclaveAPI+\(tag).swift")
            let source = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
            #expect(source.contains("func \(operation)("), "\(operation) is not in EnclaveAPI+\(tag).swift")
        }
    }
}
