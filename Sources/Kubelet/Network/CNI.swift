// CNI as the spec (v1.0) defines it: a plugin is an executable found in the plugin directories
// (`CNI_PATH`), run once per operation with the parameters in its environment — CNI_COMMAND
// (ADD, DEL, CHECK, VERSION), CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH — and
// its network configuration on stdin. A network configuration list (a `.conflist`) chains
// plugins: ADD runs them in order, each given the previous one's result as `prevResult`; DEL
// runs them in reverse with the cached ADD result; CHECK in order with it. A plugin answers
// with a result (exit 0, JSON on stdout) or an error (non-zero exit, `{code, msg, details}`).
// Everything a plugin prints is untrusted: parsed defensively, bounded, and quoted in errors.
//
// The runtime caches the last ADD result of each attachment, as libcni does, so that DEL and
// CHECK get the same `prevResult` and configuration even after a restart or a config change:
//
//     <cache>/results/<network>-<containerID>-<ifName>   {"kind": "cniCacheV1", "containerId",
//                                                         "ifName", "networkName", "config",
//                                                         "cniArgs", "result"}
import ClusterAPI
import Foundation
import HostSystem

/// One attachment of a container to a network: what the runtime passes to every plugin.
public struct CNIRuntimeArgs: Sendable, Equatable {
    public var containerID: String
    /// The network namespace (a path to its nsfs file); empty on a DEL when it is gone.
    public var netns: String
    public var ifName: String
    /// `CNI_ARGS` pairs (K8S_POD_NAMESPACE, K8S_POD_NAME, …).
    public var args: [(String, String)]

    public init(containerID: String, netns: String, ifName: String = "eth0", args: [(String, String)] = []) {
        self.containerID = containerID
        self.netns = netns
        self.ifName = ifName
        self.args = args
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.containerID == b.containerID && a.netns == b.netns && a.ifName == b.ifName
            && a.args.map { "\($0.0)=\($0.1)" } == b.args.map { "\($0.0)=\($0.1)" }
    }

    /// `K1=V1;K2=V2`, with `IgnoreUnknown=1` first so that plugins accept keys they do not know.
    var cniArgs: String {
        ([("IgnoreUnknown", "1")] + args).map { "\($0.0)=\($0.1)" }.joined(separator: ";")
    }
}

/// A plugin that failed: which one, for which operation, its error code and message (CNI's
/// `{code, msg, details}`), and what it printed on stderr.
public struct CNIPluginError: Error, Sendable, CustomStringConvertible {
    public var plugin: String
    public var command: String
    /// The CNI error code (1–99 the spec's, 100+ the plugin's); nil when it printed no error object.
    public var code: Int?
    public var message: String
    public var details: String?
    public var stderr: String

    public var description: String {
        var text = "CNI plugin \(plugin) failed on \(command)"
        if let code { text += " (code \(code)\(Self.meaning(code).map { ", " + $0 } ?? ""))" }
        text += ": " + message
        if let details, !details.isEmpty { text += " (" + details + ")" }
        if !stderr.isEmpty { text += "; stderr: " + stderr }
        return text
    }

    /// The spec's well-known error codes.
    static func meaning(_ code: Int) -> String? {
        switch code {
        case 1: "incompatible CNI version"
        case 2: "unsupported field in the network configuration"
        case 3: "container unknown or does not exist"
        case 4: "invalid necessary environment variables"
        case 5: "I/O failure"
        case 6: "failed to decode content"
        case 7: "invalid network config"
        case 11: "try again later"
        default: nil
        }
    }
}

/// A plugin's ADD result (CNI 1.0: interfaces, ips, routes, dns), read defensively: members of
/// the wrong type are dropped, not trusted.
public struct CNIResult: Sendable, Equatable {
    public struct Interface: Sendable, Equatable {
        public var name: String
        public var mac: String?
        public var sandbox: String?
    }
    public struct IP: Sendable, Equatable {
        /// `198.18.0.2/24`.
        public var address: String
        public var gateway: String?
        public var interface: Int?
        /// The address without its prefix length.
        public var ip: String { String(address.split(separator: "/").first ?? "") }
    }
    public var cniVersion: String
    public var interfaces: [Interface]
    public var ips: [IP]
    public var routes: [(dst: String, gw: String?)]
    /// The result as the plugin printed it (passed on as `prevResult`).
    public var json: JSONValue

