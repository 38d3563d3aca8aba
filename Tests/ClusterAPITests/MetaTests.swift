import Foundation
import Testing

@testable import ClusterAPI

private func json(_ text: String) throws -> JSONValue {
    try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
}

/// Decodes `text` as `T`, re-encodes it and checks the JSON is unchanged (key order aside).
private func expectRoundTrip<T: Codable>(_ type: T.Type, _ text: String) throws -> T {
    let decoded = try JSONDecoder().decode(T.self, from: Data(text.utf8))
    let encoded = try JSONEncoder().encode(decoded)
    #expect(try JSONDecoder().decode(JSONValue.self, from: encoded) == json(text))
    return decoded
}

private func sortedJSON<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

@Suite("Time")
struct TimeTests {
    @Test(arguments: [
        ("2026-11-29T13:00:00Z", Int64(1_795_957_200)),
        ("2026-11-29T14:00:00+01:00", 1_795_957_200),
        ("2026-11-29T08:30:00-04:30", 1_795_957_200),
        ("2026-11-29T13:00:00.999999999Z", 1_795_957_200),
        ("2026-11-29T13:00:00.5+00:00", 1_795_957_200),
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59Z", -1),
        ("2000-02-29T00:00:00Z", 951_782_400),
        ("1900-03-01T12:34:56Z", -2_203_845_904),
        ("9999-12-31T23:59:59Z", 253_402_300_799),
        ("0001-01-01T00:00:00Z", -62_135_596_800),
    ])
    func parses(text: String, seconds: Int64) throws {
        #expect(try Time(rfc3339: text).secondsSinceEpoch == seconds)
    }

