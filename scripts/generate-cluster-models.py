#!/usr/bin/env python3
"""Writes the Codable boilerplate of the object model (Sources/ClusterAPI/Generated/*.swift).

Each struct keeps unknown JSON members in `unknownFields`. Field modes:
  optional  (type ends in '?')  decoded if present, encoded when non-nil
  always    non-optional, decoded with a default when absent, always encoded
  omitEmpty non-optional struct, decoded as empty when absent, encoded when not empty
Options: F(required=True) leaves the parameter without a default in the generated init (the
decoder still defaults it); T(init=False) generates no init, for a type whose init is
hand-written in an extension. A doc with newlines becomes several `///` lines.
Run from the package root: python3 scripts/generate-cluster-models.py
"""
import os

KEYWORDS = {"operator", "default", "protocol", "internal", "in", "is", "type"}

def ident(name):
    return f"`{name}`" if name in KEYWORDS else name

class F:
    def __init__(self, name, type, doc, mode=None, default=None, json=None, required=False):
        self.name, self.type, self.doc = name, type, doc
        self.json = json or name
        self.required = required
        if mode is None:
            mode = "optional" if type.endswith("?") else "always"
        self.mode = mode
        if default is None:
            if mode == "optional":
                default = "nil"
            elif type == "String":
                default = '""'
            elif type == "Bool":
                default = "false"
            elif type in ("Int32", "Int64"):
                default = "0"
            elif type.startswith("["):
                default = "[]"
            else:
                default = f"{type}()"
        self.default = default

class T:
    def __init__(self, name, doc, fields, top=None, init=True):
        self.name, self.doc, self.fields, self.top = name, doc, fields, top
        self.init = init

def docs(text, indent=""):
    return [f"{indent}///" + (f" {line}" if line else "") for line in text.split("\n")]

def obj(name, doc, api, kind, namespaced, fields):
    head = [
        F("apiVersion", "String?", f"`apiVersion`, normally `{api}`.", default=f'"{api}"'),
        F("kind", "String?", f"`kind`, normally `{kind}`.", default=f'"{kind}"'),
        F("metadata", "ObjectMeta", "Standard object metadata."),
    ]
    return T(name, doc, head + fields, top=(api, kind, namespaced))

def render(t):
    out = []
    proto = "APIObject" if t.top else "Sendable, Hashable, Codable, PreservesUnknownFields"
    out += docs(t.doc)
    out.append(f"public struct {t.name}: {proto} {{")
    if t.top:
        api, kind, ns = t.top
        out.append(f"    /// The `apiVersion` this type is served as.")
        out.append(f'    public static let defaultAPIVersion = "{api}"')
        out.append(f"    /// The `kind` of this type.")
        out.append(f'    public static let defaultKind = "{kind}"')
        out.append(f"    /// Whether objects of this type live in a namespace.")
        out.append(f"    public static let isNamespaced = {'true' if ns else 'false'}")
        out.append("")
    for f in t.fields:
        out += docs(f.doc, "    ")
        out.append(f"    public var {ident(f.name)}: {f.type}")
    out.append("    /// Members not modelled above, written back verbatim.")
    out.append("    public var unknownFields: [String: JSONValue]")
    out.append("")
    if t.init:
        required = [f for f in t.fields if f.required]
        if required:
            names = ", ".join(f"`{f.name}`" for f in required)
            out.append(f"    /// Creates a value; every field but {names} defaults to absent or empty.")
        else:
            out.append(f"    /// Creates a value; every field defaults to absent or empty.")
        params = ",\n        ".join(
            f"{ident(f.name)}: {f.type}" + ("" if f.required else f" = {f.default}") for f in t.fields)
        out.append(f"    public init(\n        {params}\n    ) {{")
        for f in t.fields:
            out.append(f"        self.{ident(f.name)} = {ident(f.name)}")
        out.append("        self.unknownFields = [:]")
        out.append("    }")
        out.append("")
    keys = ", ".join(f'"{f.json}"' for f in t.fields)
    out.append(f"    static let knownKeys: Set<String> = [{keys}]")
    out.append("")
    out.append("    /// Decodes, keeping unknown members.")
    out.append("    public init(from decoder: any Decoder) throws {")
    out.append("        let container = try decoder.container(keyedBy: JSONKey.self)")
    for f in t.fields:
        if f.mode == "optional":
            base = f.type[:-1]
            out.append(f'        {ident(f.name)} = try container.decodeIfPresent({base}.self, forKey: "{f.json}")')
        else:
            out.append(f'        {ident(f.name)} = try container.decodeIfPresent({f.type}.self, forKey: "{f.json}") ?? {f.default}')
    out.append("        unknownFields = try decoder.unknownFields(of: container, excluding: Self.knownKeys)")
    out.append("    }")
    out.append("")
    out.append("    /// Encodes set fields plus unknown members.")
    out.append("    public func encode(to encoder: any Encoder) throws {")
    out.append("        var container = encoder.container(keyedBy: JSONKey.self)")
    out.append("        try container.encodeUnknownFields(unknownFields, excluding: Self.knownKeys)")
    for f in t.fields:
        if f.mode == "optional":
            out.append(f'        try container.encodeIfPresent({ident(f.name)}, forKey: "{f.json}")')
        elif f.mode == "omitEmpty":
            out.append(f'        if {ident(f.name)} != {f.default} {{ try container.encode({ident(f.name)}, forKey: "{f.json}") }}')
        else:
            out.append(f'        try container.encode({ident(f.name)}, forKey: "{f.json}")')
    out.append("    }")
    out.append("}")
    return "\n".join(out)

S = "String?"
Q = "[String: Quantity]?"
SM = "[String: String]?"
SA = "[String]?"
J = "JSONValue?"

def cond(name, doc, probe=True):
    fs = [F("type", S, "`type` of the condition."), F("status", S, "`status`: `True`, `False` or `Unknown`.")]
    if probe:
        fs.append(F("lastProbeTime", "Time?", "`lastProbeTime`."))
    else:
        fs.append(F("lastHeartbeatTime", "Time?", "`lastHeartbeatTime`."))
    fs += [F("lastTransitionTime", "Time?", "`lastTransitionTime`."), F("reason", S, "`reason`: machine-readable cause."),
           F("message", S, "`message`: human-readable detail.")]
    return T(name, doc, fs)

