// The official Kubernetes Python client (PyPI `kubernetes`, in .venv from `make pydeps`)
// runs Tests/Interop/kube_client.py against `ballast apiserver` with the admin kubeconfig,
// on both backends; the script prints one JSON object per step.
import Foundation
import Testing
import TestSupport

extension ServerBackedSuites {
    @Suite struct PythonClientTests {
        @Test(arguments: Backend.allCases) func listCreateWatchPatchDelete(_ backend: Backend) async throws {
            try await withServer(on: backend) { server in
                let steps = try await runInteropScript("kube_client.py", [server.kubeconfig, "py-ns"], needs: "kubernetes",
                                                 env: ["HOME": server.directory])
                #expect(steps["version"]?["git_version"] as? String == "v1.32.0-ballast")
                #expect(steps["namespaces"]?["names"] as? [String] == ["default", "kube-node-lease", "kube-public", "kube-system"])
                #expect(steps["list-empty"]?["count"] as? Int == 0)
                let create = try #require(steps["create-pvc"])
                #expect(create["kind"] as? String == "PersistentVolumeClaim", "kind defaulted from the URL")
                #expect((create["uid"] as? String)?.count == 36)
                #expect(create["phase"] as? String == "Pending" && create["volume_mode"] as? String == "Filesystem")
                #expect(steps["create-pod"]?["phase"] as? String == "Pending" && steps["create-pod"]?["restart_policy"] as? String == "Always")
                #expect(steps["list-label"]?["names"] as? [String] == ["py-data"])
                #expect(steps["list-field"]?["names"] as? [String] == ["py-ns/py-pod"])
                #expect(steps["list-none"]?["count"] as? Int == 0)
                #expect(steps["patch-pvc"]?["labels"] as? [String: String] == ["app": "py", "tier": "gold"])
                #expect(steps["json-patch-pvc"]?["labels"] as? [String: String] == ["app": "py", "tier": "silver"])
                #expect(steps["patch-pod-status"]?["phase"] as? String == "Running")
                #expect(steps["patch-pod-status"]?["conditions"] as? [String: String] == ["Ready": "True"])
                #expect(steps["read-pod"]?["phase"] as? String == "Running" && steps["read-pod"]?["mount"] as? String == "/data")

                #expect(steps["error-exists"]?["status"] as? Int == 409 && steps["error-exists"]?["reason"] as? String == "AlreadyExists")
                #expect(steps["error-missing"]?["status"] as? Int == 404
                        && steps["error-missing"]?["message"] as? String == #"persistentvolumeclaims "nope" not found"#)
                #expect(steps["error-invalid"]?["status"] as? Int == 422)
                #expect(steps["error-invalid"]?["message"] as? String == #"PersistentVolumeClaim "py-bad" is invalid: spec.resources[storage]: Required value"#)
                #expect(steps["error-invalid"]?["causes"] as? [String] == ["spec.resources[storage]"])
                #expect(steps["error-conflict"]?["status"] as? Int == 409 && steps["error-conflict"]?["reason"] as? String == "Conflict")
                #expect(steps["delete-pod"]?["kind"] as? String == "Pod" && steps["delete-pvc"]?["kind"] as? String == "PersistentVolumeClaim")

                // The watches saw every change of their object, in order, with growing resourceVersions.
                let pvcEvents = try #require(steps["watch-pvc"]?["events"] as? [[String: Any]])
                #expect(pvcEvents.map { $0["type"] as? String ?? "" } == ["ADDED", "MODIFIED", "MODIFIED", "DELETED"], "\(pvcEvents)")
                #expect(pvcEvents.map { ($0["labels"] as? [String: String])?["tier"] ?? "" } == ["", "gold", "silver", "silver"])
                #expect(pvcEvents.first?["rv"] as? String == create["resource_version"] as? String)
                let rvs = pvcEvents.compactMap { ($0["rv"] as? String).flatMap { Int64($0) } }
                #expect(rvs.count == 4 && rvs == rvs.sorted() && Set(rvs).count == 4, "\(rvs)")
                let podEvents = try #require(steps["watch-pod"]?["events"] as? [[String: Any]])
                #expect(podEvents.map { "\($0["type"] as? String ?? "")/\($0["phase"] as? String ?? "")" }
                        == ["ADDED/Pending", "MODIFIED/Running", "DELETED/Running"], "\(podEvents)")
                #expect(steps["watch-pvc"]?["ended"] as? Bool == true && steps["watch-pod"]?["ended"] as? Bool == true)
                #expect(steps["list-after"]?["pvcs"] as? Int == 0 && steps["list-after"]?["pods"] as? Int == 0)

                // kubectl agrees about what the Python client left behind.
                #expect(try await server.ok("get", "ns", "py-ns", "-o", "jsonpath={.status.phase}") == "Active")
            }
        }
    }
}