    @Test(arguments: [
        "", "garbage", "2026-11-29", "2026-11-29T13:00:00", "2026-11-29 13:00:00Z", "2026-11-29t13:00:00Z",
        "2026-11-29T13:00Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-11-31T00:00:00Z",
        "2001-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-11-29T24:00:00Z", "2026-11-29T13:60:00Z",
        "2026-11-29T13:00:60Z", "2026-11-29T13:00:00.Z", "2026-11-29T13:00:00+0100", "2026-11-29T13:00:00+24:00",
        "2026-11-29T13:00:00Zjunk", "26-11-29T13:00:00Z",
    ])
    func rejects(text: String) {
        #expect(throws: TimeParseError.self) { try Time(rfc3339: text) }
    }

    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00Z"),
        (-1, "1969-12-31T23:59:59Z"),
        (1_795_957_200, "2026-11-29T13:00:00Z"),
        (951_782_400, "2000-02-29T00:00:00Z"),
        (-2_203_845_904, "1900-03-01T12:34:56Z"),
        (253_402_300_799, "9999-12-31T23:59:59Z"),
        (-62_135_596_800, "0001-01-01T00:00:00Z"),
    ])
    func formats(seconds: Int64, text: String) {
        #expect(Time(secondsSinceEpoch: seconds).rfc3339 == text)
        #expect(Time(secondsSinceEpoch: seconds).description == text)
    }

    @Test func calendarAgreesWithFoundation() throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        // 1601 .. ~2700, every 3,697 seconds plus a day stride, checked against Foundation.
        var seconds: Int64 = -11_644_473_600
        while seconds < 23_000_000_000 {
            let time = Time(secondsSinceEpoch: seconds)
            let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: time.date)
            let expected = String(
                format: "%04ld-%02ld-%02ldT%02ld:%02ld:%02ldZ", parts.year!, parts.month!, parts.day!, parts.hour!,
                parts.minute!, parts.second!)
            #expect(time.rfc3339 == expected)
            #expect(try Time(rfc3339: time.rfc3339) == time)
            seconds += 86_400 * 37 + 3_697
        }
    }

    @Test func dateConversionAndOrdering() throws {
        let date = Date(timeIntervalSince1970: 1_795_957_200.75)
        #expect(Time(date).secondsSinceEpoch == 1_795_957_200)
        #expect(Time(Date(timeIntervalSince1970: -0.5)).secondsSinceEpoch == -1)
        #expect(Time(secondsSinceEpoch: 5).date == Date(timeIntervalSince1970: 5))
        #expect(Time(secondsSinceEpoch: 1) < Time(secondsSinceEpoch: 2))
        let now = Time.now()
        #expect(abs(now.date.timeIntervalSinceNow) < 5)
    }

    @Test func codable() throws {
        let time = try JSONDecoder().decode(Time.self, from: Data(#""2026-11-29T14:00:00.123+01:00""#.utf8))
        #expect(try sortedJSON(time) == #""2026-11-29T13:00:00Z""#)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Time.self, from: Data(#""yesterday""#.utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Time.self, from: Data("12".utf8)) }
    }
}

@Suite("Metadata")
struct MetaTests {
    static let fullObjectMeta = #"""
        {
          "name": "web-0",
          "generateName": "web-",
          "namespace": "default",
          "selfLink": "/api/v1/namespaces/default/pods/web-0",
          "uid": "6f1c7c2e-1b7f-4c55-9a8e-0f4b2a1d9e3c",
          "resourceVersion": "12345",
          "generation": 7,
          "creationTimestamp": "2026-11-29T13:00:00Z",
          "deletionTimestamp": "2026-11-29T13:05:00Z",
          "deletionGracePeriodSeconds": 30,
          "labels": {"app": "web", "tier": "frontend"},
          "annotations": {"example.com/note": "hello, world", "empty": ""},
          "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "abc",
             "controller": true, "blockOwnerDeletion": true, "futureOwnerField": {"x": [1, 2]}}
          ],
          "finalizers": ["example.com/cleanup"],
          "managedFields": [
            {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": "2026-11-29T13:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}
          ],
          "futureField": {"nested": [1, 2.5, null, true, "x", {"deep": -3}]},
          "nullField": null
        }
        """#

    @Test func objectMetaRoundTripsVerbatim() throws {
        let meta = try expectRoundTrip(ObjectMeta.self, Self.fullObjectMeta)
        #expect(meta.name == "web-0")
        #expect(meta.generateName == "web-")
        #expect(meta.namespace == "default")
        #expect(meta.uid == "6f1c7c2e-1b7f-4c55-9a8e-0f4b2a1d9e3c")
        #expect(meta.resourceVersion == "12345")
        #expect(meta.generation == 7)
        #expect(meta.creationTimestamp == Time(secondsSinceEpoch: 1_795_957_200))
        #expect(meta.deletionTimestamp == Time(secondsSinceEpoch: 1_795_957_500))
        #expect(meta.deletionGracePeriodSeconds == 30)
        #expect(meta.labels == ["app": "web", "tier": "frontend"])
        #expect(meta.annotations?["example.com/note"] == "hello, world")
        #expect(meta.finalizers == ["example.com/cleanup"])
        #expect(meta.managedFields?.first?["manager"]?.stringValue == "kubectl")
        let owner = try #require(meta.ownerReferences?.first)
        #expect(owner.apiVersion == "apps/v1")
        #expect(owner.kind == "StatefulSet")
        #expect(owner.name == "web")
        #expect(owner.uid == "abc")
        #expect(owner.controller == true)
        #expect(owner.blockOwnerDeletion == true)
        #expect(owner.unknownFields == ["futureOwnerField": ["x": [1, 2]]])
        #expect(Set(meta.unknownFields.keys) == ["selfLink", "futureField", "nullField"])
        #expect(meta.unknownFields["nullField"] == .null)
        #expect(meta.unknownFields["futureField"]?["nested"]?[5]?["deep"] == .integer(-3))
    }

    @Test func objectMetaEncodesOnlyPresentFields() throws {
        #expect(try sortedJSON(ObjectMeta()) == "{}")
        #expect(try sortedJSON(ObjectMeta(name: "x")) == #"{"name":"x"}"#)
        let meta = ObjectMeta(
            name: "x", namespace: "ns", generation: 1, creationTimestamp: Time(secondsSinceEpoch: 1_795_957_200),
            labels: [:], ownerReferences: [OwnerReference(apiVersion: "v1", kind: "Node", name: "n", uid: "u")])
        #expect(
            try sortedJSON(meta)
                == #"{"creationTimestamp":"2026-11-29T13:00:00Z","generation":1,"labels":{},"name":"x","namespace":"ns","ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"n","uid":"u"}]}"#
        )
    }

    @Test func objectMetaNullKnownFieldsDecodeAsAbsent() throws {
        let meta = try JSONDecoder().decode(
            ObjectMeta.self, from: Data(#"{"name":"a","labels":null,"creationTimestamp":null}"#.utf8))
        #expect(meta.labels == nil)
        #expect(meta.creationTimestamp == nil)
        #expect(meta.unknownFields.isEmpty)
        #expect(try sortedJSON(meta) == #"{"name":"a"}"#)
    }

    @Test func objectMetaRejectsWrongTypes() {
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(ObjectMeta.self, from: Data(#"{"generation":"seven"}"#.utf8))
        }
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(ObjectMeta.self, from: Data(#"{"creationTimestamp":"soon"}"#.utf8))
        }
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(ObjectMeta.self, from: Data(#"{"labels":{"a":1}}"#.utf8))
        }
    }

    @Test func unknownFieldsCannotShadowKnownOnes() throws {
        var meta = ObjectMeta(name: "real")
        meta.unknownFields = ["name": "shadow", "extra": 1]
        #expect(try sortedJSON(meta) == #"{"extra":1,"name":"real"}"#)
    }

    @Test func ownerReferenceDefaults() throws {
        let owner = try JSONDecoder().decode(OwnerReference.self, from: Data(#"{"kind":"ReplicaSet"}"#.utf8))
        #expect(owner.kind == "ReplicaSet")
        #expect(owner.name == "")
        #expect(owner.controller == nil)
        #expect(try sortedJSON(owner) == #"{"apiVersion":"","kind":"ReplicaSet","name":"","uid":""}"#)
    }

    @Test func listMetaRoundTrip() throws {
        let meta = try expectRoundTrip(
            ListMeta.self, #"{"resourceVersion":"55","continue":"token==","remainingItemCount":3,"selfLink":"/x"}"#)
        #expect(meta.resourceVersion == "55")
        #expect(meta.continueToken == "token==")
        #expect(meta.remainingItemCount == 3)
        #expect(meta.unknownFields == ["selfLink": "/x"])
        #expect(try sortedJSON(ListMeta()) == "{}")
        #expect(try sortedJSON(ListMeta(continueToken: "c")) == #"{"continue":"c"}"#)
    }

    @Test func typeMetaKeepsTheRestOfTheObject() throws {
        let pod = #"""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"nginx"}]}}
            """#
        let typeMeta = try expectRoundTrip(TypeMeta.self, pod)
        #expect(typeMeta.apiVersion == "v1")
        #expect(typeMeta.kind == "Pod")
        #expect(typeMeta.unknownFields["spec"]?["containers"]?[0]?["image"]?.stringValue == "nginx")
        #expect(try sortedJSON(TypeMeta(apiVersion: "apps/v1", kind: "Deployment")) == #"{"apiVersion":"apps/v1","kind":"Deployment"}"#)
    }

    @Test func statusEncodesLikeKubernetes() throws {
        let status = Status.makeFailure(
            code: 404, reason: Status.Reason.notFound, message: #"pods "web-0" not found"#,
            details: StatusDetails(name: "web-0", kind: "pods"))
        #expect(
            try sortedJSON(status)
                == #"{"apiVersion":"v1","code":404,"details":{"kind":"pods","name":"web-0"},"kind":"Status","message":"pods \"web-0\" not found","metadata":{},"reason":"NotFound","status":"Failure"}"#
        )
        #expect(try sortedJSON(Status(status: Status.success)) == #"{"apiVersion":"v1","kind":"Status","metadata":{},"status":"Success"}"#)
    }

    @Test func statusRoundTripsVerbatim() throws {
        let text = #"""
            {
              "kind": "Status",
              "apiVersion": "v1",
              "metadata": {"resourceVersion": "9", "futureListField": 1},
              "status": "Failure",
              "message": "Pod \"x\" is invalid: spec.containers[0].image: Required value",
              "reason": "Invalid",
              "details": {
                "name": "x",
                "group": "",
                "kind": "Pod",
                "uid": "u-1",
                "causes": [
                  {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers[0].image",
                   "futureCauseField": [true]},
                  {"reason": "FieldValueInvalid"}
                ],
                "retryAfterSeconds": 5,
                "futureDetailsField": "d"
              },
              "code": 422,
              "futureStatusField": {"a": [null]}
            }
            """#
        let status = try expectRoundTrip(Status.self, text)
        #expect(status.kind == "Status")
        #expect(status.apiVersion == "v1")
        #expect(status.status == Status.failure)
        #expect(status.reason == Status.Reason.invalid)
        #expect(status.code == 422)
        #expect(status.metadata.resourceVersion == "9")
        #expect(status.metadata.unknownFields == ["futureListField": 1])
        #expect(status.details?.name == "x")
        #expect(status.details?.group == "")
        #expect(status.details?.kind == "Pod")
        #expect(status.details?.uid == "u-1")
        #expect(status.details?.retryAfterSeconds == 5)
        #expect(status.details?.causes?.count == 2)
        #expect(status.details?.causes?[0].field == "spec.containers[0].image")
        #expect(status.details?.causes?[0].unknownFields == ["futureCauseField": [true]])
        #expect(status.details?.causes?[1].message == nil)
        #expect(status.details?.unknownFields == ["futureDetailsField": "d"])
        #expect(status.unknownFields == ["futureStatusField": ["a": [nil]]])
    }

    @Test func statusWithoutMetadataDecodes() throws {
        let status = try JSONDecoder().decode(Status.self, from: Data(#"{"status":"Success","code":200}"#.utf8))
        #expect(status.kind == nil)
        #expect(status.metadata == ListMeta())
        #expect(try sortedJSON(status) == #"{"code":200,"metadata":{},"status":"Success"}"#)
    }

    @Test func unknownFieldProtocol() {
        func stamp<T: PreservesUnknownFields>(_ value: inout T) { value.unknownFields["stamped"] = true }
        var meta = ObjectMeta()
        stamp(&meta)
        #expect(meta.unknownFields["stamped"] == true)
        var status = Status()
        stamp(&status)
        #expect(status.unknownFields["stamped"] == true)
    }
}