core = [
    T("ObjectReference", "A reference to another object (core/v1 `ObjectReference`).", [
        F("kind", S, "`kind` of the referent."), F("namespace", S, "`namespace` of the referent."),
        F("name", S, "`name` of the referent."), F("uid", S, "`uid` of the referent."),
        F("apiVersion", S, "`apiVersion` of the referent."), F("resourceVersion", S, "`resourceVersion` of the referent."),
        F("fieldPath", S, "`fieldPath`: a piece of the referent, e.g. `spec.containers{app}`.")]),
    T("LocalObjectReference", "A reference to an object in the same namespace (core/v1 `LocalObjectReference`).", [
        F("name", S, "`name` of the referent.")]),
    T("TypedLocalObjectReference", "A typed reference in the same namespace (core/v1 `TypedLocalObjectReference`).", [
        F("apiGroup", S, "`apiGroup`; absent for the core group."), F("kind", S, "`kind`."), F("name", S, "`name`.")]),
    T("TypedObjectReference", "A typed reference, possibly cross-namespace (core/v1 `TypedObjectReference`).", [
        F("apiGroup", S, "`apiGroup`; absent for the core group."), F("kind", S, "`kind`."), F("name", S, "`name`."),
        F("namespace", S, "`namespace`.")]),
    T("SecretReference", "A reference to a Secret by name and namespace (core/v1 `SecretReference`).", [
        F("name", S, "`name`."), F("namespace", S, "`namespace`.")]),
    # Namespace
    T("NamespaceSpec", "Namespace spec (core/v1 `NamespaceSpec`).", [
        F("finalizers", SA, "`finalizers` that must be emptied before the namespace is removed.")]),
    T("NamespaceStatus", "Namespace status (core/v1 `NamespaceStatus`).", [
        F("phase", S, "`phase`: `Active` or `Terminating`."), F("conditions", "[JSONValue]?", "`conditions`, kept as raw JSON.")]),
    obj("Namespace", "A namespace (core/v1 `Namespace`).", "v1", "Namespace", False, [
        F("spec", "NamespaceSpec", "`spec`.", mode="omitEmpty"), F("status", "NamespaceStatus", "`status`.", mode="omitEmpty")]),
    # Node
    T("Taint", "A node taint (core/v1 `Taint`).", [
        F("key", "String", "`key`."), F("value", S, "`value`."), F("effect", "String", "`effect`: `NoSchedule`, `PreferNoSchedule` or `NoExecute`."),
        F("timeAdded", "Time?", "`timeAdded`, for `NoExecute` taints.")]),
    T("NodeSpec", "Node spec (core/v1 `NodeSpec`).", [
        F("podCIDR", S, "`podCIDR`."), F("podCIDRs", SA, "`podCIDRs`."), F("providerID", S, "`providerID`."),
        F("unschedulable", "Bool?", "`unschedulable`: cordoned."), F("taints", "[Taint]?", "`taints`.")]),
    cond("NodeCondition", "A node condition (core/v1 `NodeCondition`).", probe=False),
    T("NodeAddress", "A node address (core/v1 `NodeAddress`).", [
        F("type", "String", "`type`, e.g. `InternalIP` or `Hostname`."), F("address", "String", "`address`.")]),
    T("NodeSystemInfo", "Facts the kubelet reports about its machine (core/v1 `NodeSystemInfo`).", [
        F("machineID", S, "`machineID`."), F("systemUUID", S, "`systemUUID`."), F("bootID", S, "`bootID`."),
        F("kernelVersion", S, "`kernelVersion`."), F("osImage", S, "`osImage`."),
        F("containerRuntimeVersion", S, "`containerRuntimeVersion`."), F("kubeletVersion", S, "`kubeletVersion`."),
        F("kubeProxyVersion", S, "`kubeProxyVersion`."), F("operatingSystem", S, "`operatingSystem`."),
        F("architecture", S, "`architecture`.")]),
    T("AttachedVolume", "A volume attached to a node (core/v1 `AttachedVolume`).", [
        F("name", "String", "`name`, e.g. `kubernetes.io/csi/driver^handle`."), F("devicePath", "String", "`devicePath`.")]),
    T("NodeStatus", "Node status (core/v1 `NodeStatus`).", [
        F("capacity", Q, "`capacity`: total resources."), F("allocatable", Q, "`allocatable`: resources available to pods."),
        F("phase", S, "`phase` (deprecated)."), F("conditions", "[NodeCondition]?", "`conditions`."),
        F("addresses", "[NodeAddress]?", "`addresses`."), F("daemonEndpoints", J, "`daemonEndpoints`, raw JSON."),
        F("nodeInfo", "NodeSystemInfo?", "`nodeInfo`."), F("images", "[JSONValue]?", "`images`, raw JSON."),
        F("volumesInUse", SA, "`volumesInUse`."), F("volumesAttached", "[AttachedVolume]?", "`volumesAttached`.")]),
    obj("Node", "A node (core/v1 `Node`).", "v1", "Node", False, [
        F("spec", "NodeSpec", "`spec`.", mode="omitEmpty"), F("status", "NodeStatus", "`status`.", mode="omitEmpty")]),
    # Pod
    T("ContainerPort", "A port exposed by a container (core/v1 `ContainerPort`).", [
        F("name", S, "`name`: an IANA service name."), F("hostPort", "Int32?", "`hostPort`."),
        F("containerPort", "Int32", "`containerPort`."), F("protocol", S, "`protocol`: `TCP`, `UDP` or `SCTP`."),
        F("hostIP", S, "`hostIP`.")]),
    T("EnvVar", "An environment variable (core/v1 `EnvVar`).", [
        F("name", "String", "`name`."), F("value", S, "`value`."), F("valueFrom", J, "`valueFrom`, raw JSON.")]),
    T("ResourceRequirements", "Container compute resources (core/v1 `ResourceRequirements`).", [
        F("limits", Q, "`limits`."), F("requests", Q, "`requests`."), F("claims", "[JSONValue]?", "`claims`, raw JSON.")]),
    T("VolumeMount", "A volume mounted into a container (core/v1 `VolumeMount`).", [
        F("name", "String", "`name` of the pod volume."), F("readOnly", "Bool?", "`readOnly`."),
        F("recursiveReadOnly", S, "`recursiveReadOnly`."), F("mountPath", "String", "`mountPath`."),
        F("subPath", S, "`subPath`."), F("mountPropagation", S, "`mountPropagation`."), F("subPathExpr", S, "`subPathExpr`.")]),
    T("VolumeDevice", "A raw block volume mapped into a container (core/v1 `VolumeDevice`).", [
        F("name", "String", "`name` of the pod volume (a claim)."), F("devicePath", "String", "`devicePath`.")]),
    T("Container", "A container in a pod (core/v1 `Container`).", [
        F("name", "String", "`name`: a DNS label unique in the pod."), F("image", S, "`image`."),
        F("command", SA, "`command`."), F("args", SA, "`args`."), F("workingDir", S, "`workingDir`."),
        F("ports", "[ContainerPort]?", "`ports`."), F("envFrom", "[JSONValue]?", "`envFrom`, raw JSON."),
        F("env", "[EnvVar]?", "`env`."), F("resources", "ResourceRequirements?", "`resources`."),
        F("resizePolicy", "[JSONValue]?", "`resizePolicy`, raw JSON."), F("restartPolicy", S, "`restartPolicy` (init containers only)."),
        F("volumeMounts", "[VolumeMount]?", "`volumeMounts`."), F("volumeDevices", "[VolumeDevice]?", "`volumeDevices`."),
        F("livenessProbe", J, "`livenessProbe`, raw JSON."), F("readinessProbe", J, "`readinessProbe`, raw JSON."),
        F("startupProbe", J, "`startupProbe`, raw JSON."), F("lifecycle", J, "`lifecycle`, raw JSON."),
        F("terminationMessagePath", S, "`terminationMessagePath`."), F("terminationMessagePolicy", S, "`terminationMessagePolicy`."),
        F("imagePullPolicy", S, "`imagePullPolicy`: `Always`, `IfNotPresent` or `Never`."),
        F("securityContext", J, "`securityContext`, raw JSON."), F("stdin", "Bool?", "`stdin`."),
        F("stdinOnce", "Bool?", "`stdinOnce`."), F("tty", "Bool?", "`tty`.")]),
    T("PersistentVolumeClaimVolumeSource", "A pod volume backed by a claim (core/v1 `PersistentVolumeClaimVolumeSource`).", [
        F("claimName", "String", "`claimName`."), F("readOnly", "Bool?", "`readOnly`.")]),
    T("EmptyDirVolumeSource", "A scratch directory (core/v1 `EmptyDirVolumeSource`).", [
        F("medium", S, "`medium`: empty or `Memory`."), F("sizeLimit", "Quantity?", "`sizeLimit`.")]),
    T("HostPathVolumeSource", "A directory on the host (core/v1 `HostPathVolumeSource`).", [
        F("path", "String", "`path`."), F("type", S, "`type`, e.g. `DirectoryOrCreate`.")]),
    T("Volume", "A pod volume (core/v1 `Volume`). Sources not modelled here stay in `unknownFields`.", [
        F("name", "String", "`name`: a DNS label unique in the pod."),
        F("persistentVolumeClaim", "PersistentVolumeClaimVolumeSource?", "`persistentVolumeClaim`."),
        F("emptyDir", "EmptyDirVolumeSource?", "`emptyDir`."), F("hostPath", "HostPathVolumeSource?", "`hostPath`."),
        F("configMap", J, "`configMap`, raw JSON."), F("secret", J, "`secret`, raw JSON."),
        F("csi", J, "`csi` (inline CSI volume), raw JSON."), F("ephemeral", J, "`ephemeral`, raw JSON."),
        F("projected", J, "`projected`, raw JSON."), F("downwardAPI", J, "`downwardAPI`, raw JSON.")]),
    T("Toleration", "A pod toleration (core/v1 `Toleration`).", [
        F("key", S, "`key`; empty with `Exists` matches every taint."), F("operator", S, "`operator`: `Equal` or `Exists`."),
        F("value", S, "`value`."), F("effect", S, "`effect`; empty matches every effect."),
        F("tolerationSeconds", "Int64?", "`tolerationSeconds`, for `NoExecute`.")]),
    T("PodSpec", "Pod spec (core/v1 `PodSpec`).", [
        F("volumes", "[Volume]?", "`volumes`."), F("initContainers", "[Container]?", "`initContainers`."),
        F("containers", "[Container]", "`containers`."), F("ephemeralContainers", "[JSONValue]?", "`ephemeralContainers`, raw JSON."),
        F("restartPolicy", S, "`restartPolicy`: `Always`, `OnFailure` or `Never`."),
        F("terminationGracePeriodSeconds", "Int64?", "`terminationGracePeriodSeconds`."),
        F("activeDeadlineSeconds", "Int64?", "`activeDeadlineSeconds`."), F("dnsPolicy", S, "`dnsPolicy`."),
        F("nodeSelector", SM, "`nodeSelector`."), F("serviceAccountName", S, "`serviceAccountName`."),
        F("serviceAccount", S, "`serviceAccount` (deprecated alias of `serviceAccountName`)."),
        F("automountServiceAccountToken", "Bool?", "`automountServiceAccountToken`."), F("nodeName", S, "`nodeName`."),
        F("hostNetwork", "Bool?", "`hostNetwork`."), F("hostPID", "Bool?", "`hostPID`."), F("hostIPC", "Bool?", "`hostIPC`."),
        F("shareProcessNamespace", "Bool?", "`shareProcessNamespace`: the containers share one PID namespace, whose PID 1 is the pod's pause process."),
        F("securityContext", J, "`securityContext`, raw JSON."),
        F("imagePullSecrets", "[LocalObjectReference]?", "`imagePullSecrets`."), F("hostname", S, "`hostname`."),
        F("subdomain", S, "`subdomain`."), F("affinity", J, "`affinity`, raw JSON."), F("schedulerName", S, "`schedulerName`."),
        F("tolerations", "[Toleration]?", "`tolerations`."), F("priorityClassName", S, "`priorityClassName`."),
        F("priority", "Int32?", "`priority`."), F("preemptionPolicy", S, "`preemptionPolicy`."),
        F("runtimeClassName", S, "`runtimeClassName`."), F("enableServiceLinks", "Bool?", "`enableServiceLinks`."),
        F("overhead", Q, "`overhead`."), F("schedulingGates", "[JSONValue]?", "`schedulingGates`, raw JSON.")]),
    cond("PodCondition", "A pod condition (core/v1 `PodCondition`)."),
    T("PodStatus", "Pod status (core/v1 `PodStatus`).", [
        F("phase", S, "`phase`: `Pending`, `Running`, `Succeeded`, `Failed` or `Unknown`."),
        F("conditions", "[PodCondition]?", "`conditions`."), F("message", S, "`message`."), F("reason", S, "`reason`."),
        F("nominatedNodeName", S, "`nominatedNodeName`."), F("hostIP", S, "`hostIP`."),
        F("hostIPs", "[JSONValue]?", "`hostIPs`, raw JSON."), F("podIP", S, "`podIP`."),
        F("podIPs", "[JSONValue]?", "`podIPs`, raw JSON."), F("startTime", "Time?", "`startTime`."),
        F("initContainerStatuses", "[JSONValue]?", "`initContainerStatuses`, raw JSON."),
        F("containerStatuses", "[JSONValue]?", "`containerStatuses`, raw JSON."), F("qosClass", S, "`qosClass`.")]),
    obj("Pod", "A pod (core/v1 `Pod`).", "v1", "Pod", True, [
        F("spec", "PodSpec", "`spec`.", mode="omitEmpty"), F("status", "PodStatus", "`status`.", mode="omitEmpty")]),
    # Node selectors (PV node affinity; the scheduler's pod affinity will use them too)
    T("NodeSelectorRequirement", "A label (or field) requirement of a node selector term (core/v1 `NodeSelectorRequirement`).", [
        F("key", "String", "`key`: the label key (or field name) it selects on."),
        F("operator", "String", "`operator`: `In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt` or `Lt`."),
        F("values", SA, "`values`: for `In`/`NotIn` one or more, for `Gt`/`Lt` one integer, otherwise none.")]),
    T("NodeSelectorTerm", "Requirements that must all hold (core/v1 `NodeSelectorTerm`).", [
        F("matchExpressions", "[NodeSelectorRequirement]?", "`matchExpressions` over node labels."),
        F("matchFields", "[NodeSelectorRequirement]?", "`matchFields` over node fields (`metadata.name`).")]),
    T("NodeSelector", "Terms of which at least one must hold (core/v1 `NodeSelector`).", [
        F("nodeSelectorTerms", "[NodeSelectorTerm]", "`nodeSelectorTerms`, ORed.")]),
    T("VolumeNodeAffinity", "The nodes a volume can be used from (core/v1 `VolumeNodeAffinity`).", [
        F("required", "NodeSelector?", "`required`: nodes that can access the volume.")]),
    # PersistentVolume
    T("CSIPersistentVolumeSource", "A volume provided by a CSI driver (core/v1 `CSIPersistentVolumeSource`).", [
        F("driver", "String", "`driver`: the CSI driver name."), F("volumeHandle", "String", "`volumeHandle`: the driver's volume ID."),
        F("readOnly", "Bool?", "`readOnly`."), F("fsType", S, "`fsType`."), F("volumeAttributes", SM, "`volumeAttributes`."),
        F("controllerPublishSecretRef", "SecretReference?", "`controllerPublishSecretRef`."),
        F("nodeStageSecretRef", "SecretReference?", "`nodeStageSecretRef`."),
        F("nodePublishSecretRef", "SecretReference?", "`nodePublishSecretRef`."),
        F("controllerExpandSecretRef", "SecretReference?", "`controllerExpandSecretRef`."),
        F("nodeExpandSecretRef", "SecretReference?", "`nodeExpandSecretRef`.")]),
    T("PersistentVolumeSpec", "PersistentVolume spec (core/v1 `PersistentVolumeSpec`). Volume sources not modelled here stay in `unknownFields`.", [
        F("capacity", Q, "`capacity`; only `storage` is allowed."), F("hostPath", "HostPathVolumeSource?", "`hostPath` source."),
        F("csi", "CSIPersistentVolumeSource?", "`csi` source."),
        F("accessModes", SA, "`accessModes`."), F("claimRef", "ObjectReference?", "`claimRef`: the bound claim."),
        F("persistentVolumeReclaimPolicy", S, "`persistentVolumeReclaimPolicy`: `Retain`, `Delete` or `Recycle`."),
        F("storageClassName", S, "`storageClassName`."), F("mountOptions", SA, "`mountOptions`."),
        F("volumeMode", S, "`volumeMode`: `Filesystem` or `Block`."), F("nodeAffinity", "VolumeNodeAffinity?", "`nodeAffinity`: the nodes that can use the volume."),
        F("volumeAttributesClassName", S, "`volumeAttributesClassName`.")]),
    T("PersistentVolumeStatus", "PersistentVolume status (core/v1 `PersistentVolumeStatus`).", [
        F("phase", S, "`phase`: `Pending`, `Available`, `Bound`, `Released` or `Failed`."), F("message", S, "`message`."),
        F("reason", S, "`reason`."), F("lastPhaseTransitionTime", "Time?", "`lastPhaseTransitionTime`.")]),
    obj("PersistentVolume", "A persistent volume (core/v1 `PersistentVolume`).", "v1", "PersistentVolume", False, [
        F("spec", "PersistentVolumeSpec", "`spec`.", mode="omitEmpty"), F("status", "PersistentVolumeStatus", "`status`.", mode="omitEmpty")]),
    # PVC
    T("VolumeResourceRequirements", "Storage requested by a claim (core/v1 `VolumeResourceRequirements`).", [
        F("limits", Q, "`limits`."), F("requests", Q, "`requests`; `storage` is required.")]),
    T("PersistentVolumeClaimSpec", "PersistentVolumeClaim spec (core/v1 `PersistentVolumeClaimSpec`).", [
        F("accessModes", SA, "`accessModes`."), F("selector", "LabelSelectorSpec?", "`selector` over volumes."),
        F("resources", "VolumeResourceRequirements?", "`resources`."), F("volumeName", S, "`volumeName`: the bound volume."),
        F("storageClassName", S, "`storageClassName`; empty string means no class."),
        F("volumeMode", S, "`volumeMode`: `Filesystem` or `Block`."), F("dataSource", "TypedLocalObjectReference?", "`dataSource`."),
        F("dataSourceRef", "TypedObjectReference?", "`dataSourceRef`."),
        F("volumeAttributesClassName", S, "`volumeAttributesClassName`.")]),
    cond("PersistentVolumeClaimCondition", "A claim condition (core/v1 `PersistentVolumeClaimCondition`)."),
    T("PersistentVolumeClaimStatus", "PersistentVolumeClaim status (core/v1 `PersistentVolumeClaimStatus`).", [
        F("phase", S, "`phase`: `Pending`, `Bound` or `Lost`."), F("accessModes", SA, "`accessModes` of the bound volume."),
        F("capacity", Q, "`capacity` of the bound volume."), F("conditions", "[PersistentVolumeClaimCondition]?", "`conditions`."),
        F("allocatedResources", Q, "`allocatedResources`."), F("allocatedResourceStatuses", SM, "`allocatedResourceStatuses`."),
        F("currentVolumeAttributesClassName", S, "`currentVolumeAttributesClassName`."),
        F("modifyVolumeStatus", J, "`modifyVolumeStatus`, raw JSON.")]),
    obj("PersistentVolumeClaim", "A persistent volume claim (core/v1 `PersistentVolumeClaim`).", "v1", "PersistentVolumeClaim", True, [
        F("spec", "PersistentVolumeClaimSpec", "`spec`.", mode="omitEmpty"),
        F("status", "PersistentVolumeClaimStatus", "`status`.", mode="omitEmpty")]),
    # Event
    T("EventSource", "The component that reported an event (core/v1 `EventSource`).", [
        F("component", S, "`component`."), F("host", S, "`host`.")]),
    obj("Event", "An event (core/v1 `Event`).", "v1", "Event", True, [
        F("involvedObject", "ObjectReference", "`involvedObject`: what the event is about.", mode="omitEmpty"),
        F("reason", S, "`reason`: short machine-readable cause."), F("message", S, "`message`."),
        F("source", "EventSource?", "`source`."), F("firstTimestamp", "Time?", "`firstTimestamp`."),
        F("lastTimestamp", "Time?", "`lastTimestamp`."), F("count", "Int32?", "`count`: times it occurred."),
        F("type", S, "`type`: `Normal` or `Warning`."), F("eventTime", "MicroTime?", "`eventTime`."),
        F("series", J, "`series`, raw JSON."), F("action", S, "`action`."), F("related", "ObjectReference?", "`related`."),
        F("reportingComponent", S, "`reportingComponent`."), F("reportingInstance", S, "`reportingInstance`.")]),
    # Service, Endpoints
    obj("Service", "A service (core/v1 `Service`), with `spec` and `status` kept as raw JSON.", "v1", "Service", True, [
        F("spec", J, "`spec`, raw JSON."), F("status", J, "`status`, raw JSON.")]),
    obj("Endpoints", "Service endpoints (core/v1 `Endpoints`), with `subsets` kept as raw JSON.", "v1", "Endpoints", True, [
        F("subsets", "[JSONValue]?", "`subsets`, raw JSON.")]),
    # ConfigMap, Secret: what configMap and secret volumes (and env) of pods read
    obj("ConfigMap", "Configuration data (core/v1 `ConfigMap`).", "v1", "ConfigMap", True, [
        F("data", SM, "`data`: UTF-8 values by key."), F("binaryData", SM, "`binaryData`: base64 values by key."),
        F("immutable", "Bool?", "`immutable`: data can no longer change.")]),
    obj("Secret", "Secret data (core/v1 `Secret`).", "v1", "Secret", True, [
        F("data", SM, "`data`: base64 values by key."),
        F("stringData", SM, "`stringData`: plain values merged into `data` when written; never read back."),
        F("type", S, "`type`: `Opaque` unless said otherwise."), F("immutable", "Bool?", "`immutable`: data can no longer change.")]),
]

