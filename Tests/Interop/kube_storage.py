"""A user's storage path with the official Kubernetes Python client (PyPI `kubernetes`), on a
cluster of `ballast up`.

Usage: kube_storage.py KUBECONFIG NAMESPACE

Creates a claim of the default StorageClass and a busybox pod that writes to it, watches the pod
until it runs, reads its log and the claim's binding, deletes both and watches them go. Prints
one JSON object per step for Tests/EndToEndTests/StorageTests.swift; anything unexpected ends the
script non-zero.
"""
import json
import sys
import time

from kubernetes import client, config, watch


def emit(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def main():
    kubeconfig, namespace = sys.argv[1], sys.argv[2]
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()

    claim = client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="py-data"),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": "32Mi"})))
    created = core.create_namespaced_persistent_volume_claim(namespace, claim)
    emit("create-pvc", phase=created.status.phase, storage_class=created.spec.storage_class_name)

    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="py-writer"),
        spec=client.V1PodSpec(
            termination_grace_period_seconds=1,
            containers=[client.V1Container(
                name="c", image="busybox",
                command=["sh", "-c", "echo from-python > /data/f && cat /data/f && exec sleep 3600"],
                volume_mounts=[client.V1VolumeMount(name="d", mount_path="/data")])],
            volumes=[client.V1Volume(
                name="d", persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(claim_name="py-data"))]))
    core.create_namespaced_pod(namespace, pod)

    phases = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_pod, namespace, field_selector="metadata.name=py-writer", timeout_seconds=120):
        phase = event["object"].status.phase
        if not phases or phases[-1] != phase:
            phases.append(phase)
        if phase == "Running":
            w.stop()
    emit("watch-pod", phases=phases, node=core.read_namespaced_pod("py-writer", namespace).spec.node_name)

    log = ""
    deadline = time.time() + 30
    while time.time() < deadline and log != "from-python\n":
        log = core.read_namespaced_pod_log("py-writer", namespace)
        time.sleep(0.2)
    bound = core.read_namespaced_persistent_volume_claim("py-data", namespace)
    emit("running", log=log, claim_phase=bound.status.phase, volume=bound.spec.volume_name)

    core.delete_namespaced_pod("py-writer", namespace)
    core.delete_namespaced_persistent_volume_claim("py-data", namespace)
    gone = {}
    deadline = time.time() + 120
    while time.time() < deadline and len(gone) < 2:
        if "pod" not in gone and not core.list_namespaced_pod(namespace, field_selector="metadata.name=py-writer").items:
            gone["pod"] = True
        if "pvc" not in gone and not core.list_namespaced_persistent_volume_claim(namespace).items:
            gone["pvc"] = True
        time.sleep(0.5)
    emit("deleted", pod="pod" in gone, pvc="pvc" in gone)
    emit("done")


if __name__ == "__main__":
    main()
