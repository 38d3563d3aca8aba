// ConfigMaps and Secrets, which configMap and secret volumes read: stringData folded into
// base64 data, key and base64 validation, immutability, and Kubernetes' node authorization (a
// node reads only what the pods bound to it refer to).
import ClusterAPI
import Foundation
import Testing
@testable import APIServer

@Suite struct ConfigMapSecretTests {
    @Test func secretsFoldStringDataAndAreValidated() async throws {
        try await withFixture { f in
            let created = await f.request(.POST, "/api/v1/namespaces/default/secrets",
                                          body: #"{"metadata":{"name":"creds"},"data":{"user":"YWRtaW4="},"stringData":{"password":"s3cret"}}"#)
            #expect(created.code == 201, "\(created.body)")
            #expect(created.body["data"]?["password"]?.stringValue == Data("s3cret".utf8).base64EncodedString())
            #expect(created.body["data"]?["user"]?.stringValue == "YWRtaW4=")
            #expect(created.body["stringData"] == nil)
            #expect(created.body["type"] == "Opaque")
            let badKey = await f.request(.POST, "/api/v1/namespaces/default/secrets", body: #"{"metadata":{"name":"bad"},"data":{"a/b":"eA=="}}"#)
            #expect(badKey.code == 422)
            #expect(badKey.body["message"]?.stringValue?.contains("a valid config key must consist of alphanumeric characters") == true)
            let badBase64 = await f.request(.POST, "/api/v1/namespaces/default/secrets", body: #"{"metadata":{"name":"bad"},"data":{"k":"not base64!"}}"#)
            #expect(badBase64.code == 422)
            #expect(badBase64.body["message"]?.stringValue?.contains("illegal base64 data") == true)
            #expect(badBase64.body["message"]?.stringValue?.contains("not base64") == false, "secret values are never echoed")
        }
    }

    @Test func immutableConfigMapsKeepTheirData() async throws {
        try await withFixture { f in
            let created = await f.request(.POST, "/api/v1/namespaces/default/configmaps",
                                          body: #"{"metadata":{"name":"settings"},"data":{"mode":"fast"},"immutable":true}"#)
            #expect(created.code == 201, "\(created.body)")
            let changed = await f.request(.PATCH, "/api/v1/namespaces/default/configmaps/settings", body: #"{"data":{"mode":"slow"}}"#,
                                          contentType: "application/merge-patch+json")
            #expect(changed.code == 422)
            #expect(changed.body["message"]?.stringValue?.contains("field is immutable when `immutable` is set") == true)
            let labelled = await f.request(.PATCH, "/api/v1/namespaces/default/configmaps/settings", body: #"{"metadata":{"labels":{"a":"b"}}}"#,
                                           contentType: "application/merge-patch+json")
            #expect(labelled.code == 200)
        }
    }

    @Test func aNodeReadsOnlyWhatItsPodsReferTo() async throws {
        try await withFixture { f in
            for body in [#"{"metadata":{"name":"mine"},"stringData":{"k":"v"}}"#, #"{"metadata":{"name":"env"},"stringData":{"k":"v"}}"#,
                         #"{"metadata":{"name":"theirs"},"stringData":{"k":"v"}}"#] {
                #expect(await f.request(.POST, "/api/v1/namespaces/default/secrets", body: body).code == 201)
            }
            #expect(await f.request(.POST, "/api/v1/namespaces/default/configmaps", body: #"{"metadata":{"name":"cfg"},"data":{"k":"v"}}"#).code == 201)
            let pod = #"""
                {"metadata":{"name":"p"},"spec":{"nodeName":"node-a","containers":[{"name":"c","image":"busybox",
                 "env":[{"name":"E","valueFrom":{"secretKeyRef":{"name":"env","key":"k"}}}]}],
                 "volumes":[{"name":"s","secret":{"secretName":"mine"}},{"name":"c","configMap":{"name":"cfg"}}]}}
                """#
            #expect(await f.request(.POST, "/api/v1/namespaces/default/pods", body: pod).code == 201)
            let node = HandlerFixture.nodeToken
            #expect(await f.request(.GET, "/api/v1/namespaces/default/secrets/mine", token: node).code == 200)
            #expect(await f.request(.GET, "/api/v1/namespaces/default/secrets/env", token: node).code == 200)
            #expect(await f.request(.GET, "/api/v1/namespaces/default/configmaps/cfg", token: node).code == 200)
            let theirs = await f.request(.GET, "/api/v1/namespaces/default/secrets/theirs", token: node)
            #expect(theirs.code == 403)
            #expect(await f.request(.GET, "/api/v1/namespaces/default/secrets", token: node).code == 403, "no listing of secrets")
            #expect(await f.request(.DELETE, "/api/v1/namespaces/default/secrets/mine", token: node).code == 403)
        }
    }
}
