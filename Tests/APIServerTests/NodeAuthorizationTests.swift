// Kubernetes' Node authorizer and NodeRestriction for volumes and pod status (issue 12): a
// kubelet reads the claims, volumes and attachments of the pods bound to it, by name, and
// nothing else of them; through pods/status it changes status, not the pod's owners or labels.
import ClusterAPI
import Foundation
import Testing
@testable import APIServer

@Suite struct NodeAuthorizationTests {
    func setUp(_ f: HandlerFixture) async {
        let objects: [(String, String)] = [
            ("/api/v1/namespaces/default/persistentvolumeclaims",
             #"{"metadata":{"name":"data"},"spec":{"volumeName":"pv-data","accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}"#),
            ("/api/v1/namespaces/default/persistentvolumeclaims",
             #"{"metadata":{"name":"other"},"spec":{"volumeName":"pv-other","accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}}"#),
            ("/api/v1/persistentvolumes",
             #"{"metadata":{"name":"pv-data"},"spec":{"capacity":{"storage":"1Gi"},"accessModes":["ReadWriteOnce"],"hostPath":{"path":"/tmp/a"},"claimRef":{"namespace":"default","name":"data"}}}"#),
            ("/api/v1/persistentvolumes",
             #"{"metadata":{"name":"pv-other"},"spec":{"capacity":{"storage":"1Gi"},"accessModes":["ReadWriteOnce"],"hostPath":{"path":"/tmp/b"},"claimRef":{"namespace":"default","name":"other"}}}"#),
            ("/api/v1/namespaces/default/pods",
             #"{"metadata":{"name":"web","labels":{"app":"web"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-1","uid":"u-1"}]},"spec":{"nodeName":"node-a","containers":[{"name":"a","image":"nginx"}],"volumes":[{"name":"d","persistentVolumeClaim":{"claimName":"data"}}]}}"#),
            ("/api/v1/namespaces/default/pods",
             #"{"metadata":{"name":"db"},"spec":{"nodeName":"node-b","containers":[{"name":"a","image":"nginx"}],"volumes":[{"name":"d","persistentVolumeClaim":{"claimName":"other"}}]}}"#),
            ("/apis/storage.k8s.io/v1/volumeattachments",
             #"{"metadata":{"name":"va-a"},"spec":{"attacher":"ballast.csi","nodeName":"node-a","source":{"persistentVolumeName":"pv-data"}}}"#),
            ("/apis/storage.k8s.io/v1/volumeattachments",
             #"{"metadata":{"name":"va-b"},"spec":{"attacher":"ballast.csi","nodeName":"node-b","source":{"persistentVolumeName":"pv-other"}}}"#),
        ]
        for (path, body) in objects {
            let created = await f.request(.POST, path, body: body)
            #expect(created.code == 201, "\(path): \(created.body)")
        }
    }

    @Test func aNodeReadsOnlyTheVolumesOfItsPods() async throws {
        try await withFixture { f in
            await setUp(f)
            let node = HandlerFixture.nodeToken
            #expect(await f.request(.GET, "/api/v1/namespaces/default/persistentvolumeclaims/data", token: node).code == 200)
            #expect(await f.request(.GET, "/api/v1/persistentvolumes/pv-data", token: node).code == 200)
            #expect(await f.request(.GET, "/apis/storage.k8s.io/v1/volumeattachments/va-a", token: node).code == 200)
            for path in ["/api/v1/namespaces/default/persistentvolumeclaims/other", "/api/v1/persistentvolumes/pv-other",
                         "/apis/storage.k8s.io/v1/volumeattachments/va-b", "/api/v1/persistentvolumes/missing"] {
                let denied = await f.request(.GET, path, token: node)
                #expect(denied.code == 403, "\(path)")
                #expect(denied.body["message"]?.stringValue?.hasSuffix("no relationship found between node 'node-a' and this object") == true,
                        "\(denied.body)")
            }
            // Every claim, volume and attachment of the cluster: not for a node.
            for path in ["/api/v1/persistentvolumeclaims", "/api/v1/persistentvolumes", "/apis/storage.k8s.io/v1/volumeattachments",
                         "/api/v1/persistentvolumes?watch=true", "/api/v1/namespaces/default/persistentvolumeclaims?watch=true"] {
                let denied = await f.request(.GET, path, token: node)
                #expect(denied.code == 403, "\(path)")
                #expect(denied.body["message"]?.stringValue?.hasSuffix("can only get individual resources of this type") == true)
            }
            // Once the pod moves away, so does the access.
            _ = await f.request(.DELETE, "/api/v1/namespaces/default/pods/web?gracePeriodSeconds=0")
            #expect(await f.request(.GET, "/api/v1/namespaces/default/persistentvolumeclaims/data", token: node).code == 403)
        }
    }

    @Test func podStatusWritesKeepOwnersAndNodesCannotRelabel() async throws {
        try await withFixture { f in
            await setUp(f)
            let node = HandlerFixture.nodeToken
            // Owner references through /status: kept as they were, for anyone (Kubernetes' pod status strategy).
            let owners = await f.request(.PATCH, "/api/v1/namespaces/default/pods/web/status",
                                         body: #"{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"node-a","uid":"evil"}]},"status":{"phase":"Running"}}"#,
                                         contentType: "application/merge-patch+json", token: node)
            #expect(owners.code == 200)
            #expect(owners.body["status"]?["phase"] == "Running")
            #expect(owners.body["metadata"]?["ownerReferences"]?[0]?["uid"] == "u-1")
            let relabel = await f.request(.PATCH, "/api/v1/namespaces/default/pods/web/status",
                                          body: #"{"metadata":{"labels":{"app":"stolen"}}}"#, contentType: "application/merge-patch+json", token: node)
            #expect(relabel.code == 403)
            #expect(relabel.body["message"]?.stringValue?.hasSuffix(#"node "node-a" cannot update labels through pod status"#) == true)
            // A node reports a claim's expansion, and only that.
            let capacity = await f.request(.PATCH, "/api/v1/namespaces/default/persistentvolumeclaims/data/status",
                                           body: #"{"status":{"capacity":{"storage":"2Gi"}}}"#, contentType: "application/merge-patch+json", token: node)
            #expect(capacity.code == 200, "\(capacity.body)")
            let claimLabels = await f.request(.PATCH, "/api/v1/namespaces/default/persistentvolumeclaims/data/status",
                                              body: #"{"metadata":{"labels":{"x":"y"}},"status":{"phase":"Lost"}}"#,
                                              contentType: "application/merge-patch+json", token: node)
            #expect(claimLabels.code == 403)
            #expect(claimLabels.body["message"]?.stringValue?.contains("is not allowed to update fields other than status.capacity and status.conditions") == true)
            #expect(await f.request(.PATCH, "/api/v1/namespaces/default/persistentvolumeclaims/other/status",
                                    body: #"{"status":{"capacity":{"storage":"2Gi"}}}"#, contentType: "application/merge-patch+json", token: node).code == 403)
        }
    }
}
