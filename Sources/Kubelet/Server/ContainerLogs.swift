// `/containerLogs/{namespace}/{pod}/{container}`: a container's CRI log rendered as `kubectl
// logs` prints it — the current container's `<restartCount>.log`, or with `previous` the one
// before — optionally from the last `tailLines` lines, of those the ones since
// `sinceSeconds`/`sinceTime` (upstream's order), with timestamps, at most `limitBytes`; with
// `follow` the response stays open and streams new lines, across a rotation of the log, until
// the container ends or the client goes. Rotated files are not read (upstream reads only the
// current one too).
import ClusterAPI
import Foundation
import HostSystem
import HTTPKit
import NIOHTTP1

extension KubeletHTTPServer {
    func containerLogs(namespace: String, pod name: String, container: String, query: [String: String]) async -> HTTPResponse {
        guard let pod = await findPod(namespace: namespace, name: name), pod.spec.nodeName == kubelet.configuration.nodeName else {
            return .text("pod \(namespace)/\(name) is not on node \(kubelet.configuration.nodeName)\n", status: .notFound)
        }
        let all = pod.spec.containers + (pod.spec.initContainers ?? [])
        guard all.contains(where: { $0.name == container }) else {
            return .text("container \(container) is not valid for pod \(name)\n", status: .badRequest)
        }
        let records = kubelet.runtime.records().filter { $0.podUID == pod.uid && $0.name == container }
        let statuses = ((pod.status.containerStatuses ?? []) + (pod.status.initContainerStatuses ?? []))
            .compactMap { try? $0.decode(as: ContainerStatusView.self) }
        let restartCount = max(records.map(\.attempt).max() ?? -1, Int(statuses.first { $0.name == container }?.restartCount ?? -1))
        let previous = query["previous"] == "true"
        let attempt = previous ? restartCount - 1 : restartCount
        guard restartCount >= 0 else {
            return .text("container \"\(container)\" in pod \"\(name)\" is waiting to start: ContainerCreating\n", status: .badRequest)
        }
        guard attempt >= 0 else {
            return .text("previous terminated container \"\(container)\" in pod \"\(name)\" not found\n", status: .badRequest)
        }
        let path = ContainerBuilder.logDirectory(base: kubelet.configuration.podLogsDirectory, pod: pod) + "/\(container)/\(attempt).log"
        let since: String? = {
            if let seconds = query["sinceSeconds"].flatMap(Int.init) { return CRILog.timestamp(Date().addingTimeInterval(-Double(seconds))) }
            if let time = query["sinceTime"], !time.isEmpty { return time }
            return nil
        }()
        let options = CRILogStream.Options(timestamps: query["timestamps"] == "true", since: since,
                                           limitBytes: query["limitBytes"].flatMap { Int($0) }, follow: query["follow"] == "true" && !previous)
        // The log is read in pieces of bounded size, each on a thread of its own (a blocking
        // read), and streamed as read: a chatty container's log may be larger than memory. A
        // tail starts where its lines do, found by reading the log backwards.
        let tail = query["tailLines"].flatMap { Int($0) }
        let start = await onOwnThread(named: "container log") { tail.map { CRILog.tailStart(path, logicalLines: $0) } ?? 0 }
        guard let stream = CRILogStream(path: path, from: start, options: options) else {
            return .text("container \"\(container)\" in pod \"\(name)\" has no log at \(path)\n", status: .badRequest)
        }
        let runtime = kubelet.runtime
        let recordID = records.first { $0.attempt == attempt }?.id
        return .streaming(headers: ["Content-Type": "text/plain"]) { writer in
            var idleAfterEnd = 0
            while !Task.isCancelled {
                switch await onOwnThread(named: "container log", { stream.next() }) {
                case .text(let data):
                    if !data.isEmpty { try await writer.write(data) }
                case .finished:
                    return
                case .caughtUp:
                    // Following a container that has ended: what it wrote is read, then the stream ends.
                    var ended = true
                    if let recordID, case .running = runtime.state(recordID) { ended = false }
                    if ended {
                        idleAfterEnd += 1
                        if idleAfterEnd > 2 { return }
                    }
                    try await Task.sleep(for: .milliseconds(200))
                }
            }
        }
    }
}
