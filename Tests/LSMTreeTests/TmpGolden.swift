import Testing
@testable import LSMTree
@Test func tmpGolden() {
    for s in ["", "a", "abcdefgh", "key-000123"] {
        let v = bytes(s).withUnsafeBytes { hash64($0) }
        print("GOLDEN \(s): 0x\(String(v, radix: 16, uppercase: true))")
    }
}
