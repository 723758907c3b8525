import Enclave
import Testing

@Suite("Splitting migration files into statements (no database)")
struct SQLScriptTests {
    @Test("semicolons inside quotes, identifiers, comments, dollar quotes and parentheses do not split")
    func quoting() {
        let script = SQLScript(
            """
            -- leading comment; with a semicolon
            create table "odd;name" (note text default 'a;b''c');
            /* block; /* nested; */ still comment */ insert into t values (E'x\\';y');
            create function f() returns int language plpgsql as $body$
            begin
                return 1; -- inside the body
            end
            $body$;
            select $1, $$;$$, $tag$ $$ ; $tag$;
            create rule r as on insert to t do also (insert into u values (1); insert into u values (2));

            """
        )
        #expect(script.statements.map(\.line) == [2, 3, 4, 9, 10])
        #expect(script.statements[0].text == "create table \"odd;name\" (note text default 'a;b''c')")
        #expect(script.statements[1].text == "insert into t values (E'x\\';y')")
        #expect(script.statements[2].text.hasSuffix("$body$"))
        #expect(script.statements[3].text == "select $1, $$;$$, $tag$ $$ ; $tag$")
    }

    @Test("a server position maps to the file line")
    func positionToLine() throws {
        let script = SQLScript("\n\nselect 1\n  from nowhere;")
        let statement = try #require(script.statements.first)
        #expect(statement.line == 3)
        // "nowhere" starts at character 17 of "select 1\n  from nowhere".
        #expect(statement.line(atPosition: 17) == 4)
        #expect(statement.line(atPosition: 1) == 3)
    }

    @Test("empty statements and trailing comments are dropped; a last statement needs no semicolon")
    func empties() {
        let script = SQLScript(";;\n select 1 ;\n-- end\nselect 2")
        #expect(script.statements.map(\.text) == ["select 1", "select 2"])
    }

    @Test("unterminated quotes do not crash")
    func unterminated() {
        for source in ["select 'abc", "select $x$ abc", "/* abc", "select \"abc", "select E'\\"] {
            _ = SQLScript(source)
        }
    }
}
