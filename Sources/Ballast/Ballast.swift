// The `ballast` command: one subcommand per component (see ARCHITECTURE.md, "The command"),
// plus `bench` (the benchmarks) and `debug` (hidden helpers for Ballast's own tests).
// Each long-running subcommand runs its component as a swift-service-lifecycle `Service`
// (`runServices` in Options.swift); `up` will run many in one group.
import ArgumentParser

/// Root of the `ballast` command line.
///
/// The root is an `AsyncParsableCommand`: the servers are `async`; synchronous subcommands
/// such as the debug helpers run unchanged beneath it.
@main
struct BallastCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ballast",
        abstract: "A storage-centric Kubernetes: an etcd-compatible LSM store, an API server, the controller manager, the scheduler, a simulated cloud and its cloud controller manager, a CSI driver, the kubelet, and benchmarks.",
        subcommands: [StoreCommand.self, APIServerCommand.self, CloudCommand.self, CloudControllerManagerCommand.self, ControllerManagerCommand.self, SchedulerCommand.self, CSICommand.self,
                      KubeletCommand.self, KubeletPauseCommand.self, KubeProxyCommand.self, ImagesCommand.self, DNSCommand.self, UpCommand.self, DownCommand.self, StatusCommand.self, NodeCommand.self,
                      BenchCommand.self, DebugCommand.self]
    )
}

/// `ballast bench …`: benchmarks that print Ballast's figures beside a peer's, from the same run:
/// `store` (the LSM engine beside SQLite in this process; with `--via etcd`, puts through
/// `ballast store serve` and, with `--compare-etcd`, a real etcd, each a child process),
/// `provision` (the CSI driver's path beside the same kernel work done directly with the tools),
/// `apiserver` (`ballast apiserver` on the embedded store and, with `--compare-etcd`, on a
/// real etcd), `controllers`, `scheduler` and `kubelet` (pods through a real kubelet beside
/// `runc run` of the same bundles).
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that measure Ballast beside a peer (SQLite, a real etcd, the kernel tools) in the same run.",
        subcommands: [BenchStoreCommand.self, BenchProvisionCommand.self, BenchAPIServerCommand.self, BenchControllersCommand.self, BenchSchedulerCommand.self, BenchE2ECommand.self,
                      BenchKubeletCommand.self, BenchNetworkCommand.self]
    )
}
