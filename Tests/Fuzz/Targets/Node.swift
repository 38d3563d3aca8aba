// Fuzz targets of the cloud and the CSI driver: the cloud's JSON, CSI requests, mount tables.
extension FuzzTargets {
    static let node: [FuzzTarget] = []
}
