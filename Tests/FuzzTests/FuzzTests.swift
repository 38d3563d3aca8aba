import Foundation
import Testing
import FuzzTargets
import TestSupport

/// Every fuzz target over its kept corpus, then over seeded mutations for a bounded time
/// (`BALLAST_FUZZ_SECONDS`, 1 s by default; `make fuzz` runs libFuzzer for longer). A failing
/// input traps the test process; the line printed before it names the target and the seed,
/// and `ballast-fuzz run TARGET --seed S --record FILE` reproduces it and saves the input.
@Suite struct FuzzTests {
    static let seconds = ProcessInfo.processInfo.environment["BALLAST_FUZZ_SECONDS"].flatMap(Double.init) ?? 1
    static let seed = ProcessInfo.processInfo.environment["BALLAST_FUZZ_SEED"].flatMap(UInt64.init)
        ?? UInt64.random(in: 0 ... .max)

    @Test(arguments: FuzzTargets.all.map(\.name))
    func target(_ name: String) async throws {
        let target = try #require(FuzzTargets.named(name))
        print("fuzz \(name): seed \(Self.seed), \(Self.seconds) s (reproduce: ballast-fuzz run \(name) --seed \(Self.seed))")
        // On a thread of its own: a second of computing would otherwise hold a pool thread.
        let runs = try await onOwnThread { runFuzzTarget(target, seconds: Self.seconds, seed: Self.seed) }
        #expect(runs > FuzzCorpus.inputs(name).count, "the mutator ran after the corpus")
    }

    @Test func everyTargetHasACorpus() {
        for target in FuzzTargets.all {
            #expect(!FuzzCorpus.inputs(target.name).isEmpty, "Tests/Fuzz/Corpus/\(target.name)/ holds at least one seed input")
        }
    }

    @Test func corpusFoldersBelongToTargets() throws {
        let names = Set(FuzzTargets.all.map(\.name))
        let folders = try FileManager.default.contentsOfDirectory(atPath: FuzzCorpus.root.path).filter { !$0.hasPrefix(".") }
        for folder in folders {
            #expect(names.contains(folder), "Tests/Fuzz/Corpus/\(folder) has no target of that name")
        }
    }
}
