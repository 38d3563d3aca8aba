import Foundation
import Testing
import TestSupport
@testable import Kubelet

/// The pressure conditions against Kubernetes' default hard eviction thresholds, on real file systems.
@Suite struct NodePressureTests {
    @Test func aRootOnAFullFileSystemIsDiskPressure() throws {
        guard Tmpfs.available else { return }
        let fs = try Tmpfs(size: "4m")
        #expect(NodePressure.measure(rootDirectory: fs.path, imageDirectory: fs.path).disk == nil, "an empty file system is no pressure")
        #expect(FileManager.default.createFile(atPath: fs.path + "/fill", contents: Data(count: (4 << 20) - (256 << 10))))
        let pressure = NodePressure.measure(rootDirectory: fs.path, imageDirectory: "/")
        #expect(pressure.disk?.hasPrefix("nodefs.available ") == true && pressure.disk?.hasSuffix("< 10%") == true, "\(pressure)")
    }

    @Test func thisMachineIsMeasured() {
        #expect(NodePressure.memoryAvailable().map { $0 > 0 } == true, "MemAvailable read from /proc/meminfo")
        let pids = NodePressure.pidUsage()
        #expect(pids.map { $0.used > 0 && $0.max >= $0.used } == true, "\(String(describing: pids))")
    }
}
