import ClusterAPI
import Foundation

// The rows of the kinds whose printers have real logic (kubernetes pkg/printers/internalversion).
extension TablePrinter {
    static func podCells(_ o: JSONValue, name: JSONValue, age: JSONValue) -> [JSONValue] {
        let spec = o["spec"], status = o["status"]
        let containers = spec?["containers"]?.arrayValue ?? []
        var reason = status?["reason"]?.stringValue ?? status?["phase"]?.stringValue ?? ""
        var ready = 0, restarts: Int64 = 0
        var initializing = false
        for (i, c) in (status?["initContainerStatuses"]?.arrayValue ?? []).enumerated() {
            restarts += c["restartCount"]?.int64Value ?? 0
            if let t = c["state"]?["terminated"], t["exitCode"]?.int64Value == 0 { continue }
            if let t = c["state"]?["terminated"] {
                reason = "Init:" + (t["reason"]?.stringValue ?? "ExitCode:\(t["exitCode"]?.int64Value ?? 0)")
            } else if let w = c["state"]?["waiting"]?["reason"]?.stringValue, !w.isEmpty, w != "PodInitializing" {
                reason = "Init:" + w
            } else {
                reason = "Init:\(i)/\(spec?["initContainers"]?.arrayValue?.count ?? 0)"
            }
            initializing = true
            break
        }
        if !initializing {
            var hasRunning = false
            for c in (status?["containerStatuses"]?.arrayValue ?? []).reversed() {
                restarts += c["restartCount"]?.int64Value ?? 0
                if let w = c["state"]?["waiting"]?["reason"]?.stringValue, !w.isEmpty {
                    reason = w
                } else if let t = c["state"]?["terminated"] {
                    if let r = t["reason"]?.stringValue, !r.isEmpty {
                        reason = r
                    } else if let signal = t["signal"]?.int64Value, signal != 0 {
                        reason = "Signal:\(signal)"
                    } else {
                        reason = "ExitCode:\(t["exitCode"]?.int64Value ?? 0)"
                    }
                } else if c["ready"]?.boolValue == true, c["state"]?["running"] != nil {
                    hasRunning = true
                    ready += 1
                }
            }
            if reason == "Completed" && hasRunning {
                reason = status?["conditions"]?.arrayValue?.contains(where: {
                    $0["type"]?.stringValue == "Ready" && $0["status"]?.stringValue == "True"
                }) == true ? "Running" : "NotReady"
            }
        }
        if o["metadata"]?["deletionTimestamp"] != nil {
            reason = status?["reason"]?.stringValue == "NodeLost" ? "Unknown" : "Terminating"
        }
        let gates = spec?["readinessGates"]?.arrayValue ?? []
        var gatesCell = "<none>"
        if !gates.isEmpty {
            let conditions = status?["conditions"]?.arrayValue ?? []
            let met = gates.filter { gate in
                conditions.contains { $0["type"] == gate["conditionType"] && $0["status"]?.stringValue == "True" }
            }.count
            gatesCell = "\(met)/\(gates.count)"
        }
        return [name, .string("\(ready)/\(containers.count)"), .string(reason), .string(String(restarts)), age,
                str(status?["podIP"], or: "<none>"), str(spec?["nodeName"], or: "<none>"),
                str(status?["nominatedNodeName"], or: "<none>"), .string(gatesCell)]
    }

    static func nodeCells(_ o: JSONValue, name: JSONValue, age: JSONValue) -> [JSONValue] {
        let status = o["status"]
        var states: [String] = []
        let conditions = status?["conditions"]?.arrayValue ?? []
        if let readyCondition = conditions.first(where: { $0["type"]?.stringValue == "Ready" }) {
            states.append(readyCondition["status"]?.stringValue == "True" ? "Ready" : "NotReady")
        } else {
            states.append("Unknown")
        }
        if o["spec"]?["unschedulable"]?.boolValue == true { states.append("SchedulingDisabled") }
        var roles: [String] = []
        for (key, value) in o["metadata"]?["labels"]?.objectValue ?? [:] {
            if key.hasPrefix("node-role.kubernetes.io/") {
                let role = String(key.dropFirst("node-role.kubernetes.io/".count))
                if !role.isEmpty { roles.append(role) }
            } else if key == "kubernetes.io/role", let v = value.stringValue, !v.isEmpty {
                roles.append(v)
            }
        }
        let addresses = status?["addresses"]?.arrayValue ?? []
        func address(_ type: String) -> JSONValue {
            .string(addresses.first { $0["type"]?.stringValue == type }?["address"]?.stringValue ?? "<none>")
        }
        let info = status?["nodeInfo"]
        return [name, .string(states.joined(separator: ",")), .string(roles.isEmpty ? "<none>" : roles.sorted().joined(separator: ",")),
                age, str(info?["kubeletVersion"]), address("InternalIP"), address("ExternalIP"),
                str(info?["osImage"], or: "<unknown>"), str(info?["kernelVersion"], or: "<unknown>"),
                str(info?["containerRuntimeVersion"], or: "<unknown>")]
    }

