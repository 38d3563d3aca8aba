import ArgumentParser
import Foundation
import Kubelet

/// `ballast images`: the node's local image store (OCI image layouts; nothing is pulled).
struct ImagesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "images",
        abstract: "The nodes' local OCI image store: import images from tar files, list them.",
        subcommands: [ImagesImportCommand.self, ImagesListCommand.self]
    )
}

/// `--image-dir`, shared by the kubelet and the images commands.
struct ImageDirOptions: ParsableArguments {
    @Option(help: "The image store: OCI image layouts, shared by the kubelets of this machine.")
    var imageDir: String = ".ballast/images"
}

struct ImagesImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import the images of an OCI image layout tar or a `docker save` tar."
    )

    @OptionGroup var images: ImageDirOptions
    @Argument(help: "The tar file.") var file: String

    func run() async throws {
        let store: ImageStore
        do {
            store = try ImageStore(directory: images.imageDir)
        } catch {
            throw ValidationError("--image-dir \(images.imageDir): \(error)")
        }
        do {
            for name in try await store.importArchive(file) { print("imported \(name)") }
        } catch let error as KubeletError {
            FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct ImagesListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the images in the store.")

    @OptionGroup var images: ImageDirOptions

    func run() async throws {
        let store = try ImageStore(directory: images.imageDir)
        let rows = try await store.list()
        print(["IMAGE", "IMAGE ID", "SIZE"].joined(separator: "\t"))
        for image in rows {
            let size = image.sizeBytes >= 1 << 20 ? String(format: "%.1fMiB", Double(image.sizeBytes) / 1048576) : "\(image.sizeBytes)B"
            print([image.reference, String(image.configDigest.dropFirst(7).prefix(12)), size].joined(separator: "\t"))
        }
    }
}
