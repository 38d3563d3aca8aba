// One informer per resource (and namespace and selectors) for all the controllers of a
// process, as client-go's SharedInformerFactory: the controller manager's binder, provisioner
// and attacher all watch PVCs, and one list-watch serves them all.
import ClusterAPI
import Logging

public actor SharedInformers {
    public let client: KubeClient
    public let resync: Duration
    private let logger: Logger
    private var informers: [Key: any InformerRunner] = [:]
    private var running: [Key: Task<Void, Never>] = [:]
    private var started = false

    private struct Key: Hashable {
        var type: ObjectIdentifier
        var namespace: String?
        var labelSelector: String?
        var fieldSelector: String?
    }

    /// - Parameter resync: how often each informer replays its cache (every key is
    ///   re-enqueued: the safety net for missed events).
    public init(client: KubeClient, resync: Duration = .seconds(300), logger: Logger) {
        self.client = client
        self.resync = resync
        self.logger = logger
    }

    /// The informer of `type` (narrowed to a namespace and selectors), made on first use.
    /// Informers asked for after `start()` start at once.
    public func informer<Object: APIObject>(_ type: Object.Type, namespace: String? = nil, labelSelector: String? = nil,
                                            fieldSelector: String? = nil) -> Informer<Object> {
        let key = Key(type: ObjectIdentifier(type), namespace: namespace, labelSelector: labelSelector, fieldSelector: fieldSelector)
        if let existing = informers[key] as? Informer<Object> { return existing }
        let informer = Informer<Object>(ResourceSource(client, type, namespace: namespace, labelSelector: labelSelector,
                                                       fieldSelector: fieldSelector),
                                        resync: resync, logger: logger)
        informers[key] = informer
        if started { running[key] = Task { await informer.run() } }
        return informer
    }

    /// Starts every informer made so far (and those made later).
    public func start() {
        guard !started else { return }
        started = true
        for (key, informer) in informers where running[key] == nil {
            running[key] = Task { await informer.run() }
        }
    }

    /// Returns once every informer started so far has listed.
    public func waitForSync() async {
        for informer in informers.values { await informer.waitForSync() }
    }

    /// Stops every informer; their subscribers' event streams end.
    public func stop() async {
        let tasks = running.values
        running.removeAll()
        started = false
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }
}

/// What `SharedInformers` needs of an informer whatever its object type.
protocol InformerRunner: Actor {
    func run() async
    func waitForSync() async
}

extension Informer: InformerRunner {}
