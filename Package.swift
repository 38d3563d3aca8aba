// swift-tools-version: 6.1
import PackageDescription

// Ballast: a storage-centric Kubernetes. One module per component (see docs/ and
// ../shared/ARCHITECTURE.md); a module depends only on modules to its left in
// the data flow. Keep the dependency set lean: every package costs CI minutes.
let package = Package(
    name: "Ballast",
    products: [
        .executable(name: "ballast", targets: ["Ballast"]),
        .library(name: "LSMTree", targets: ["LSMTree"]),
        .library(name: "MVCCStore", targets: ["MVCCStore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
    ],
    targets: [
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .target(
            name: "LSMTree",
            dependencies: ["CLZ4", .product(name: "Atomics", package: "swift-atomics")]
        ),
        .target(
            name: "MVCCStore",
            dependencies: ["LSMTree", .product(name: "Atomics", package: "swift-atomics")]
        ),
        .executableTarget(
            name: "Ballast",
            dependencies: [
                "LSMTree", "CSQLite",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "LSMTreeTests", dependencies: ["LSMTree"]),
        .testTarget(name: "MVCCStoreTests", dependencies: ["MVCCStore"]),
    ]
)
