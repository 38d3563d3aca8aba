import ClusterAPI
import Foundation
import Testing
@testable import APIServer

private func json(_ text: String) -> JSONValue {
    try! JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
}

@Suite struct PatchTests {
    @Test func mergePatchMergesObjectsRemovesNullsReplacesArrays() {
        let live = json(#"{"metadata":{"labels":{"a":"1","b":"2"}},"spec":{"list":[1,2,3],"x":1}}"#)
        let patch = json(#"{"metadata":{"labels":{"a":null,"c":"3"}},"spec":{"list":[9]}}"#)
        let result = JSONMergePatch.apply(patch, to: live)
        #expect(result == json(#"{"metadata":{"labels":{"b":"2","c":"3"}},"spec":{"list":[9],"x":1}}"#))
    }

    @Test func jsonPatchAppliesEveryOperation() throws {
        let live = json(#"{"spec":{"a":1,"list":["x","y"]},"metadata":{"name":"n"}}"#)
        let patch = json("""
            [{"op":"test","path":"/spec/a","value":1},
             {"op":"replace","path":"/spec/a","value":2},
             {"op":"add","path":"/spec/list/1","value":"inserted"},
             {"op":"add","path":"/spec/list/-","value":"last"},
             {"op":"remove","path":"/spec/list/0"},
             {"op":"copy","from":"/metadata/name","path":"/spec/copied"},
             {"op":"move","from":"/spec/copied","path":"/spec/moved"},
             {"op":"add","path":"/metadata/labels","value":{"a~b/c":"v"}}]
            """)
        let result = try JSONPatch.apply(patch, to: live)
        #expect(result == json(#"{"spec":{"a":2,"list":["inserted","y","last"],"moved":"n"},"metadata":{"name":"n","labels":{"a~b/c":"v"}}}"#))
    }

    @Test func jsonPatchFailsAsAWhole() {
        let live = json(#"{"spec":{"a":1}}"#)
        #expect(throws: JSONPatch.Failure.self) { try JSONPatch.apply(json(#"[{"op":"test","path":"/spec/a","value":2}]"#), to: live) }
        #expect(throws: JSONPatch.Failure.self) { try JSONPatch.apply(json(#"[{"op":"remove","path":"/spec/missing"}]"#), to: live) }
        #expect(throws: JSONPatch.Failure.self) { try JSONPatch.apply(json(#"{"op":"add"}"#), to: live) }
    }

    @Test func strategicMergeKeepsOtherContainersAndTheirMounts() throws {
        let live = json("""
            {"spec":{"containers":[
              {"name":"main","image":"nginx:1.26","volumeMounts":[{"name":"data","mountPath":"/data"}],
               "env":[{"name":"A","value":"1"}],"ports":[{"containerPort":80}]},
              {"name":"side","image":"busybox"}],
             "volumes":[{"name":"data","persistentVolumeClaim":{"claimName":"data"}}]}}
            """)
        let patch = json("""
            {"spec":{"$setElementOrder/containers":[{"name":"main"},{"name":"side"}],
             "containers":[{"name":"main","image":"nginx:1.27","env":[{"name":"B","value":"2"}],"ports":[{"containerPort":443}]}]}}
            """)
        let result = try StrategicMergePatch.apply(patch, to: live, kind: "Pod")
        let main = result["spec"]?["containers"]?[0]
        #expect(main?["image"] == "nginx:1.27")
        #expect(main?["volumeMounts"] == json(#"[{"name":"data","mountPath":"/data"}]"#))
        #expect(main?["env"] == json(#"[{"name":"A","value":"1"},{"name":"B","value":"2"}]"#))
        #expect(main?["ports"] == json(#"[{"containerPort":80},{"containerPort":443}]"#))
        #expect(result["spec"]?["containers"]?[1]?["name"] == "side")
        #expect(result["spec"]?["volumes"]?.arrayValue?.count == 1)
    }

    @Test func strategicMergeDirectives() throws {
        let live = json("""
            {"metadata":{"finalizers":["a","b"]},
             "spec":{"containers":[{"name":"x","image":"1"},{"name":"y","image":"2"}],"tolerations":[{"key":"k"}]},
             "status":{"conditions":[{"type":"Ready","status":"False"},{"type":"PodScheduled","status":"True"}]}}
            """)
        let patch = json("""
            {"metadata":{"finalizers":["c"],"$deleteFromPrimitiveList/finalizers":["a"]},
             "spec":{"containers":[{"name":"y","$patch":"delete"}],"tolerations":[{"key":"new"}]},
             "status":{"conditions":[{"type":"Ready","status":"True"}]}}
            """)
        let result = try StrategicMergePatch.apply(patch, to: live, kind: "Pod")
        #expect(result["metadata"]?["finalizers"] == json(#"["b","c"]"#))
        #expect(result["spec"]?["containers"] == json(#"[{"name":"x","image":"1"}]"#))
        #expect(result["spec"]?["tolerations"] == json(#"[{"key":"new"}]"#), "lists without a merge key are replaced")
        #expect(result["status"]?["conditions"] == json(#"[{"type":"Ready","status":"True"},{"type":"PodScheduled","status":"True"}]"#))
    }

    @Test func strategicMergeReplaceAndRetainKeys() throws {
        let live = json(#"{"spec":{"strategy":{"type":"A","rolling":{"x":1}},"selector":{"a":"1","b":"2"}}}"#)
        let patch = json(#"{"spec":{"strategy":{"$retainKeys":["type"],"type":"B"},"selector":{"$patch":"replace","c":"3"}}}"#)
        let result = try StrategicMergePatch.apply(patch, to: live, kind: "Service")
        #expect(result == json(#"{"spec":{"strategy":{"type":"B"},"selector":{"c":"3"}}}"#))
    }

    @Test func strategicMergeRejectsKeyedElementsWithoutTheKey() {
        let live = json(#"{"spec":{"containers":[{"name":"a"}]}}"#)
        #expect(throws: StrategicMergePatch.Failure.self) {
            try StrategicMergePatch.apply(json(#"{"spec":{"containers":[{"image":"x"}]}}"#), to: live, kind: "Pod")
        }
    }

    @Test(arguments: [
        ("Pod", ["spec", "containers"], StrategicMergePatch.ListStrategy.mergeByKey("name")),
        ("Pod", ["spec", "initContainers", "volumeMounts"], .mergeByKey("mountPath")),
        ("Pod", ["spec", "containers", "ports"], .mergeByKey("containerPort")),
        ("Pod", ["spec", "containers", "args"], .replace),
        ("Service", ["spec", "ports"], .mergeByKey("port")),
        ("Node", ["status", "addresses"], .mergeByKey("type")),
        ("PersistentVolumeClaim", ["spec", "accessModes"], .replace),
        ("CSINode", ["spec", "drivers"], .mergeByKey("name")),
        ("StorageClass", ["metadata", "finalizers"], .mergePrimitives),
    ])
    func mergeKeys(kind: String, path: [String], expected: StrategicMergePatch.ListStrategy) {
        #expect(StrategicMergePatch.listStrategy(kind: kind, path: path) == expected)
    }
}
