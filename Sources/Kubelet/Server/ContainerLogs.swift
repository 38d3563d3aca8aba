// `/containerLogs/{namespace}/{pod}/{container}`: a container's CRI log rendered as `kubectl
// logs` prints it — the current container's `<restartCount>.log`, or with `previous` the one
// before — optionally the last `tailLines` lines, since `sinceSeconds`/`sinceTime`, with
// timestamps, at most `limitBytes`; with `follow` the response stays open and streams new
// lines until the container ends or the client goes.
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
        guard FileManager.default.fileExists(atPath: path) else {
            return .text("container \"\(container)\" in pod \"\(name)\" has no log at \(path)\n", status: .badRequest)
        }
        let timestamps = query["timestamps"] == "true"
        let tail = query["tailLines"].flatMap { Int($0) }
        let since: String? = {
            if let seconds = query["sinceSeconds"].flatMap(Int.init) { return CRILog.timestamp(Date().addingTimeInterval(-Double(seconds))) }
            if let time = query["sinceTime"], !time.isEmpty { return time }
            return nil
        }()
        let limit = query["limitBytes"].flatMap { Int($0) }
        // On a thread of its own: a chatty container's log is large, and reading and parsing it
        // would hold a thread of the cooperative pool. With tailLines only its end is read.
        let (body, initialOffset) = await onOwnThread(named: "container log") { () -> (String, Int) in
            let text: String, size: Int
            if let tail {
                (text, size) = CRILog.readEnd(path, logicalLines: tail)
            } else {
                let data = FileManager.default.contents(atPath: path) ?? Data()
                (text, size) = (String(decoding: data, as: UTF8.self), data.count)
            }
            var body = CRILog.render(CRILog.select(text, tailLines: tail, since: since), timestamps: timestamps)
            if let limit, body.utf8.count > limit { body = String(decoding: body.utf8.prefix(limit), as: UTF8.self) }
            return (body, size)
        }
        let headers: HTTPHeaders = ["Content-Type": "text/plain"]
        guard query["follow"] == "true", !previous else {
            return HTTPResponse(status: .ok, headers: headers, body: Data(body.utf8))
        }
        let runtime = kubelet.runtime
        let recordID = records.first { $0.attempt == attempt }?.id
        let head = Data(body.utf8)
        return .streaming(headers: headers) { writer in
            if !head.isEmpty { try await writer.write(head) }
            var offset = initialOffset
            var pending = Data()
            var idleAfterEnd = 0
            while !Task.isCancelled {
                let chunk = Self.read(path, from: offset)
                offset += chunk.count
                pending.append(chunk)
                if let lastNewline = pending.lastIndex(of: 0x0A) {
                    let complete = String(decoding: pending[..<lastNewline], as: UTF8.self)
                    pending = Data(pending[pending.index(after: lastNewline)...])
                    let entries = complete.split(separator: "\n").compactMap(CRILog.parse)
                    let out = CRILog.render(entries, timestamps: timestamps)
                    if !out.isEmpty { try await writer.write(Data(out.utf8)) }
                }
                // The container ended: what it wrote is read, then the stream ends.
                var ended = true
                if let recordID, case .running = runtime.state(recordID) { ended = false }
                if ended && chunk.isEmpty {
                    idleAfterEnd += 1
                    if idleAfterEnd > 2 { return }
                }
                try await Task.sleep(for: .milliseconds(chunk.isEmpty ? 200 : 20))
            }
        }
    }

    static func read(_ path: String, from offset: Int) -> Data {
        guard let handle = FileHandle(forReadingAtPath: path) else { return Data() }
        defer { try? handle.close() }
        try? handle.seek(toOffset: UInt64(offset))
        return (try? handle.read(upToCount: 1 << 20)) ?? Data()
    }
}
