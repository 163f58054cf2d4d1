// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "tapedeck",
    products: [
        .executable(name: "tapedeck", targets: ["tapedeck"]),
        .library(name: "TapedeckRecord", targets: ["TapedeckRecord"]),
        .library(name: "TapedeckReplay", targets: ["TapedeckReplay"]),
        .library(name: "TapedeckVerify", targets: ["TapedeckVerify"]),
    ],
    targets: [
        // C libraries from Debian, each wrapped by one Swift file.
        .systemLibrary(
            name: "CZstd", pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(
            name: "CXML2", pkgConfig: "libxml-2.0",
            providers: [.apt(["libxml2-dev"])]),
        .systemLibrary(
            name: "CCurl", pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(
            name: "CMicroHTTPD", pkgConfig: "libmicrohttpd",
            providers: [.apt(["libmicrohttpd-dev"])]),

        // The exchange model, logging and small shared utilities.
        .target(name: "TapedeckCore"),
        .target(name: "TapedeckCassette", dependencies: ["TapedeckCore", "CZstd"]),
        .target(name: "TapedeckSOAP", dependencies: ["TapedeckCore", "CXML2"]),
        .target(name: "TapedeckHTTP", dependencies: ["TapedeckCore", "CCurl", "CMicroHTTPD"]),
        .target(
            name: "TapedeckRecord",
            dependencies: ["TapedeckCore", "TapedeckCassette", "TapedeckSOAP", "TapedeckHTTP"]),
        .target(
            name: "TapedeckReplay",
            dependencies: ["TapedeckCore", "TapedeckCassette", "TapedeckSOAP", "TapedeckHTTP"]),
        .target(
            name: "TapedeckVerify",
            dependencies: ["TapedeckCore", "TapedeckCassette", "TapedeckSOAP"]),
        .target(
            name: "TapedeckFuzz",
            dependencies: ["TapedeckCore", "TapedeckCassette", "TapedeckReplay", "TapedeckVerify"]),
        .target(
            name: "TapedeckCLI",
            dependencies: [
                "TapedeckCore", "TapedeckCassette", "TapedeckSOAP", "TapedeckRecord", "TapedeckReplay", "TapedeckVerify",
                "TapedeckFuzz",
            ]),
        .executableTarget(name: "tapedeck", dependencies: ["TapedeckCLI"]),

        .testTarget(
            name: "TapedeckTests",
            dependencies: [
                "TapedeckCore", "TapedeckCassette", "TapedeckSOAP", "TapedeckHTTP",
                "TapedeckRecord", "TapedeckReplay", "TapedeckVerify", "TapedeckFuzz", "TapedeckCLI", "tapedeck",
            ]),
    ]
)
