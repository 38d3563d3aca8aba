// The CSI v1 messages and services, generated from Protos/csi/csi.proto into their own module
// (CSIProto) so that CSI clients — the controller manager, the kubelet — use them without
// depending on this driver.
@_exported import CSIProto
