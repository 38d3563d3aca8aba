// From a pod's container spec, its image and its ready volumes to what the runtime runs
// (`ContainerConfig`), with Kubernetes' rules: the argv is command + args, or the image's
// entrypoint + args, or the image's entrypoint + cmd; `$(VAR)` in command, args and env
// values expands to the container's earlier variables (`$$` escapes); env is the image's,
// overridden by the container's envFrom, then its env (values from fields of the pod resolved
// here, from ConfigMaps and Secrets read before by `EnvSources`); the working
// directory defaults to the image's; volumes are bound at their mountPath (subPath inside the
// volume, never out of it) and raw block volumes appear at their devicePath.
import ClusterAPI
import CKubelet
import Foundation
import HostSystem
#if canImport(Glibc)
import Glibc
#endif

struct ContainerBuilder {
    var pod: Pod
    var nodeName: String
    var nodeIP: String
    var volumes: [String: PodVolume]
    var sandbox: PodSandbox
    /// The pod's own network (nil: the node's, for hostNetwork pods and kubelets without one).
    var podNetwork: (netns: String, ip: String)?
    var podDirectory: String
    var podLogsDirectory: String
    var podPidsLimit: Int64?
    /// The ConfigMaps and Secrets that env and envFrom name.
    var envSources = EnvSources()

    /// The pod's log directory: `<pod-logs-dir>/<namespace>_<name>_<uid>`.
    static func logDirectory(base: String, pod: Pod) -> String {
        base + "/\(pod.metadata.namespace ?? "default")_\(pod.metadata.name ?? "")_\(pod.uid)"
    }