    public static func == (a: Self, b: Self) -> Bool { a.json == b.json }

    /// Parses a result; throws a message saying what is wrong with it.
    public init(_ json: JSONValue) throws(CNIResultError) {
        guard json.objectValue != nil else { throw CNIResultError("the result is not a JSON object") }
        self.json = json
        cniVersion = json["cniVersion"]?.stringValue ?? ""
        interfaces = (json["interfaces"]?.arrayValue ?? []).compactMap { entry in
            guard let name = entry["name"]?.stringValue else { return nil }
            return Interface(name: name, mac: entry["mac"]?.stringValue, sandbox: entry["sandbox"]?.stringValue)
        }
        var ips: [IP] = []
        for entry in json["ips"]?.arrayValue ?? [] {
            guard let address = entry["address"]?.stringValue else { throw CNIResultError("an entry of ips has no address") }
            let parts = address.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, IPv4CIDR.parseAddress(String(parts[0])) != nil || parts[0].contains(":"),
                  let length = Int(parts[1]), (0...128).contains(length) else {
                throw CNIResultError("ips[].address \"\(address)\" is not an address with a prefix length")
            }
            ips.append(IP(address: address, gateway: entry["gateway"]?.stringValue,
                          interface: entry["interface"]?.int64Value.map { Int($0) }))
        }
        self.ips = ips
        routes = (json["routes"]?.arrayValue ?? []).compactMap { entry in
            guard let dst = entry["dst"]?.stringValue else { return nil }
            return (dst, entry["gw"]?.stringValue)
        }
    }

    /// The first IPv4 address given to the container's interface.
    public var podIPv4: String? {
        let inside = Set(interfaces.indices.filter { interfaces[$0].sandbox?.isEmpty == false })
        let candidates = ips.filter { $0.interface.map { inside.contains($0) } ?? true }
        return (candidates + ips).first { IPv4CIDR.parseAddress($0.ip) != nil }?.ip
    }
}

public struct CNIResultError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// A network configuration list (`.conflist`): its name, CNI version and plugins in order.
public struct CNINetworkList: Sendable, Equatable {
    public var name: String
    public var cniVersion: String
    public var plugins: [JSONValue]
    /// The list as read (cached with each attachment).
    public var json: JSONValue

    public init(_ json: JSONValue) throws(CNIResultError) {
        guard json.objectValue != nil else { throw CNIResultError("the network configuration list is not a JSON object") }
        guard let name = json["name"]?.stringValue, !name.isEmpty else { throw CNIResultError("the network configuration list has no name") }
        guard let version = json["cniVersion"]?.stringValue, !version.isEmpty else {
            throw CNIResultError("network \(name) has no cniVersion")
        }
        guard let plugins = json["plugins"]?.arrayValue, !plugins.isEmpty else { throw CNIResultError("network \(name) has no plugins") }
        for plugin in plugins where plugin["type"]?.stringValue?.isEmpty ?? true {
            throw CNIResultError("a plugin of network \(name) has no type")
        }
        self.name = name
        cniVersion = version
        self.plugins = plugins
        self.json = json
    }

    /// Reads a `.conflist` file.
    public static func load(_ path: String) throws -> CNINetworkList {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KubeletError(.network, "network plugin is not ready: cni config uninitialized (no \(path))")
        }
        do {
            return try CNINetworkList(try JSONValue(parsing: data))
        } catch {
            throw KubeletError(.network, "network plugin is not ready: \(path): \(error)")
        }
    }
}

/// Runs CNI plugins for the kubelet.
public struct CNIInvoker: Sendable {
    /// Where the plugin executables are (`CNI_PATH`), searched in order.
    public var pluginDirectories: [String]
    /// Where ADD results are cached.
    public var cacheDirectory: String
    /// How long one plugin may run.
    public var timeout: Duration

