// What `ballast scheduler` runs and how: its name, parallelism, queue timings, PreBind's bound,
// the score weights and the leader election.
import APIClient

public struct SchedulerConfiguration: Sendable {
    /// Pods whose `spec.schedulerName` is this (absent: `default-scheduler`) are scheduled.
    public var schedulerName = SchedulerNames.defaultScheduler
    /// Scheduling cycles run at once, each on its own copy of the state (assumes re-check
    /// against the current state, so they never over-commit). Bindings run beside them.
    public var parallelism = 16
    /// kube-scheduler's `percentageOfNodesToScore`: a cycle stops filtering once it has found
    /// this share of the nodes feasible (never fewer than 100 nodes). 0: adaptive (50% less 1%
    /// per 125 nodes, at least 5%); 100: every node.
    public var percentageOfNodesToScore = 0
    /// API writes of the binding cycles (bindings, PreBind's claim and volume updates) in flight
    /// at once: within the client's kept-alive connections (32), leaving room for the others.
    public var concurrentWrites = 16
    /// The first retry delay of a pod (doubling with each attempt up to `maxBackoff`).
    public var initialBackoff: Duration = .seconds(1)
    public var maxBackoff: Duration = .seconds(10)
    /// Unschedulable pods are retried after this long even without an event (upstream's
    /// `podMaxInUnschedulablePodsDuration`).
    public var unschedulableFlush: Duration = .seconds(300)
    /// How long PreBind waits for the claims it started binding (upstream's `bindTimeoutSeconds`).
    public var bindTimeout: Duration = .seconds(600)
    /// Informers replay their caches this often.
    public var resync: Duration = .seconds(300)
    /// The tie-break between equal scores is random from this seed (nil: from the clock).
    public var seed: UInt64?
    /// Hold a Lease in kube-system so that only one instance acts.
    public var leaderElect = true
    public var leaderElection = LeaderElectionConfig(name: "ballast-scheduler")
    /// The `Scheduled` and `FailedScheduling` events: client-go's options, but room for 10,000
    /// waiting events instead of 1,000 — the scheduler binds faster than events are written in
    /// a burst (`bench scheduler`: 2,000 pods bound in about a second dropped 3% of the
    /// `Scheduled` events with 1,000). While pods are in a scheduling or binding cycle the
    /// events are written `writesWhileBusy` (1) at a time, so they trail the bindings instead of
    /// competing with them; `concurrentWrites` (8) once the scheduler is idle.
    public var events: EventRecorder.Options = {
        var options = EventRecorder.Options()
        options.bufferSize = 10_000
        return options
    }()
    var weights = ScoreWeights()

    public init() {}
}
