import Foundation
import Testing

@testable import ClusterAPI

/// Service and EndpointSlice defaults and validation in Kubernetes' words, and the IPv4 CIDR
/// arithmetic the allocators use.
@Suite("Network objects")
struct NetworkValidationTests {
    static func service(_ spec: JSONValue) -> Service {
        Service(metadata: ObjectMeta(name: "web", namespace: "default", resourceVersion: "7"), spec: spec)
    }

    @Test func serviceDefaultsAndValidation() {
        var affinity = Self.service(["type": "NodePort", "sessionAffinity": "ClientIP", "ports": [["port": 80]]])
        affinity.applyDefaults()
        #expect(affinity.spec?["sessionAffinityConfig"]?["clientIP"]?["timeoutSeconds"] == 10800)
        #expect(affinity.spec?["externalTrafficPolicy"] == "Cluster")
        #expect(affinity.spec?["ports"]?[0]?["targetPort"] == 80 && affinity.spec?["ports"]?[0]?["protocol"] == "TCP")
        #expect(affinity.validate().isEmpty)

        let messages = { (spec: JSONValue) -> [String] in
            var service = Self.service(spec)
            service.applyDefaults()
            return service.validate().map(\.description)
        }
        #expect(messages(["selector": ["app": "web"]]) == ["spec.ports: Required value"])
        #expect(messages(["type": "Weird", "ports": [["port": 80]]])
                == [#"spec.type: Unsupported value: "Weird": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort""#])
        #expect(messages(["ports": [["port": 80], ["name": "b", "port": 70000]]]).contains("spec.ports[0].name: Required value"))
        #expect(messages(["ports": [["name": "a", "port": 80], ["name": "b", "port": 80]]])
                == [#"spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}"#])
        // Two ports of one protocol on one NodePort: refused as Kubernetes refuses it; TCP and UDP may share one.
        #expect(messages(["type": "NodePort", "ports": [["name": "a", "port": 80, "nodePort": 30080], ["name": "b", "port": 81, "nodePort": 30080]]])
                == ["spec.ports[1].nodePort: Duplicate value: 30080"])
        #expect(messages(["type": "NodePort", "ports": [["name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053],
                                                        ["name": "dns-tcp", "port": 53, "protocol": "TCP", "nodePort": 30053]]]).isEmpty)
        #expect(messages(["sessionAffinity": "ClientIP", "sessionAffinityConfig": ["clientIP": ["timeoutSeconds": 0]], "ports": [["port": 80]]])
                == ["spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater than 0 and less than 86400"])
        #expect(messages(["clusterIP": "None"]).isEmpty, "a headless Service needs no ports")

        var old = Self.service(["clusterIP": "198.19.0.10", "clusterIPs": ["198.19.0.10"], "ports": [["port": 80]]])
        old.applyDefaults()
        var moved = old
        moved.spec?["clusterIP"] = "198.19.0.11"
        moved.spec?["clusterIPs"] = ["198.19.0.11"]
        #expect(moved.validateUpdate(old: old).map(\.description) == [#"spec.clusterIPs[0]: Invalid value: "198.19.0.11": may not change once set"#])
        var external = moved
        external.spec?["type"] = "ExternalName"
        external.spec?["externalName"] = "example.com"
        #expect(external.validateUpdate(old: old).isEmpty, "to ExternalName the address may go")
    }

    @Test func endpointSliceValidation() {
        var slice = EndpointSlice(metadata: ObjectMeta(name: "web-abc", namespace: "default", resourceVersion: "7"), addressType: "IPv4",
                                  endpoints: [Endpoint(addresses: ["10.0.0.1"], hostname: "web-0")],
                                  ports: [EndpointPort(port: 80)])
        slice.applyDefaults()
        #expect(slice.ports == [EndpointPort(name: "", protocol: "TCP", port: 80)])
        #expect(slice.validate().isEmpty)

        var bad = slice
        bad.endpoints = [Endpoint(addresses: ["fd00::1"]), Endpoint(addresses: [])]
        bad.addressType = "IPv4"
        #expect(bad.validate().map(\.description) == [#"endpoints[0].addresses[0]: Invalid value: "fd00::1": must be a valid IPv4 address"#,
                                                      "endpoints[1].addresses: Required value: must contain at least 1 address"])
        var kind = slice
        kind.addressType = "Other"
        #expect(kind.validate().map(\.description) == [#"addressType: Unsupported value: "Other": supported values: "FQDN", "IPv4", "IPv6""#])
        var many = slice
        many.endpoints = Array(repeating: Endpoint(addresses: ["10.0.0.1"]), count: 1001)
        #expect(many.validate().map(\.description) == ["endpoints: Too many: 1001: must have at most 1000 items"])
        var changed = slice
        changed.addressType = "IPv6"
        changed.endpoints = []
        #expect(changed.validateUpdate(old: slice).map(\.description) == [#"addressType: Invalid value: "IPv6": field is immutable"#])
    }

    @Test func ipv4CIDRArithmetic() throws {
        let cidr = try #require(IPv4CIDR("198.18.0.0/16"))
        #expect(cidr.size == 65536 && cidr.description == "198.18.0.0/16")
        #expect(IPv4CIDR("198.18.5.7/16")?.description == "198.18.0.0/16", "host bits cleared")
        #expect(cidr.subnet(3, bits: 24)?.description == "198.18.3.0/24")
        #expect(cidr.subnet(256, bits: 24) == nil && cidr.subnetCount(bits: 24) == 256)
        #expect(cidr.index(of: IPv4CIDR("198.18.200.0/24")!) == 200)
        #expect(cidr.contains(IPv4CIDR.parseAddress("198.18.255.255")!) && !cidr.contains(IPv4CIDR.parseAddress("198.19.0.0")!))
        for bad in ["198.18.0.0", "198.18.0.0/33", "198.18.0/16", "fd00::/64", "198.18.0.256/16", "a.b.c.d/8"] {
            #expect(IPv4CIDR(bad) == nil, "\(bad)")
        }
    }
}