    public init(pluginDirectories: [String], cacheDirectory: String, timeout: Duration = .seconds(60)) {
        self.pluginDirectories = pluginDirectories
        self.cacheDirectory = cacheDirectory
        self.timeout = timeout
    }

    /// The executable of plugin `type`, nil when no plugin directory has it.
    public func find(_ type: String) -> String? {
        guard !type.isEmpty, !type.contains("/"), type != ".", type != ".." else { return nil }
        return pluginDirectories.map { $0 + "/" + type }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    // MARK: Lists

    /// ADD: every plugin in order, each with the previous result; the last result is cached
    /// and returned. A failure runs DEL over the list (as libcni's callers do), so that nothing
    /// half-made is left, and throws the ADD's error.
    public func add(_ list: CNINetworkList, _ args: CNIRuntimeArgs) async throws -> CNIResult {
        var previous: JSONValue?
        do {
            for plugin in list.plugins {
                let config = Self.pluginConfig(plugin, list: list, previous: previous)
                guard let output = try await invoke(plugin["type"]?.stringValue ?? "", command: "ADD", config: config, args) else {
                    throw CNIPluginError(plugin: plugin["type"]?.stringValue ?? "", command: "ADD", message: "printed no result")
                }
                previous = output
            }
            guard let previous else { throw CNIResultError("network \(list.name) has no plugins") }
            let result: CNIResult
            do { result = try CNIResult(previous) } catch {
                throw CNIPluginError(plugin: list.plugins.last?["type"]?.stringValue ?? "", command: "ADD", message: "its result is malformed: \(error)")
            }
            try writeCache(list: list, args: args, result: result)
            return result
        } catch {
            try? await delete(list, args, result: previous)
            throw error
        }
    }

    /// CHECK: every plugin in order with the cached result; throws what the first failing one says.
    public func check(_ list: CNINetworkList, _ args: CNIRuntimeArgs) async throws {
        guard let cached = cached(network: list.name, containerID: args.containerID, ifName: args.ifName) else {
            throw KubeletError(.network, "no cached CNI result of network \(list.name) for container \(args.containerID)")
        }
        let used = cached.list ?? list
        for plugin in used.plugins {
            _ = try await invoke(plugin["type"]?.stringValue ?? "", command: "CHECK",
                                 config: Self.pluginConfig(plugin, list: used, previous: cached.result?.json), args)
        }
    }

    /// DEL: every plugin in reverse order, with the configuration and result cached by ADD when
    /// there are (else `list` and `result`); then the cache entry goes. DEL of what is already
    /// gone succeeds, as the spec requires of plugins.
    public func delete(_ list: CNINetworkList, _ args: CNIRuntimeArgs, result: JSONValue? = nil) async throws {
        let cached = cached(network: list.name, containerID: args.containerID, ifName: args.ifName)
        let used = cached?.list ?? list
        let previous = cached?.result?.json ?? result
        for plugin in used.plugins.reversed() {
            _ = try await invoke(plugin["type"]?.stringValue ?? "", command: "DEL",
                                 config: Self.pluginConfig(plugin, list: used, previous: previous), args)
        }
        try? FileManager.default.removeItem(atPath: cachePath(network: list.name, containerID: args.containerID, ifName: args.ifName))
    }

    /// A plugin's stdin: its object from the list with the list's name and cniVersion, and the
    /// previous result when there is one.
    static func pluginConfig(_ plugin: JSONValue, list: CNINetworkList, previous: JSONValue?) -> JSONValue {
        var object = plugin.objectValue ?? [:]
        object["name"] = .string(list.name)
        object["cniVersion"] = .string(list.cniVersion)
        if let previous { object["prevResult"] = previous } else { object["prevResult"] = nil }
        return .object(object)
    }

    // MARK: One plugin

    /// Runs plugin `type` for `command` with `config` on stdin; returns the JSON it printed
    /// (nil when it printed nothing, as DEL and CHECK may), or throws `CNIPluginError`.
    public func invoke(_ type: String, command: String, config: JSONValue, _ args: CNIRuntimeArgs) async throws -> JSONValue? {
        guard let executable = find(type) else {
            throw CNIPluginError(plugin: type, command: command,
                                 message: "failed to find plugin \"\(type)\" in path [\(pluginDirectories.joined(separator: " "))]; install containernetworking-plugins (make deps)")
        }
        let environment = [
            "CNI_COMMAND": command, "CNI_CONTAINERID": args.containerID, "CNI_NETNS": args.netns, "CNI_IFNAME": args.ifName,
            "CNI_ARGS": args.cniArgs, "CNI_PATH": pluginDirectories.joined(separator: ":"),
            // Plugins run iptables and the like (portmap, ipMasq): a root PATH, nothing else of ours.
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ]
        let result: CommandResult
        do {
            result = try await SystemCommand.run([executable], input: config.jsonBytes, environment: environment, timeout: timeout,
                                                 outputLimit: 1 << 20)
        } catch let error as CommandError {
            throw CNIPluginError(plugin: type, command: command, message: error.timedOut != nil ? "did not finish within \(timeout)" : "\(error)",
                                 stderr: Self.excerpt(error.result.stderr))
        }
        let stdout = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let parsed: JSONValue? = stdout.isEmpty ? nil : try? JSONValue(parsing: Data(stdout.utf8))
        guard result.status == 0 else {
            var error = CNIPluginError(plugin: type, command: command, message: "exited with \(result.termination)", stderr: Self.excerpt(result.stderr))
            if let parsed, parsed.objectValue != nil {
                error.code = parsed["code"]?.int64Value.map { Int($0) }
                if let message = parsed["msg"]?.stringValue, !message.isEmpty { error.message = Self.excerpt(message) }
                error.details = parsed["details"]?.stringValue.map(Self.excerpt)
            } else if !stdout.isEmpty {
                error.message += ": " + Self.excerpt(stdout)
            }
            throw error
        }
        if !stdout.isEmpty && parsed == nil {
            throw CNIPluginError(plugin: type, command: command, message: "printed something that is not JSON: " + Self.excerpt(stdout),
                                 stderr: Self.excerpt(result.stderr))
        }
        return parsed
    }

    /// At most 1000 characters of what a plugin printed, on one line.
    static func excerpt(_ text: String) -> String {
        let line = text.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "\n", with: " ")
        return line.count > 1000 ? String(line.prefix(1000)) + "…" : line
    }

