// Real CSI clients: grpcio stubs generated from Protos/csi/csi.proto (Python, from `make
// pydeps`) drive the `ballast csi` binary, in front of the `ballast cloud serve` binary, over the
// unix socket. The node part runs only as root with loop devices, and says so otherwise.
import CloudProvider
import Foundation
import HostSystem
import Testing
import TestSupport

private let python = interopPython

@Suite(.serialized) struct CSIInteropTests {
    @Test func pythonGrpcClientDrivesTheDriver() async throws {
        let check = try await run(python, ["-c", "import grpc, grpc_tools"])
        try #require(check.status == 0, "Python with grpcio and grpcio-tools is needed at \(python): run `make pydeps` (make test does)")
        let root = "/tmp/bcsi-py-" + UUID().uuidString.prefix(6).lowercased()
        let kubeletRoot = root + "/kubelet"
        let socket = root + "/csi.sock"
        try FileManager.default.createDirectory(atPath: kubeletRoot, withIntermediateDirectories: true)
        let cloudPort = freePort()
        let processes = ProcessList()
        try await withCleanup {
            func start(_ arguments: [String]) throws {
                processes.append(try TestProcess([ballastBinary()] + arguments, logPath: root + "/\(arguments[0]).log"))
            }
            try start(["cloud", "serve", "--listen", "127.0.0.1:\(cloudPort)", "--volumes-dir", root + "/volumes",
                       "--state-dir", root + "/cloud", "--latency", "attach=20ms,detach=20ms"])
            var cloud: CloudClient?
            for _ in 0..<200 where cloud == nil {
                cloud = try? CloudClient(url: "http://127.0.0.1:\(cloudPort)", keyFile: root + "/cloud/admin.key")
                if cloud != nil, (try? await cloud!.describeRegion()) == nil { cloud = nil }
                if cloud == nil { try await Task.sleep(for: .milliseconds(50)) }
            }
            let client = try #require(cloud, "the cloud simulator did not start")
            let instance = try await client.registerInstance(RegisterInstanceRequest(name: "py-node", zone: "ballast-1a"))
            try start(["csi", "--mode", "both", "--endpoint", "unix://" + socket, "--node-id", "py-node",
                       "--cloud-url", "http://127.0.0.1:\(cloudPort)", "--cloud-key-file", root + "/cloud/admin.key",
                       "--kubelet-root", kubeletRoot])
            for _ in 0..<200 where !FileManager.default.fileExists(atPath: socket) { try await Task.sleep(for: .milliseconds(50)) }
            let permissions = try FileManager.default.attributesOfItem(atPath: socket)[.posixPermissions] as? Int
            #expect(permissions == 0o600, "the socket is for its owner only")

            let withNode = loopDevicesAvailable
            let result = try await run(python, [packageRoot.appendingPathComponent("Tests/Interop/csi_client.py").path,
                                          packageRoot.appendingPathComponent("Protos/csi").path, socket, instance.id, kubeletRoot]
                                          + (withNode ? ["--node"] : []), timeout: 120)
            try #require(result.status == 0, "python client failed: \(result.stderr)")
            var steps: [String: [String: Any]] = [:]
            for line in result.stdout.split(separator: "\n") {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                steps[object["step"] as? String ?? ""] = object
            }
            #expect(steps["info"]?["name"] as? String == "loop.csi.ballast.dev")
            #expect(steps["probe"]?["ready"] as? Bool == true)
            #expect(steps["create-without-name"]?["code"] as? String == "INVALID_ARGUMENT")
            #expect((steps["create-without-name"]?["message"] as? String)?.contains("name") == true)
            #expect(steps["create"]?["capacity"] as? Int == 64 << 20)
            #expect(steps["create"]?["zone"] as? String == "ballast-1a")
            #expect(((steps["publish"]?["context"] as? [String: String])?["devicePath"])?.hasPrefix("/dev/loop") == true)
            if withNode {
                #expect(steps["node-info"]?["node_id"] as? String == instance.id)
                #expect(((steps["stats"]?["usage"] as? [String: Any])?["BYTES"] as? Int ?? 0) > 0)
                #expect(steps["stats"]?["abnormal"] as? Bool == false)
                #expect(steps["unpublished"]?["target_exists"] as? Bool == false)
            }
            #expect((steps["deleted"]?["remaining"] as? [String])?.isEmpty == true)
        } cleanup: {
            for process in processes.all { await process.terminate(grace: .seconds(5)) }
            for mount in Mounts.current().reversed() where mount.mountPoint.hasPrefix(root + "/") {
                _ = try? await run("/usr/bin/umount", [mount.mountPoint])
            }
            for device in LoopDevices.all() where LoopDevices.backingFile(of: device)?.hasPrefix(root + "/") == true {
                _ = try? await run("/usr/sbin/losetup", ["--detach", device])
            }
            try? FileManager.default.removeItem(atPath: root)
        }
    }
}
