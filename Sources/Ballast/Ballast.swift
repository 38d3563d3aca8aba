// The `ballast` command: one subcommand per component (see ARCHITECTURE.md, "The command").
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
        abstract: "A storage-centric Kubernetes: an etcd-compatible LSM store, a control plane and a CSI driver.",
        subcommands: [StoreCommand.self, APIServerCommand.self, CloudCommand.self, CloudControllerManagerCommand.self, ControllerManagerCommand.self, SchedulerCommand.self, CSICommand.self,
                      BenchCommand.self, DebugCommand.self]
    )
}

/// `ballast bench …`: benchmarks that print Ballast's figures beside a peer's, from the same run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that run Ballast beside a peer in the same process.",
        subcommands: [BenchStoreCommand.self, BenchProvisionCommand.self, BenchAPIServerCommand.self, BenchControllersCommand.self, BenchSchedulerCommand.self]
    )
}