    // MARK: Cache

    func cachePath(network: String, containerID: String, ifName: String) -> String {
        cacheDirectory + "/results/" + "\(network)-\(containerID)-\(ifName)".replacingOccurrences(of: "/", with: "_")
    }

    /// The cached ADD of an attachment: the list it was made with and its result.
    public func cached(network: String, containerID: String, ifName: String) -> (list: CNINetworkList?, result: CNIResult?)? {
        guard let data = FileManager.default.contents(atPath: cachePath(network: network, containerID: containerID, ifName: ifName)),
              let json = try? JSONValue(parsing: data), json["kind"]?.stringValue == "cniCacheV1" else { return nil }
        return (json["config"].flatMap { try? CNINetworkList($0) }, json["result"].flatMap { try? CNIResult($0) })
    }

    func writeCache(list: CNINetworkList, args: CNIRuntimeArgs, result: CNIResult) throws {
        try FileManager.default.createDirectory(atPath: cacheDirectory + "/results", withIntermediateDirectories: true)
        let entry: JSONValue = [
            "kind": "cniCacheV1", "containerId": .string(args.containerID), "ifName": .string(args.ifName),
            "networkName": .string(list.name), "config": list.json, "cniArgs": .array(args.args.map { [.string($0.0), .string($0.1)] }),
            "result": result.json,
        ]
        let path = cachePath(network: list.name, containerID: args.containerID, ifName: args.ifName)
        let temporary = path + ".tmp"
        try entry.jsonData.write(to: URL(fileURLWithPath: temporary))
        try FileSystem.commit(temporary, to: path)
    }
}

extension CNIPluginError {
    init(plugin: String, command: String, message: String, stderr: String = "") {
        self.init(plugin: plugin, command: command, code: nil, message: message, details: nil, stderr: stderr)
    }
}