    static func pvCells(_ o: JSONValue, name: JSONValue, age: JSONValue) -> [JSONValue] {
        let spec = o["spec"]
        var claim = ""
        if let ref = spec?["claimRef"], let n = ref["name"]?.stringValue {
            claim = (ref["namespace"]?.stringValue ?? "") + "/" + n
        }
        var phase = o["status"]?["phase"]?.stringValue ?? ""
        if o["metadata"]?["deletionTimestamp"] != nil { phase = "Terminating" }
        return [name, str(spec?["capacity"]?["storage"]), .string(accessModes(spec?["accessModes"])),
                str(spec?["persistentVolumeReclaimPolicy"]), .string(phase), .string(claim),
                str(spec?["storageClassName"]), str(spec?["volumeAttributesClassName"], or: "<unset>"),
                str(o["status"]?["reason"]), age, str(spec?["volumeMode"], or: "Filesystem")]
    }

    static func pvcCells(_ o: JSONValue, name: JSONValue, age: JSONValue) -> [JSONValue] {
        let spec = o["spec"], status = o["status"]
        var phase = status?["phase"]?.stringValue ?? ""
        if o["metadata"]?["deletionTimestamp"] != nil { phase = "Terminating" }
        let volume = spec?["volumeName"]?.stringValue ?? ""
        var capacity = "", modes = ""
        if !volume.isEmpty {
            capacity = status?["capacity"]?["storage"]?.stringValue ?? ""
            modes = accessModes(status?["accessModes"])
        }
        return [name, .string(phase), .string(volume), .string(capacity), .string(modes),
                str(spec?["storageClassName"]), str(spec?["volumeAttributesClassName"], or: "<unset>"), age,
                str(spec?["volumeMode"], or: "Filesystem")]
    }

    static func eventCells(_ o: JSONValue, now: Date) -> [JSONValue] {
        let first = o["firstTimestamp"]?.stringValue ?? o["eventTime"]?.stringValue ?? o["metadata"]?["creationTimestamp"]?.stringValue
        let last = o["lastTimestamp"]?.stringValue ?? o["series"]?["lastObservedTime"]?.stringValue ?? first
        let count = o["count"]?.int64Value ?? o["series"]?["count"]?.int64Value ?? 1
        var lastSeen = ageString(last, now: now)
        if count > 1 { lastSeen += " (x\(count) over \(ageString(first, now: now)))" }
        let involved = o["involvedObject"]
        let object = (involved?["kind"]?.stringValue ?? "").lowercased() + "/" + (involved?["name"]?.stringValue ?? "")
        var source = o["source"]?["component"]?.stringValue ?? o["reportingComponent"]?.stringValue ?? ""
        if let host = o["source"]?["host"]?.stringValue, !host.isEmpty { source += ", " + host }
        return [.string(lastSeen), str(o["type"]), str(o["reason"]), .string(object), str(involved?["fieldPath"]),
                .string(source), str(o["message"]), .string(ageString(first, now: now)), .string(String(count)),
                str(o["metadata"]?["name"])]
    }

    static func serviceCells(_ o: JSONValue, name: JSONValue, age: JSONValue) -> [JSONValue] {
        let spec = o["spec"]
        let type = spec?["type"]?.stringValue ?? "ClusterIP"
        var external = "<none>"
        let ingress = (o["status"]?["loadBalancer"]?["ingress"]?.arrayValue ?? []).compactMap { $0["ip"]?.stringValue ?? $0["hostname"]?.stringValue }
        let externalIPs = (spec?["externalIPs"]?.arrayValue ?? []).compactMap(\.stringValue)
        switch type {
        case "ExternalName": external = spec?["externalName"]?.stringValue ?? "<none>"
        case "LoadBalancer":
            let all = ingress + externalIPs
            external = all.isEmpty ? "<pending>" : all.joined(separator: ",")
        default:
            if !externalIPs.isEmpty { external = externalIPs.joined(separator: ",") }
        }
        let ports = (spec?["ports"]?.arrayValue ?? []).map { p -> String in
            let port = p["port"]?.int64Value ?? 0
            let proto = p["protocol"]?.stringValue ?? "TCP"
            if let nodePort = p["nodePort"]?.int64Value, nodePort != 0 { return "\(port):\(nodePort)/\(proto)" }
            return "\(port)/\(proto)"
        }
        let selector = (spec?["selector"]?.objectValue ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.stringValue ?? "")" }
        return [name, .string(type), str(spec?["clusterIP"], or: "<none>"), .string(external),
                .string(ports.isEmpty ? "<none>" : ports.joined(separator: ",")), age,
                .string(selector.isEmpty ? "<none>" : selector.joined(separator: ","))]
    }
}

