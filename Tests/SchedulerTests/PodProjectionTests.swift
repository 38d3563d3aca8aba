// The scheduler's pod projection (`Pod(schedulingView:)`) against the full decoding of the same
// JSON, as the API server stores and serves it: every field the scheduler reads is the same, so
// the filters, the cache and the queue see the same pod; a wrongly typed field is refused with
// its path; a bookmark's object is accepted.
import APIClient
import APIServerTesting
import ClusterAPI
import Foundation
@testable import Scheduler
import Testing

@Suite struct PodProjectionTests {
    /// A pod that sets every field the scheduler reads, and many it does not.
    static func fullPod() throws -> Pod {
        var pod = makePod("web-0", cpu: "250m", memory: "1Gi", claims: ["data-web-0"],
                          tolerations: [Toleration(key: "dedicated", operator: "Equal", value: "db", effect: "NoSchedule")],
                          nodeSelector: ["disk": "ssd"],
                          affinity: ["nodeAffinity": ["requiredDuringSchedulingIgnoredDuringExecution": ["nodeSelectorTerms": [
                              ["matchExpressions": [["key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-a"]]]],
                          ]]]],
                          hostPort: 8080, schedulerName: "default-scheduler")
        pod.metadata.labels = ["app": "web", "tier": "db"]
        pod.metadata.annotations = ["note": "not read by the scheduler"]
        var initContainer = Container(name: "init", image: "busybox")
        initContainer.resources = ResourceRequirements(limits: ["cpu": try Quantity("2")], requests: ["cpu": try Quantity("1"), "memory": try Quantity("64Mi")])
        initContainer.ports = [ContainerPort(hostPort: 9090, containerPort: 9090, protocol: "UDP", hostIP: "127.0.0.1")]
        pod.spec.initContainers = [initContainer]
        pod.spec.containers[0].command = ["sleep", "3600"]
        pod.spec.containers[0].env = [EnvVar(name: "MODE", value: "test")]
        pod.spec.overhead = ["cpu": try Quantity("10m")]
        pod.spec.priority = 1000
        pod.spec.volumes?.append(Volume(name: "scratch", ephemeral: ["volumeClaimTemplate": ["spec": ["accessModes": ["ReadWriteOnce"]]]]))
        pod.spec.volumes?.append(Volume(name: "cache", emptyDir: EmptyDirVolumeSource()))
        return pod
    }

    /// The pod as the server stores it (defaults applied), as raw JSON and fully decoded.
    static func served(_ pod: Pod) async throws -> (JSONValue, Pod) {
        let api = try await InProcessAPIServer.start()
        let client = api.client()
        let created = try await client.create(pod)
        let response = try await client.send(.GET, ResourcePath.object(Pod.self, name: created.metadata.name ?? "", namespace: "default"))
        await api.close()
        #expect(response.status.code == 200)
        let json = try JSONValue(parsing: response.body)
        return (json, try JSONValueDecoder().decode(Pod.self, from: json))
    }

    @Test func readsWhatTheSchedulerReads() async throws {
        let (json, full) = try await Self.served(try Self.fullPod())
        let projected = try Pod(schedulingView: json)

        #expect(projected.metadata.name == full.metadata.name)
        #expect(projected.metadata.namespace == full.metadata.namespace)
        #expect(projected.metadata.uid == full.metadata.uid && projected.metadata.uid != nil)
        #expect(projected.metadata.resourceVersion == full.metadata.resourceVersion)
        #expect(projected.metadata.labels == full.metadata.labels)
        #expect(projected.metadata.deletionTimestamp == full.metadata.deletionTimestamp)
        #expect(projected.metadata.annotations == nil, "not read: not kept")
        #expect(projected.spec.nodeName == full.spec.nodeName)
        #expect(projected.spec.schedulerName == full.spec.schedulerName)
        #expect(projected.spec.schedulingGates == full.spec.schedulingGates)
        #expect(projected.spec.priority == full.spec.priority)
        #expect(projected.spec.nodeSelector == full.spec.nodeSelector)
        #expect(projected.spec.affinity == full.spec.affinity)
        #expect(projected.spec.tolerations == full.spec.tolerations)
        #expect(projected.spec.overhead == full.spec.overhead)
        #expect(projected.spec.volumes?.map(\.name) == full.spec.volumes?.map(\.name))
        #expect(projected.spec.volumes?.map(\.persistentVolumeClaim) == full.spec.volumes?.map(\.persistentVolumeClaim))
        #expect(projected.spec.volumes?.map(\.ephemeral) == full.spec.volumes?.map(\.ephemeral))
        for (mine, theirs) in zip(projected.spec.containers + (projected.spec.initContainers ?? []),
                                  full.spec.containers + (full.spec.initContainers ?? [])) {
            #expect(mine.name == theirs.name)
            #expect(mine.resources?.requests == theirs.resources?.requests)
            #expect(mine.ports == theirs.ports)
            #expect(mine.command == nil && mine.resources?.limits == nil, "not read: not kept")
        }
        #expect(projected.spec.containers.count == full.spec.containers.count)
        #expect(projected.spec.initContainers?.count == full.spec.initContainers?.count)
        #expect(projected.status.phase == full.status.phase && projected.status.phase == "Pending")

        // What the cache and the filters compute from it is the same.
        let a = try PendingPod(projected), b = try PendingPod(full)
        #expect(a.info.requests == b.info.requests)
        #expect(a.info.requests.milliCPU == 1010, "max(init 1000m, 250m) + overhead 10m")
        #expect(a.info.nonZeroCPU == b.info.nonZeroCPU && a.info.nonZeroMemory == b.info.nonZeroMemory)
        #expect(a.info.hostPorts == b.info.hostPorts && a.info.hostPorts.count == 2)
        #expect(a.info.claims == b.info.claims && a.info.claims == ["data-web-0", "web-0-scratch"])
        #expect(a.info.ephemeralClaims == b.info.ephemeralClaims)
        #expect(a.tolerations == b.tolerations && a.nodeSelector == b.nodeSelector)
        #expect(a.required == b.required && a.required != nil)
        let cache = SchedulerCache(schedulerName: "default-scheduler")
        #expect(cache.isPending(projected) == cache.isPending(full) && cache.isPending(projected))
    }

    @Test func keepsConditionsOnlyWhileThePodWaits() async throws {
        var pod = makePod("waiting", cpu: "100m")
        pod.status.conditions = [PodCondition(type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/1 nodes are available")]
        var json = try JSONValue(encoding: pod)
        #expect(try Pod(schedulingView: json).status.conditions == pod.status.conditions)
        pod.spec.nodeName = "node-1"
        json = try JSONValue(encoding: pod)
        let bound = try Pod(schedulingView: json)
        #expect(bound.spec.nodeName == "node-1")
        #expect(bound.status.conditions == nil, "a placed pod's conditions are not read")
    }

    @Test func refusesAWronglyTypedFieldByItsPath() throws {
        var json = try JSONValue(encoding: makePod("bad", cpu: "100m"))
        guard case .object(var root) = json, case .object(var spec) = root["spec"]! else { Issue.record("not an object"); return }
        spec["nodeName"] = .integer(3)
        root["spec"] = .object(spec)
        json = .object(root)
        #expect(throws: ProjectionError.self) { try Pod(schedulingView: json) }
        do {
            _ = try Pod(schedulingView: json)
        } catch {
            #expect("\(error)" == "spec.nodeName: expected a string")
        }
        let badQuantity: JSONValue = ["metadata": ["name": "q"], "spec": ["containers": [["name": "app", "resources": ["requests": ["cpu": "lots"]]]]]]
        do {
            _ = try Pod(schedulingView: badQuantity)
            Issue.record("an unparseable quantity must be refused")
        } catch {
            #expect("\(error)".hasPrefix("spec.containers[0].resources.requests.cpu: "), "\(error)")
        }
    }

    @Test func acceptsABookmark() throws {
        let bookmark: JSONValue = ["kind": "Pod", "apiVersion": "v1", "metadata": ["resourceVersion": "42"]]
        let pod = try Pod(schedulingView: bookmark)
        #expect(pod.metadata.resourceVersion == "42")
        #expect(pod.spec.containers.isEmpty && pod.metadata.name == nil)
    }
}
