// A target that checks the drivers themselves: the mutator must produce inputs within the
// target's bound, and the corpus must load.
extension FuzzTargets {
    static let selfTest: [FuzzTarget] = [
        FuzzTarget("mutator", maxLength: 64) { input in
            var mutator = FuzzMutator(corpus: [input], maxLength: 64, seed: UInt64(input.count))
            for _ in 0..<8 { fuzzCheck(mutator.next().count <= 64, "the mutator exceeded maxLength") }
        },
    ]
}
