"""A StatefulSet driven with the official Kubernetes Python client (PyPI `kubernetes`), on a
cluster of `ballast up`.

Usage: kube_statefulset.py KUBECONFIG NAMESPACE

Creates a 2-replica Parallel StatefulSet with a claim template through AppsV1Api, watches it
until both replicas are ready, scales it to 1 through the scale subresource, reads the scale
back, lists its ControllerRevisions and deletes it. Prints one JSON object per step for
Tests/EndToEndTests/WorkloadTests.swift; anything unexpected ends the script non-zero.
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
    apps = client.AppsV1Api()
    core = client.CoreV1Api()

    labels = {"app": "py-sts"}
    body = client.V1StatefulSet(
        metadata=client.V1ObjectMeta(name="py-sts"),
        spec=client.V1StatefulSetSpec(
            service_name="py-sts", replicas=2, pod_management_policy="Parallel",
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    termination_grace_period_seconds=1,
                    containers=[client.V1Container(
                        name="c", image="busybox", command=["sh", "-c", "hostname > /data/who && exec sleep 3600"],
                        volume_mounts=[client.V1VolumeMount(name="data", mount_path="/data")])])),
            volume_claim_templates=[client.V1PersistentVolumeClaim(
                metadata=client.V1ObjectMeta(name="data"),
                spec=client.V1PersistentVolumeClaimSpec(
                    access_modes=["ReadWriteOnce"],
                    resources=client.V1VolumeResourceRequirements(requests={"storage": "32Mi"})))]))
    created = apps.create_namespaced_stateful_set(namespace, body)
    emit("create", policy=created.spec.pod_management_policy, strategy=created.spec.update_strategy.type,
         replicas=created.status.replicas)

    ready = 0
    w = watch.Watch()
    for event in w.stream(apps.list_namespaced_stateful_set, namespace, field_selector="metadata.name=py-sts",
                          timeout_seconds=180):
        ready = event["object"].status.ready_replicas or 0
        if ready == 2:
            w.stop()
    claims = sorted(c.metadata.name for c in core.list_namespaced_persistent_volume_claim(namespace).items)
    emit("ready", ready=ready, claims=claims)

    apps.patch_namespaced_stateful_set_scale("py-sts", namespace, {"spec": {"replicas": 1}})
    scale = apps.read_namespaced_stateful_set_scale("py-sts", namespace)
    deadline = time.time() + 120
    pods = []
    while time.time() < deadline:
        pods = sorted(p.metadata.name for p in core.list_namespaced_pod(namespace, label_selector="app=py-sts").items)
        if pods == ["py-sts-0"]:
            break
        time.sleep(0.5)
    emit("scaled", spec=scale.spec.replicas, selector=scale.status.selector, pods=pods)

    revisions = apps.list_namespaced_controller_revision(namespace).items
    emit("revisions", count=len(revisions), owner=revisions[0].metadata.owner_references[0].kind if revisions else None)
    apps.delete_namespaced_stateful_set("py-sts", namespace)
    emit("done")


if __name__ == "__main__":
    main()
