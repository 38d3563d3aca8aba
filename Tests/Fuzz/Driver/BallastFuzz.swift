// `ballast-fuzz`: runs the fuzz targets of Tests/Fuzz/Targets outside the test suite.
//
//   ballast-fuzz list
//   ballast-fuzz run TARGET [--seconds N] [--seed S] [--record FILE]   seeded mutations (any build)
//   ballast-fuzz libfuzzer TARGET [libFuzzer flags]                    coverage-guided (`make fuzz`)
//
// `run` is the same loop `make test` runs; `--record FILE` writes each input to FILE before it
// runs, so after a crash FILE holds the input that crashed. `libfuzzer` exists in builds made
// with `-DBALLAST_LIBFUZZER` and the coverage flags (`make fuzz` makes one in .build-fuzz);
// its corpus is the target's folder under Tests/Fuzz/Corpus, where crashes are written too.
import Foundation
import FuzzTargets

#if BALLAST_LIBFUZZER
typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: FuzzCallback) -> Int32
nonisolated(unsafe) var libFuzzerTarget: FuzzTarget?
#endif

@main struct BallastFuzz {
    static func main() {
        var args = Array(CommandLine.arguments.dropFirst())
        guard let command = args.first else { usage() }
        args.removeFirst()
        switch command {
        case "list":
            for target in FuzzTargets.all {
                print(target.name, FuzzCorpus.inputs(target.name).count, "inputs", separator: "\t")
            }
        case "run":
            guard let name = args.first, let target = FuzzTargets.named(name) else { unknown(args.first) }
            var seconds = 10.0, seed = UInt64.random(in: 0 ... .max), record: String?
            var rest = args.dropFirst()
            while let flag = rest.popFirst() {
                guard let value = rest.popFirst() else { fail("\(flag) needs a value") }
                switch flag {
                case "--seconds": seconds = Double(value) ?? { fail("--seconds: not a number: \(value)") }()
                case "--seed": seed = UInt64(value) ?? { fail("--seed: not an unsigned integer: \(value)") }()
                case "--record": record = value
                default: fail("unknown flag \(flag)")
                }
            }
            print("fuzz \(name): seed \(seed), \(seconds) s")
            let runs = runFuzzTarget(target, seconds: seconds, seed: seed, onInput: record.map { path in
                { input in FileManager.default.createFile(atPath: path, contents: Data(input)) }
            })
            print("fuzz \(name): \(runs) inputs, no failure")
        case "libfuzzer":
            guard let name = args.first, let target = FuzzTargets.named(name) else { unknown(args.first) }
            runLibFuzzer(target, flags: Array(args.dropFirst()))
        default:
            usage()
        }
    }

    static func runLibFuzzer(_ target: FuzzTarget, flags: [String]) -> Never {
        #if BALLAST_LIBFUZZER
        let corpus = FuzzCorpus.directory(target.name).path
        try? FileManager.default.createDirectory(atPath: corpus, withIntermediateDirectories: true)
        libFuzzerTarget = target
        let argv0 = CommandLine.arguments[0]
        let all = [argv0, "-max_len=\(target.maxLength)", "-artifact_prefix=\(corpus)/"] + flags + [corpus]
        var cArgs: [UnsafeMutablePointer<CChar>?] = all.map { strdup($0) } + [nil]
        var argc = Int32(all.count)
        let code = cArgs.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buffer.baseAddress
            return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
                let bytes = size == 0 ? [] : [UInt8](UnsafeBufferPointer(start: data, count: size))
                libFuzzerTarget!.run(bytes)
                return 0
            }
        }
        exit(code)
        #else
        fail("this ballast-fuzz was built without libFuzzer: use `make fuzz` (or `run` for seeded mutations)")
        #endif
    }

    static func unknown(_ name: String?) -> Never {
        fail("unknown target \(name ?? "(none)"); `ballast-fuzz list` shows them: "
            + FuzzTargets.all.map(\.name).joined(separator: ", "))
    }

    static func usage() -> Never {
        fail("usage: ballast-fuzz list | run TARGET [--seconds N] [--seed S] [--record FILE] | libfuzzer TARGET [flags]")
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("ballast-fuzz: \(message)\n".utf8))
        exit(2)
    }
}