// The workload printers (printStatefulSet, printDeployment, printReplicaSet, printJob,
// printControllerRevision).
extension TablePrinter {
    static func workloadWideColumns(selector: Bool) -> [TableColumn] {
        var columns = [col("Containers", priority: 1, "Names of each container in the template."),
                       col("Images", priority: 1, "Images referenced by each container in the template.")]
        if selector { columns.append(col("Selector", priority: 1, "Label selector for pods. Existing pods selected by this will be the ones affected by this object.")) }
        return columns
    }

    static func workloadCells(kind: String, _ o: JSONValue, name: JSONValue, age: JSONValue, now: Date) -> [JSONValue] {
        let spec = o["spec"], status = o["status"]
        func count(_ v: JSONValue?) -> Int64 { v?.int64Value ?? 0 }
        let containers = spec?["template"]?["spec"]?["containers"]?.arrayValue ?? []
        let wide: [JSONValue] = [
            .string(containers.compactMap { $0["name"]?.stringValue }.joined(separator: ",")),
            .string(containers.compactMap { $0["image"]?.stringValue }.joined(separator: ",")),
        ]
        let selector: JSONValue = .string(selectorText(spec?["selector"]))
        switch kind {
        case "StatefulSet":
            return [name, .string("\(count(status?["readyReplicas"]))/\(count(spec?["replicas"]))"), age] + wide
        case "Deployment":
            return [name, .string("\(count(status?["readyReplicas"]))/\(count(spec?["replicas"]))"),
                    .integer(count(status?["updatedReplicas"])), .integer(count(status?["availableReplicas"])), age] + wide + [selector]
        case "ReplicaSet":
            return [name, .integer(count(spec?["replicas"])), .integer(count(status?["replicas"])),
                    .integer(count(status?["readyReplicas"])), age] + wide + [selector]
        case "Job":
            let succeeded = count(status?["succeeded"])
            let completions: String
            if let wanted = spec?["completions"]?.int64Value {
                completions = "\(succeeded)/\(wanted)"
            } else if count(spec?["parallelism"]) > 1 {
                completions = "\(succeeded)/1 of \(count(spec?["parallelism"]))"
            } else {
                completions = "\(succeeded)/1"
            }
            let conditions = status?["conditions"]?.arrayValue ?? []
            func holds(_ type: String) -> Bool {
                conditions.contains { $0["type"]?.stringValue == type && $0["status"]?.stringValue == "True" }
            }
            let state: String
            if holds("Complete") { state = "Complete" }
            else if holds("Failed") { state = "Failed" }
            else if o["metadata"]?["deletionTimestamp"] != nil { state = "Terminating" }
            else if holds("SuccessCriteriaMet") { state = "SuccessCriteriaMet" }
            else if holds("FailureTarget") { state = "FailureTarget" }
            else if holds("Suspended") { state = "Suspended" }
            else { state = "Running" }
            var duration = ""
            if let start = status?["startTime"]?.stringValue.flatMap({ try? Time(rfc3339: $0).date }) {
                let end = status?["completionTime"]?.stringValue.flatMap({ try? Time(rfc3339: $0).date }) ?? now
                duration = humanDuration(seconds: Int64(end.timeIntervalSince(start)))
            }
            return [name, .string(state), .string(completions), .string(duration), age] + wide + [selector]
        default:  // ControllerRevision
            let controller = (o["metadata"]?["ownerReferences"]?.arrayValue ?? []).first { $0["controller"]?.boolValue == true }
            var controllerText = "<none>"
            if let controller, let kind = controller["kind"]?.stringValue, let ownerName = controller["name"]?.stringValue {
                let group = (controller["apiVersion"]?.stringValue ?? "").split(separator: "/").dropLast().first.map(String.init) ?? ""
                controllerText = kind.lowercased() + (group.isEmpty ? "" : "." + group) + "/" + ownerName
            }
            return [name, .string(controllerText), .integer(count(o["revision"])), age]
        }
    }

    /// `metav1.FormatLabelSelector`: `<none>` for nothing, `<invalid>` for a bad selector.
    static func selectorText(_ selector: JSONValue?) -> String {
        guard let selector, selector != .null else { return "<none>" }
        guard let spec = try? selector.decode(as: LabelSelectorSpec.self), let parsed = try? LabelSelector(spec) else { return "<invalid>" }
        let text = parsed.description
        return text.isEmpty ? "<none>" : text
    }
}
