"""The official Kubernetes Python client (PyPI `kubernetes`) against `ballast apiserver`.

Usage: kube_client.py KUBECONFIG NAMESPACE

Lists, creates, watches, patches and deletes PVCs and pods over HTTPS with the admin
kubeconfig, and prints one JSON object per step ({"step": ..., ...}) for
Tests/APIServerTests/PythonClientTests.swift to check. Errors of the API are printed as
steps too (status, reason, message); anything unexpected ends the script non-zero.
"""
import json
import sys
import threading
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def emit(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def api_error(step, call):
    try:
        call()
    except ApiException as e:
        body = json.loads(e.body) if e.body else {}
        emit(step, status=e.status, reason=body.get("reason"), message=body.get("message"),
             causes=[c.get("field") for c in (body.get("details") or {}).get("causes", [])])
        return
    emit(step, status=200)


def main():
    kubeconfig, namespace = sys.argv[1], sys.argv[2]
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()
    emit("version", git_version=client.VersionApi().get_code().git_version)

    namespaces = [n.metadata.name for n in core.list_namespace().items]
    emit("namespaces", names=sorted(namespaces))
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    initial = core.list_namespaced_persistent_volume_claim(namespace)
    emit("list-empty", count=len(initial.items), resource_version=initial.metadata.resource_version)

    # Watches of claims and pods from the list's resourceVersion, in threads, until each
    # has seen its object deleted (bounded by timeout_seconds).
    seen = {"pvc": [], "pod": []}
    ready = {"pvc": threading.Event(), "pod": threading.Event()}

    def follow(kind, list_fn, name):
        w = watch.Watch()
        ready[kind].set()
        for event in w.stream(list_fn, namespace, resource_version=initial.metadata.resource_version, timeout_seconds=60):
            obj = event["object"]
            if obj.metadata.name != name:
                continue
            seen[kind].append({"type": event["type"], "rv": obj.metadata.resource_version,
                               "labels": obj.metadata.labels or {},
                               "phase": obj.status.phase if obj.status else None})
            if event["type"] == "DELETED":
                w.stop()

    threads = [threading.Thread(target=follow, args=("pvc", core.list_namespaced_persistent_volume_claim, "py-data")),
               threading.Thread(target=follow, args=("pod", core.list_namespaced_pod, "py-pod"))]
    for t in threads:
        t.start()
    for e in ready.values():
        e.wait(10)
    time.sleep(0.5)

    # Create a claim from models (the client sends no apiVersion/kind and no Content-Type).
    pvc = client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="py-data", labels={"app": "py"}),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"})))
    created = core.create_namespaced_persistent_volume_claim(namespace, pvc)
    emit("create-pvc", name=created.metadata.name, uid=created.metadata.uid, kind=created.kind,
         phase=created.status.phase, volume_mode=created.spec.volume_mode,
         resource_version=created.metadata.resource_version)

    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="py-pod", labels={"app": "py"}),
        spec=client.V1PodSpec(
            containers=[client.V1Container(
                name="main", image="busybox:1.36", command=["sleep", "3600"],
                volume_mounts=[client.V1VolumeMount(name="data", mount_path="/data")])],
            volumes=[client.V1Volume(
                name="data",
                persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(claim_name="py-data"))]))
    created_pod = core.create_namespaced_pod(namespace, pod)
    emit("create-pod", name=created_pod.metadata.name, phase=created_pod.status.phase,
         restart_policy=created_pod.spec.restart_policy)

    # Lists with selectors, across namespaces too.
    by_label = core.list_namespaced_persistent_volume_claim(namespace, label_selector="app=py")
    emit("list-label", names=[i.metadata.name for i in by_label.items])
    by_field = core.list_pod_for_all_namespaces(field_selector=f"metadata.name=py-pod,metadata.namespace={namespace}")
    emit("list-field", names=[f"{i.metadata.namespace}/{i.metadata.name}" for i in by_field.items])
    none = core.list_namespaced_pod(namespace, label_selector="app=other")
    emit("list-none", count=len(none.items))

    # Patches: a dict is a strategic merge patch; a list a JSON patch; status through its subresource.
    patched = core.patch_namespaced_persistent_volume_claim("py-data", namespace, {"metadata": {"labels": {"tier": "gold"}}})
    emit("patch-pvc", labels=patched.metadata.labels, resource_version=patched.metadata.resource_version)
    json_patched = core.patch_namespaced_persistent_volume_claim(
        "py-data", namespace, [{"op": "replace", "path": "/metadata/labels/tier", "value": "silver"}])
    emit("json-patch-pvc", labels=json_patched.metadata.labels)
    status = core.patch_namespaced_pod_status("py-pod", namespace, {"status": {
        "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
    emit("patch-pod-status", phase=status.status.phase,
         conditions={c.type: c.status for c in status.status.conditions or []})
    read = core.read_namespaced_pod("py-pod", namespace)
    emit("read-pod", phase=read.status.phase, image=read.spec.containers[0].image,
         mount=read.spec.containers[0].volume_mounts[0].mount_path)

    # Errors as ApiException with Kubernetes' Status.
    api_error("error-exists", lambda: core.create_namespaced_persistent_volume_claim(namespace, pvc))
    api_error("error-missing", lambda: core.read_namespaced_persistent_volume_claim("nope", namespace))
    bad = client.V1PersistentVolumeClaim(metadata=client.V1ObjectMeta(name="py-bad"),
                                         spec=client.V1PersistentVolumeClaimSpec(access_modes=["ReadWriteOnce"]))
    api_error("error-invalid", lambda: core.create_namespaced_persistent_volume_claim(namespace, bad))
    stale = core.read_namespaced_persistent_volume_claim("py-data", namespace)
    stale.metadata.resource_version = created.metadata.resource_version
    api_error("error-conflict", lambda: core.replace_namespaced_persistent_volume_claim("py-data", namespace, stale))

    # Deletes return the object (the client parses it into its model).
    deleted_pod = core.delete_namespaced_pod("py-pod", namespace)
    emit("delete-pod", name=deleted_pod.metadata.name, kind=deleted_pod.kind)
    deleted_pvc = core.delete_namespaced_persistent_volume_claim("py-data", namespace)
    emit("delete-pvc", name=deleted_pvc.metadata.name, kind=deleted_pvc.kind)

    for t in threads:
        t.join(30)
    emit("watch-pvc", events=seen["pvc"], ended=not threads[0].is_alive())
    emit("watch-pod", events=seen["pod"], ended=not threads[1].is_alive())
    emit("list-after", pvcs=len(core.list_namespaced_persistent_volume_claim(namespace).items),
         pods=len(core.list_namespaced_pod(namespace).items))
    emit("done")


if __name__ == "__main__":
    main()
