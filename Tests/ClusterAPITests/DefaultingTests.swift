import Foundation
import Testing

@testable import ClusterAPI

@Suite("Defaulting")
struct DefaultingTests {
    @Test func podDefaults() throws {
        var pod = try decode(Pod.self, Manifests.pod)
        pod.applyDefaults()
        let spec = pod.spec
        #expect(spec.restartPolicy == "Always")
        #expect(spec.terminationGracePeriodSeconds == 30)
        #expect(spec.schedulerName == "default-scheduler")
        #expect(spec.dnsPolicy == "ClusterFirst")
        #expect(spec.securityContext == [:])
        #expect(spec.enableServiceLinks == true)
        #expect(spec.serviceAccount == "web")
        let app = spec.containers[0]
        #expect(app.terminationMessagePath == "/dev/termination-log")
        #expect(app.terminationMessagePolicy == "File")
        #expect(app.imagePullPolicy == "IfNotPresent")
        #expect(app.ports?[0].protocol == "TCP")
        #expect(app.readinessProbe?["periodSeconds"] == 5)
        #expect(app.readinessProbe?["timeoutSeconds"] == 1)
        #expect(app.readinessProbe?["successThreshold"] == 1)
        #expect(app.readinessProbe?["failureThreshold"] == 3)
        #expect(app.readinessProbe?["httpGet"]?["scheme"] == "HTTP")
        // Limits without requests are copied into requests.
        #expect(app.resources?.requests?["memory"] == (try Quantity("128Mi")))
        #expect(spec.initContainers?[0].imagePullPolicy == "IfNotPresent")
        #expect(pod.status.phase == "Pending")
        #expect(pod.status.qosClass == "Burstable")
        #expect(pod.validate() == [])
    }

    @Test(arguments: [
        ("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.27", "IfNotPresent"),
        ("registry.example.com:5000/app", "Always"), ("registry.example.com:5000/app:v1", "IfNotPresent"),
        ("nginx@sha256:0123abcd", "IfNotPresent"), ("nginx:latest@sha256:0123abcd", "Always"),
    ])
    func imagePullPolicy(image: String, policy: String) {
        var container = Container(name: "c", image: image)
        container.applyDefaults()
        #expect(container.imagePullPolicy == policy)
    }

    @Test func explicitPodValuesAreKept() {
        var pod = Pod(
            metadata: ObjectMeta(name: "p", namespace: "d"),
            spec: PodSpec(
                volumes: [Volume(name: "v")],
                containers: [
                    Container(
                        name: "c", image: "nginx", ports: [ContainerPort(containerPort: 53, protocol: "UDP")],
                        resources: ResourceRequirements(limits: ["cpu": Quantity(1), "memory": Quantity(1 << 30)]),
                        imagePullPolicy: "Never")
                ],
                restartPolicy: "Never", terminationGracePeriodSeconds: 5, dnsPolicy: "Default", hostNetwork: true,
                schedulerName: "custom"))
        pod.applyDefaults()
        #expect(pod.spec.restartPolicy == "Never")
        #expect(pod.spec.terminationGracePeriodSeconds == 5)
        #expect(pod.spec.dnsPolicy == "Default")
        #expect(pod.spec.schedulerName == "custom")
        #expect(pod.spec.containers[0].imagePullPolicy == "Never")
        #expect(pod.spec.containers[0].ports?[0].protocol == "UDP")
        #expect(pod.spec.containers[0].ports?[0].hostPort == 53)
        #expect(pod.spec.volumes?[0].emptyDir == EmptyDirVolumeSource())
        #expect(pod.status.qosClass == "Guaranteed")
        #expect(pod.validate() == [])
    }

    @Test func persistentVolumeDefaults() {
        var pv = PersistentVolume(metadata: ObjectMeta(name: "pv"), spec: PersistentVolumeSpec(hostPath: HostPathVolumeSource(path: "/data")))
        pv.applyDefaults()
        #expect(pv.spec.persistentVolumeReclaimPolicy == "Retain")
        #expect(pv.spec.volumeMode == "Filesystem")
        #expect(pv.spec.hostPath?.type == "")
        #expect(pv.status.phase == "Pending")
        var explicit = PersistentVolume(spec: PersistentVolumeSpec(persistentVolumeReclaimPolicy: "Delete", volumeMode: "Block"))
        explicit.applyDefaults()
        #expect(explicit.spec.persistentVolumeReclaimPolicy == "Delete")
        #expect(explicit.spec.volumeMode == "Block")
    }

