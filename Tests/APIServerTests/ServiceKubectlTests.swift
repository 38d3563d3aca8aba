import Foundation
import Testing
import TestSupport

/// Services as kubectl users meet them on a real `ballast apiserver`: the `kubernetes` Service
/// and its endpoints, allocation errors in Kubernetes' words, the range flags.
@Suite(.serialized) struct ServiceKubectlTests {
    static func manifest(_ name: String, _ spec: String) -> String {
        #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"\#(name)"},"spec":\#(spec)}"#
    }

    @Test func kubernetesServiceAndAllocationErrorsThroughKubectl() async throws {
        let server = try await ServerProcess.start()
        defer { server.stop() }
        #expect(try await server.ok("get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP} {.spec.ports[0].port} {.spec.ports[0].targetPort}")
                == "198.19.0.1 443 \(server.port)")
        #expect(try await server.ok("get", "endpoints", "kubernetes").contains("127.0.0.1:\(server.port)"))
        let slices = try await server.ok("get", "endpointslices")
        let header = slices.split(separator: "\n").first.map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
        #expect(header == "NAME ADDRESSTYPE PORTS ENDPOINTS AGE")
        #expect(slices.contains("kubernetes") && slices.contains("IPv4") && slices.contains("\(server.port)") && slices.contains("127.0.0.1"))

        let outside = try await server.kubectl(["apply", "-f", "-"], input: Self.manifest("bad", #"{"clusterIP":"10.0.0.1","ports":[{"port":80}]}"#))
        #expect(outside.status != 0)
        #expect(outside.stderr.contains(#"The Service "bad" is invalid: spec.clusterIPs: Invalid value: []string{"10.0.0.1"}: failed to allocate IP 10.0.0.1: the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 198.19.0.0/16"#),
                "\(outside.stderr)")

        #expect(try await server.ok("apply", "-f", "-", input: Self.manifest("np1", #"{"type":"NodePort","selector":{"app":"x"},"ports":[{"port":80,"nodePort":30080}]}"#))
            .contains("service/np1 created"))
        let listed = try await server.ok("get", "svc", "np1")
        #expect(listed.contains("NodePort") && listed.contains("80:30080/TCP"))
        let clash = try await server.kubectl(["apply", "-f", "-"], input: Self.manifest("np2", #"{"type":"NodePort","ports":[{"port":80,"nodePort":30080}]}"#))
        #expect(clash.stderr.contains(#"The Service "np2" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"#),
                "\(clash.stderr)")
        // Port conflicts inside one Service: two ports of one number and protocol, two ports of
        // one protocol on one NodePort. Nothing is allocated for a refused Service.
        let twice = try await server.kubectl(["apply", "-f", "-"], input: Self.manifest("dup", #"{"ports":[{"name":"a","port":80},{"name":"b","port":80,"targetPort":81}]}"#))
        #expect(twice.stderr.contains(#"The Service "dup" is invalid: spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}"#),
                "\(twice.stderr)")
        let sameNodePort = try await server.kubectl(["apply", "-f", "-"], input: Self.manifest("dupnp", #"{"type":"NodePort","ports":[{"name":"a","port":80,"nodePort":30090},{"name":"b","port":81,"nodePort":30090}]}"#))
        #expect(sameNodePort.stderr.contains(#"The Service "dupnp" is invalid: spec.ports[1].nodePort: Duplicate value: 30090"#), "\(sameNodePort.stderr)")
        #expect(try await server.ok("apply", "-f", "-", input: Self.manifest("np3", #"{"type":"NodePort","ports":[{"port":80,"nodePort":30090}]}"#))
            .contains("service/np3 created"), "the refused Service took no port")
        let taken = try await server.kubectl(["apply", "-f", "-"], input: Self.manifest("ip2", #"{"clusterIP":"198.19.0.1","ports":[{"port":80}]}"#))
        #expect(taken.stderr.contains(#"failed to allocate IP 198.19.0.1: provided IP is already allocated"#), "\(taken.stderr)")
        // Re-applying the manifest (which has no nodePort for the allocated one) changes nothing.
        #expect(try await server.ok("apply", "-f", "-", input: Self.manifest("np1", #"{"type":"NodePort","selector":{"app":"x"},"ports":[{"port":80,"nodePort":30080}]}"#))
            .contains("service/np1 unchanged"))
        let moved = try await server.kubectl(["patch", "svc", "np1", "-p", #"{"spec":{"clusterIP":"198.19.3.3"}}"#])
        #expect(moved.stderr.contains(#"spec.clusterIPs[0]: Invalid value: "198.19.3.3": may not change once set"#), "\(moved.stderr)")
        #expect(try await server.ok("delete", "svc", "np1").contains("deleted"))
        #expect(try await server.ok("apply", "-f", "-", input: Self.manifest("np2", #"{"type":"NodePort","ports":[{"port":80,"nodePort":30080}]}"#))
            .contains("service/np2 created"), "the deleted Service's port is free again")
    }

    @Test func kubectlCreateService() async throws {
        let server = try await ServerProcess.start()
        defer { server.stop() }
        // kubectl create service sends protobuf.
        #expect(try await server.ok("create", "service", "clusterip", "demo", "--tcp=80:8080").contains("service/demo created"))
        #expect(try await server.ok("get", "svc", "demo", "-o", "jsonpath={.spec.selector.app} {.spec.ports[0].port} {.spec.ports[0].targetPort} {.spec.type}")
                == "demo 80 8080 ClusterIP")
        #expect(try await server.ok("get", "svc", "demo", "-o", "jsonpath={.spec.clusterIP}").hasPrefix("198.19."))
        #expect(try await server.ok("create", "service", "nodeport", "np", "--tcp=81:web", "--node-port=30123").contains("service/np created"))
        #expect(try await server.ok("get", "svc", "np", "-o", "jsonpath={.spec.ports[0].nodePort} {.spec.ports[0].targetPort}") == "30123 web")
        #expect(try await server.ok("create", "service", "clusterip", "none", "--clusterip=None").contains("created"))
        #expect(try await server.ok("get", "svc", "none", "-o", "jsonpath={.spec.clusterIP}") == "None")
        let clash = try await server.kubectl(["create", "service", "nodeport", "np2", "--tcp=80:80", "--node-port=30123"])
        #expect(clash.stderr.contains(#"spec.ports[0].nodePort: Invalid value: 30123: provided port is already allocated"#), "\(clash.stderr)")
    }

    @Test func rangeFlags() async throws {
        let server = try await ServerProcess.start { _ in ["--service-cluster-ip-range", "10.96.0.0/12", "--service-node-port-range", "31000-31010"] }
        defer { server.stop() }
        #expect(try await server.ok("get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP}") == "10.96.0.1")
        let outside = try await server.kubectl(["apply", "-f", "-"], input: Self.manifest("np", #"{"type":"NodePort","ports":[{"port":80,"nodePort":30080}]}"#))
        #expect(outside.stderr.contains("provided port is not in the valid range. The range of valid ports is 31000-31010"), "\(outside.stderr)")

        let refused = try await run(ballastBinary(), ["apiserver", "--data-dir", server.directory + "/other", "--service-cluster-ip-range", "10.0.0.0/8"])
        #expect(refused.status != 0)
        #expect((refused.stderr + refused.stdout).contains("the mask must be >= 12"))
    }
}