storage = [
    T("TopologySelectorLabelRequirement", "One topology label and its allowed values (core/v1 `TopologySelectorLabelRequirement`).", [
        F("key", "String", "`key`: the topology label, e.g. `topology.kubernetes.io/zone`."),
        F("values", "[String]", "`values`: the allowed values, ORed.")]),
    T("TopologySelectorTerm", "Topology requirements that must all hold (core/v1 `TopologySelectorTerm`).", [
        F("matchLabelExpressions", "[TopologySelectorLabelRequirement]?", "`matchLabelExpressions`, ANDed.")]),
    obj("StorageClass", "A storage class (storage.k8s.io/v1 `StorageClass`).", "storage.k8s.io/v1", "StorageClass", False, [
        F("provisioner", "String", "`provisioner`: the driver that provisions volumes."), F("parameters", SM, "`parameters`."),
        F("reclaimPolicy", S, "`reclaimPolicy`: `Delete` or `Retain`."), F("mountOptions", SA, "`mountOptions`."),
        F("allowVolumeExpansion", "Bool?", "`allowVolumeExpansion`."),
        F("volumeBindingMode", S, "`volumeBindingMode`: `Immediate` or `WaitForFirstConsumer`."),
        F("allowedTopologies", "[TopologySelectorTerm]?", "`allowedTopologies`: where volumes of the class may be provisioned, ORed terms.")]),
    T("VolumeAttachmentSource", "What a VolumeAttachment attaches (storage.k8s.io/v1 `VolumeAttachmentSource`).", [
        F("persistentVolumeName", S, "`persistentVolumeName`."),
        F("inlineVolumeSpec", "PersistentVolumeSpec?", "`inlineVolumeSpec`: a migrated in-tree inline volume.")]),
    T("VolumeAttachmentSpec", "VolumeAttachment spec (storage.k8s.io/v1 `VolumeAttachmentSpec`).", [
        F("attacher", "String", "`attacher`: the CSI driver name."), F("source", "VolumeAttachmentSource", "`source`."),
        F("nodeName", "String", "`nodeName`.")]),
    T("VolumeError", "An attach or detach error (storage.k8s.io/v1 `VolumeError`).", [
        F("time", "Time?", "`time`."), F("message", S, "`message`."), F("errorCode", "Int32?", "`errorCode`.")]),
    T("VolumeAttachmentStatus", "VolumeAttachment status (storage.k8s.io/v1 `VolumeAttachmentStatus`).", [
        F("attached", "Bool", "`attached`."), F("attachmentMetadata", SM, "`attachmentMetadata`."),
        F("attachError", "VolumeError?", "`attachError`."), F("detachError", "VolumeError?", "`detachError`.")]),
    obj("VolumeAttachment", "A volume attachment (storage.k8s.io/v1 `VolumeAttachment`).", "storage.k8s.io/v1", "VolumeAttachment", False, [
        F("spec", "VolumeAttachmentSpec", "`spec`.", mode="omitEmpty"), F("status", "VolumeAttachmentStatus?", "`status`.")]),
    T("CSIDriverSpec", "CSIDriver spec (storage.k8s.io/v1 `CSIDriverSpec`).", [
        F("attachRequired", "Bool?", "`attachRequired`."), F("podInfoOnMount", "Bool?", "`podInfoOnMount`."),
        F("volumeLifecycleModes", SA, "`volumeLifecycleModes`: `Persistent` and/or `Ephemeral`."),
        F("storageCapacity", "Bool?", "`storageCapacity`."), F("fsGroupPolicy", S, "`fsGroupPolicy`."),
        F("tokenRequests", "[JSONValue]?", "`tokenRequests`, raw JSON."), F("requiresRepublish", "Bool?", "`requiresRepublish`."),
        F("seLinuxMount", "Bool?", "`seLinuxMount`."),
        F("nodeAllocatableUpdatePeriodSeconds", "Int64?", "`nodeAllocatableUpdatePeriodSeconds`.")]),
    obj("CSIDriver", "A CSI driver registration (storage.k8s.io/v1 `CSIDriver`).", "storage.k8s.io/v1", "CSIDriver", False, [
        F("spec", "CSIDriverSpec", "`spec`.")]),
    T("VolumeNodeResources", "Per-node volume limits of a driver (storage.k8s.io/v1 `VolumeNodeResources`).", [
        F("count", "Int32?", "`count`: maximum volumes of this driver on the node.")]),
    T("CSINodeDriver", "A CSI driver installed on a node (storage.k8s.io/v1 `CSINodeDriver`).", [
        F("name", "String", "`name` of the driver."), F("nodeID", "String", "`nodeID`: the node as the driver knows it."),
        F("topologyKeys", SA, "`topologyKeys`."), F("allocatable", "VolumeNodeResources?", "`allocatable`.")]),
    T("CSINodeSpec", "CSINode spec (storage.k8s.io/v1 `CSINodeSpec`).", [
        F("drivers", "[CSINodeDriver]", "`drivers`.")]),
    obj("CSINode", "The CSI drivers on a node (storage.k8s.io/v1 `CSINode`).", "storage.k8s.io/v1", "CSINode", False, [
        F("spec", "CSINodeSpec", "`spec`.")]),
]

