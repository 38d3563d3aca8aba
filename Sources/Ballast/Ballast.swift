// The `ballast` command: one subcommand per component (see ARCHITECTURE.md, "The command").
// Today it has only the benchmarks; `store serve`, `apiserver`, `up` and the rest join here
// as their modules land.
import ArgumentParser

/// Root of the `ballast` command line.
///
/// The root is an `AsyncParsableCommand` so that long-running servers added later can be
/// `async`; synchronous subcommands such as `bench store` run unchanged beneath it.
@main
struct BallastCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ballast",
        abstract: "A storage-centric Kubernetes: an etcd-compatible LSM store, a control plane and a CSI driver.",
        subcommands: [StoreCommand.self, APIServerCommand.self, CloudCommand.self, CloudControllerManagerCommand.self, CSICommand.self,
                      BenchCommand.self, DebugCommand.self]
    )
}

/// `ballast bench …`: benchmarks that print Ballast's figures beside a peer's, from the same run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that run Ballast beside a peer in the same process.",
        subcommands: [BenchStoreCommand.self, BenchProvisionCommand.self, BenchAPIServerCommand.self]
    )
}
