// Fuzz targets of the API server and its object model: the Kubernetes protobuf envelope, JSON
// bodies and the four patch types, label and field selectors, quantities, Go durations.
extension FuzzTargets {
    static let api: [FuzzTarget] = []
}