# snapshot.storage.k8s.io/v1: served from CustomResourceDefinitions (fixtures/crds/), typed here
# for the snapshot controller and the provisioner.
SNAP = "snapshot.storage.k8s.io/v1"
snapshot = [
    obj("VolumeSnapshotClass", "A class of snapshots: the driver and how its snapshots are deleted (snapshot.storage.k8s.io/v1 `VolumeSnapshotClass`).",
        SNAP, "VolumeSnapshotClass", False, [
        F("driver", "String", "`driver`: the CSI driver that takes the snapshots."),
        F("parameters", SM, "`parameters`: passed to CreateSnapshot (the `csi.storage.k8s.io/` keys excepted)."),
        F("deletionPolicy", "String", "`deletionPolicy`: `Delete` or `Retain`, copied into each content.")]),
    T("VolumeSnapshotSource", "Where a snapshot comes from: exactly one of the two (snapshot.storage.k8s.io/v1 `VolumeSnapshotSource`).", [
        F("persistentVolumeClaimName", S, "`persistentVolumeClaimName`: a claim in the snapshot's namespace to snapshot (dynamic)."),
        F("volumeSnapshotContentName", S, "`volumeSnapshotContentName`: an existing content to bind (pre-provisioned).")]),
    T("VolumeSnapshotSpec", "VolumeSnapshot spec (snapshot.storage.k8s.io/v1 `VolumeSnapshotSpec`).", [
        F("source", "VolumeSnapshotSource", "`source`.", mode="omitEmpty"),
        F("volumeSnapshotClassName", S, "`volumeSnapshotClassName`; nil: the driver's default class.")]),
    T("VolumeSnapshotError", "The last error of a snapshot's creation (snapshot.storage.k8s.io/v1 `VolumeSnapshotError`).", [
        F("time", "Time?", "`time`."), F("message", S, "`message`.")]),
    T("VolumeSnapshotStatus", "VolumeSnapshot status (snapshot.storage.k8s.io/v1 `VolumeSnapshotStatus`).", [
        F("boundVolumeSnapshotContentName", S, "`boundVolumeSnapshotContentName`."),
        F("creationTime", "Time?", "`creationTime`: when the storage system took the snapshot."),
        F("readyToUse", "Bool?", "`readyToUse`."),
        F("restoreSize", "Quantity?", "`restoreSize`: the smallest volume the snapshot restores into."),
        F("error", "VolumeSnapshotError?", "`error`."),
        F("volumeGroupSnapshotName", S, "`volumeGroupSnapshotName`.")]),
    obj("VolumeSnapshot", "A user's request for a snapshot of a claim, or for binding an existing one (snapshot.storage.k8s.io/v1 `VolumeSnapshot`).",
        SNAP, "VolumeSnapshot", True, [
        F("spec", "VolumeSnapshotSpec", "`spec`.", mode="omitEmpty"), F("status", "VolumeSnapshotStatus?", "`status`.")]),
    T("VolumeSnapshotContentSource", "What a content represents: exactly one of the two (snapshot.storage.k8s.io/v1 `VolumeSnapshotContentSource`).", [
        F("volumeHandle", S, "`volumeHandle`: the CSI volume to snapshot (dynamic)."),
        F("snapshotHandle", S, "`snapshotHandle`: the CSI snapshot that exists (pre-provisioned).")]),
    T("VolumeSnapshotContentSpec", "VolumeSnapshotContent spec (snapshot.storage.k8s.io/v1 `VolumeSnapshotContentSpec`).", [
        F("volumeSnapshotRef", "ObjectReference", "`volumeSnapshotRef`: the VolumeSnapshot bound to it.", mode="omitEmpty"),
        F("deletionPolicy", "String", "`deletionPolicy`: `Delete` or `Retain`."),
        F("driver", "String", "`driver`."),
        F("volumeSnapshotClassName", S, "`volumeSnapshotClassName`."),
        F("source", "VolumeSnapshotContentSource", "`source`.", mode="omitEmpty"),
        F("sourceVolumeMode", S, "`sourceVolumeMode`: `Filesystem` or `Block`.")]),
    T("VolumeSnapshotContentStatus", "VolumeSnapshotContent status (snapshot.storage.k8s.io/v1 `VolumeSnapshotContentStatus`).", [
        F("snapshotHandle", S, "`snapshotHandle`: the CSI snapshot id."),
        F("creationTime", "Int64?", "`creationTime`, in nanoseconds since the Unix epoch."),
        F("restoreSize", "Int64?", "`restoreSize`, in bytes."),
        F("readyToUse", "Bool?", "`readyToUse`."),
        F("error", "VolumeSnapshotError?", "`error`."),
        F("volumeGroupSnapshotHandle", S, "`volumeGroupSnapshotHandle`.")]),
    obj("VolumeSnapshotContent", "A snapshot in the storage system, bound to one VolumeSnapshot (snapshot.storage.k8s.io/v1 `VolumeSnapshotContent`).",
        SNAP, "VolumeSnapshotContent", False, [
        F("spec", "VolumeSnapshotContentSpec", "`spec`.", mode="omitEmpty"), F("status", "VolumeSnapshotContentStatus?", "`status`.")]),
]

