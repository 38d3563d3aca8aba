import Foundation
import HTTPKit

/// Who made a request.
public struct UserInfo: Sendable, Hashable {
    public var name: String
    public var uid: String
    public var groups: [String]

    public init(name: String, uid: String = "", groups: [String] = []) {
        self.name = name
        self.uid = uid
        self.groups = groups
    }

    /// Every authenticated user is also in `system:authenticated`.
    public var allGroups: [String] { groups.contains("system:authenticated") ? groups : groups + ["system:authenticated"] }
}

/// Static bearer tokens (Kubernetes' `--token-auth-file`): lines of
/// `token,user,uid[,"group1,group2"]`; blank lines and `#` comments are skipped.
public struct TokenAuthenticator: Sendable {
    private var tokens: [String: UserInfo]

    public init(tokens: [String: UserInfo] = [:]) { self.tokens = tokens }

    public enum LoadError: Error, CustomStringConvertible {
        case unreadable(path: String, reason: String)
        case malformed(path: String, line: Int, reason: String)

        public var description: String {
            switch self {
            case .unreadable(let path, let reason): return "token auth file \(path): \(reason)"
            case .malformed(let path, let line, let reason):
                return "token auth file \(path), line \(line): \(reason); expected token,user,uid,\"group1,group2\""
            }
        }
    }

    /// Parses the CSV text of a token file.
    public static func parse(_ text: String, path: String = "<tokens>") throws(LoadError) -> TokenAuthenticator {
        var tokens: [String: UserInfo] = [:]
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = splitCSV(line)
            guard fields.count >= 3 else {
                throw .malformed(path: path, line: index + 1, reason: "found \(fields.count) fields, need at least 3")
            }
            let token = fields[0], user = fields[1]
            guard !token.isEmpty else { throw .malformed(path: path, line: index + 1, reason: "empty token") }
            guard !user.isEmpty else { throw .malformed(path: path, line: index + 1, reason: "empty user name") }
            var groups: [String] = []
            if fields.count >= 4 {
                groups = fields[3].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            }
            if tokens[token] != nil { throw .malformed(path: path, line: index + 1, reason: "duplicate token") }
            tokens[token] = UserInfo(name: user, uid: fields[2], groups: groups)
        }
        return TokenAuthenticator(tokens: tokens)
    }

    /// Reads a token file; one that group or others can read is refused (tokens are secrets).
    public static func load(file path: String) throws(LoadError) -> TokenAuthenticator {
        let data: Data?
        do {
            data = try SecretFiles.read(path)
        } catch {
            throw .unreadable(path: path, reason: "\(error)")
        }
        guard let data else { throw .unreadable(path: path, reason: "no such file") }
        return try parse(String(decoding: data, as: UTF8.self), path: path)
    }

    /// Adds (or replaces) one token.
    public mutating func add(token: String, user: UserInfo) { tokens[token] = user }

    /// The user of `token`, or nil.
    public func authenticate(_ token: String) -> UserInfo? { tokens[token] }

    /// The first token of a `system:masters` member, for the admin kubeconfig.
    public var adminToken: String? {
        tokens.filter { $0.value.groups.contains("system:masters") }.keys.sorted().first
    }

    /// Splits one CSV line; a field in double quotes may hold commas, `""` is a quote.
    static func splitCSV(_ line: String) -> [String] {
        var fields: [String] = []
        var current = ""
        var quoted = false
        var chars = Array(line)[...]
        while let c = chars.popFirst() {
            if quoted {
                if c == "\"" {
                    if chars.first == "\"" { current.append("\""); chars = chars.dropFirst() } else { quoted = false }
                } else {
                    current.append(c)
                }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                fields.append(current.trimmingCharacters(in: .whitespaces))
                current = ""
            } else {
                current.append(c)
            }
        }
        fields.append(current.trimmingCharacters(in: .whitespaces))
        return fields
    }
}
