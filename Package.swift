// swift-tools-version: 6.1
import PackageDescription

// Ballast: a storage-centric Kubernetes. One module per component (see docs/ and
// ../shared/ARCHITECTURE.md); a module depends only on modules to its left in
// the data flow. Keep the dependency set lean: every package costs CI minutes.
let package = Package(
    name: "Ballast",
    products: [
        .executable(name: "ballast", targets: ["Ballast"]),
        // The kubelet's per-container shim, a small C executable found beside `ballast`
        // (`swift build --product ballast` alone does not build it: build both, or everything).
        .executable(name: "ballast-shim", targets: ["BallastShim"]),
        .library(name: "LSMTree", targets: ["LSMTree"]),
        .library(name: "MVCCStore", targets: ["MVCCStore"]),
        .executable(name: "ballast-fuzz", targets: ["BallastFuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    ],
    targets: [
        .systemLibrary(name: "CLZ4", pkgConfig: "liblz4", providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // The project's one seeded generator, one varint reader and writer, and one gate of
        // concurrent turns (package access).
        .target(name: "Primitives"),
        .target(
            name: "LSMTree",
            dependencies: ["CLZ4", "Primitives", .product(name: "Atomics", package: "swift-atomics")]
        ),
        .target(
            name: "MVCCStore",
            dependencies: ["LSMTree", "Primitives", .product(name: "Atomics", package: "swift-atomics")]
        ),
        // Durations (Go's syntax) and byte sizes as flags, configs and query parameters write them.
        .target(name: "Units"),
        .target(name: "ClusterAPI"),
        .target(name: "SQLite", dependencies: ["CSQLite"]),
        // What a node does to the kernel: child processes, loop devices, mounts, file systems.
        .target(name: "CHostSystem"),
        .target(name: "HostSystem", dependencies: ["CHostSystem"]),
        .target(
            name: "HTTPKit",
            dependencies: [
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "CloudProvider",
            dependencies: [
                "SQLite", "HTTPKit", "HostSystem", "Units", "Primitives",
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "APIClient",
            dependencies: [
                "ClusterAPI", "HTTPKit", .product(name: "Yams", package: "Yams"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "CloudControllerManager",
            dependencies: [
                "ClusterAPI", "CloudProvider", "APIClient", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The PV binder, the built-in CSI sidecars (provisioner, attacher, resizer), attach/detach,
        // protection and node lifecycle: between the API server (APIClient) and a CSI controller socket.
        .target(
            name: "ControllerManager",
            dependencies: [
                "ClusterAPI", "APIClient", "CSIProto",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // kube-scheduler's framework on APIClient: filters, scores, the scheduling queue and the
        // volume-aware plugins (VolumeBinding, NodeVolumeLimits, VolumeRestrictions); binds pods.
        .target(
            name: "Scheduler",
            dependencies: [
                "ClusterAPI", "APIClient", "Primitives",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The CSI v1 protos, generated (scripts/generate-protos.sh) and committed.
        .target(
            name: "CSIProto",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            exclude: ["README.md"]
        ),
        .target(
            name: "CSIDriver",
            dependencies: [
                "CloudProvider", "CSIProto", "HostSystem",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "GRPCWire",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
            ]
        ),
        .target(
            name: "EtcdAPI",
            dependencies: [
                "MVCCStore", "LSMTree", "GRPCWire",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "APIServer",
            dependencies: [
                "ClusterAPI", "MVCCStore", "HTTPKit", "Units", "Primitives",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The kubelet's C: subreaper, pseudo-terminals, whiteouts (variadic calls and macros), the
        // pause process, and what the kubelet and its shim share (record names and JSON, CRI log lines).
        .target(name: "CKubelet"),
        // `ballast-shim`: the per-container shim, in C and linked statically so that it starts in
        // well under a millisecond (no_swift_runtime.c says why nothing of Swift's is in it).
        .executableTarget(name: "BallastShim", dependencies: ["CKubelet"], linkerSettings: [.unsafeFlags(["-static-executable"])]),
        // The node agent: registration, pod workers, volumes through CSI, the OCI runtime driver
        // and its per-container shim, images, logs and exec.
        .target(
            name: "Kubelet",
            dependencies: [
                "ClusterAPI", "APIClient", "HostSystem", "HTTPKit", "CSIProto", "CKubelet", "Units", "Primitives",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // kube-proxy: Services and EndpointSlices → one nftables table per node (docs/networking.md).
        .target(
            name: "KubeProxy",
            dependencies: ["ClusterAPI", "APIClient", "HostSystem", .product(name: "Logging", package: "swift-log"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]
        ),
        // Cluster DNS: an authoritative server for the cluster domain, fed by Services and EndpointSlices.
        .target(
            name: "ClusterDNS",
            dependencies: [
                "ClusterAPI", "APIClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "Ballast",
            dependencies: [
                "LSMTree", "CSQLite", "SQLite", "MVCCStore", "EtcdAPI", "CloudProvider", "HTTPKit", "CSIDriver",
                "APIClient", "CloudControllerManager", "APIServer", "GRPCWire", "ClusterAPI", "Units", "HostSystem", "Primitives", "ControllerManager", "Scheduler", "CSIProto",
                "Kubelet", "KubeProxy", "ClusterDNS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The fuzz targets (one per parser facing the network or a file), their libFuzzer driver
        // `ballast-fuzz` (`make fuzz`) and the bounded run of each in `make test`.
        .target(
            name: "FuzzTargets",
            dependencies: [
                "LSMTree", "MVCCStore", "GRPCWire", "EtcdAPI", "ClusterAPI", "APIServer", "HTTPKit",
                "CloudProvider", "CSIDriver", "Units", "HostSystem", "Primitives", "ClusterDNS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Tests/Fuzz/Targets"
        ),
        .executableTarget(name: "BallastFuzz", dependencies: ["FuzzTargets"], path: "Tests/Fuzz/Driver"),
        .testTarget(name: "FuzzTests", dependencies: ["FuzzTargets", "TestSupport"]),
        .testTarget(name: "LSMTreeTests", dependencies: ["LSMTree", "Primitives", "TestSupport"]),
        .testTarget(name: "PrimitivesTests", dependencies: ["Primitives"]),
        .testTarget(name: "UnitsTests", dependencies: ["Units"]),
        .testTarget(name: "TestSupportTests", dependencies: ["TestSupport"]),
        .testTarget(name: "MVCCStoreTests", dependencies: ["MVCCStore", "TestSupport"]),
        .testTarget(name: "ClusterAPITests", dependencies: ["ClusterAPI"]),
        .testTarget(name: "APIServerTests", dependencies: ["APIServer", "ClusterAPI", "MVCCStore", "HTTPKit", "TestSupport"]),
        .target(name: "TestSupport", dependencies: [
            "HostSystem", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
        ], path: "Tests/TestSupport"),
        // The real API handler on an embedded store, without sockets, for controller tests.
        .target(
            name: "APIServerTesting",
            dependencies: ["APIServer", "APIClient", "MVCCStore", "HTTPKit", .product(name: "Logging", package: "swift-log")],
            path: "Tests/APIServerTesting"
        ),
        // Clusters of real `ballast` processes (API server, cloud, CSI, controllers, kubelets).
        .target(
            name: "ClusterTesting",
            dependencies: ["TestSupport", "APIClient", "ClusterAPI", "CloudProvider", "HostSystem", "Kubelet"],
            path: "Tests/ClusterTesting"
        ),
        .testTarget(name: "HostSystemTests", dependencies: ["HostSystem"]),
        .testTarget(name: "HTTPKitTests", dependencies: ["HTTPKit", "TestSupport", .product(name: "Logging", package: "swift-log"),
                                                         .product(name: "NIOHTTP1", package: "swift-nio")]),
        .testTarget(name: "CloudProviderTests", dependencies: ["CloudProvider", "HostSystem", "HTTPKit", "TestSupport"]),
        .testTarget(name: "APIClientTests", dependencies: [
            "APIClient", "ClusterAPI", "HTTPKit", "TestSupport", "APIServerTesting",
            .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "CloudControllerManagerTests", dependencies: [
            "CloudControllerManager", "CloudProvider", "ClusterAPI", "APIClient", "TestSupport", "APIServerTesting",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "ControllerManagerTests", dependencies: [
            "ControllerManager", "APIClient", "ClusterAPI", "CSIDriver", "CSIProto", "CloudProvider", "TestSupport", "APIServerTesting", "ClusterTesting",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "SchedulerTests", dependencies: [
            "Scheduler", "APIClient", "ClusterAPI", "TestSupport", "APIServerTesting", "Primitives",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "CSIDriverTests", dependencies: [
            "CSIDriver", "CloudProvider", "HostSystem", "TestSupport",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "KubeProxyTests", dependencies: [
            "KubeProxy", "ClusterAPI", "HostSystem", "APIClient", "TestSupport", "APIServerTesting", "ClusterTesting",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "ClusterDNSTests", dependencies: [
            "ClusterDNS", "ClusterAPI", "APIClient", "TestSupport", "APIServerTesting",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "EndToEndTests", dependencies: ["ClusterTesting", "TestSupport", "HostSystem", "Primitives"]),
        .testTarget(name: "KubeletTests", dependencies: [
            "Kubelet", "CKubelet", "ClusterAPI", "APIClient", "HostSystem", "HTTPKit", "TestSupport", "APIServerTesting", "CSIProto", "CloudProvider", "ClusterTesting",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "GRPCWireTests", dependencies: [
            "GRPCWire", "TestSupport",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHPACK", package: "swift-nio-http2"),
        ]),
        .testTarget(name: "EtcdAPITests", dependencies: [
            "EtcdAPI", "MVCCStore", "TestSupport",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
        ]),
    ]
)