coordination = [
    T("LeaseSpec", "Lease spec (coordination.k8s.io/v1 `LeaseSpec`).", [
        F("holderIdentity", S, "`holderIdentity`."), F("leaseDurationSeconds", "Int32?", "`leaseDurationSeconds`."),
        F("acquireTime", "MicroTime?", "`acquireTime`."), F("renewTime", "MicroTime?", "`renewTime`."),
        F("leaseTransitions", "Int32?", "`leaseTransitions`."), F("strategy", S, "`strategy`."),
        F("preferredHolder", S, "`preferredHolder`.")]),
    obj("Lease", "A lease (coordination.k8s.io/v1 `Lease`).", "coordination.k8s.io/v1", "Lease", True, [
        F("spec", "LeaseSpec", "`spec`.", mode="omitEmpty")]),
]

apps = [
    T("PodTemplateSpec", "A pod template: the metadata and spec of the pods a controller creates (core/v1 `PodTemplateSpec`).", [
        F("metadata", "ObjectMeta", "`metadata` of the pods (labels, annotations).", mode="omitEmpty"),
        F("spec", "PodSpec", "`spec` of the pods.", mode="omitEmpty")]),
    T("RollingUpdateStatefulSetStrategy", "How a StatefulSet rolls (apps/v1 `RollingUpdateStatefulSetStrategy`).", [
        F("partition", "Int32?", "`partition`: ordinals below it keep the current revision."),
        F("maxUnavailable", "IntOrString?", "`maxUnavailable` (alpha upstream; one pod at a time here).")]),
    T("StatefulSetUpdateStrategy", "A StatefulSet's update strategy (apps/v1 `StatefulSetUpdateStrategy`).", [
        F("type", S, "`type`: `RollingUpdate` or `OnDelete`."),
        F("rollingUpdate", "RollingUpdateStatefulSetStrategy?", "`rollingUpdate`.")]),
    T("StatefulSetPersistentVolumeClaimRetentionPolicy",
      "What happens to a StatefulSet's claims (apps/v1 `StatefulSetPersistentVolumeClaimRetentionPolicy`).", [
        F("whenDeleted", S, "`whenDeleted`: `Retain` or `Delete`, when the StatefulSet is deleted."),
        F("whenScaled", S, "`whenScaled`: `Retain` or `Delete`, when a replica is scaled away.")]),
    T("StatefulSetOrdinals", "The first ordinal of a StatefulSet's replicas (apps/v1 `StatefulSetOrdinals`).", [
        F("start", "Int32?", "`start`: the first ordinal, 0 by default.")]),
    T("StatefulSetSpec", "StatefulSet spec (apps/v1 `StatefulSetSpec`).", [
        F("replicas", "Int32?", "`replicas`: 1 by default."), F("selector", "LabelSelectorSpec?", "`selector`: required, matches the template's labels."),
        F("template", "PodTemplateSpec", "`template` of the replicas.", mode="omitEmpty"),
        F("volumeClaimTemplates", "[PersistentVolumeClaim]?", "`volumeClaimTemplates`: one claim per replica and template."),
        F("serviceName", S, "`serviceName`: the governing (headless) Service."),
        F("podManagementPolicy", S, "`podManagementPolicy`: `OrderedReady` or `Parallel`."),
        F("updateStrategy", "StatefulSetUpdateStrategy?", "`updateStrategy`."),
        F("revisionHistoryLimit", "Int32?", "`revisionHistoryLimit`: ControllerRevisions kept, 10 by default."),
        F("minReadySeconds", "Int32?", "`minReadySeconds`."),
        F("persistentVolumeClaimRetentionPolicy", "StatefulSetPersistentVolumeClaimRetentionPolicy?", "`persistentVolumeClaimRetentionPolicy`."),
        F("ordinals", "StatefulSetOrdinals?", "`ordinals`.")]),
    T("StatefulSetCondition", "A StatefulSet condition (apps/v1 `StatefulSetCondition`).", [
        F("type", S, "`type`."), F("status", S, "`status`."), F("lastTransitionTime", "Time?", "`lastTransitionTime`."),
        F("reason", S, "`reason`."), F("message", S, "`message`.")]),
    T("StatefulSetStatus", "StatefulSet status (apps/v1 `StatefulSetStatus`).", [
        F("observedGeneration", "Int64?", "`observedGeneration`."), F("replicas", "Int32", "`replicas`: pods created."),
        F("readyReplicas", "Int32?", "`readyReplicas`."), F("currentReplicas", "Int32?", "`currentReplicas`: pods at `currentRevision`."),
        F("updatedReplicas", "Int32?", "`updatedReplicas`: pods at `updateRevision`."),
        F("currentRevision", S, "`currentRevision`."), F("updateRevision", S, "`updateRevision`."),
        F("collisionCount", "Int32?", "`collisionCount`."), F("conditions", "[StatefulSetCondition]?", "`conditions`."),
        F("availableReplicas", "Int32", "`availableReplicas`: ready for `minReadySeconds`.")]),
    obj("StatefulSet", "A StatefulSet (apps/v1 `StatefulSet`).", "apps/v1", "StatefulSet", True, [
        F("spec", "StatefulSetSpec", "`spec`.", mode="omitEmpty"), F("status", "StatefulSetStatus", "`status`: always written, as Kubernetes does (its counts are not omitted when zero).")]),
    T("RollingUpdateDeployment", "How a Deployment rolls (apps/v1 `RollingUpdateDeployment`).", [
        F("maxUnavailable", "IntOrString?", "`maxUnavailable`: 25% by default."),
        F("maxSurge", "IntOrString?", "`maxSurge`: 25% by default.")]),
    T("DeploymentStrategy", "A Deployment's strategy (apps/v1 `DeploymentStrategy`).", [
        F("type", S, "`type`: `RollingUpdate` or `Recreate`."), F("rollingUpdate", "RollingUpdateDeployment?", "`rollingUpdate`.")]),
    T("DeploymentSpec", "Deployment spec (apps/v1 `DeploymentSpec`).", [
        F("replicas", "Int32?", "`replicas`: 1 by default."), F("selector", "LabelSelectorSpec?", "`selector`: required."),
        F("template", "PodTemplateSpec", "`template`.", mode="omitEmpty"), F("strategy", "DeploymentStrategy?", "`strategy`."),
        F("minReadySeconds", "Int32?", "`minReadySeconds`."), F("revisionHistoryLimit", "Int32?", "`revisionHistoryLimit`: 10 by default."),
        F("paused", "Bool?", "`paused`."), F("progressDeadlineSeconds", "Int32?", "`progressDeadlineSeconds`: 600 by default.")]),
    T("DeploymentCondition", "A Deployment condition (apps/v1 `DeploymentCondition`).", [
        F("type", S, "`type`: `Available`, `Progressing` or `ReplicaFailure`."), F("status", S, "`status`."),
        F("lastUpdateTime", "Time?", "`lastUpdateTime`."), F("lastTransitionTime", "Time?", "`lastTransitionTime`."),
        F("reason", S, "`reason`."), F("message", S, "`message`.")]),
    T("DeploymentStatus", "Deployment status (apps/v1 `DeploymentStatus`).", [
        F("observedGeneration", "Int64?", "`observedGeneration`."), F("replicas", "Int32?", "`replicas`."),
        F("updatedReplicas", "Int32?", "`updatedReplicas`."), F("readyReplicas", "Int32?", "`readyReplicas`."),
        F("availableReplicas", "Int32?", "`availableReplicas`."), F("unavailableReplicas", "Int32?", "`unavailableReplicas`."),
        F("terminatingReplicas", "Int32?", "`terminatingReplicas`."),
        F("conditions", "[DeploymentCondition]?", "`conditions`."), F("collisionCount", "Int32?", "`collisionCount`.")]),
    obj("Deployment", "A Deployment (apps/v1 `Deployment`).", "apps/v1", "Deployment", True, [
        F("spec", "DeploymentSpec", "`spec`.", mode="omitEmpty"), F("status", "DeploymentStatus", "`status`.", mode="omitEmpty")]),
    T("ReplicaSetSpec", "ReplicaSet spec (apps/v1 `ReplicaSetSpec`).", [
        F("replicas", "Int32?", "`replicas`: 1 by default."), F("minReadySeconds", "Int32?", "`minReadySeconds`."),
        F("selector", "LabelSelectorSpec?", "`selector`: required."), F("template", "PodTemplateSpec?", "`template`.")]),
    T("ReplicaSetCondition", "A ReplicaSet condition (apps/v1 `ReplicaSetCondition`).", [
        F("type", S, "`type`."), F("status", S, "`status`."), F("lastTransitionTime", "Time?", "`lastTransitionTime`."),
        F("reason", S, "`reason`."), F("message", S, "`message`.")]),
    T("ReplicaSetStatus", "ReplicaSet status (apps/v1 `ReplicaSetStatus`).", [
        F("replicas", "Int32", "`replicas`: pods that exist."), F("fullyLabeledReplicas", "Int32?", "`fullyLabeledReplicas`."),
        F("readyReplicas", "Int32?", "`readyReplicas`."), F("availableReplicas", "Int32?", "`availableReplicas`."),
        F("terminatingReplicas", "Int32?", "`terminatingReplicas`."),
        F("observedGeneration", "Int64?", "`observedGeneration`."), F("conditions", "[ReplicaSetCondition]?", "`conditions`.")]),
    obj("ReplicaSet", "A ReplicaSet (apps/v1 `ReplicaSet`).", "apps/v1", "ReplicaSet", True, [
        F("spec", "ReplicaSetSpec", "`spec`.", mode="omitEmpty"), F("status", "ReplicaSetStatus", "`status`: always written, as Kubernetes does (its counts are not omitted when zero).")]),
    obj("ControllerRevision", "An immutable snapshot of a controller's template (apps/v1 `ControllerRevision`).", "apps/v1",
        "ControllerRevision", True, [
        F("data", J, "`data`: the recorded state, raw JSON."), F("revision", "Int64", "`revision`: its number in the history.")]),
]

