import Foundation
import Testing

@testable import ClusterAPI

private let nameRegexMessage =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
private let valueRegexMessage =
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"

@Suite("LabelSelector")
struct LabelSelectorTests {
    @Test(arguments: [
        ("", ""),
        ("x=a", "x=a"),
        ("x==a", "x==a"),
        ("x!=a", "x!=a"),
        ("x in (b,a)", "x in (a,b)"),
        ("x notin (a)", "x notin (a)"),
        ("x", "x"),
        ("!x", "!x"),
        ("b=1,a=2", "a=2,b=1"),
        ("  x =  a ,\ty in ( a , b ) \n", "x=a,y in (a,b)"),
        ("x>1", "x>1"),
        ("x<10", "x<10"),
        ("x=", "x="),
        ("x==", "x=="),
        ("x in ()", "x in ()"),
        ("x in (a,)", "x in (,a)"),
        ("x in (,a)", "x in (,a)"),
        ("x in (a,,b)", "x in (,a,b)"),
        ("x in (a,a)", "x in (a)"),
        ("x notin (a,b,a)", "x notin (a,b)"),
        ("x=in", "x=in"),
        ("x in (in,notin)", "x in (in,notin)"),
        ("in=a", "in=a"),
        ("x in(a)", "x in (a)"),
        ("x,y", "x,y"),
        ("y,!x,x=z", "!x,x=z,y"),
        ("example.com/app=web", "example.com/app=web"),
        ("app.kubernetes.io/name in (nginx, redis)", "app.kubernetes.io/name in (nginx,redis)"),
        ("a_b.c-d=E_f.G-9", "a_b.c-d=E_f.G-9"),
    ])
    func parsesAndPrintsCanonically(input: String, canonical: String) throws {
        let selector = try LabelSelector(parsing: input)
        #expect(selector.description == canonical)
        // The canonical text parses back to an equal selector.
        #expect(try LabelSelector(parsing: canonical) == selector)
    }

    // selector, labels, expected match
    @Test(arguments: [
        ("", [:], true),
        ("", ["a": "b"], true),
        ("x=a", ["x": "a"], true),
        ("x=a", ["x": "b"], false),
        ("x=a", [:], false),
        ("x==a", ["x": "a", "y": "z"], true),
        ("x!=a", [:], true),
        ("x!=a", ["x": "a"], false),
        ("x!=a", ["x": "b"], true),
        ("x in (a,b)", ["x": "b"], true),
        ("x in (a,b)", ["x": "c"], false),
        ("x in (a,b)", [:], false),
        ("x notin (a,b)", [:], true),
        ("x notin (a,b)", ["x": "a"], false),
        ("x notin (a,b)", ["x": "c"], true),
        ("x", ["x": ""], true),
        ("x", [:], false),
        ("!x", [:], true),
        ("!x", ["x": "a"], false),
        ("x>1", ["x": "2"], true),
        ("x>1", ["x": "1"], false),
        ("x>1", ["x": "a"], false),
        ("x>1", [:], false),
        ("x<1", ["x": "0"], true),
        ("x<1", ["x": "-5"], true),
        ("x<1", ["x": "1"], false),
        ("x=a,y=b", ["x": "a", "y": "b"], true),
        ("x=a,y=b", ["x": "a"], false),
        ("x=", ["x": ""], true),
        ("x=", [:], false),
        ("x in ()", ["x": ""], true),
        ("env in (prod,staging),!canary,tier", ["env": "prod", "tier": "web"], true),
        ("env in (prod,staging),!canary,tier", ["env": "prod", "tier": "web", "canary": "1"], false),
    ] as [(String, [String: String], Bool)])
    func matching(selector: String, labels: [String: String], expected: Bool) throws {
        #expect(try LabelSelector(parsing: selector).matches(labels) == expected)
    }

