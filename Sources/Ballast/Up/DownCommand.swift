// `ballast down`: stops the cluster `ballast up --detach` left running (its supervisor stops
// every component, the containers, mounts and loop devices); `--purge` also removes the data and
// volumes dirs. `ballast status`: whether it runs, and its nodes.
import APIClient
import ArgumentParser
import ClusterAPI
import Foundation
import HostSystem

struct DownCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Stop the cluster `ballast up` runs on a data dir; --purge also deletes its data and volumes."
    )

    @Option(help: "The cluster's data dir.")
    var dataDir: String = ".ballast"

    @Flag(help: "Also delete the data dir and the volumes dir: nothing of the cluster is left.")
    var purge = false

    func run() async throws {
        let dataDir = self.dataDir.absolutePath
        guard let spec = try ClusterSpec.read(dataDir: dataDir) else {
            throw UpFailure("no cluster in \(dataDir) (no \(ClusterSpec.fileName)): nothing to stop")
        }
        if let pid = runningSupervisor(spec) {
            say("stopping the cluster (supervisor pid \(pid))…")
            kill(pid, SIGTERM)
            let deadline = ContinuousClock.now + .seconds(180)
            while kill(pid, 0) == 0 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
            guard kill(pid, 0) != 0 else {
                throw UpFailure("the supervisor (pid \(pid)) did not stop within 180 s; see \(spec.logsDirectory)/up.log")
            }
        } else {
            say("no supervisor runs on \(dataDir)")
        }
        guard purge else {
            say("stopped; the data stays in \(spec.dataDir) and \(spec.volumesDir)")
            return
        }
        // What a supervisor that died without stopping may have left, then the files.
        await HostCleanup.sweep(spec.dataDir, runtimeRoots: spec.runtimeRoots, cgroups: spec.cgroups)
        await HostCleanup.removeNetwork(spec)
        // The volumes dir may be the repository's `volumes/`, whose README stays.
        await HostCleanup.sweep(spec.volumesDir, removeDirectory: false)
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: spec.volumesDir)) ?? []
        for entry in entries where entry != "README.md" {
            try? FileManager.default.removeItem(atPath: spec.volumesDir + "/" + entry)
        }
        if entries.allSatisfy({ $0 != "README.md" }) { try? FileManager.default.removeItem(atPath: spec.volumesDir) }
        say("purged \(spec.dataDir) and \(spec.volumesDir)")
    }
}