autoscaling = [
    T("ScaleSpec", "The wanted size (autoscaling/v1 `ScaleSpec`).", [F("replicas", "Int32?", "`replicas`.")]),
    T("ScaleStatus", "The observed size (autoscaling/v1 `ScaleStatus`).", [
        F("replicas", "Int32", "`replicas`."), F("selector", S, "`selector`: the pods' label selector, as a string.")]),
    obj("Scale", "The `scale` subresource of a workload (autoscaling/v1 `Scale`).", "autoscaling/v1", "Scale", True, [
        F("spec", "ScaleSpec", "`spec`.", mode="omitEmpty"), F("status", "ScaleStatus", "`status`.", mode="omitEmpty")]),
]

batch = [
    T("JobSpec", "Job spec (batch/v1 `JobSpec`).", [
        F("parallelism", "Int32?", "`parallelism`: pods running at once, 1 by default."),
        F("completions", "Int32?", "`completions`: successful pods needed; absent means any one success (work queue)."),
        F("activeDeadlineSeconds", "Int64?", "`activeDeadlineSeconds`: the Job fails after this long."),
        F("podFailurePolicy", J, "`podFailurePolicy`, raw JSON."), F("successPolicy", J, "`successPolicy`, raw JSON."),
        F("backoffLimit", "Int32?", "`backoffLimit`: failed pods tolerated, 6 by default."),
        F("backoffLimitPerIndex", "Int32?", "`backoffLimitPerIndex`."), F("maxFailedIndexes", "Int32?", "`maxFailedIndexes`."),
        F("selector", "LabelSelectorSpec?", "`selector`: generated from the Job's uid unless `manualSelector`."),
        F("manualSelector", "Bool?", "`manualSelector`."), F("template", "PodTemplateSpec", "`template`.", mode="omitEmpty"),
        F("ttlSecondsAfterFinished", "Int32?", "`ttlSecondsAfterFinished`: the Job is deleted this long after it finished."),
        F("completionMode", S, "`completionMode`: `NonIndexed` or `Indexed`."), F("suspend", "Bool?", "`suspend`."),
        F("podReplacementPolicy", S, "`podReplacementPolicy`."), F("managedBy", S, "`managedBy`.")]),
    cond("JobCondition", "A Job condition (batch/v1 `JobCondition`)."),
    T("JobStatus", "Job status (batch/v1 `JobStatus`).", [
        F("conditions", "[JobCondition]?", "`conditions`: `Complete`, `Failed`, `Suspended`, …"),
        F("startTime", "Time?", "`startTime`."), F("completionTime", "Time?", "`completionTime`."),
        F("active", "Int32?", "`active`: running pods."), F("succeeded", "Int32?", "`succeeded`."), F("failed", "Int32?", "`failed`."),
        F("terminating", "Int32?", "`terminating`."), F("completedIndexes", S, "`completedIndexes`."),
        F("failedIndexes", S, "`failedIndexes`."), F("uncountedTerminatedPods", J, "`uncountedTerminatedPods`, raw JSON."),
        F("ready", "Int32?", "`ready`: active pods that are Ready.")]),
    obj("Job", "A Job (batch/v1 `Job`).", "batch/v1", "Job", True, [
        F("spec", "JobSpec", "`spec`.", mode="omitEmpty"), F("status", "JobStatus", "`status`.", mode="omitEmpty")]),
]