    func config(for container: Container, isInit: Bool, attempt: Int, image: ResolvedImage) throws -> ContainerConfig {
        let env = try environment(container, image: image)
        let lookup = Dictionary(env.map { entry -> (String, String) in
            let parts = entry.split(separator: "=", maxSplits: 1)
            return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
        }, uniquingKeysWith: { $1 })
        let command = (container.command ?? []).map { Self.expand($0, lookup) }
        let arguments = (container.args ?? []).map { Self.expand($0, lookup) }
        let imageConfig = image.config.config
        var argv: [String]
        if !command.isEmpty {
            argv = command + arguments
        } else if !arguments.isEmpty {
            argv = (imageConfig?.Entrypoint ?? []) + arguments
        } else {
            argv = (imageConfig?.Entrypoint ?? []) + (imageConfig?.Cmd ?? [])
        }
        guard !argv.isEmpty else {
            throw KubeletError(.containerCreate, "failed to generate container \"\(container.name)\" spec: no command specified")
        }
        var mounts = try volumeMounts(container)
        mounts.append(OCISpec.Mount(destination: "/etc/hosts", type: "bind", source: sandbox.hostsFile, options: ["rbind", "rprivate", "rw"]))
        let hostnameFile = podDirectory + "/etc-hostname"
        // Written once per pod, not synced (UnsyncedFile): a machine crash may leave it empty,
        // so it is written again when it is missing or empty.
        var existing = stat()
        if stat(hostnameFile, &existing) != 0 || existing.st_size == 0 {
            try UnsyncedFile.write((pod.metadata.name ?? "") + "\n", to: hostnameFile, atomically: true)
        }
        mounts.append(OCISpec.Mount(destination: "/etc/hostname", type: "bind", source: hostnameFile, options: ["rbind", "rprivate", "rw"]))
        if FileManager.default.fileExists(atPath: sandbox.resolvConfFile) {
            mounts.append(OCISpec.Mount(destination: "/etc/resolv.conf", type: "bind", source: sandbox.resolvConfFile, options: ["rbind", "rprivate", "ro"]))
        }
        let limits = container.resources?.limits ?? [:]
        let requests = container.resources?.requests ?? [:]
        let workingDir = container.workingDir.flatMap { $0.isEmpty ? nil : $0 } ?? imageConfig?.WorkingDir.flatMap { $0.isEmpty ? nil : $0 } ?? "/"
        let hashInput = [image.reference, argv.joined(separator: " "), env.joined(separator: " "), workingDir,
                         (container.volumeMounts ?? []).map { "\($0.name):\($0.mountPath):\($0.subPath ?? ""):\($0.readOnly ?? false)" }.joined(separator: ","),
                         limits.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ",")]
        var config = ContainerConfig(
            podUID: pod.uid, podNamespace: pod.metadata.namespace ?? "default", podName: pod.metadata.name ?? "", name: container.name,
            attempt: attempt, isInit: isInit, image: image, args: argv, env: env, workingDir: workingDir, mounts: mounts,
            devices: try volumeDevices(container), memoryLimit: limits["memory"].map { $0.value },
            cpuLimitMillis: limits["cpu"].map { $0.milliValue }, cpuRequestMillis: requests["cpu"].map { $0.milliValue },
            pidsLimit: podPidsLimit, hostname: pod.metadata.name ?? "", sandbox: sandbox,
            pidNamespace: pod.sharesProcessNamespace ? sandbox.pidNamespace : nil,
            logPath: Self.logDirectory(base: podLogsDirectory, pod: pod) + "/\(container.name)/\(attempt).log",
            specHash: ContainerConfig.hash(hashInput))
        config.netNamespace = podNetwork?.netns
        return config
    }

    // MARK: Environment

    func environment(_ container: Container, image: ResolvedImage) throws -> [String] {
        var order: [String] = []
        var values: [String: String] = [:]
        func set(_ name: String, _ value: String) {
            if values[name] == nil { order.append(name) }
            values[name] = value
        }
        for entry in image.config.config?.Env ?? [] {
            let parts = entry.split(separator: "=", maxSplits: 1)
            set(String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
        }
        set("HOSTNAME", pod.metadata.name ?? "")
        let namespace = pod.metadata.namespace ?? "default"
        for json in container.envFrom ?? [] {
            guard let source = try? json.decode(as: EnvFromSource.self), let (ref, secret) = source.source else {
                throw KubeletError(.containerCreate, "envFrom: an entry names neither a configMapRef nor a secretRef")
            }
            let name = ref.name ?? ""
            guard let data = envSources.values(name, secret: secret) else {
                if ref.optional == true { continue }
                throw KubeletError(.containerCreate, "\(secret ? "secret" : "configmap") \"\(name)\" not found")
            }
            // Keys that are not valid variable names are skipped, as Kubernetes does.
            for key in data.keys.sorted() where Self.isEnvironmentName((source.prefix ?? "") + key) {
                set((source.prefix ?? "") + key, data[key] ?? "")
            }
        }
        for variable in container.env ?? [] {
            if let source = variable.valueFrom {
                guard let value = try resolve(source, variable: variable.name, container: container, namespace: namespace) else { continue }
                set(variable.name, value)
            } else {
                set(variable.name, Self.expand(variable.value ?? "", values))
            }
        }
        return order.map { "\($0)=\(values[$0] ?? "")" }
    }

    /// What Kubernetes says of envFrom keys that are not variable names (they are skipped): one
    /// `InvalidEnvironmentVariableNames` message per ConfigMap or Secret that has some.
    func skippedEnvFromKeys(_ container: Container) -> [String] {
        let namespace = pod.metadata.namespace ?? "default"
        return (container.envFrom ?? []).compactMap { json in
            guard let source = try? json.decode(as: EnvFromSource.self), let (ref, secret) = source.source,
                  let data = envSources.values(ref.name ?? "", secret: secret) else { return nil }
            let invalid = data.keys.map { (source.prefix ?? "") + $0 }.filter { !Self.isEnvironmentName($0) }.sorted()
            guard !invalid.isEmpty else { return nil }
            return "Keys [\(invalid.joined(separator: ", "))] from the EnvFrom \(secret ? "secret" : "configMap") \(namespace)/\(ref.name ?? "") were skipped since they are considered invalid environment variable names."
        }
    }

    /// Kubernetes' IsEnvVarName: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
    static func isEnvironmentName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first != "=" else { return false }
        let allowed = { (c: Unicode.Scalar) in c.isASCII && (c.properties.isAlphabetic || c == "-" || c == "." || c == "_") }
        return allowed(first) && name.unicodeScalars.allSatisfy { allowed($0) || ("0"..."9").contains($0) }
    }

    /// The value of a `valueFrom`; nil when it names an optional ConfigMap or Secret (or key)
    /// that does not exist: the variable is then not set.
    func resolve(_ json: JSONValue, variable: String, container: Container, namespace: String) throws -> String? {
        guard let source = try? json.decode(as: EnvVarSource.self) else {
            throw KubeletError(.containerCreate, "env \(variable): valueFrom is malformed")
        }
        if let field = source.fieldRef {
            switch field.fieldPath {
            case "metadata.name": return pod.metadata.name ?? ""
            case "metadata.namespace": return pod.metadata.namespace ?? ""
            case "metadata.uid": return pod.uid
            case "spec.nodeName": return nodeName
            case "spec.serviceAccountName": return pod.spec.serviceAccountName ?? ""
            case "status.hostIP", "status.hostIPs": return nodeIP
            case "status.podIP", "status.podIPs": return podNetwork?.ip ?? nodeIP
            case let path where path.hasPrefix("metadata.labels['") && path.hasSuffix("']"):
                return pod.metadata.labels?[String(path.dropFirst(17).dropLast(2))] ?? ""
            case let path where path.hasPrefix("metadata.annotations['") && path.hasSuffix("']"):
                return pod.metadata.annotations?[String(path.dropFirst(22).dropLast(2))] ?? ""
            case let path:
                throw KubeletError(.containerCreate, "env \(variable): unsupported fieldPath \(path)")
            }
        }
        if let resource = source.resourceFieldRef {
            let target = (pod.spec.containers + (pod.spec.initContainers ?? [])).first { $0.name == (resource.containerName ?? container.name) } ?? container
            let parts = resource.resource.split(separator: ".", maxSplits: 1)
            let table = parts.first == "limits" ? target.resources?.limits : target.resources?.requests
            guard parts.count == 2, let quantity = table?[String(parts[1])] else { return "0" }
            let divisor = resource.divisor.map { $0.milliValue } ?? 1000
            return String((quantity.milliValue + max(divisor, 1) - 1) / max(divisor, 1))
        }
        if let (ref, secret) = source.configMapKeyRef.map({ ($0, false) }) ?? source.secretKeyRef.map({ ($0, true) }) {
            let name = ref.name ?? ""
            guard let data = envSources.values(name, secret: secret) else {
                if ref.optional == true { return nil }
                throw KubeletError(.containerCreate, "\(secret ? "secret" : "configmap") \"\(name)\" not found")
            }
            guard let value = data[ref.key] else {
                if ref.optional == true { return nil }
                throw KubeletError(.containerCreate, "couldn't find key \(ref.key) in \(secret ? "Secret" : "ConfigMap") \(namespace)/\(name)")
            }
            return value
        }
        throw KubeletError(.containerCreate, "env \(variable): valueFrom names no source (fieldRef, resourceFieldRef, configMapKeyRef or secretKeyRef)")
    }

    /// Kubernetes' `$(VAR)` expansion: defined variables replaced, undefined references kept,
    /// `$$` an escaped `$`.
    static func expand(_ text: String, _ values: [String: String]) -> String {
        guard text.contains("$") else { return text }
        var out = ""
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            let next = text.index(after: index)
            if character == "$", next < text.endIndex {
                if text[next] == "$" {
                    out.append("$")
                    index = text.index(after: next)
                    continue
                }
                if text[next] == "(", let close = text[next...].firstIndex(of: ")") {
                    let name = String(text[text.index(after: next)..<close])
                    if let value = values[name] {
                        out += value
                    } else {
                        out += text[index...close]
                    }
                    index = text.index(after: close)
                    continue
                }
            }
            out.append(character)
            index = next
        }
        return out
    }

    // MARK: Volumes

    func volumeMounts(_ container: Container) throws -> [OCISpec.Mount] {
        try (container.volumeMounts ?? []).map { mount in
            guard let volume = volumes[mount.name] else {
                throw KubeletError(.containerCreate, "cannot find volume \"\(mount.name)\" to mount into container \"\(container.name)\"")
            }
            guard case .path(let base) = volume.kind else {
                throw KubeletError(.containerCreate, "volume \"\(mount.name)\" is a raw block volume: use volumeDevices, not volumeMounts, in container \"\(container.name)\"")
            }
            var source = base
            if let sub = mount.subPath, !sub.isEmpty {
                guard !sub.hasPrefix("/"), !sub.split(separator: "/").contains("..") else {
                    throw KubeletError(.containerCreate, "subPath \"\(sub)\" of volume \"\(mount.name)\" must be a relative path without \"..\"")
                }
                let candidate = base + "/" + sub
                if !FileManager.default.fileExists(atPath: candidate) {
                    try FileManager.default.createDirectory(atPath: candidate, withIntermediateDirectories: true)
                }
                do {
                    source = try PathConfinement.resolve(candidate, under: base)
                } catch {
                    throw KubeletError(.containerCreate, "subPath \"\(sub)\" of volume \"\(mount.name)\" leads outside the volume: \(error)")
                }
            }
            let readOnly = (mount.readOnly ?? false) || volume.readOnly
            return OCISpec.Mount(destination: mount.mountPath, type: "bind", source: source,
                                 options: ["rbind", "rprivate", readOnly ? "ro" : "rw"])
        }
    }

    func volumeDevices(_ container: Container) throws -> [OCISpec.Device] {
        try (container.volumeDevices ?? []).map { device in
            guard let volume = volumes[device.name], case .block(let path) = volume.kind else {
                throw KubeletError(.containerCreate, "volume \"\(device.name)\" of volumeDevices in container \"\(container.name)\" is not a raw block volume (a PVC with volumeMode: Block)")
            }
            var info = stat()
            guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFBLK else {
                throw KubeletError(.containerCreate, "raw block volume \"\(device.name)\" is not a block device at \(path)")
            }
            let number = UInt64(info.st_rdev)
            return OCISpec.Device(path: device.devicePath, type: "b", major: Int64(ckl_major(number)), minor: Int64(ckl_minor(number)),
                                  fileMode: 0o660, uid: 0, gid: 0)
        }
    }
}
