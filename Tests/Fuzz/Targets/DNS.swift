// The fuzz target of the ClusterDNS module: the DNS message reader, which reads every packet a
// pod or the host sends to the cluster DNS (UDP and TCP).
import ClusterAPI
import ClusterDNS

extension FuzzTargets {
    /// A small zone to answer from: one ClusterIP Service.
    private static let dnsResolver = DNSResolver(records: ClusterRecords(
        domain: DNSName("cluster.local")!,
        services: [Service(metadata: ObjectMeta(name: "web", namespace: "default"),
                           spec: ["clusterIP": "198.19.0.20", "ports": [["name": "http", "protocol": "TCP", "port": 80]]])],
        slices: []))

    static let dns: [FuzzTarget] = [
        FuzzTarget("dns-message", maxLength: 4096) { input in
            guard let message = try? DNSMessage(parsing: input) else { return }
            // What was read writes back to a message that reads the same.
            let written = message.encoded(limit: .max)
            fuzzCheck(written.count <= DNSMessage.maxLength, "a \(input.count)-byte message re-encodes to \(written.count) bytes")
            fuzzCheck((try? DNSMessage(parsing: written)) == message, "a message does not survive encoding: \(message)")
            // Whatever was asked, the answer is a well-formed message within UDP's bound.
            let response = dnsResolver.respond(to: message)
            let bytes = response.encoded(limit: 512)
            fuzzCheck(bytes.count <= 512 || response.questions.count > 1 || bytes.count <= 12 + written.count,
                      "a response of \(bytes.count) bytes past the 512-byte limit")
            fuzzCheck((try? DNSMessage(parsing: bytes)) != nil, "a response that cannot be read back")
        },
    ]
}
