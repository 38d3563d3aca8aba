// Fuzz targets of the engine, the store and its wire: WAL records, SSTable blocks and
// footers, the MANIFEST, HTTP/2 frames and HPACK blocks, gRPC message framing, etcd requests.
extension FuzzTargets {
    static let store: [FuzzTarget] = []
}
