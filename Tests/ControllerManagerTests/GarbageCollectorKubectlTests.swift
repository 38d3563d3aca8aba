// The real kubectl's `delete --cascade=background|foreground|orphan` against the real
// `ballast apiserver` process, with `ballast controller-manager --controllers garbagecollector`
// (leader election on, as deployed) doing the collecting.
import Foundation
import Testing
import TestSupport

@Suite("Garbage collector with kubectl", .serialized, .timeLimit(.minutes(3)))
struct GarbageCollectorKubectlTests {
    /// A config map named `name` owned by the config map of uid `ownerUID`.
    private func dependent(_ name: String, owner: String, uid: String, finalizers: [String] = []) -> String {
        """
        {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"\(name)","namespace":"default",
         "finalizers":[\(finalizers.map { "\"\($0)\"" }.joined(separator: ","))],
         "ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"\(owner)","uid":"\(uid)","blockOwnerDeletion":true}]},
         "data":{"k":"v"}}
        """
    }

    @Test("kubectl delete --cascade=background, foreground and orphan")
    func cascades() async throws {
        let server = try await ServerProcess.start()
        defer { server.stop() }
        let manager = try TestProcess([ballastBinary(), "controller-manager", "--kubeconfig", server.kubeconfig,
                                       "--controllers", "garbagecollector", "--resync", "2s"],
                                      logPath: server.directory + "/controller-manager.log")
        defer { manager.kill() }
        func uid(_ name: String) async throws -> String {
            try await server.ok("get", "configmap", name, "-o", "jsonpath={.metadata.uid}")
        }
        for owner in ["bg", "fg", "orph"] {
            _ = try await server.ok("create", "configmap", owner, "--from-literal=k=v")
            let hold = owner == "fg" ? ["example.com/hold"] : []
            _ = try await server.ok("apply", "-f", "-", input: dependent("\(owner)-child", owner: owner, uid: try await uid(owner), finalizers: hold))
        }

        // Background: the owner at once, the dependent after it.
        _ = try await server.ok("delete", "configmap", "bg", "--cascade=background")
        let collected = try await server.kubectl(["wait", "--for=delete", "configmap/bg-child", "--timeout=60s"])
        #expect(collected.status == 0 || collected.stderr.contains("NotFound"), "\(collected.stderr)\n\(manager.log.suffix(3000))")

        // Foreground: kubectl waits while the owner waits for its dependent, held by a finalizer.
        let foreground = try server.background("delete", "configmap", "fg", "--cascade=foreground", "--timeout=90s")
        defer { foreground.stop() }
        let waiting = await waitUntil(timeout: .seconds(60), interval: .milliseconds(200)) {
            let owner = (try? await server.kubectl(["get", "configmap", "fg", "-o", "jsonpath={.metadata.finalizers}"]))?.stdout ?? ""
            let child = (try? await server.kubectl(["get", "configmap", "fg-child", "-o", "jsonpath={.metadata.deletionTimestamp}"]))?.stdout ?? ""
            return owner.contains("foregroundDeletion") && !child.isEmpty
        }
        #expect(waiting, "the owner should wait with foregroundDeletion while its dependent is being deleted\n\(manager.log.suffix(3000))")
        #expect(foreground.isRunning, "kubectl returned while the owner still waited: \(foreground.output)")
        _ = try await server.ok("patch", "configmap", "fg-child", "--type=merge", "-p", #"{"metadata":{"finalizers":null}}"#)
        let finished = await foreground.finish(timeout: 60)
        #expect(finished.status == 0, "\(finished.output)")
        #expect(finished.output.contains("deleted"), "\(finished.output)")
        #expect(try await server.kubectl(["get", "configmap", "fg"]).stderr.contains("NotFound"))

        // Orphan: the owner goes, the dependent stays without its reference.
        _ = try await server.ok("delete", "configmap", "orph", "--cascade=orphan")
        #expect(try await server.kubectl(["get", "configmap", "orph"]).stderr.contains("NotFound"))
        let references = try await server.ok("get", "configmap", "orph-child", "-o", "jsonpath={.metadata.ownerReferences}")
        #expect(references.isEmpty || references == "[]", "\(references)")
        try await Task.sleep(for: .seconds(2))
        #expect(try await server.kubectl(["get", "configmap", "orph-child"]).status == 0, "an orphan must never be collected")
        #expect(manager.isRunning, "\(manager.log)")
    }
}
