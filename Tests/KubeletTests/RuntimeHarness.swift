// A node root for runtime tests: a temporary kubelet root and image store, the real runc (or
// crun), `ballast-shim` beside the `ballast` binary as the shim. `close()` stops every container it started and
// checks that no mount, cgroup or directory is left.
import Foundation
import HostSystem
import Kubelet
import Logging
import Testing
import TestSupport

/// Root, runc, overlayfs and the built binary: what the runtime tests need; loud when missing.
let runtimeAvailable: Bool = {
    var missing: [String] = []
    if getuid() != 0 { missing.append("root") }
    for tool in ["runc", "unshare", "tar"] where !FileManager.default.isExecutableFile(atPath: SystemCommand.resolve(tool)) {
        missing.append(tool)
    }
    if !FileManager.default.isExecutableFile(atPath: "/bin/busybox") { missing.append("/bin/busybox (busybox-static)") }
    if !FileManager.default.isExecutableFile(atPath: ballastBinary()) { missing.append(ballastBinary()) }
    if !((try? String(contentsOfFile: "/proc/filesystems", encoding: .utf8)) ?? "").contains("overlay") { missing.append("overlayfs") }
    if !missing.isEmpty {
        FileHandle.standardError.write(Data("""
            ************************************************************************
            SKIPPING the kubelet runtime tests: missing \(missing.joined(separator: ", ")).
            Run `make deps` as root (runc, crun, busybox-static) and build first.
            ************************************************************************

            """.utf8))
    }
    return missing.isEmpty
}()

final class RuntimeHarness: Sendable {
    let root: String
    let images: ImageStore
    let runtime: OCIRuntime
    let node: String

    init(runtimeName: String = "runc") throws {
        let root = "/tmp/bkl-" + UUID().uuidString.prefix(8).lowercased()
        self.root = root
        node = "test-" + UUID().uuidString.prefix(6).lowercased()
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        images = try ImageStore(directory: root + "/images")
        var logger = Logger(label: "test.runtime")
        logger.logLevel = .warning
        do {
            runtime = try OCIRuntime(name: runtimeName, root: root + "/kubelet", nodeName: node,
                                     executable: ballastBinary(), shimExecutable: shimBinary(), logger: logger)
        } catch {
            try? FileManager.default.removeItem(atPath: root)   // a runtime refused at start leaves nothing
            throw error
        }
    }

    /// A second driver over the same root: what a restarted kubelet has.
    func restartedRuntime() throws -> OCIRuntime {
        var logger = Logger(label: "test.runtime")
        logger.logLevel = .warning
        return try OCIRuntime(name: runtime.name, root: root + "/kubelet", nodeName: node,
                              executable: ballastBinary(), shimExecutable: shimBinary(), logger: logger)
    }

    /// A config for a busybox container running `args` in pod `pod`.
    func config(_ args: [String], pod: String = "pod1", name: String = "c", attempt: Int = 0, memoryLimit: Int64? = nil,
                pidsLimit: Int64? = nil, mounts: [OCISpec.Mount] = []) async throws -> (ContainerConfig, [String]) {
        let image = try await images.resolve("busybox")
        let layers = try await images.layerDirectories(of: image)
        let sandbox = PodSandbox(directory: root + "/kubelet/pods/\(pod)/sandbox")
        if !sandbox.isReady { try await sandbox.create(hostname: pod, nodeIP: "127.0.0.1") }
        let config = ContainerConfig(podUID: pod, podNamespace: "default", podName: pod, name: name, attempt: attempt, isInit: false,
                                     image: image, args: args, env: image.config.config?.Env ?? [], workingDir: "/",
                                     mounts: mounts, devices: [], memoryLimit: memoryLimit, pidsLimit: pidsLimit, hostname: pod,
                                     sandbox: sandbox, logPath: root + "/logs/\(pod)/\(name)/\(attempt).log", specHash: "x")
        return (config, layers)
    }

    /// Stops and removes every container, removes the sandboxes and the directory; records an
    /// issue for what is left behind.
    func close() async {
        for record in runtime.records() {
            _ = await runtime.stop(record.id, grace: .seconds(1))
            do { try await runtime.remove(record.id) } catch { Issue.record("cannot remove container \(record.id): \(error)") }
        }
        let podsDirectory = root + "/kubelet/pods"
        for pod in (try? FileManager.default.contentsOfDirectory(atPath: podsDirectory)) ?? [] {
            try? await PodSandbox(directory: podsDirectory + "/" + pod + "/sandbox").remove()
        }
        runtime.cgroups.remove("/ballast/\(node)")
        let mounts = Mounts.current().filter { $0.mountPoint.hasPrefix(root + "/") }.map(\.mountPoint)
        #expect(mounts.isEmpty, "mounts left behind: \(mounts)")
        #expect(!runtime.cgroups.exists("/ballast/\(node)"), "cgroups left behind under /ballast/\(node)")
        for mount in mounts.reversed() { _ = try? await SystemCommand.run(["umount", "-l", mount]) }
        try? FileManager.default.removeItem(atPath: root)
    }
}