apiextensions = [
    T("CustomResourceDefinitionNames", "The names of a custom resource (apiextensions.k8s.io/v1 `CustomResourceDefinitionNames`).", [
        F("plural", "String", "`plural`: the lowercase name in URLs, e.g. `volumesnapshots`."),
        F("singular", S, "`singular`: defaults to the lowercased kind."), F("shortNames", SA, "`shortNames` for kubectl."),
        F("kind", "String", "`kind`, e.g. `VolumeSnapshot`."), F("listKind", S, "`listKind`: defaults to `<kind>List`."),
        F("categories", SA, "`categories`, e.g. `all`.")]),
    T("CustomResourceValidation", "A version's schema (apiextensions.k8s.io/v1 `CustomResourceValidation`).", [
        F("openAPIV3Schema", J, "`openAPIV3Schema`: the structural OpenAPI v3 schema, raw JSON.")]),
    T("CustomResourceSubresources", "A version's subresources (apiextensions.k8s.io/v1 `CustomResourceSubresources`).", [
        F("status", J, "`status`: `{}` enables the status subresource."), F("scale", J, "`scale`, raw JSON.")]),
    T("CustomResourceColumnDefinition", "A column of `kubectl get` (apiextensions.k8s.io/v1 `CustomResourceColumnDefinition`).", [
        F("name", "String", "`name`: the column's header."), F("type", "String", "`type`: integer, number, string, boolean or date."),
        F("format", S, "`format`."), F("description", S, "`description`."), F("priority", "Int32?", "`priority`: 0 shows by default, more with -o wide."),
        F("jsonPath", "String", "`jsonPath`: a simple JSONPath into the object, e.g. `.status.readyToUse`.")]),
    T("CustomResourceDefinitionVersion", "One version of a custom resource (apiextensions.k8s.io/v1 `CustomResourceDefinitionVersion`).", [
        F("name", "String", "`name`, e.g. `v1`."), F("served", "Bool", "`served`: whether the API serves it."),
        F("storage", "Bool", "`storage`: whether objects are stored in it (exactly one version)."),
        F("deprecated", "Bool?", "`deprecated`."), F("deprecationWarning", S, "`deprecationWarning`."),
        F("schema", "CustomResourceValidation?", "`schema`."), F("subresources", "CustomResourceSubresources?", "`subresources`."),
        F("additionalPrinterColumns", "[CustomResourceColumnDefinition]?", "`additionalPrinterColumns`."),
        F("selectableFields", "[JSONValue]?", "`selectableFields`, raw JSON.")]),
    T("CustomResourceDefinitionSpec", "CustomResourceDefinition spec (apiextensions.k8s.io/v1 `CustomResourceDefinitionSpec`).", [
        F("group", "String", "`group`: a DNS subdomain with at least one dot."),
        F("names", "CustomResourceDefinitionNames", "`names`."), F("scope", "String", "`scope`: `Namespaced` or `Cluster`."),
        F("versions", "[CustomResourceDefinitionVersion]", "`versions`."), F("conversion", J, "`conversion`, raw JSON (only `None` is supported)."),
        F("preserveUnknownFields", "Bool?", "`preserveUnknownFields`: must be false in v1.")]),
    T("CustomResourceDefinitionCondition", "A CustomResourceDefinition condition (apiextensions.k8s.io/v1 `CustomResourceDefinitionCondition`).", [
        F("type", S, "`type`: `Established`, `NamesAccepted` or `Terminating`."), F("status", S, "`status`."),
        F("lastTransitionTime", "Time?", "`lastTransitionTime`."), F("reason", S, "`reason`."), F("message", S, "`message`.")]),
    T("CustomResourceDefinitionStatus", "CustomResourceDefinition status (apiextensions.k8s.io/v1 `CustomResourceDefinitionStatus`).", [
        F("conditions", "[CustomResourceDefinitionCondition]?", "`conditions`."),
        F("acceptedNames", "CustomResourceDefinitionNames?", "`acceptedNames`: the names being served."),
        F("storedVersions", SA, "`storedVersions`: versions objects were ever stored in.")]),
    obj("CustomResourceDefinition", "A custom resource's definition (apiextensions.k8s.io/v1 `CustomResourceDefinition`).",
        "apiextensions.k8s.io/v1", "CustomResourceDefinition", False, [
        F("spec", "CustomResourceDefinitionSpec", "`spec`."), F("status", "CustomResourceDefinitionStatus", "`status`.", mode="omitEmpty")]),
]

