import MVCCStore

/// The store's change event (ClusterAPI also has an `Event`: the Kubernetes kind).
typealias StoreEvent = Event
