// The fuzz targets: one per parser that faces the network or a file. Each target takes
// arbitrary bytes and must return normally for every input: a parse error is caught inside
// the target (it is the expected answer to bad input); a trap, a hang or unbounded growth is
// a bug. A target may check a property of what it parsed (a round trip, a bound) with
// `fuzzCheck`, which traps so that libFuzzer and the test runner both report it.
//
// Two drivers run them (docs/security.md, "Fuzzing"):
// - `Tests/FuzzTests` (Swift Testing, part of `make test`): every input kept under
//   `Tests/Fuzz/Corpus/<target>/`, then seeded mutations of them for a bounded time;
// - `ballast-fuzz` (`make fuzz`): the same targets under libFuzzer, coverage-guided, for as
//   long as you let it run, adding what it finds to the corpus.
//
// Areas add their targets in their own file as `extension FuzzTargets { static let <area> }`
// and list them in `all` below.

/// One fuzz target: a name (also its corpus folder) and a function of arbitrary bytes.
public struct FuzzTarget: Sendable {
    public let name: String
    /// Inputs longer than this are cut before `run` sees them (libFuzzer's `-max_len`).
    public let maxLength: Int
    public let run: @Sendable ([UInt8]) -> Void

    public init(_ name: String, maxLength: Int = 4096, run: @escaping @Sendable ([UInt8]) -> Void) {
        self.name = name
        self.maxLength = maxLength
        self.run = run
    }
}

public enum FuzzTargets {
    /// Every target, by area.
    public static var all: [FuzzTarget] { store + api + node + units + dns + selfTest }

    public static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}

/// Traps with `message` when `condition` is false: the way a target reports a broken property.
public func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                      file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError("fuzz property failed: \(message())", file: file, line: line) }
}
