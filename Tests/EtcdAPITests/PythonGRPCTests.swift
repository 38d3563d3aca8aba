import Foundation
import Testing
import TestSupport

/// Python's grpcio (C-core's HTTP/2) runs Tests/Interop/etcd_grpc_client.py
/// against `ballast store serve`: unary calls, a 100 KiB message each way, an
/// unknown service, a watch stream and 500 concurrent calls.
@Suite struct PythonGRPCTests {
    @Test func grpcioTalksToTheStore() throws {
        let check = try run(interopPython, ["-c", "import grpc"])
        try #require(check.status == 0, "Python with grpcio is needed at \(interopPython): run `make pydeps` (make test does)")
        let server = try StoreServer()
        let result = try run(interopPython, [packageRoot.appendingPathComponent("Tests/Interop/etcd_grpc_client.py").path,
                                             "127.0.0.1:\(server.port)"], timeout: 120)
        try #require(result.status == 0, "python client failed (\(result.status)): \(result.stderr)\n\(result.stdout)")
        var steps: [String: [String: Any]] = [:]
        for line in result.stdout.split(separator: "\n") {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
            steps[object["step"] as? String ?? ""] = object
        }
        try #require(steps["done"] != nil, "the script stopped early: \(result.stdout)")
        #expect(steps["range"]?["found"] as? Bool == true)
        #expect(steps["big"]?["intact"] as? Bool == true)
        #expect(steps["unknown"]?["code"] as? String == "UNIMPLEMENTED")
        #expect(steps["unknown"]?["details"] as? String == "unknown service etcdserverpb.Nope")
        #expect(steps["watch"]?["created"] as? Bool == true && steps["watch"]?["event"] as? Bool == true)
        #expect(steps["concurrent"]?["found"] as? Int == 500)
    }
}
