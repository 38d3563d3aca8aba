import Testing

@testable import ClusterAPI

@Suite("FieldSelector")
struct FieldSelectorTests {
    @Test(arguments: [
        ("", ""),
        ("a=b", "a=b"),
        ("a==b", "a=b"),
        ("a!=b", "a!=b"),
        ("b=1,a=2", "a=2,b=1"),
        ("metadata.name=foo,status.phase!=Running", "metadata.name=foo,status.phase!=Running"),
        (#"a=b\,c"#, #"a=b\,c"#),
        (#"a=b\=c"#, #"a=b\=c"#),
        (#"a=b\\c"#, #"a=b\\c"#),
        ("a=b,,c=d", "a=b,c=d"),
        (",a=b,", "a=b"),
        ("a=", "a="),
        ("=b", "=b"),
        ("a!b=c", "a!b=c"),
        ("a=!b", "a=!b"),
        ("spec.nodeName=", "spec.nodeName="),
        (" a = b ", " a = b "),
    ])
    func parsesAndPrints(input: String, canonical: String) throws {
        let selector = try FieldSelector(parsing: input)
        #expect(selector.description == canonical)
        #expect(try FieldSelector(parsing: canonical) == selector)
    }

    @Test(arguments: [
        ("a=b", "a", FieldSelector.Operator.equals, "b"),
        ("a==b", "a", .equals, "b"),
        ("a!=b", "a", .notEquals, "b"),
        (#"a=b\,c"#, "a", .equals, "b,c"),
        (#"a=b\=c"#, "a", .equals, "b=c"),
        (#"a=b\\c"#, "a", .equals, #"b\c"#),
        ("a!b=c", "a!b", .equals, "c"),
        ("a=!b", "a", .equals, "!b"),
        ("a=", "a", .equals, ""),
        (" a = b ", " a ", .equals, " b "),
    ])
    func exposesRequirements(input: String, field: String, op: FieldSelector.Operator, value: String) throws {
        let selector = try FieldSelector(parsing: input)
        #expect(selector.requirements == [FieldSelector.Requirement(field: field, operator: op, value: value)])
    }

    @Test(arguments: [
        ("a", "invalid selector: 'a'; can't understand 'a'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        ("a=b,!c", "invalid selector: 'a=b,!c'; can't understand '!c'"),
        ("a===b", "invalid field selector: unescaped character in value: ="),
        ("a=b=c", "invalid field selector: unescaped character in value: ="),
        (#"a=b\x"#, #"invalid field selector: invalid escape sequence: \x"#),
        (#"a=b\"#, #"invalid field selector: invalid escape sequence: \"#),
    ])
    func rejectsBadSelectors(input: String, message: String) {
        #expect(throws: FieldSelectorError(message)) { try FieldSelector(parsing: input) }
    }

    // selector, fields, expected
    @Test(arguments: [
        ("", [:], true),
        ("metadata.name=foo", ["metadata.name": "foo"], true),
        ("metadata.name=foo", ["metadata.name": "bar"], false),
        ("metadata.name=foo", [:], false),
        ("metadata.name!=foo", ["metadata.name": "foo"], false),
        ("metadata.name!=foo", ["metadata.name": "bar"], true),
        ("metadata.name!=foo", [:], true),
        ("spec.nodeName=", [:], true),
        ("spec.nodeName=", ["spec.nodeName": "n1"], false),
        ("spec.nodeName!=", [:], false),
        ("spec.nodeName!=", ["spec.nodeName": "n1"], true),
        ("a=1,b=2", ["a": "1", "b": "2"], true),
        ("a=1,b=2", ["a": "1", "b": "3"], false),
        (#"a=x\,y"#, ["a": "x,y"], true),
    ] as [(String, [String: String], Bool)])
    func matching(selector: String, fields: [String: String], expected: Bool) throws {
        let parsed = try FieldSelector(parsing: selector)
        #expect(parsed.matches(fields) == expected)
        #expect(parsed.matches { fields[$0] } == expected)
    }

    @Test func escaping() throws {
        #expect(FieldSelector.escapeValue(#"a,b=c\d"#) == #"a\,b\=c\\d"#)
        #expect(try FieldSelector.unescapeValue(#"a\,b\=c\\d"#) == #"a,b=c\d"#)
        for value in ["", "plain", ",", "=", #"\"#, #"x\,=,\\"#] {
            #expect(try FieldSelector.unescapeValue(FieldSelector.escapeValue(value)) == value)
            let selector = FieldSelector(requirements: [.init(field: "f", operator: .equals, value: value)])
            #expect(try FieldSelector(parsing: selector.description) == selector)
        }
    }

    @Test func helpers() throws {
        let selector = try FieldSelector(parsing: "metadata.namespace=default,metadata.name!=x")
        #expect(selector.requiredValue(for: "metadata.namespace") == "default")
        #expect(selector.requiredValue(for: "metadata.name") == nil)
        #expect(selector.requiredValue(for: "spec.x") == nil)
        #expect(Set(selector.requirements.map(\.field)) == ["metadata.namespace", "metadata.name"])
        #expect(FieldSelector.everything.isEmpty)
        #expect(FieldSelector.everything.matches { _ in nil })
        #expect(try FieldSelector(parsing: "") == .everything)
        let fromFields = FieldSelector(matchingFields: ["b": "2", "a": "1"])
        #expect(fromFields.description == "a=1,b=2")
    }
}
