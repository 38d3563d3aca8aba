import ClusterAPI
import Foundation

/// A column of a `meta.k8s.io/v1` Table.
public struct TableColumn: Sendable, Equatable {
    public var name: String
    public var type: String
    public var format: String = ""
    public var description: String = ""
    /// 0: always shown; 1: only with `-o wide`.
    public var priority: Int = 0

    var json: JSONValue {
        ["name": .string(name), "type": .string(type), "format": .string(format),
         "description": .string(description), "priority": .integer(Int64(priority))]
    }
}

/// What `rows[].object` carries (`includeObject`).
public enum IncludeObject: String, Sendable {
    case none = "None"
    case metadata = "Metadata"
    case object = "Object"
}

/// Server-side printing: Kubernetes' own columns for each kind (the 1.32 printers),
/// `Name`/`Age` for the rest.
public enum TablePrinter {
    static func col(_ name: String, _ type: String = "string", format: String = "", priority: Int = 0, _ description: String = "") -> TableColumn {
        TableColumn(name: name, type: type, format: format, description: description, priority: priority)
    }

    static let nameColumn = col("Name", format: "name", "Name must be unique within a namespace.")
    static let ageColumn = col("Age", "CreationTimestamp is a timestamp representing the server time when this object was created.")

    /// The columns for objects of `kind`.
    public static func columns(kind: String) -> [TableColumn] {
        switch kind {
        case "Pod":
            return [nameColumn, col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
                    col("Status", "The aggregate status of the containers in this pod."),
                    col("Restarts", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
                    ageColumn, col("IP", priority: 1, "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
                    col("Node", priority: 1, "NodeName is a request to schedule this pod onto a specific node."),
                    col("Nominated Node", priority: 1, "nominatedNodeName is set when this pod preempts other pods on the node."),
                    col("Readiness Gates", priority: 1, "If specified, all readiness gates will be evaluated for pod readiness.")]
        case "Node":
            return [nameColumn, col("Status", "The status of the node"), col("Roles", "The roles of the node"), ageColumn,
                    col("Version", "Kubelet Version reported by the node."),
                    col("Internal-IP", priority: 1, "List of addresses reachable to the node. Queried from cloud provider, if available."),
                    col("External-IP", priority: 1, "List of addresses reachable to the node. Queried from cloud provider, if available."),
                    col("OS-Image", priority: 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
                    col("Kernel-Version", priority: 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
                    col("Container-Runtime", priority: 1, "Container runtime version reported by the node through runtime remote API (e.g. containerd://1.4.2).")]
        case "Namespace":
            return [nameColumn, col("Status", "The status of the namespace"), ageColumn]
        case "PersistentVolume":
            return [nameColumn, col("Capacity"), col("Access Modes"), col("Reclaim Policy"), col("Status"), col("Claim"),
                    col("StorageClass"), col("VolumeAttributesClass"), col("Reason"), ageColumn, col("VolumeMode", priority: 1)]
        case "PersistentVolumeClaim":
            return [nameColumn, col("Status"), col("Volume"), col("Capacity"), col("Access Modes"), col("StorageClass"),
                    col("VolumeAttributesClass"), ageColumn, col("VolumeMode", priority: 1)]
        case "Event":
            return [col("Last Seen"), col("Type"), col("Reason"), col("Object"), col("Subobject", priority: 1),
                    col("Source", priority: 1), col("Message"), col("First Seen", priority: 1),
                    col("Count", priority: 1), col("Name", priority: 1)]
        case "StorageClass":
            return [nameColumn, col("Provisioner"), col("ReclaimPolicy"), col("VolumeBindingMode"),
                    col("AllowVolumeExpansion"), ageColumn]
        case "VolumeAttachment":
            return [nameColumn, col("Attacher"), col("PV"), col("Node"), col("Attached", "boolean"), ageColumn]
        case "CSIDriver":
            return [nameColumn, col("AttachRequired", "boolean"), col("PodInfoOnMount", "boolean"), col("StorageCapacity", "boolean"),
                    col("TokenRequests"), col("RequiresRepublish", "boolean"), col("Modes"), ageColumn]
        case "CSINode":
            return [nameColumn, col("Drivers", "integer"), ageColumn]
        case "Lease":
            return [nameColumn, col("Holder"), ageColumn]
        case "Service":
            return [nameColumn, col("Type"), col("Cluster-IP"), col("External-IP"), col("Port(s)"), ageColumn,
                    col("Selector", priority: 1)]
        case "Endpoints":
            return [nameColumn, col("Endpoints"), ageColumn]
        case "EndpointSlice":
            return [nameColumn, col("AddressType"), col("Ports"), col("Endpoints"), ageColumn]
        case "ConfigMap":
            return [nameColumn, col("Data", "integer"), ageColumn]
        case "Secret":
            return [nameColumn, col("Type"), col("Data", "integer"), ageColumn]
        case "StatefulSet":
            return [nameColumn, col("Ready", "Number of the pod with ready state"), ageColumn] + workloadWideColumns(selector: false)
        case "Deployment":
            return [nameColumn, col("Ready", "Number of the pod with ready state"),
                    col("Up-to-date", "integer", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
                    col("Available", "integer", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
                    ageColumn] + workloadWideColumns(selector: true)
        case "ReplicaSet":
            return [nameColumn, col("Desired", "integer", "Replicas is the number of desired replicas."),
                    col("Current", "integer", "Replicas is the most recently observed number of replicas."),
                    col("Ready", "integer", "The number of ready replicas for this replica set."),
                    ageColumn] + workloadWideColumns(selector: true)
        case "Job":
            return [nameColumn, col("Status", "Status of the job."),
                    col("Completions", "The completion status of the job."),
                    col("Duration", "Time required to complete the job."), ageColumn] + workloadWideColumns(selector: true)
        case "CustomResourceDefinition":
            return [nameColumn, col("Created At", "date", "CreationTimestamp is a timestamp representing the server time when this object was created.")]
        case "ControllerRevision":
            return [nameColumn, col("Controller", "Controller of the object."),
                    col("Revision", "integer", "Revision of the ControllerRevision."), ageColumn]
        default:
            return [nameColumn, ageColumn]
        }
    }

    /// The cells of one object's row (one per column of `columns(kind:)`).
    public static func cells(kind: String, _ o: JSONValue, now: Date = Date()) -> [JSONValue] {
        let name = JSONValue.string(o["metadata"]?["name"]?.stringValue ?? "")
        let age = JSONValue.string(ageString(o["metadata"]?["creationTimestamp"]?.stringValue, now: now))
        switch kind {
        case "Pod": return podCells(o, name: name, age: age)
        case "Node": return nodeCells(o, name: name, age: age)
        case "Namespace":
            return [name, .string(o["status"]?["phase"]?.stringValue ?? ""), age]
        case "PersistentVolume": return pvCells(o, name: name, age: age)
        case "PersistentVolumeClaim": return pvcCells(o, name: name, age: age)
        case "Event": return eventCells(o, now: now)
        case "StorageClass":
            var display = o["metadata"]?["name"]?.stringValue ?? ""
            let annotations = o["metadata"]?["annotations"]
            if annotations?["storageclass.kubernetes.io/is-default-class"]?.stringValue == "true"
                || annotations?["storageclass.beta.kubernetes.io/is-default-class"]?.stringValue == "true" {
                display += " (default)"
            }
            return [.string(display), .string(o["provisioner"]?.stringValue ?? ""),
                    .string(o["reclaimPolicy"]?.stringValue ?? "Delete"),
                    .string(o["volumeBindingMode"]?.stringValue ?? "Immediate"),
                    .string(o["allowVolumeExpansion"]?.boolValue == true ? "true" : "false"), age]
        case "VolumeAttachment":
            return [name, .string(o["spec"]?["attacher"]?.stringValue ?? ""),
                    .string(o["spec"]?["source"]?["persistentVolumeName"]?.stringValue ?? ""),
                    .string(o["spec"]?["nodeName"]?.stringValue ?? ""),
                    .bool(o["status"]?["attached"]?.boolValue ?? false), age]
        case "CSIDriver":
            let spec = o["spec"]
            let tokens = (spec?["tokenRequests"]?.arrayValue ?? []).compactMap { $0["audience"]?.stringValue }
            let modes = (spec?["volumeLifecycleModes"]?.arrayValue ?? []).compactMap(\.stringValue)
            return [name, .bool(spec?["attachRequired"]?.boolValue ?? true), .bool(spec?["podInfoOnMount"]?.boolValue ?? false),
                    .bool(spec?["storageCapacity"]?.boolValue ?? false),
                    .string(tokens.isEmpty ? "<unset>" : tokens.joined(separator: ",")),
                    .bool(spec?["requiresRepublish"]?.boolValue ?? false),
                    .string(modes.isEmpty ? "<none>" : modes.joined(separator: ",")), age]
        case "CSINode":
            return [name, .integer(Int64(o["spec"]?["drivers"]?.arrayValue?.count ?? 0)), age]
        case "Lease":
            return [name, .string(o["spec"]?["holderIdentity"]?.stringValue ?? "<unknown>"), age]
        case "Service": return serviceCells(o, name: name, age: age)
        case "ConfigMap":
            return [name, .integer(Int64((o["data"]?.objectValue?.count ?? 0) + (o["binaryData"]?.objectValue?.count ?? 0))), age]
        case "Secret":
            return [name, .string(o["type"]?.stringValue ?? ""), .integer(Int64(o["data"]?.objectValue?.count ?? 0)), age]
        case "Endpoints":
            var endpoints: [String] = []
            for subset in o["subsets"]?.arrayValue ?? [] {
                let ports = (subset["ports"]?.arrayValue ?? []).compactMap { $0["port"]?.int64Value }
                for address in subset["addresses"]?.arrayValue ?? [] {
                    let ip = address["ip"]?.stringValue ?? ""
                    if ports.isEmpty { endpoints.append(ip) } else { endpoints += ports.map { "\(ip):\($0)" } }
                }
            }
            let shown = endpoints.count > 3 ? endpoints.prefix(3).joined(separator: ",") + " + \(endpoints.count - 3) more..." : endpoints.joined(separator: ",")
            return [name, .string(endpoints.isEmpty ? "<none>" : shown), age]
        case "EndpointSlice":
            // printEndpointSlice: the first three ports (by number, else name, else *) and
            // addresses, then "+ N more...".
            let ports = (o["ports"]?.arrayValue ?? []).map { port in
                port["port"]?.int64Value.map(String.init) ?? port["name"]?.stringValue ?? "*"
            }
            let addresses = (o["endpoints"]?.arrayValue ?? []).flatMap { ($0["addresses"]?.arrayValue ?? []).compactMap(\.stringValue) }
            return [name, .string(o["addressType"]?.stringValue ?? ""), .string(listWithMore(ports)), .string(listWithMore(addresses)), age]
        case "CustomResourceDefinition":
            return [name, .string(o["metadata"]?["creationTimestamp"]?.stringValue ?? "")]
        case "StatefulSet", "Deployment", "ReplicaSet", "Job", "ControllerRevision":
            return workloadCells(kind: kind, o, name: name, age: age, now: now)
        default:
            return [name, age]
        }
    }

    /// kubectl's `listWithMoreString`: at most three items, `<unset>` for none.
    static func listWithMore(_ items: [String], max: Int = 3) -> String {
        if items.count > max { return items.prefix(max).joined(separator: ",") + " + \(items.count - max) more..." }
        return items.isEmpty ? "<unset>" : items.joined(separator: ",")
    }

    /// A Table of `objects`; `includeObject` picks what each row's `object` carries.
    /// `custom`: a custom resource's `additionalPrinterColumns` (empty: Name and Age).
    public static func table(kind: String, objects: [JSONValue], listMeta: JSONValue, include: IncludeObject,
                             withColumns: Bool = true, custom: [CustomResourceColumnDefinition]? = nil, now: Date = Date()) -> JSONValue {
        let rows: [JSONValue] = objects.map { object in
            let rowCells = custom.map { customCells($0, object, now: now) } ?? cells(kind: kind, object, now: now)
            var row: JSONValue = ["cells": .array(rowCells)]
            switch include {
            case .none: break
            case .object: row["object"] = object
            case .metadata:
                row["object"] = ["kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                 "metadata": object["metadata"] ?? [:]]
            }
            return row
        }
        var table: JSONValue = ["kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": listMeta, "rows": .array(rows)]
        let definitions = custom.map(customColumns) ?? columns(kind: kind)
        table["columnDefinitions"] = withColumns ? .array(definitions.map(\.json)) : .array([])
        return table
    }

    // MARK: Helpers

    static func ageString(_ timestamp: String?, now: Date) -> String {
        guard let timestamp, let time = try? Time(rfc3339: timestamp) else { return "<unknown>" }
        return humanDuration(seconds: max(0, Int64(now.timeIntervalSince1970) - time.secondsSinceEpoch))
    }

    static func accessModes(_ modes: JSONValue?) -> String {
        let short = ["ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"]
        var seen: [String] = []
        for m in (modes?.arrayValue ?? []).compactMap(\.stringValue) {
            let s = short[m] ?? m
            if !seen.contains(s) { seen.append(s) }
        }
        return seen.joined(separator: ",")
    }

    static func str(_ v: JSONValue?, or fallback: String = "") -> JSONValue {
        .string(v?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? fallback)
    }

    // MARK: Custom resources

    /// Name, then the definition's columns; Name and Age when it has none (apiextensions-apiserver's
    /// table convertor).
    static func customColumns(_ definitions: [CustomResourceColumnDefinition]) -> [TableColumn] {
        if definitions.isEmpty { return [nameColumn, ageColumn] }
        return [nameColumn] + definitions.map {
            col($0.name, $0.type == "date" ? "string" : $0.type, format: $0.format ?? "", priority: Int($0.priority ?? 0), $0.description ?? "")
        }
    }

    /// The cells of the definition's columns: the JSONPath's value as found (several joined by
    /// commas), dates shown as an age.
    static func customCells(_ definitions: [CustomResourceColumnDefinition], _ o: JSONValue, now: Date) -> [JSONValue] {
        let name = JSONValue.string(o["metadata"]?["name"]?.stringValue ?? "")
        if definitions.isEmpty { return [name, .string(ageString(o["metadata"]?["creationTimestamp"]?.stringValue, now: now))] }
        return [name] + definitions.map { column in
            guard let path = try? SimpleJSONPath(column.jsonPath) else { return .null }
            let values = path.evaluate(o)
            guard let first = values.first else { return .null }
            if values.count > 1 {
                return .string(values.map { $0.stringValue ?? String(decoding: $0.jsonBytes, as: UTF8.self) }.joined(separator: ","))
            }
            switch first {
            case .string(let text) where column.type == "date": return .string(ageString(text, now: now))
            case .object, .array: return .string(String(decoding: first.jsonBytes, as: UTF8.self))
            default: return first  // as found, whatever the column's declared type (as Kubernetes does)
            }
        }
    }
}
