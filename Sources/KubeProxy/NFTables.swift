// Runs nft transactions: each script through one `nft -f -` process (one netlink batch, all or
// nothing), bounded in time; a refusal names the table and quotes what nft said (it prints the
// offending line, which names the Service's chain).
import Foundation
import HostSystem

public enum NFTables {
    /// Whether `nft` is installed.
    public static var isInstalled: Bool { SystemCommand.resolve("nft") != "nft" }

    /// Applies `script` atomically; `check` only parses and validates it (`nft -c`).
    public static func apply(_ script: String, table: String, check: Bool = false) async throws(KubeProxyError) {
        guard isInstalled else {
            throw KubeProxyError(.nftables, "nft not found: kube-proxy programs nftables (install Debian's nftables, `make deps`)")
        }
        let command = ["nft"] + (check ? ["-c"] : []) + ["-f", "-"]
        let result: CommandResult
        do {
            result = try await SystemCommand.run(command, input: Array(script.utf8), timeout: .seconds(60), outputLimit: 64 << 10)
        } catch {
            throw KubeProxyError(.nftables, "cannot run `\(command.joined(separator: " "))` for table ip \(table): \(error)", cause: error)
        }
        guard result.status == 0 else {
            let said = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            throw KubeProxyError(.nftables, "nft refused the update of table ip \(table) (status \(result.status)): \(String(said.prefix(2000)))")
        }
    }

    /// The names of the tables of family `ip` whose names start with `prefix`.
    public static func tables(prefix: String) async -> [String] {
        guard isInstalled, let result = try? await SystemCommand.run(["nft", "list", "tables", "ip"], timeout: .seconds(30)) else { return [] }
        return result.stdout.split(separator: "\n").compactMap { line in
            let words = line.split(separator: " ")
            guard words.count == 3, words[0] == "table", words[1] == "ip", words[2].hasPrefix(prefix) else { return nil }
            return String(words[2])
        }
    }

    /// Deletes table `ip name`; returns nft's complaint, if any.
    @discardableResult
    public static func deleteTable(_ name: String) async -> String? {
        guard isInstalled else { return nil }
        let result = try? await SystemCommand.run(["nft", "delete", "table", "ip", name], timeout: .seconds(30))
        return result?.status == 0 ? nil : (result?.stderr ?? "nft did not run")
    }
}