discovery = [
    T("EndpointConditions", "The state of one endpoint (discovery.k8s.io/v1 `EndpointConditions`).", [
        F("ready", "Bool?", "`ready`: the endpoint takes traffic (serving and not terminating, unless the Service publishes not-ready addresses)."),
        F("serving", "Bool?", "`serving`: the endpoint passes its readiness checks, whether or not it is terminating."),
        F("terminating", "Bool?", "`terminating`: the endpoint is being deleted.")]),
    T("Endpoint", "One endpoint of an EndpointSlice (discovery.k8s.io/v1 `Endpoint`).", [
        F("addresses", "[String]", "`addresses`: one IP address of the slice's address type."),
        F("conditions", "EndpointConditions", "`conditions`; always encoded, as Kubernetes does."),
        F("hostname", S, "`hostname`: the pod's `spec.hostname` when it is in the Service's subdomain (DNS A records)."),
        F("targetRef", "ObjectReference?", "`targetRef`: the pod."), F("nodeName", S, "`nodeName`."),
        F("zone", S, "`zone`: the node's `topology.kubernetes.io/zone`."), F("hints", J, "`hints`, raw JSON."),
        F("deprecatedTopology", SM, "`deprecatedTopology`.")]),
    T("EndpointPort", "A port of an EndpointSlice (discovery.k8s.io/v1 `EndpointPort`).", [
        F("name", S, "`name`: the Service port's name."), F("protocol", S, "`protocol`: `TCP`, `UDP` or `SCTP`."),
        F("port", "Int32?", "`port`: the target port resolved for these endpoints."), F("appProtocol", S, "`appProtocol`.")]),
    obj("EndpointSlice", "A set of endpoints of a Service (discovery.k8s.io/v1 `EndpointSlice`).", "discovery.k8s.io/v1", "EndpointSlice", True, [
        F("addressType", "String", "`addressType`: `IPv4`, `IPv6` or `FQDN`."),
        F("endpoints", "[Endpoint]", "`endpoints`: at most 1000."),
        F("ports", "[EndpointPort]?", "`ports`: at most 100.")]),
]

meta = [
    T("TypeMeta", "The `apiVersion`/`kind` pair every Kubernetes object carries (metav1 `TypeMeta`).\n\n"
      "Decoding a whole object as `TypeMeta` reads its type and keeps everything else in\n`unknownFields`.", [
        F("apiVersion", S, "`apiVersion`, e.g. `v1` or `apps/v1`."), F("kind", S, "`kind`, e.g. `Pod`.")]),
    T("OwnerReference", "A reference from an object to its owner (metav1 `OwnerReference`).", [
        F("apiVersion", "String", "The owner's `apiVersion`.", required=True),
        F("kind", "String", "The owner's `kind`.", required=True),
        F("name", "String", "The owner's `name`.", required=True),
        F("uid", "String", "The owner's `uid`.", required=True),
        F("controller", "Bool?", "Whether the owner is the managing controller (`controller`)."),
        F("blockOwnerDeletion", "Bool?", "Whether the owner's deletion waits for this object (`blockOwnerDeletion`).")]),
    T("ObjectMeta", "Standard object metadata (metav1 `ObjectMeta`). Only non-nil fields are encoded.", [
        F("name", S, "`name`."), F("generateName", S, "`generateName`: prefix for a server-generated name."),
        F("namespace", S, "`namespace`."), F("uid", S, "`uid`."),
        F("resourceVersion", S, "`resourceVersion`: opaque concurrency token."),
        F("generation", "Int64?", "`generation`: sequence number of spec changes."),
        F("creationTimestamp", "Time?", "`creationTimestamp`."),
        F("deletionTimestamp", "Time?", "`deletionTimestamp`: when graceful deletion was requested."),
        F("deletionGracePeriodSeconds", "Int64?", "`deletionGracePeriodSeconds`."),
        F("labels", SM, "`labels`."), F("annotations", SM, "`annotations`."),
        F("ownerReferences", "[OwnerReference]?", "`ownerReferences`."), F("finalizers", SA, "`finalizers`."),
        F("managedFields", "[JSONValue]?", "`managedFields`, kept as raw JSON.")]),
    T("ListMeta", "List metadata (metav1 `ListMeta`). Only non-nil fields are encoded.", [
        F("resourceVersion", S, "`resourceVersion` of the list."),
        F("continueToken", S, "The `continue` token for fetching the next page.", json="continue"),
        F("remainingItemCount", "Int64?", "`remainingItemCount`: approximate items left after this page.")]),
    T("StatusCause", "One reason a request failed, usually tied to a field (metav1 `StatusCause`).", [
        F("reason", S, "Machine-readable cause, e.g. `FieldValueInvalid` (`reason`)."),
        F("message", S, "Human-readable description (`message`)."),
        F("field", S, "The field path at fault, e.g. `spec.replicas` (`field`).")]),
    T("StatusDetails", "Extra data about a failure (metav1 `StatusDetails`).", [
        F("name", S, "Name of the affected object (`name`)."), F("group", S, "API group of the affected object (`group`)."),
        F("kind", S, "Kind (or resource) of the affected object (`kind`)."), F("uid", S, "UID of the affected object (`uid`)."),
        F("causes", "[StatusCause]?", "Individual causes (`causes`)."),
        F("retryAfterSeconds", "Int32?", "Seconds the client should wait before retrying (`retryAfterSeconds`).")]),
    # The init (fixed `kind: Status`, `apiVersion: v1`), the reasons and makeFailure are in Status.swift.
    T("Status", "The result of an API call that does not return an object, usually an error\n"
      "(metav1 `Status`, `kind: Status`, `apiVersion: v1`).\n\n"
      "`metadata` is always encoded (as `{}` when empty), as Kubernetes does; other fields only\nwhen non-nil.", [
        F("apiVersion", S, "`apiVersion`, normally `v1`."), F("kind", S, "`kind`, normally `Status`."),
        F("metadata", "ListMeta", "`metadata`."), F("status", S, "`status`: `Success` or `Failure`."),
        F("message", S, "`message`: human-readable description."),
        F("reason", S, "`reason`: machine-readable reason, see `Status.Reason`."),
        F("details", "StatusDetails?", "`details`."), F("code", "Int32?", "`code`: the HTTP status code.")], init=False),
]

HEADER = "// Generated by scripts/generate-cluster-models.py; edit the field tables there, not this file.\n\n"

def write(path, types):
    with open(path, "w") as f:
        f.write(HEADER + "\n\n".join(render(t) for t in types) + "\n")

os.makedirs("Sources/ClusterAPI/Generated", exist_ok=True)
write("Sources/ClusterAPI/Generated/CoreV1.swift", core)
write("Sources/ClusterAPI/Generated/StorageV1.swift", storage)
write("Sources/ClusterAPI/Generated/SnapshotV1.swift", snapshot)
write("Sources/ClusterAPI/Generated/CoordinationV1.swift", coordination)
write("Sources/ClusterAPI/Generated/MetaV1.swift", meta)
write("Sources/ClusterAPI/Generated/AppsV1.swift", apps)
write("Sources/ClusterAPI/Generated/AutoscalingV1.swift", autoscaling)
write("Sources/ClusterAPI/Generated/BatchV1.swift", batch)
write("Sources/ClusterAPI/Generated/ApiextensionsV1.swift", apiextensions)
write("Sources/ClusterAPI/Generated/DiscoveryV1.swift", discovery)
