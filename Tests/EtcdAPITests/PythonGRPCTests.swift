import Foundation
import Testing
import TestSupport

/// Python's grpcio (C-core's HTTP/2) runs Tests/Interop/etcd_grpc_client.py
/// against `ballast store serve`: unary calls, a 100 KiB message each way, an
/// unknown service, a watch stream and 500 concurrent calls.
@Suite struct PythonGRPCTests {
    @Test func grpcioTalksToTheStore() async throws {
        let server = try await StoreServer.start()
        let steps = try await runInteropScript("etcd_grpc_client.py", ["127.0.0.1:\(server.port)"], needs: "grpc")
        #expect(steps["range"]?["found"] as? Bool == true)
        #expect(steps["big"]?["intact"] as? Bool == true)
        #expect(steps["unknown"]?["code"] as? String == "UNIMPLEMENTED")
        #expect(steps["unknown"]?["details"] as? String == "unknown service etcdserverpb.Nope")
        #expect(steps["watch"]?["created"] as? Bool == true && steps["watch"]?["event"] as? Bool == true)
        #expect(steps["concurrent"]?["found"] as? Int == 500)
    }
}
