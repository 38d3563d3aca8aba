import ClusterAPI
import Foundation
import Testing
@testable import APIServer

private func json(_ text: String) -> JSONValue {
    try! JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
}

private let pods = ResourceRegistry.standard.lookup(group: "", version: "v1", resource: "pods")!
private let pvcs = ResourceRegistry.standard.lookup(group: "", version: "v1", resource: "persistentvolumeclaims")!
private let events = ResourceRegistry.standard.lookup(group: "", version: "v1", resource: "events")!

@Suite struct SelectionTests {
    let pod = json("""
        {"metadata":{"name":"web","namespace":"default","labels":{"app":"web","tier":"front"}},
         "spec":{"nodeName":"node-a"},"status":{"phase":"Running"}}
        """)

    @Test func labelSelectorsAreApplied() throws {
        #expect(try Selection(resource: pods, labelSelector: "app=web", fieldSelector: nil).matches(pod))
        #expect(try Selection(resource: pods, labelSelector: "app in (web,db),tier", fieldSelector: nil).matches(pod))
        #expect(try !Selection(resource: pods, labelSelector: "app!=web", fieldSelector: nil).matches(pod))
        #expect(try !Selection(resource: pods, labelSelector: "!tier", fieldSelector: nil).matches(pod))
    }

    @Test func fieldSelectorsAreApplied() throws {
        #expect(try Selection(resource: pods, labelSelector: nil, fieldSelector: "metadata.name=web").matches(pod))
        #expect(try !Selection(resource: pods, labelSelector: nil, fieldSelector: "metadata.name=other").matches(pod))
        #expect(try Selection(resource: pods, labelSelector: nil,
                              fieldSelector: "spec.nodeName=node-a,status.phase!=Succeeded,status.phase!=Failed").matches(pod))
        #expect(try !Selection(resource: pods, labelSelector: nil, fieldSelector: "metadata.namespace=kube-system").matches(pod))
        let event = json(#"{"metadata":{"name":"e"},"involvedObject":{"kind":"Pod","name":"web","uid":"u1"},"source":{"component":"kubelet"}}"#)
        #expect(try Selection(resource: events, labelSelector: nil,
                              fieldSelector: "involvedObject.kind=Pod,involvedObject.name=web,involvedObject.uid=u1,source=kubelet").matches(event))
    }

    @Test func unsupportedFieldsAndBadSelectorsAreRejected() {
        #expect { try Selection(resource: pvcs, labelSelector: nil, fieldSelector: "spec.nodeName=x") } throws: { error in
            (error as? APIError)?.message == "field label not supported: spec.nodeName" && (error as? APIError)?.code == .badRequest
        }
        #expect(throws: APIError.self) { try Selection(resource: pods, labelSelector: "a in (", fieldSelector: nil) }
    }
}

