// The EndpointSlice reconciler's plan (staging endpointslice `reconciler.go`, simplified to its
// outcome): given a Service's desired endpoints and the slices the controller already manages
// for it, the slices to create, update and delete, changing as little as possible:
//
// 1. each existing slice of a port set still wanted keeps the endpoints still desired (brought
//    up to date) and drops the rest;
// 2. endpoints not yet placed fill the slices being updated anyway, then other slices of their
//    port set with room, then new slices of at most `maxEndpointsPerSlice`;
// 3. slices left empty, of a port set no longer wanted or of another address type, are deleted —
//    except that a Service without endpoints keeps one empty placeholder slice.
import ClusterAPI

struct SlicePlan: Equatable {
    var create: [EndpointSlice] = []
    var update: [EndpointSlice] = []
    var delete: [EndpointSlice] = []

    var isEmpty: Bool { create.isEmpty && update.isEmpty && delete.isEmpty }
}

enum SliceReconciler {
    /// The plan for `service`. `existing` are the slices managed for it; `template` makes a new
    /// slice's metadata (labels, owner, generateName).
    static func plan(desired: DesiredEndpoints, existing: [EndpointSlice], maxEndpointsPerSlice: Int,
                     template: (_ ports: [EndpointPort]) -> EndpointSlice, labelsAndOwner: (inout EndpointSlice) -> Void) -> SlicePlan {
        var plan = SlicePlan()
        let capacity = max(1, maxEndpointsPerSlice)
        var byPorts: [[EndpointPort]: [EndpointSlice]] = [:]
        for slice in existing.sorted(by: { ($0.metadata.name ?? "") < ($1.metadata.name ?? "") }) {
            if slice.addressType != "IPv4" || desired.groups[slice.ports ?? []] == nil {
                plan.delete.append(slice)
            } else {
                byPorts[slice.ports ?? [], default: []].append(slice)
            }
        }
        if desired.count == 0 {
            // The placeholder: one empty slice, the first existing one if there is one.
            var placeholder = existing.sorted { ($0.metadata.name ?? "") < ($1.metadata.name ?? "") }
                .first { $0.addressType == "IPv4" }
            let keep = placeholder?.metadata.name
            plan.delete = existing.filter { $0.metadata.name != keep }
            if var slice = placeholder {
                let before = slice
                slice.endpoints = []
                slice.ports = []
                labelsAndOwner(&slice)
                if slice != before { plan.update.append(slice) }
            } else {
                placeholder = template([])
                plan.create.append(placeholder!)
            }
            return plan
        }
        for ports in desired.groups.keys.sorted(by: { $0.map(portKey).joined(separator: ",") < $1.map(portKey).joined(separator: ",") }) {
            let wanted = desired.groups[ports] ?? []
            var pending: [String: Endpoint] = [:]
            var order: [String] = []
            for endpoint in wanted where pending[endpoint.identity] == nil {
                pending[endpoint.identity] = endpoint
                order.append(endpoint.identity)
            }
            var slices = byPorts[ports] ?? []
            var changed = Set<Int>()
            // 1. Keep what is still desired, as desired.
            for index in slices.indices {
                let before = slices[index]
                var kept: [Endpoint] = []
                for endpoint in before.endpoints {
                    guard kept.count < capacity, let current = pending[endpoint.identity] else { continue }
                    pending[endpoint.identity] = nil
                    kept.append(current)
                }
                slices[index].endpoints = kept
                labelsAndOwner(&slices[index])
                if slices[index] != before { changed.insert(index) }
            }
            // 2. Place the rest: slices changing anyway, then slices with room, then new ones.
            var rest = order.compactMap { pending[$0] }
            let fillOrder = slices.indices.filter { changed.contains($0) } + slices.indices.filter { !changed.contains($0) }
            for index in fillOrder where !rest.isEmpty {
                let room = capacity - slices[index].endpoints.count
                guard room > 0 else { continue }
                slices[index].endpoints += rest.prefix(room)
                rest.removeFirst(min(room, rest.count))
                changed.insert(index)
            }
            while !rest.isEmpty {
                var slice = template(ports)
                slice.endpoints = Array(rest.prefix(capacity))
                rest.removeFirst(min(capacity, rest.count))
                plan.create.append(slice)
            }
            for index in slices.indices {
                if slices[index].endpoints.isEmpty {
                    plan.delete.append(slices[index])
                } else if changed.contains(index) {
                    plan.update.append(slices[index])
                }
            }
        }
        return plan
    }

    static func portKey(_ port: EndpointPort) -> String {
        "\(port.name ?? "")/\(port.protocol ?? "")/\(port.port ?? 0)"
    }
}