    @Test func claimDefaults() throws {
        var pvc = PersistentVolumeClaim(metadata: ObjectMeta(name: "c", namespace: "d"))
        pvc.applyDefaults()
        #expect(pvc.spec.volumeMode == "Filesystem")
        #expect(pvc.status.phase == "Pending")
        var bound = try decode(PersistentVolumeClaim.self, Manifests.persistentVolumeClaim)
        bound.applyDefaults()
        #expect(bound.status.phase == "Bound")
        #expect(bound.validate() == [])
    }

    @Test func storageDefaults() throws {
        var storageClass = StorageClass(metadata: ObjectMeta(name: "fast"), provisioner: "csi.ballast.io")
        storageClass.applyDefaults()
        #expect(storageClass.reclaimPolicy == "Delete")
        #expect(storageClass.volumeBindingMode == "Immediate")
        #expect(storageClass.validate() == [])

        var driver = CSIDriver(metadata: ObjectMeta(name: "csi.ballast.io"))
        driver.applyDefaults()
        #expect(driver.spec.attachRequired == true)
        #expect(driver.spec.podInfoOnMount == false)
        #expect(driver.spec.volumeLifecycleModes == ["Persistent"])
        #expect(driver.spec.fsGroupPolicy == "ReadWriteOnceWithFSType")
        #expect(driver.spec.requiresRepublish == false)
        #expect(driver.spec.storageCapacity == false)
        #expect(driver.spec.seLinuxMount == false)
        #expect(driver.validate() == [])
    }

    @Test func clusterDefaults() throws {
        var namespace = Namespace(metadata: ObjectMeta(name: "shop"))
        namespace.applyDefaults()
        #expect(namespace.status.phase == "Active")
        #expect(namespace.spec.finalizers == ["kubernetes"])
        #expect(namespace.metadata.labels == ["kubernetes.io/metadata.name": "shop"])
        #expect(namespace.validate() == [])

        var node = Node(
            metadata: ObjectMeta(name: "worker-1"),
            spec: NodeSpec(podCIDR: "10.244.0.0/24"),
            status: NodeStatus(capacity: ["cpu": Quantity(4), "pods": Quantity(110)]))
        node.applyDefaults()
        #expect(node.status.allocatable == node.status.capacity)
        #expect(node.spec.podCIDRs == ["10.244.0.0/24"])
        #expect(node.validate() == [])

        var event = try decode(Event.self, Manifests.event)
        event.count = nil
        event.applyDefaults()
        #expect(event.count == 1)
        #expect(event.validate() == [])

        var service = try decode(Service.self, Manifests.service)
        service.applyDefaults()
        #expect(service.spec?["type"] == "ClusterIP")
        #expect(service.spec?["sessionAffinity"] == "None")
        #expect(service.spec?["internalTrafficPolicy"] == "Cluster")
        #expect(service.spec?["ports"]?[0]?["protocol"] == "TCP")
        #expect(service.spec?["ports"]?[0]?["targetPort"] == 8080)
        #expect(service.validate() == [])
    }

    @Test(arguments: [
        Manifests.node, Manifests.persistentVolume, Manifests.namespace, Manifests.storageClass,
        Manifests.volumeAttachment, Manifests.csiDriver, Manifests.csiNode, Manifests.lease, Manifests.endpoints,
    ])
    func defaultedManifestsAreValid(manifest: String) throws {
        let kind = try decode(TypeMeta.self, manifest).kind ?? ""
        func check<T: APIObject>(_ type: T.Type) throws -> [FieldError] {
            var object = try decode(T.self, manifest)
            object.applyDefaults()
            return object.validate()
        }
        let errors: [FieldError]
        switch kind {
        case "Node": errors = try check(Node.self)
        case "PersistentVolume": errors = try check(PersistentVolume.self)
        case "Namespace": errors = try check(Namespace.self)
        case "StorageClass": errors = try check(StorageClass.self)
        case "VolumeAttachment": errors = try check(VolumeAttachment.self)
        case "CSIDriver": errors = try check(CSIDriver.self)
        case "CSINode": errors = try check(CSINode.self)
        case "Lease": errors = try check(Lease.self)
        default: errors = try check(Endpoints.self)
        }
        #expect(messages(errors) == [])
    }
}
