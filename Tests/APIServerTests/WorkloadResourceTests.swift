import ClusterAPI
import Foundation
import Testing
import TestSupport
@testable import APIServer

/// apps/v1 and batch/v1 as the API server serves them: defaults, Kubernetes' validation
/// messages, the scale subresource, table columns and discovery.
@Suite struct WorkloadResourceTests {
    static let statefulSet = """
        {"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"db"},
         "spec":{"serviceName":"db","selector":{"matchLabels":{"app":"db"}},
          "template":{"metadata":{"labels":{"app":"db"}},"spec":{"containers":[{"name":"db","image":"busybox",
            "volumeMounts":[{"name":"data","mountPath":"/data"}]}]}},
          "volumeClaimTemplates":[{"metadata":{"name":"data"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}]}}
        """

    static func deployment(selector: String = "web", labels: String = "web", extra: String = "") -> String {
        """
        {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
         "spec":{"selector":{"matchLabels":{"app":"\(selector)"}}\(extra),
          "template":{"metadata":{"labels":{"app":"\(labels)"}},"spec":{"containers":[{"name":"web","image":"busybox"}]}}}}
        """
    }

    @Test func statefulSetDefaultsAndImmutableFields() async throws {
        try await withFixture { f in
            let created = await f.request(.POST, "/apis/apps/v1/namespaces/default/statefulsets", body: Self.statefulSet)
            #expect(created.code == 201, "\(created.body)")
            let spec = created.body["spec"]
            #expect(spec?["replicas"] == 1)
            #expect(spec?["podManagementPolicy"] == "OrderedReady")
            #expect(spec?["updateStrategy"] == ["type": "RollingUpdate", "rollingUpdate": ["partition": 0]])
            #expect(spec?["revisionHistoryLimit"] == 10)
            #expect(spec?["persistentVolumeClaimRetentionPolicy"] == ["whenDeleted": "Retain", "whenScaled": "Retain"])
            #expect(spec?["template"]?["spec"]?["restartPolicy"] == "Always")
            #expect(spec?["volumeClaimTemplates"]?[0]?["spec"]?["volumeMode"] == "Filesystem")
            #expect(created.body["status"]?["replicas"] == 0)

            let forbidden = await f.request(.PATCH, "/apis/apps/v1/namespaces/default/statefulsets/db",
                                            body: #"{"spec":{"serviceName":"other"}}"#, contentType: "application/merge-patch+json")
            #expect(forbidden.code == 422)
            #expect(forbidden.body["message"]?.stringValue?.contains("spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden") == true,
                    "\(forbidden.body)")
            let allowed = await f.request(.PATCH, "/apis/apps/v1/namespaces/default/statefulsets/db",
                                          body: #"{"spec":{"replicas":3,"template":{"metadata":{"annotations":{"v":"2"}}}}}"#,
                                          contentType: "application/strategic-merge-patch+json")
            #expect(allowed.code == 200)
            #expect(allowed.body["metadata"]?["generation"] == 2)
            #expect(allowed.body["spec"]?["template"]?["spec"]?["containers"]?[0]?["name"] == "db", "the containers list merged, not replaced")
        }
    }

