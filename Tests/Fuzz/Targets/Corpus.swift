import Foundation

/// The kept inputs of one target: every file under `Tests/Fuzz/Corpus/<target>/` (seeds, what
/// libFuzzer found worth keeping, and every input that ever crashed a target, as `crash-*`).
public enum FuzzCorpus {
    /// `Tests/Fuzz/Corpus`, found from this file's path (the tests and `ballast-fuzz` both
    /// run from the source tree).
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Corpus")

    public static func directory(_ target: String) -> URL { root.appendingPathComponent(target) }

    /// The target's inputs, in file-name order so that runs are reproducible.
    public static func inputs(_ target: String) -> [(name: String, bytes: [UInt8])] {
        let dir = directory(target)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().compactMap { name in
            guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent(name).path) else { return nil }
            return (name, [UInt8](data))
        }
    }
}

/// Runs a target over its corpus, then over seeded mutations until `seconds` have passed or
/// `maxRuns` inputs have run. Returns the number of inputs run. A failing input traps the
/// process; `onInput` (if given) sees each input before it runs, to save it first.
public func runFuzzTarget(_ target: FuzzTarget, seconds: Double, seed: UInt64, maxRuns: Int = .max,
                          onInput: ((_ input: [UInt8]) -> Void)? = nil) -> Int {
    let corpus = FuzzCorpus.inputs(target.name).map { Array($0.bytes.prefix(target.maxLength)) }
    var runs = 0
    for input in corpus {
        onInput?(input)
        target.run(input)
        runs += 1
    }
    var mutator = FuzzMutator(corpus: corpus, maxLength: target.maxLength, seed: seed)
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: .milliseconds(Int64(seconds * 1000)))
    while runs < maxRuns {
        if runs % 64 == 0 && clock.now >= deadline { break }
        let input = mutator.next()
        onInput?(input)
        target.run(input)
        runs += 1
    }
    return runs
}
