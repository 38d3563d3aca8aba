import Kubelet
import Testing

@Suite("Image references")
struct ImageReferenceTests {
    @Test("normalised as containerd does", arguments: [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("quay.io/org/app:v1", "quay.io/org/app:v1"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("registry.local:5000/a/b:c", "registry.local:5000/a/b:c"),
    ])
    func normalise(input: String, expected: String) {
        #expect(ImageReference(input)?.description == expected)
    }

    @Test("refused", arguments: ["", "Busybox", "a b", "busybox:", "busybox@sha256:12", ":tag", "a//b"])
    func refuse(input: String) {
        #expect(ImageReference(input) == nil)
    }

    @Test("a digest reference keeps its digest")
    func digest() {
        let digest = "sha256:" + String(repeating: "ab", count: 32)
        let reference = ImageReference("busybox@" + digest)
        #expect(reference?.digest == digest)
        #expect(reference?.description == "docker.io/library/busybox@" + digest)
    }
}
