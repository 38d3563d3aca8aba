// The real processes — `ballast apiserver` and `ballast controller-manager --controllers
// job,ttl-after-finished` — driven with the real kubectl: apply, get jobs (STATUS and
// COMPLETIONS columns), wait --for=condition=complete, describe, wait --for=delete. No kubelet:
// the test writes the pods' status as one would.
import APIClient
import ClusterAPI
import Foundation
import Testing
import TestSupport

let jobProcessTestsCanRun = FileManager.default.fileExists(atPath: ballastBinary())

let jobManifest = """
apiVersion: batch/v1
kind: Job
metadata:
  name: hello
  namespace: default
spec:
  completions: 2
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: hello
        image: busybox
        command: ["sh", "-c", "echo hello"]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: bye
  namespace: default
spec:
  ttlSecondsAfterFinished: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: bye
        image: busybox
"""

@Suite("Job controller processes", .serialized, .enabled(if: jobProcessTestsCanRun, "needs the built ballast binary (swift build)"),
       .timeLimit(.minutes(3)))
struct JobProcessTests {
    @Test("kubectl apply → get jobs Running 0/2 → pods finish → wait --for=condition=complete → Complete 2/2; TTL 0 → wait --for=delete")
    func kubectlJobs() async throws {
        let server = try await ServerProcess.start()
        defer { server.stop() }
        let manager = try TestProcess([ballastBinary(), "controller-manager", "--kubeconfig", server.kubeconfig, "--controllers", "job,ttl-after-finished,garbagecollector",
                                       "--leader-elect=false", "--resync", "2s", "--log-level", "info"],
                                      logPath: server.directory + "/controller-manager.log")
        do {
            try await drive(server)
        } catch {
            _ = await manager.terminate(grace: .seconds(5))
            throw TestFailure("\(error)\ncontroller-manager log:\n\(manager.log.suffix(4000))")
        }
        _ = await manager.terminate(grace: .seconds(5))
        #expect(manager.log.contains("controllers starting"))
    }

    private func drive(_ server: ServerProcess) async throws {
        let client = try KubeClient(try Connection.kubeconfig(at: server.kubeconfig))
        let applied = try await server.kubectl(["apply", "-f", "-"], input: jobManifest)
        #expect(applied.status == 0, "\(applied.stderr)")
        #expect(applied.stdout.contains("job.batch/hello created"), "\(applied.stdout)")
        func pods(_ job: String) async throws -> [Pod] {
            try await client.list(Pod.self, namespace: "default", labelSelector: "batch.kubernetes.io/job-name=\(job)").items
        }
        let started = await waitUntil(timeout: .seconds(30)) {
            let hello = try? await pods("hello").count, bye = try? await pods("bye").count
            return hello == 2 && bye == 1
        }
        #expect(started, "the Jobs' pods were not created")
        guard started else { return }
        let running = await waitUntil(timeout: .seconds(15)) {
            let table = (try? await server.kubectl(["get", "jobs", "hello"]))?.stdout ?? ""
            return Self.row(table, "hello") == ["hello", "Running", "0/2"]
        }
        let table = try await server.kubectl(["get", "jobs"]).stdout
        #expect(running, "kubectl get jobs:\n\(table)")
        #expect(table.hasPrefix("NAME") && table.contains("STATUS") && table.contains("COMPLETIONS") && table.contains("DURATION"), "\(table)")

        for pod in try await pods("hello") + pods("bye") { try await Self.succeed(pod, client) }
        let waited = try await server.kubectl(["wait", "--for=condition=complete", "job/hello", "--timeout=60s"])
        #expect(waited.status == 0 && waited.stdout.contains("job.batch/hello condition met"), "\(waited.stderr)\(waited.stdout)")
        let done = try await server.kubectl(["get", "jobs", "hello"]).stdout
        #expect(Self.row(done, "hello") == ["hello", "Complete", "2/2"], "\(done)")
        let described = try await server.kubectl(["describe", "job", "hello"]).stdout
        #expect(described.contains("0 Active (0 Ready) / 2 Succeeded / 0 Failed") || described.contains("2 Succeeded"), "\(described)")
        for reason in ["SuccessfulCreate", "Completed"] { #expect(described.contains(reason), "describe lacks \(reason):\n\(described)") }

        let gone = try await server.kubectl(["wait", "--for=delete", "job/bye", "--timeout=60s"])
        #expect(gone.status == 0 || gone.stderr.contains("NotFound"), "\(gone.stderr)")
        #expect(try await server.kubectl(["get", "job", "bye"]).status != 0)
    }

    /// The first three cells of `name`'s row.
    static func row(_ table: String, _ name: String) -> [String] {
        guard let line = table.split(separator: "\n").first(where: { $0.hasPrefix(name + " ") }) else { return [] }
        return Array(line.split(separator: " ", omittingEmptySubsequences: true).prefix(3).map(String.init))
    }

    /// The status a kubelet writes when the container exited 0.
    static func succeed(_ pod: Pod, _ client: KubeClient) async throws {
        for attempt in 1... {
            var current = try await client.get(Pod.self, name: pod.metadata.name ?? "", namespace: "default")
            let now = Time.now().rfc3339
            current.status.phase = "Succeeded"
            current.status.containerStatuses = [["name": .string(current.spec.containers[0].name), "ready": false, "restartCount": 0,
                                                 "image": .string(current.spec.containers[0].image ?? ""),
                                                 "state": ["terminated": ["exitCode": 0, "reason": "Completed", "startedAt": .string(now),
                                                                          "finishedAt": .string(now)]]]]
            do {
                _ = try await client.updateStatus(current)
                return
            } catch let error as APIError where error.isConflict && attempt < 20 {
                continue
            }
        }
    }
}
