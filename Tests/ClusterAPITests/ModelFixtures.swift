import Foundation

@testable import ClusterAPI

/// Realistic kubectl-style manifests, each with members the model does not know.
enum Manifests {
    static let pod = #"""
        {
          "apiVersion": "v1",
          "kind": "Pod",
          "x-top-level-extra": {"kept": true},
          "metadata": {
            "name": "web-0",
            "namespace": "shop",
            "labels": {"app": "web", "app.kubernetes.io/name": "web"},
            "annotations": {"example.com/owner": "team-a"}
          },
          "spec": {
            "containers": [
              {
                "name": "app",
                "image": "registry.example.com/web:1.4.2",
                "command": ["/bin/web"],
                "args": ["--port=8080"],
                "env": [{"name": "MODE", "value": "prod"}],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/web"}, {"name": "scratch", "mountPath": "/tmp"}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5},
                "futureContainerField": {"level": 3}
              }
            ],
            "initContainers": [{"name": "init", "image": "busybox:1.36", "command": ["sh", "-c", "true"]}],
            "volumes": [
              {"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}},
              {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
              {"name": "shared", "nfs": {"server": "nfs.example.com", "path": "/exports"}, "futureVolumeField": 1}
            ],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
            "serviceAccountName": "web",
            "priority": 0,
            "futureSpecField": "x"
          }
        }
        """#

    static let namespace = #"""
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "a"}},
         "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}, "extra": [1, 2]}
        """#

    static let node = #"""
        {
          "apiVersion": "v1", "kind": "Node",
          "metadata": {"name": "worker-1", "labels": {"kubernetes.io/hostname": "worker-1"}},
          "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"], "providerID": "ballast://worker-1",
                   "taints": [{"key": "node-role.kubernetes.io/storage", "effect": "NoSchedule"}], "futureNodeSpec": true},
          "status": {
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "allocatable": {"cpu": "3800m", "memory": "15Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-02T03:04:05Z",
                            "lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.11"}, {"type": "Hostname", "address": "worker-1"}],
            "nodeInfo": {"machineID": "m1", "systemUUID": "u1", "bootID": "b1", "kernelVersion": "6.8.0", "osImage": "Debian",
                         "containerRuntimeVersion": "containerd://1.7", "kubeletVersion": "v1.32.0", "kubeProxyVersion": "",
                         "operatingSystem": "linux", "architecture": "amd64"},
            "volumesAttached": [{"name": "kubernetes.io/csi/csi.ballast.io^vol-1", "devicePath": ""}],
            "volumesInUse": ["kubernetes.io/csi/csi.ballast.io^vol-1"],
            "runtimeHandlers": [{"name": "runc"}]
          }
        }
        """#

    static let persistentVolume = #"""
        {
          "apiVersion": "v1", "kind": "PersistentVolume",
          "metadata": {"name": "pv-vol-1", "annotations": {"pv.kubernetes.io/provisioned-by": "csi.ballast.io"}},
          "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "fast",
            "volumeMode": "Filesystem",
            "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "shop", "name": "web-data", "uid": "1234", "apiVersion": "v1", "resourceVersion": "42"},
            "csi": {"driver": "csi.ballast.io", "volumeHandle": "vol-1", "fsType": "ext4",
                    "volumeAttributes": {"pool": "ssd"}, "nodeStageSecretRef": {"name": "csi-secret", "namespace": "ballast-system"},
                    "futureCSIField": "kept"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}},
            "mountOptions": ["noatime"]
          },
          "status": {"phase": "Bound", "lastPhaseTransitionTime": "2026-01-01T00:00:00Z"}
        }
        """#

    static let persistentVolumeClaim = #"""
        {
          "apiVersion": "v1", "kind": "PersistentVolumeClaim",
          "metadata": {"name": "web-data", "namespace": "shop"},
          "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "10Gi"}},
            "storageClassName": "fast",
            "volumeMode": "Filesystem",
            "selector": {"matchLabels": {"tier": "ssd"}},
            "dataSource": {"kind": "PersistentVolumeClaim", "name": "seed"},
            "dataSourceRef": {"kind": "PersistentVolumeClaim", "name": "seed"},
            "futureClaimField": 7
          },
          "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "10Gi"}}
        }
        """#

    static let event = #"""
        {
          "apiVersion": "v1", "kind": "Event",
          "metadata": {"name": "web-0.17a8f2c3d4e5f6a7", "namespace": "shop"},
          "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web-0", "uid": "abc", "apiVersion": "v1", "fieldPath": "spec.containers{app}"},
          "reason": "Pulled", "message": "Successfully pulled image", "type": "Normal", "count": 3,
          "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:05:00Z",
          "source": {"component": "kubelet", "host": "worker-1"},
          "reportingComponent": "kubelet", "reportingInstance": "worker-1", "futureEventField": null
        }
        """#

    static let service = #"""
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
        """#

    static let endpoints = #"""
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "shop"},
         "subsets": [{"addresses": [{"ip": "10.244.1.5"}], "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}
        """#

    static let storageClass = #"""
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
         "metadata": {"name": "fast", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
         "provisioner": "csi.ballast.io", "parameters": {"pool": "ssd", "csi.storage.k8s.io/fstype": "ext4"},
         "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": true,
         "mountOptions": ["noatime"],
         "allowedTopologies": [{"matchLabelExpressions": [{"key": "zone", "values": ["a", "b"]}]}], "futureClassField": {}}
        """#

    static let volumeAttachment = #"""
        {"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
         "metadata": {"name": "csi-0123456789abcdef"},
         "spec": {"attacher": "csi.ballast.io", "nodeName": "worker-1", "source": {"persistentVolumeName": "pv-vol-1", "futureSource": 1}},
         "status": {"attached": true, "attachmentMetadata": {"devicePath": "/dev/vdb"}}}
        """#

    static let csiDriver = #"""
        {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": "csi.ballast.io"},
         "spec": {"attachRequired": true, "podInfoOnMount": false, "volumeLifecycleModes": ["Persistent"],
                  "storageCapacity": false, "fsGroupPolicy": "File", "requiresRepublish": false, "seLinuxMount": false,
                  "tokenRequests": [{"audience": "ballast"}], "futureDriverField": "x"}}
        """#

    static let csiNode = #"""
        {"apiVersion": "storage.k8s.io/v1", "kind": "CSINode", "metadata": {"name": "worker-1"},
         "spec": {"drivers": [{"name": "csi.ballast.io", "nodeID": "worker-1", "topologyKeys": ["topology.ballast.io/zone"],
                               "allocatable": {"count": 16}, "futureDriverEntry": true}]}}
        """#

    static let lease = #"""
        {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "worker-1", "namespace": "kube-node-lease"},
         "spec": {"holderIdentity": "worker-1", "leaseDurationSeconds": 40, "acquireTime": "2026-01-01T00:00:00.000000Z",
                  "renewTime": "2026-01-01T00:00:10.123456Z", "leaseTransitions": 2}}
        """#

    static let podList = #"""
        {"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "99", "continue": "abc"},
         "items": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "shop"},
                    "spec": {"containers": [{"name": "app", "image": "nginx"}]}}], "extra": 1}
        """#
}

func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
    try JSONDecoder().decode(T.self, from: Data(text.utf8))
}

func jsonTree(_ text: String) throws -> JSONValue {
    try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
}

func jsonTree<T: Encodable>(of value: T) throws -> JSONValue {
    try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(value))
}

/// Messages of validation errors, as Kubernetes prints them.
func messages(_ errors: [FieldError]) -> [String] { errors.map(\.description) }
