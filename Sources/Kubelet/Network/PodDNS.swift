// A pod's /etc/resolv.conf, as the kubelet writes it (pkg/kubelet/network/dns):
//
//   dnsPolicy ClusterFirst (the default)   the cluster's DNS (--cluster-dns), search
//                                          <ns>.svc.<domain> svc.<domain> <domain> + the host's
//                                          searches, options ndots:5; for a hostNetwork pod, or
//                                          when the kubelet has no --cluster-dns, as Default
//                                          (the latter with a MissingClusterDNS event)
//   ClusterFirstWithHostNet                the cluster's DNS, hostNetwork or not
//   Default                                the node's resolver (--resolv-conf)
//   None                                   nothing but the pod's dnsConfig
//
// then `dnsConfig` appended (nameservers and searches, without duplicates; options merged by
// name, the pod's winning), and the limits applied: 3 nameservers, 32 search domains of at
// most 2048 characters in all.
import ClusterAPI
import Foundation

/// The kubelet's DNS flags.
public struct DNSSettings: Sendable, Equatable {
    /// `--cluster-dns`: the cluster's DNS servers (empty: none yet).
    public var clusterDNS: [String]
    /// `--cluster-domain`.
    public var clusterDomain: String
    /// `--resolv-conf`: the node's resolver configuration ("" : none).
    public var resolvConf: String

    public init(clusterDNS: [String] = [], clusterDomain: String = "cluster.local", resolvConf: String = "/etc/resolv.conf") {
        self.clusterDNS = clusterDNS
        self.clusterDomain = clusterDomain
        self.resolvConf = resolvConf
    }
}

/// A resolver configuration: what resolv.conf says.
public struct ResolverConfig: Sendable, Equatable {
    public var nameservers: [String] = []
    public var searches: [String] = []
    public var options: [String] = []

    public init(nameservers: [String] = [], searches: [String] = [], options: [String] = []) {
        self.nameservers = nameservers
        self.searches = searches
        self.options = options
    }

    /// Reads resolv.conf text: `nameserver`, `search` (or `domain`), `options`; comments skipped.
    public init(parsing text: String) {
        for line in text.split(whereSeparator: \.isNewline) {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let keyword = fields.first, !keyword.hasPrefix("#"), !keyword.hasPrefix(";") else { continue }
            let values = Array(fields.dropFirst().prefix { !$0.hasPrefix("#") && !$0.hasPrefix(";") })
            switch keyword {
            case "nameserver": if let server = values.first { nameservers.append(server) }
            case "search", "domain": searches = values   // the last one wins, as in the resolver
            case "options": options += values
            default: continue
            }
        }
    }

    /// The file's text.
    public var text: String {
        var lines: [String] = []
        if !searches.isEmpty { lines.append("search " + searches.joined(separator: " ")) }
        lines += nameservers.map { "nameserver " + $0 }
        if !options.isEmpty { lines.append("options " + options.joined(separator: " ")) }
        return lines.map { $0 + "\n" }.joined()
    }
}

public enum PodDNS {
    public static let maxNameservers = 3
    public static let maxSearches = 32
    public static let maxSearchCharacters = 2048

    /// The pod's resolver configuration and the events to record (reason, message).
    public static func config(for pod: Pod, settings: DNSSettings) -> (ResolverConfig, events: [(String, String)]) {
        var events: [(String, String)] = []
        let policy = pod.spec.dnsPolicy.flatMap { $0.isEmpty ? nil : $0 } ?? "ClusterFirst"
        let hostNetwork = pod.spec.hostNetwork ?? false
        enum Kind { case cluster, host, none }
        var kind: Kind
        switch policy {
        case "None": kind = .none
        case "ClusterFirstWithHostNet": kind = .cluster
        case "ClusterFirst": kind = hostNetwork ? .host : .cluster
        default: kind = .host
        }
        if kind == .cluster && settings.clusterDNS.isEmpty {
            events.append(("MissingClusterDNS", "pod: \"\(pod.metadata.name ?? "")_\(pod.metadata.namespace ?? "default")(\(pod.uid))\". kubelet does not have ClusterDNS IP configured and cannot create Pod using \"\(policy)\" policy. Falling back to \"Default\" policy."))
            kind = .host
        }
        let host = settings.resolvConf.isEmpty ? ResolverConfig()
            : ResolverConfig(parsing: (try? String(contentsOfFile: settings.resolvConf, encoding: .utf8)) ?? "")
        var config: ResolverConfig
        switch kind {
        case .none:
            config = ResolverConfig()
        case .host:
            config = host
        case .cluster:
            let domain = settings.clusterDomain
            let namespace = pod.metadata.namespace ?? "default"
            config = ResolverConfig(nameservers: settings.clusterDNS,
                                    searches: ["\(namespace).svc.\(domain)", "svc.\(domain)", domain] + host.searches,
                                    options: ["ndots:5"])
        }
        if let dnsConfig = pod.spec.unknownFields["dnsConfig"] {
            config.nameservers = unique(config.nameservers + strings(dnsConfig["nameservers"]))
            config.searches = unique(config.searches + strings(dnsConfig["searches"]))
            config.options = merge(config.options, (dnsConfig["options"]?.arrayValue ?? []).compactMap { option in
                guard let name = option["name"]?.stringValue, !name.isEmpty else { return nil }
                return option["value"]?.stringValue.map { "\(name):\($0)" } ?? name
            })
        }
        if config.nameservers.count > maxNameservers {
            events.append(("DNSConfigForming", "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: \(config.nameservers.prefix(maxNameservers).joined(separator: " "))"))
            config.nameservers = Array(config.nameservers.prefix(maxNameservers))
        }
        var searches = Array(config.searches.prefix(maxSearches))
        while searches.joined(separator: " ").count > maxSearchCharacters { searches.removeLast() }
        if searches.count < config.searches.count {
            events.append(("DNSConfigForming", "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: \(searches.joined(separator: " "))"))
            config.searches = searches
        }
        return (config, events)
    }

    static func strings(_ value: JSONValue?) -> [String] {
        (value?.arrayValue ?? []).compactMap { $0.stringValue }.filter { !$0.isEmpty }
    }

    static func unique(_ values: [String]) -> [String] {
        var seen = Set<String>()
        return values.filter { seen.insert($0).inserted }
    }

    /// Options by name (`ndots:5` is named ndots); a later one replaces an earlier one in place.
    static func merge(_ base: [String], _ overrides: [String]) -> [String] {
        var result = base
        for option in overrides {
            let name = option.split(separator: ":", maxSplits: 1).first.map(String.init) ?? option
            if let index = result.firstIndex(where: { ($0.split(separator: ":", maxSplits: 1).first.map(String.init) ?? $0) == name }) {
                result[index] = option
            } else {
                result.append(option)
            }
        }
        return result
    }
}
