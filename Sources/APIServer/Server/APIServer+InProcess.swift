// The API handler without a socket: what controller tests drive through `HandlerTransport`,
// as Kubernetes' controller tests drive a fake clientset, except that here every request goes
// through the real handler (authentication, validation, admission, storage) on a real store.
import ClusterAPI
import Foundation
import HTTPKit
import Logging
import MVCCStore

extension APIServer {
    /// The handler of an API server over `store`, with the namespaces every cluster has, and
    /// a bearer token for each of `users` (`admin` in `system:masters` always has one).
    public static func inProcessHandler(store kv: any KeyValueStore, users: [UserInfo] = [], logger: Logger) async throws
        -> (handler: APIHandler, tokens: [String: String]) {
        var authenticator = TokenAuthenticator()
        var tokens: [String: String] = [:]
        for user in [UserInfo(name: "admin", uid: "admin", groups: ["system:masters"])] + users {
            let token = "in-process-" + user.name.map { $0.isLetter || $0.isNumber ? $0 : "-" }.map(String.init).joined()
                + "-" + UUID().uuidString
            authenticator.add(token: token, user: user)
            tokens[user.name] = token
        }
        let handler = APIHandler(store: ObjectStore(kv), serverAddress: "127.0.0.1:0", authenticator: authenticator, logger: logger)
        try await bootstrap(handler)
        try await handler.startWatchCache()
        return (handler, tokens)
    }
}
