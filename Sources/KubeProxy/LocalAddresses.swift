// The host's IPv4 addresses (getifaddrs): a ClusterIP that is one of them (cluster DNS answering
// on the Service device itself) is left alone, so that no DNAT steals its packets.
#if canImport(Glibc)
import Glibc
#endif

enum LocalAddresses {
    static func ipv4() -> Set<String> {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var result: Set<String> = []
        var entry: UnsafeMutablePointer<ifaddrs>? = first
        while let current = entry {
            if let address = current.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET) {
                address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                    var sin = pointer.pointee.sin_addr
                    var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
                    if inet_ntop(AF_INET, &sin, &buffer, socklen_t(INET_ADDRSTRLEN)) != nil {
                        result.insert(String(cString: buffer))
                    }
                }
            }
            entry = current.pointee.ifa_next
        }
        return result
    }
}
