// `ballast status`: a cluster `ballast up` runs, at a glance — its components (the pid the
// supervisor recorded, still alive, or why not), nodes, volumes and attachments. Exit 0 when
// the cluster runs, every component is up and every node Ready; 1 otherwise. `-o json` prints the
// same as one JSON object, for scripts and CI.
import APIClient
import ArgumentParser
import ClusterAPI
import Foundation
import HostSystem

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "The cluster of a data dir: components, nodes, volumes, attachments; exit 1 unless everything is up and every node Ready."
    )

    @Option(help: "The cluster's data dir.")
    var dataDir: String = ".ballast"

    @Option(name: .shortAndLong, help: "Output format: text or json.")
    var output: String = "text"

    struct Report: Codable {
        struct Component: Codable {
            var name: String
            /// running, held (`ballast node stop`), or down.
            var state: String
            var pid: Int32?
            var log: String
        }
        struct NodeState: Codable {
            var name: String
            var ready: String
            var zone: String?
            var volumesInUse: Int
        }
        var running: Bool
        var supervisorPID: Int32?
        var dataDir: String
        var kubeconfig: String
        var apiServer: String
        var components: [Component]
        var nodes: [NodeState]
        var persistentVolumes: Int
        var volumeAttachments: Int
        var healthy: Bool
    }

    func validate() throws {
        guard ["text", "json"].contains(output) else { throw ValidationError("-o \(output): expected text or json") }
    }

    func run() async throws {
        let dataDir = self.dataDir.absolutePath
        guard let spec = try ClusterSpec.read(dataDir: dataDir) else {
            throw UpFailure("no cluster in \(dataDir) (no \(ClusterSpec.fileName)): start one with `ballast up`")
        }
        let report = try await Self.report(spec)
        if output == "json" {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            say(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report)
        }
        if !report.healthy { throw ExitCode(1) }
    }

    static func report(_ spec: ClusterSpec) async throws -> Report {
        var report = Report(running: false, supervisorPID: runningSupervisor(spec), dataDir: spec.dataDir, kubeconfig: spec.kubeconfig,
                            apiServer: "https://127.0.0.1:\(spec.apiPort)", components: [], nodes: [], persistentVolumes: 0,
                            volumeAttachments: 0, healthy: false)
        report.running = report.supervisorPID != nil
        guard report.running else { return report }
        for name in spec.components {
            let pidFile = Supervisor.pidPath(logsDirectory: spec.logsDirectory, name)
            let pid = (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            let alive = pid.map { ProcessTable.arguments(of: $0) != nil } ?? false
            let held = FileManager.default.fileExists(atPath: spec.logsDirectory + "/" + name + ".held")
            report.components.append(.init(name: name, state: alive ? "running" : held ? "held" : "down", pid: alive ? pid : nil,
                                           log: spec.logsDirectory + "/" + name + ".log"))
        }
        let client = try KubeClient(try Connection.kubeconfig(at: spec.kubeconfig))
        do {
            for node in try await client.list(Node.self).items.sorted(by: { ($0.metadata.name ?? "") < ($1.metadata.name ?? "") }) {
                report.nodes.append(.init(name: node.metadata.name ?? "",
                                          ready: node.status.conditions?.first { $0.type == "Ready" }?.status ?? "Unknown",
                                          zone: node.metadata.labels?["topology.kubernetes.io/zone"],
                                          volumesInUse: node.status.volumesInUse?.count ?? 0))
            }
            report.persistentVolumes = try await client.list(PersistentVolume.self).items.count
            report.volumeAttachments = try await client.list(VolumeAttachment.self).items.count
        } catch {
            // The API server is down: its component says so; the rest is unknown.
        }
        report.healthy = report.components.allSatisfy { $0.state == "running" }
            && report.nodes.count == spec.nodes && report.nodes.allSatisfy { $0.ready == "True" }
        return report
    }
}

extension StatusCommand.Report: CustomStringConvertible {
    var description: String {
        guard running, let supervisorPID else {
            return "not running (data in \(dataDir)); start it with `ballast up --data-dir \(dataDir)`"
        }
        var lines = ["running: supervisor pid \(supervisorPID), API server \(apiServer) (KUBECONFIG=\(kubeconfig))", "components:"]
        for component in components {
            let state = component.state == "running" ? "running (pid \(component.pid ?? 0))"
                : component.state == "held" ? "stopped (`ballast node start` brings it back)" : "DOWN — see \(component.log)"
            lines.append("  \(component.name.padding(toLength: 26, withPad: " ", startingAt: 0)) \(state)")
        }
        lines.append("nodes:")
        for node in nodes {
            lines.append("  \(node.name)  Ready=\(node.ready)  zone=\(node.zone ?? "-")  volumes in use=\(node.volumesInUse)")
        }
        lines.append("  \(persistentVolumes) persistent volume\(persistentVolumes == 1 ? "" : "s"), \(volumeAttachments) attachment\(volumeAttachments == 1 ? "" : "s")")
        return lines.joined(separator: "\n")
    }
}