@Suite struct TableTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test(arguments: [(0, "0s"), (45, "45s"), (119, "119s"), (330, "5m30s"), (900, "15m"), (11100, "3h5m"),
                      (72000, "20h"), (273600, "3d4h"), (2_592_000, "30d"), (74_131_200, "2y128d")])
    func humanDurations(seconds: Int64, expected: String) {
        #expect(humanDuration(seconds: seconds) == expected)
    }

    @Test func podColumnsAndCells() {
        let columns = TablePrinter.columns(kind: "Pod")
        #expect(columns.filter { $0.priority == 0 }.map(\.name) == ["Name", "Ready", "Status", "Restarts", "Age"])
        #expect(columns.filter { $0.priority == 1 }.map(\.name) == ["IP", "Node", "Nominated Node", "Readiness Gates"])
        let pod = json("""
            {"metadata":{"name":"web","creationTimestamp":"2027-01-15T07:55:00Z"},
             "spec":{"containers":[{"name":"a"},{"name":"b"}],"nodeName":"n1"},
             "status":{"phase":"Running","podIP":"10.0.0.5","containerStatuses":[
               {"name":"a","ready":true,"restartCount":2,"state":{"running":{}}},
               {"name":"b","ready":false,"restartCount":1,"state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}}
            """)
        let cells = TablePrinter.cells(kind: "Pod", pod, now: now)
        #expect(cells == ["web", "1/2", "CrashLoopBackOff", "3", "5m", "10.0.0.5", "n1", "<none>", "<none>"])
        var deleting = pod
        deleting["metadata"]?["deletionTimestamp"] = "2027-01-15T08:00:00Z"
        #expect(TablePrinter.cells(kind: "Pod", deleting, now: now)[2] == "Terminating")
    }

    @Test func pvcPvAndStorageClassCells() {
        let pvc = json("""
            {"metadata":{"name":"data","creationTimestamp":"2027-01-15T07:59:00Z"},
             "spec":{"volumeName":"pv-1","storageClassName":"fast","volumeMode":"Filesystem"},
             "status":{"phase":"Bound","capacity":{"storage":"1Gi"},"accessModes":["ReadWriteOnce","ReadWriteOncePod"]}}
            """)
        #expect(TablePrinter.cells(kind: "PersistentVolumeClaim", pvc, now: now)
                == ["data", "Bound", "pv-1", "1Gi", "RWO,RWOP", "fast", "<unset>", "60s", "Filesystem"])
        let pv = json("""
            {"metadata":{"name":"pv-1","creationTimestamp":"2027-01-15T07:59:00Z"},
             "spec":{"capacity":{"storage":"1Gi"},"accessModes":["ReadWriteOnce"],"persistentVolumeReclaimPolicy":"Delete",
                     "claimRef":{"namespace":"default","name":"data"},"storageClassName":"fast"},
             "status":{"phase":"Bound"}}
            """)
        #expect(TablePrinter.cells(kind: "PersistentVolume", pv, now: now)
                == ["pv-1", "1Gi", "RWO", "Delete", "Bound", "default/data", "fast", "<unset>", "", "60s", "Filesystem"])
        let sc = json("""
            {"metadata":{"name":"fast","creationTimestamp":"2027-01-15T07:59:00Z",
                         "annotations":{"storageclass.kubernetes.io/is-default-class":"true"}},
             "provisioner":"csi.ballast.dev","volumeBindingMode":"WaitForFirstConsumer","allowVolumeExpansion":true}
            """)
        #expect(TablePrinter.cells(kind: "StorageClass", sc, now: now)
                == ["fast (default)", "csi.ballast.dev", "Delete", "WaitForFirstConsumer", "true", "60s"])
    }

    @Test func nodeAndEventCells() {
        let node = json("""
            {"metadata":{"name":"n1","creationTimestamp":"2027-01-15T07:00:00Z","labels":{"node-role.kubernetes.io/control-plane":""}},
             "spec":{"unschedulable":true},
             "status":{"conditions":[{"type":"Ready","status":"True"}],"nodeInfo":{"kubeletVersion":"v1.32.0"},
                       "addresses":[{"type":"InternalIP","address":"10.1.1.1"}]}}
            """)
        let cells = TablePrinter.cells(kind: "Node", node, now: now)
        #expect(Array(cells.prefix(6)) == ["n1", "Ready,SchedulingDisabled", "control-plane", "60m", "v1.32.0", "10.1.1.1"])
        let event = json("""
            {"metadata":{"name":"e1"},"type":"Normal","reason":"Provisioned","message":"done",
             "involvedObject":{"kind":"PersistentVolumeClaim","name":"data"},"count":3,
             "firstTimestamp":"2027-01-15T07:50:00Z","lastTimestamp":"2027-01-15T07:59:00Z","source":{"component":"provisioner"}}
            """)
        #expect(TablePrinter.cells(kind: "Event", event, now: now)
                == ["60s (x3 over 10m)", "Normal", "Provisioned", "persistentvolumeclaim/data", "", "provisioner", "done", "10m", "3", "e1"])
    }

    @Test func tableCarriesMetadataOrObject() {
        let pod = json(#"{"metadata":{"name":"web","namespace":"ns1","labels":{"a":"b"}},"spec":{"containers":[]}}"#)
        let table = TablePrinter.table(kind: "Pod", objects: [pod], listMeta: ["resourceVersion": "7"], include: .metadata, now: now)
        #expect(table["kind"] == "Table")
        #expect(table["rows"]?[0]?["object"]?["kind"] == "PartialObjectMetadata")
        #expect(table["rows"]?[0]?["object"]?["metadata"]?["namespace"] == "ns1")
        let full = TablePrinter.table(kind: "Pod", objects: [pod], listMeta: [:], include: .object, now: now)
        #expect(full["rows"]?[0]?["object"] == pod)
        #expect(TablePrinter.columns(kind: "Lease").map(\.name) == ["Name", "Holder", "Age"])
    }
}
