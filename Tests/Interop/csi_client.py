"""A CSI client in Python, with grpcio stubs generated from Protos/csi/csi.proto at run time.

Drives a running `ballast csi` over its unix socket through the volume lifecycle and prints one
JSON object per line describing what it saw; the Swift test (CSIInteropTests) asserts on them.

usage: csi_client.py PROTO_DIR SOCKET NODE_ID KUBELET_ROOT [--node]
"""
import json
import os
import sys
import tempfile

import grpc_tools
from grpc_tools import protoc


def generate(proto_dir, out):
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    status = protoc.main(["grpc_tools.protoc", f"-I{proto_dir}", f"-I{well_known}", f"--python_out={out}",
                          f"--grpc_python_out={out}", os.path.join(proto_dir, "csi.proto")])
    if status != 0:
        raise SystemExit(f"protoc failed with status {status}")
    sys.path.insert(0, out)


def report(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def main():
    proto_dir, socket, node_id, kubelet_root = sys.argv[1:5]
    with_node = "--node" in sys.argv
    out = tempfile.mkdtemp(prefix="csi-stubs-")
    generate(proto_dir, out)
    import grpc
    import csi_pb2 as csi
    import csi_pb2_grpc as rpc

    channel = grpc.insecure_channel(f"unix://{socket}")
    identity = rpc.IdentityStub(channel)
    controller = rpc.ControllerStub(channel)
    node = rpc.NodeStub(channel)

    info = identity.GetPluginInfo(csi.GetPluginInfoRequest())
    report("info", name=info.name, version=info.vendor_version)
    report("probe", ready=identity.Probe(csi.ProbeRequest()).ready.value)

    try:
        controller.CreateVolume(csi.CreateVolumeRequest())
        report("create-without-name", code="OK")
    except grpc.RpcError as error:
        report("create-without-name", code=error.code().name, message=error.details())

    capability = csi.VolumeCapability(
        mount=csi.VolumeCapability.MountVolume(fs_type="ext4"),
        access_mode=csi.VolumeCapability.AccessMode(mode=csi.VolumeCapability.AccessMode.SINGLE_NODE_WRITER))
    volume = controller.CreateVolume(csi.CreateVolumeRequest(
        name="python-volume", capacity_range=csi.CapacityRange(required_bytes=64 << 20),
        volume_capabilities=[capability])).volume
    report("create", volume_id=volume.volume_id, capacity=volume.capacity_bytes,
           zone=volume.accessible_topology[0].segments["topology.kubernetes.io/zone"])

    published = controller.ControllerPublishVolume(csi.ControllerPublishVolumeRequest(
        volume_id=volume.volume_id, node_id=node_id, volume_capability=capability))
    report("publish", context=dict(published.publish_context))

    if with_node:
        report("node-info", node_id=node.NodeGetInfo(csi.NodeGetInfoRequest()).node_id)
        staging = os.path.join(kubelet_root, "staging", volume.volume_id)
        target = os.path.join(kubelet_root, "pods", "python", "volume")
        os.makedirs(staging, exist_ok=True)
        node.NodeStageVolume(csi.NodeStageVolumeRequest(
            volume_id=volume.volume_id, publish_context=published.publish_context,
            staging_target_path=staging, volume_capability=capability))
        node.NodePublishVolume(csi.NodePublishVolumeRequest(
            volume_id=volume.volume_id, staging_target_path=staging, target_path=target,
            volume_capability=capability))
        with open(os.path.join(target, "hello.txt"), "w") as handle:
            handle.write("written through a CSI volume\n")
        stats = node.NodeGetVolumeStats(csi.NodeGetVolumeStatsRequest(volume_id=volume.volume_id, volume_path=target))
        usage = {csi.VolumeUsage.Unit.Name(u.unit): u.total for u in stats.usage}
        report("stats", usage=usage, abnormal=stats.volume_condition.abnormal)
        node.NodeUnpublishVolume(csi.NodeUnpublishVolumeRequest(volume_id=volume.volume_id, target_path=target))
        report("unpublished", target_exists=os.path.exists(target))
        node.NodeUnstageVolume(csi.NodeUnstageVolumeRequest(volume_id=volume.volume_id, staging_target_path=staging))

    controller.ControllerUnpublishVolume(csi.ControllerUnpublishVolumeRequest(volume_id=volume.volume_id, node_id=node_id))
    controller.DeleteVolume(csi.DeleteVolumeRequest(volume_id=volume.volume_id))
    listed = controller.ListVolumes(csi.ListVolumesRequest())
    report("deleted", remaining=[e.volume.volume_id for e in listed.entries])


if __name__ == "__main__":
    main()