    @Test func badWorkloadsAreRefusedWithKubernetesMessages() async throws {
        try await withFixture { f in
            let cases: [(String, String, String)] = [
                ("/apis/apps/v1/namespaces/default/deployments", Self.deployment(selector: "one", labels: "two"),
                 #"spec.template.metadata.labels: Invalid value: map[string]string{"app":"two"}: `selector` does not match template `labels`"#),
                ("/apis/apps/v1/namespaces/default/deployments",
                 Self.deployment(extra: #","strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":0,"maxUnavailable":0}}"#),
                 "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0\": may not be 0 when `maxSurge` is 0"),
                ("/apis/apps/v1/namespaces/default/deployments", Self.deployment(extra: #","replicas":-1"#),
                 "spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
                ("/apis/apps/v1/namespaces/default/deployments", Self.deployment(extra: #","strategy":{"type":"Sideways"}"#),
                 #"spec.strategy.type: Unsupported value: "Sideways": supported values: "Recreate", "RollingUpdate""#),
                ("/apis/batch/v1/namespaces/default/jobs",
                 #"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}"#,
                 #"spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never""#),
                ("/apis/apps/v1/namespaces/default/statefulsets",
                 Self.statefulSet.replacingOccurrences(of: #""serviceName":"db","#, with: #""serviceName":"db","podManagementPolicy":"Random","#),
                 "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'"),
                ("/apis/apps/v1/namespaces/default/statefulsets",
                 Self.statefulSet.replacingOccurrences(of: #""mountPath":"/data""#, with: #""mountPath":"/data"},{"name":"logs","mountPath":"/logs""#),
                 "spec.template.spec.containers[0].volumeMounts[1].name: Not found: \"logs\""),
            ]
            for (path, body, message) in cases {
                let response = await f.request(.POST, path, body: body)
                #expect(response.code == 422, "\(message): \(response.body)")
                #expect(response.body["message"]?.stringValue?.contains(message) == true, "expected \(message), got \(response.body["message"] ?? .null)")
            }
            let list = await f.request(.GET, "/apis/apps/v1/namespaces/default/deployments")
            #expect(list.body["items"]?.arrayValue?.isEmpty == true, "nothing refused was stored")
        }
    }

    @Test func jobSelectorIsGeneratedFromItsUID() async throws {
        try await withFixture { f in
            let created = await f.request(.POST, "/apis/batch/v1/namespaces/default/jobs", body: """
                {"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},
                 "spec":{"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"busybox"}]}}}}
                """)
            #expect(created.code == 201, "\(created.body)")
            let uid = try #require(created.body["metadata"]?["uid"]?.stringValue)
            #expect(created.body["spec"]?["selector"] == ["matchLabels": ["batch.kubernetes.io/controller-uid": .string(uid)]])
            let labels = created.body["spec"]?["template"]?["metadata"]?["labels"]
            #expect(labels?["batch.kubernetes.io/job-name"] == "j")
            #expect(labels?["controller-uid"] == .string(uid))
            #expect(created.body["spec"]?["completions"] == 1 && created.body["spec"]?["parallelism"] == 1)
            #expect(created.body["spec"]?["backoffLimit"] == 6)
            let immutable = await f.request(.PATCH, "/apis/batch/v1/namespaces/default/jobs/j",
                                            body: #"{"spec":{"template":{"metadata":{"annotations":{"a":"b"}}}}}"#,
                                            contentType: "application/merge-patch+json")
            #expect(immutable.code == 422)
            #expect(immutable.body["message"]?.stringValue?.contains("spec.template: Invalid value") == true)
            let manual = await f.request(.POST, "/apis/batch/v1/namespaces/default/jobs", body: """
                {"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"m"},
                 "spec":{"selector":{"matchLabels":{"x":"y"}},"template":{"metadata":{"labels":{"x":"y"}},
                   "spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"busybox"}]}}}}
                """)
            #expect(manual.code == 422)
            #expect(manual.body["message"]?.stringValue?.contains("`selector` not auto-generated") == true, "\(manual.body)")
        }
    }

    @Test func scaleSubresource() async throws {
        try await withFixture { f in
            _ = await f.request(.POST, "/apis/apps/v1/namespaces/default/deployments", body: Self.deployment())
            let scale = await f.request(.GET, "/apis/apps/v1/namespaces/default/deployments/web/scale")
            #expect(scale.code == 200)
            #expect(scale.body["kind"] == "Scale" && scale.body["apiVersion"] == "autoscaling/v1")
            #expect(scale.body["spec"]?["replicas"] == 1)
            #expect(scale.body["status"]?["selector"] == "app=web")
            // kubectl scale: a merge patch of the Scale.
            let patched = await f.request(.PATCH, "/apis/apps/v1/namespaces/default/deployments/web/scale",
                                          body: #"{"spec":{"replicas":4}}"#, contentType: "application/merge-patch+json")
            #expect(patched.code == 200, "\(patched.body)")
            #expect(patched.body["spec"]?["replicas"] == 4)
            let deployment = await f.request(.GET, "/apis/apps/v1/namespaces/default/deployments/web")
            #expect(deployment.body["spec"]?["replicas"] == 4)
            #expect(deployment.body["metadata"]?["generation"] == 2)
            let negative = await f.request(.PUT, "/apis/apps/v1/namespaces/default/deployments/web/scale",
                                           body: #"{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"web"},"spec":{"replicas":-2}}"#)
            #expect(negative.code == 422)
            #expect(negative.body["message"]?.stringValue?.contains("spec.replicas: Invalid value: -2: must be greater than or equal to 0") == true)
            let stale = await f.request(.PUT, "/apis/apps/v1/namespaces/default/deployments/web/scale",
                                        body: #"{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"web","resourceVersion":"1"},"spec":{"replicas":2}}"#)
            #expect(stale.code == 409, "a stale resourceVersion is a conflict")
            let missing = await f.request(.GET, "/apis/apps/v1/namespaces/default/deployments/nope/scale")
            #expect(missing.code == 404)
            let jobs = await f.request(.GET, "/apis/batch/v1/namespaces/default/jobs/x/scale")
            #expect(jobs.code == 404, "Jobs have no scale subresource")
        }
    }

    /// What `kubectl create deployment` sends (the fuzz corpus keeps one such body).
    @Test func protobufDeploymentBodies() throws {
        let seed = try Data(contentsOf: packageRoot.appendingPathComponent("Tests/Fuzz/Corpus/k8s-protobuf/seed-deployment"))
        let object = try ProtobufBody.decode(Array(seed))
        #expect(object["kind"] == "Deployment" && object["apiVersion"] == "apps/v1" && object["metadata"]?["name"] == "web")
        let spec = object["spec"]
        #expect(spec?["replicas"] == 2 && spec?["selector"]?["matchLabels"] == ["app": "web"])
        #expect(spec?["minReadySeconds"] == nil, "a zero non-pointer field is absent, as JSON omits it")
        let container = spec?["template"]?["spec"]?["containers"]?[0]
        #expect(container == ["name": "c", "image": "busybox", "command": ["sleep", "60"], "ports": [["containerPort": 8080]], "resources": [:]])
        #expect(spec?["template"]?["metadata"]?["labels"] == ["app": "web"])
        // A field the tables do not know is refused as unsupported, not dropped.
        var unknown = Array(seed)
        unknown += [0x12, 0x05, 0x12, 0x03, 0xF8, 0x06, 0x01]  // a later raw object: Deployment { 2: spec { 111: 1 } }
        do {
            _ = try ProtobufBody.decode(unknown)
            Issue.record("an unknown spec field was accepted")
        } catch {
            #expect(error.unsupported && error.message.contains("field 111 of spec"), "\(error.message)")
        }
    }

    @Test func tablesAndDiscovery() async throws {
        try await withFixture { f in
            _ = await f.request(.POST, "/apis/apps/v1/namespaces/default/deployments", body: Self.deployment())
            let table = await f.request(.GET, "/apis/apps/v1/namespaces/default/deployments",
                                        accept: "application/json;as=Table;v=v1;g=meta.k8s.io")
            let columns = table.body["columnDefinitions"]?.arrayValue?.compactMap { $0["name"]?.stringValue }
            #expect(columns == ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"])
            let cells = table.body["rows"]?[0]?["cells"]?.arrayValue
            #expect(cells?[1] == "0/1" && cells?[5] == "web" && cells?[6] == "busybox" && cells?[7] == "app=web")
            let apps = await f.request(.GET, "/apis/apps/v1")
            let names = apps.body["resources"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
            for name in ["statefulsets", "statefulsets/status", "statefulsets/scale", "deployments/scale", "replicasets/scale", "controllerrevisions"] {
                #expect(names.contains(name), "\(name) in discovery")
            }
            let scale = apps.body["resources"]?.arrayValue?.first { $0["name"] == "deployments/scale" }
            #expect(scale?["group"] == "autoscaling" && scale?["version"] == "v1" && scale?["kind"] == "Scale")
            let batch = await f.request(.GET, "/apis/batch/v1")
            #expect(batch.body["resources"]?[0]?["name"] == "jobs")
        }
    }
}
