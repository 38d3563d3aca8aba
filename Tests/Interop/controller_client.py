"""The official Kubernetes Python client (PyPI `kubernetes`) driving the controller manager.

Usage: controller_client.py KUBECONFIG NODE

Creates a StorageClass and a PVC, watches the PVC until it is Bound, runs a pod on NODE that
uses it and watches its VolumeAttachment until attached, then deletes the pod and the PVC and
watches the PV go. Prints one JSON object per step ({"step": ..., ...}) for
Tests/ControllerManagerTests/ProcessTests.swift to check.
"""
import json
import sys
import time

from kubernetes import client, config, watch


def emit(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def wait_for(what, check, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def main():
    kubeconfig, node = sys.argv[1], sys.argv[2]
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()
    storage = client.StorageV1Api()

    storage.create_storage_class(client.V1StorageClass(
        metadata=client.V1ObjectMeta(name="py-fast"), provisioner="loop.csi.ballast.dev",
        reclaim_policy="Delete", volume_binding_mode="Immediate"))
    claim = core.create_namespaced_persistent_volume_claim("default", client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="py-data"),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"], storage_class_name="py-fast",
            resources=client.V1VolumeResourceRequirements(requests={"storage": "32Mi"}))))
    emit("created", finalizers=claim.metadata.finalizers)

    started = time.time()
    bound = None
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_persistent_volume_claim, "default",
                          field_selector="metadata.name=py-data", timeout_seconds=60):
        pvc = event["object"]
        if pvc.status.phase == "Bound":
            bound = pvc
            w.stop()
    if bound is None:
        raise SystemExit("the PVC never became Bound")
    emit("bound", volume=bound.spec.volume_name, seconds=time.time() - started,
         annotations=bound.metadata.annotations, capacity=bound.status.capacity.get("storage"))

    # Events are written in the background: wait for the last one of provisioning.
    def reasons():
        events = core.list_namespaced_event("default", field_selector="involvedObject.name=py-data").items
        found = sorted({e.reason for e in events})
        return found if "ProvisioningSucceeded" in found else None
    emit("claim_events", reasons=wait_for("the ProvisioningSucceeded event", reasons, timeout=20))

    core.create_namespaced_pod("default", client.V1Pod(
        metadata=client.V1ObjectMeta(name="py-app"),
        spec=client.V1PodSpec(node_name=node, containers=[client.V1Container(name="app", image="busybox")],
                              volumes=[client.V1Volume(name="data", persistent_volume_claim=
                                       client.V1PersistentVolumeClaimVolumeSource(claim_name="py-data"))])))

    def attached():
        for va in storage.list_volume_attachment().items:
            if va.spec.source.persistent_volume_name == bound.spec.volume_name and va.status and va.status.attached:
                return va
        return None
    va = wait_for("the VolumeAttachment to be attached", attached)
    emit("attached", name=va.metadata.name, node=va.spec.node_name, finalizers=va.metadata.finalizers,
         device=(va.status.attachment_metadata or {}).get("devicePath"))

    core.delete_namespaced_pod("py-app", "default", grace_period_seconds=0)
    wait_for("the VolumeAttachment to go", lambda: not any(
        v.spec.source.persistent_volume_name == bound.spec.volume_name for v in storage.list_volume_attachment().items))
    emit("detached")

    core.delete_namespaced_persistent_volume_claim("py-data", "default")

    def pv_gone():
        names = [v.metadata.name for v in core.list_persistent_volume().items]
        return bound.spec.volume_name not in names
    wait_for("the PV to be deleted", pv_gone)
    emit("deleted", volume=bound.spec.volume_name)
    emit("done")


if __name__ == "__main__":
    main()