    // selector text, exact error message
    @Test(arguments: [
        ("x=a,", "found '', expected: identifier after ','"),
        ("x=a,,y", "found ',', expected: identifier after ','"),
        (",x", "found ',', expected: !, identifier, or 'end of string'"),
        ("=a", "found '=', expected: !, identifier, or 'end of string'"),
        ("x y", "unable to parse requirement: found 'y', expected: in, notin, =, ==, !=, gt, lt"),
        ("x in a", "unable to parse requirement: found 'a' expected: '('"),
        ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("x in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
        ("x in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
        ("x in (a,=)", "unable to parse requirement: found '=', expected: ',', or identifier"),
        ("x=(a)", "unable to parse requirement: found '(', expected: identifier"),
        ("x=a b", "found 'b', expected: ',' or 'end of string'"),
        ("!x=a", "found '=', expected: ',' or 'end of string'"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        ("!!x", "unable to parse requirement: found '!', expected: identifier"),
        ("x<-1", #"unable to parse requirement: values[0]: Invalid value: "-1": "# + valueRegexMessage),
        ("x>a", #"unable to parse requirement: values[0]: Invalid value: "a": for 'Gt', 'Lt' operators, the value must be an integer"#),
        ("-x=a", #"unable to parse requirement: key: Invalid value: "-x": name part "# + nameRegexMessage),
        ("x=-a", #"unable to parse requirement: values[0]: Invalid value: "-a": "# + valueRegexMessage),
        ("x in (ok,b@d)", #"unable to parse requirement: values[0]: Invalid value: "b@d": "# + valueRegexMessage),
        (String(repeating: "k", count: 64) + "=v",
         #"unable to parse requirement: key: Invalid value: ""# + String(repeating: "k", count: 64)
            + #"": name part must be no more than 63 characters"#),
        ("x=" + String(repeating: "v", count: 64),
         #"unable to parse requirement: values[0]: Invalid value: ""# + String(repeating: "v", count: 64)
            + #"": must be no more than 63 characters"#),
        ("/x=a", #"unable to parse requirement: key: Invalid value: "/x": prefix part must be non-empty"#),
        ("x/=a", #"unable to parse requirement: key: Invalid value: "x/": name part must be non-empty; name part "# + nameRegexMessage),
        ("Example.com/x=a",
         #"unable to parse requirement: key: Invalid value: "Example.com/x": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#),
        ("a/b/c=d",
         #"unable to parse requirement: key: Invalid value: "a/b/c": a qualified name "# + nameRegexMessage
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"),
    ])
    func rejectsBadSelectors(input: String, message: String) {
        #expect(throws: LabelSelectorError(message)) { try LabelSelector(parsing: input) }
    }

    @Test(arguments: [
        "x", "x.y", "x-y_z", "example.com/x", "a.b-c.d/E", "k8s.io/" + String(repeating: "n", count: 63),
        String(repeating: "a", count: 253) + "/n",
    ])
    func validKeys(key: String) {
        #expect(LabelValidation.qualifiedNameErrors(key).isEmpty, "\(key)")
    }

    @Test(arguments: [
        "", "-x", "x-", ".x", "x y", "x@", String(repeating: "n", count: 64), "/x", "x/", "a/b/c", "A.com/x",
        "-a.com/x", "a..b/x", String(repeating: "a", count: 254) + "/n", "é",
    ])
    func invalidKeys(key: String) {
        #expect(!LabelValidation.qualifiedNameErrors(key).isEmpty, "\(key)")
    }

    @Test(arguments: ["", "a", "A-b_c.9", String(repeating: "v", count: 63)])
    func validValues(value: String) {
        #expect(LabelValidation.labelValueErrors(value).isEmpty)
    }

    @Test(arguments: ["-a", "a-", "a b", "a/b", String(repeating: "v", count: 64), "_", "ü"])
    func invalidValues(value: String) {
        #expect(!LabelValidation.labelValueErrors(value).isEmpty)
    }

    @Test func requirementValidation() throws {
        #expect(throws: LabelSelectorError("values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty")) {
            try LabelSelector.Requirement(key: "x", operator: .in, values: [])
        }
        #expect(throws: LabelSelectorError(#"values: Invalid value: ["a", "b"]: exact-match compatibility requires one single value"#)) {
            try LabelSelector.Requirement(key: "x", operator: .equals, values: ["a", "b"])
        }
        #expect(throws: LabelSelectorError(#"values: Invalid value: ["a"]: values set must be empty for exists and does not exist"#)) {
            try LabelSelector.Requirement(key: "x", operator: .exists, values: ["a"])
        }
        #expect(throws: LabelSelectorError(#"values: Invalid value: []: for 'Gt', 'Lt' operators, exactly one value is required"#)) {
            try LabelSelector.Requirement(key: "x", operator: .lessThan, values: [])
        }
        // Several problems are reported together.
        #expect(throws: LabelSelectorError(#"[key: Invalid value: "-x": name part \#(nameRegexMessage), values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty]"#)) {
            try LabelSelector.Requirement(key: "-x", operator: .notIn, values: [])
        }
        let requirement = try LabelSelector.Requirement(key: "x", operator: .in, values: ["b", "a", "b"])
        #expect(requirement.values == ["a", "b"])
        #expect(requirement.description == "x in (a,b)")
    }

    @Test func everythingNothingAndConstruction() throws {
        #expect(LabelSelector.everything.matches([:]))
        #expect(LabelSelector.everything.matches(["a": "b"]))
        #expect(LabelSelector.everything.description == "")
        #expect(LabelSelector.everything.isEmpty)
        #expect(!LabelSelector.nothing.matches([:]))
        #expect(LabelSelector.nothing != LabelSelector.everything)
        #expect(try LabelSelector(parsing: "") == .everything)

        let fromSet = try LabelSelector(matchLabels: ["b": "2", "a": "1"])
        #expect(fromSet.description == "a=1,b=2")
        #expect(fromSet.matches(["a": "1", "b": "2", "c": "3"]))
        #expect(!fromSet.matches(["a": "1"]))
        #expect(try LabelSelector(matchLabels: [:]) == .everything)
        #expect(throws: LabelSelectorError.self) { try LabelSelector(matchLabels: ["bad key": "v"]) }

        let added = fromSet.adding(try LabelSelector.Requirement(key: "0", operator: .doesNotExist))
        #expect(added.description == "!0,a=1,b=2")
        #expect(added.requirements.map(\.key) == ["0", "a", "b"])
    }

    // MARK: API form

    @Test func specConversion() throws {
        #expect(try LabelSelector(nil as LabelSelectorSpec?) == .nothing)
        #expect(try LabelSelector(LabelSelectorSpec()) == .everything)
        #expect(try LabelSelector(LabelSelectorSpec(matchLabels: [:], matchExpressions: [])) == .everything)

        let spec = LabelSelectorSpec(
            matchLabels: ["app": "web"],
            matchExpressions: [
                LabelSelectorRequirement(key: "tier", operator: .in, values: ["front", "back"]),
                LabelSelectorRequirement(key: "canary", operator: .doesNotExist),
                LabelSelectorRequirement(key: "env", operator: .notIn, values: ["dev"]),
                LabelSelectorRequirement(key: "zone", operator: .exists, values: []),
            ])
        let selector = try spec.selector()
        #expect(selector.description == "app=web,!canary,env notin (dev),tier in (back,front),zone")
        #expect(selector.matches(["app": "web", "tier": "front", "zone": "a"]))
        #expect(!selector.matches(["app": "web", "tier": "front", "zone": "a", "env": "dev"]))
        #expect(!selector.matches(["app": "web", "tier": "front"]))
    }

    @Test(arguments: [
        (LabelSelectorRequirement(key: "x", operator: .in, values: []),
         "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"),
        (LabelSelectorRequirement(key: "x", operator: .notIn),
         "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"),
        (LabelSelectorRequirement(key: "x", operator: .exists, values: ["a"]),
         #"values: Invalid value: ["a"]: values set must be empty for exists and does not exist"#),
        (LabelSelectorRequirement(key: "x", operator: .doesNotExist, values: ["a"]),
         #"values: Invalid value: ["a"]: values set must be empty for exists and does not exist"#),
        (LabelSelectorRequirement(key: "x", operator: "Gt", values: ["1"]),
         #""Gt" is not a valid label selector operator"#),
        (LabelSelectorRequirement(key: "x", operator: "in", values: ["1"]),
         #""in" is not a valid label selector operator"#),
        (LabelSelectorRequirement(key: "x y", operator: .exists),
         #"key: Invalid value: "x y": name part "# + nameRegexMessage),
    ])
    func specValidation(requirement: LabelSelectorRequirement, message: String) {
        #expect(throws: LabelSelectorError(message)) {
            try LabelSelector(LabelSelectorSpec(matchExpressions: [requirement]))
        }
    }

    @Test func specMatchLabelValidation() {
        #expect(throws: LabelSelectorError(#"values[0]: Invalid value: "not ok": "# + valueRegexMessage)) {
            try LabelSelector(LabelSelectorSpec(matchLabels: ["app": "not ok"]))
        }
    }

    @Test func specJSONRoundTrip() throws {
        let json = #"""
            {"matchLabels":{"app":"web"},"matchExpressions":[{"key":"tier","operator":"NotIn","values":["db"],"x-extra":[1,2]},{"key":"gpu","operator":"Exists"}],"futureField":{"a":true}}
            """#
        let spec = try JSONDecoder().decode(LabelSelectorSpec.self, from: Data(json.utf8))
        #expect(spec.matchLabels == ["app": "web"])
        #expect(spec.matchExpressions?.first?.operator == .notIn)
        #expect(spec.matchExpressions?.first?.unknownFields == ["x-extra": [1, 2]])
        #expect(spec.unknownFields == ["futureField": ["a": true]])
        #expect(try spec.selector().description == "app=web,gpu,tier notin (db)")
        let encoded = try JSONEncoder().encode(spec)
        let original = try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8))
        #expect(try JSONDecoder().decode(JSONValue.self, from: encoded) == original)

        let unknownOperator = try JSONDecoder().decode(
            LabelSelectorSpec.self, from: Data(#"{"matchExpressions":[{"key":"a","operator":"Bogus"}]}"#.utf8))
        #expect(throws: LabelSelectorError(#""Bogus" is not a valid label selector operator"#)) {
            try unknownOperator.selector()
        }
    }
}
