//! The OpenAPI definitions of the kinds the lab serves, as the emulated release's
//! `k8s.io/api` types declare them (field names per struct; deep sub-structures the lab does not
//! model are open objects, which validate anything). Written in the v2 form (`#/definitions/`);
//! `docs` rewrites references for v3.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::emulation::Emulation;
use crate::store::Kind;

/// Definition name -> schema (v2 form).
pub(crate) type Defs = BTreeMap<String, Value>;

pub(crate) const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";
const TIME: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const CORE: &str = "io.k8s.api.core.v1";

fn string() -> Value {
    json!({"type": "string"})
}
fn int32() -> Value {
    json!({"type": "integer", "format": "int32"})
}
fn int64() -> Value {
    json!({"type": "integer", "format": "int64"})
}
fn boolean() -> Value {
    json!({"type": "boolean"})
}
fn r(name: &str) -> Value {
    json!({"$ref": format!("#/definitions/{name}")})
}
fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}
fn map(values: Value) -> Value {
    json!({"type": "object", "additionalProperties": values})
}
/// An object whose fields the lab does not model: any content validates.
fn open() -> Value {
    json!({"type": "object"})
}
fn strings() -> Value {
    array(string())
}
fn string_map() -> Value {
    map(string())
}

/// A property: its schema with a description.
fn p(name: &str, desc: &str, mut schema: Value) -> (String, Value) {
    if !desc.is_empty() {
        if let Some(o) = schema.as_object_mut() {
            o.insert("description".into(), json!(desc));
        }
    }
    (name.to_string(), schema)
}

/// A struct: `type: object` with its properties and required fields.
fn object(desc: &str, required: &[&str], props: Vec<(String, Value)>) -> Value {
    let props: serde_json::Map<String, Value> = props.into_iter().collect();
    let mut o = json!({"description": desc, "type": "object", "properties": props});
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    o
}

/// Properties from bare names (open objects where the type is not modelled).
/// A field name and its schema's constructor.
type Field = (&'static str, fn() -> Value);

fn fields(spec: &[Field]) -> Vec<(String, Value)> {
    spec.iter().map(|(n, f)| (n.to_string(), f())).collect()
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!([{"group": group, "kind": kind, "version": version}])
}

/// The Go package of a group in definition names (`io.k8s.api.<package>.<version>`).
pub(crate) fn package(group: &str) -> &'static str {
    match group {
        "" => "core",
        "apps" => "apps",
        "extensions" => "extensions",
        "policy" => "policy",
        "coordination.k8s.io" => "coordination",
        _ => "unknown",
    }
}

/// `io.k8s.api.policy.v1.PodDisruptionBudget`.
pub(crate) fn def_name(group: &str, version: &str, kind: &str) -> String {
    format!("io.k8s.api.{}.{version}.{kind}", package(group))
}

fn kind_object(
    defs: &mut Defs,
    (group, version): (&str, &str),
    kind: &str,
    desc: &str,
    spec: Option<&str>,
    status: Option<&str>,
    extra: Vec<(String, Value)>,
) {
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut props = vec![
        p("apiVersion", "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values.", string()),
        p("kind", "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase.", string()),
        p("metadata", "Standard object's metadata.", r(&format!("{META}.ObjectMeta"))),
    ];
    if let Some(s) = spec {
        props.push(p(
            "spec",
            &format!("Specification of the desired behavior of the {kind}."),
            r(s),
        ));
    }
    if let Some(s) = status {
        props.push(p(
            "status",
            &format!("Most recently observed status of the {kind}."),
            r(s),
        ));
    }
    props.extend(extra);
    let mut o = object(desc, &[], props);
    o["x-kubernetes-group-version-kind"] = gvk(group, version, kind);
    defs.insert(def_name(group, version, kind), o);
    let list = object(
        &format!("{kind}List is a list of {kind} objects ({gv})."),
        &["items"],
        vec![
            p(
                "apiVersion",
                "APIVersion defines the versioned schema of this representation of an object.",
                string(),
            ),
            p(
                "items",
                &format!("Items is a list of {kind} objects."),
                array(r(&def_name(group, version, kind))),
            ),
            p(
                "kind",
                "Kind is a string value representing the REST resource this object represents.",
                string(),
            ),
            p(
                "metadata",
                "Standard list metadata.",
                r(&format!("{META}.ListMeta")),
            ),
        ],
    );
    let mut list = list;
    list["x-kubernetes-group-version-kind"] = gvk(group, version, &format!("{kind}List"));
    defs.insert(def_name(group, version, &format!("{kind}List")), list);
}

/// apimachinery's meta/v1 types, intstr and resource.Quantity.
fn meta_defs(emu: Emulation, defs: &mut Defs) {
    defs.insert(TIME.into(), json!({"description": "Time is a wrapper around time.Time which supports correct marshaling to YAML and JSON.", "type": "string", "format": "date-time"}));
    defs.insert(MICRO_TIME.into(), json!({"description": "MicroTime is version of Time with microsecond level precision.", "type": "string", "format": "date-time"}));
    defs.insert(INT_OR_STRING.into(), json!({"description": "IntOrString is a type that can hold an int32 or a string.", "type": "string", "format": "int-or-string"}));
    defs.insert(
        QUANTITY.into(),
        json!({"description": "Quantity is a fixed-point representation of a number.", "type": "string"}),
    );
    defs.insert(format!("{META}.FieldsV1"), json!({"description": "FieldsV1 stores a set of fields in a data structure like a Trie, in JSON format.", "type": "object"}));
    let mut om = vec![
        p("annotations", "Annotations is an unstructured key value map stored with a resource that may be set by external tools to store and retrieve arbitrary metadata.", string_map()),
        p("creationTimestamp", "CreationTimestamp is a timestamp representing the server time when this object was created.", r(TIME)),
        p("deletionGracePeriodSeconds", "Number of seconds allowed for this object to gracefully terminate before it will be removed from the system.", int64()),
        p("deletionTimestamp", "DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted.", r(TIME)),
        p("finalizers", "Must be empty before the object is deleted from the registry.", strings()),
        p("generateName", "GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided.", string()),
        p("generation", "A sequence number representing a specific generation of the desired state.", int64()),
        p("labels", "Map of string keys and values that can be used to organize and categorize (scope and select) objects.", string_map()),
        p("name", "Name must be unique within a namespace.", string()),
        p("namespace", "Namespace defines the space within which each name must be unique.", string()),
        p("ownerReferences", "List of objects depended by this object.", array(r(&format!("{META}.OwnerReference")))),
        p("resourceVersion", "An opaque value that represents the internal version of this object.", string()),
        p("selfLink", "Deprecated: selfLink is a legacy read-only field that is no longer populated by the system.", string()),
        p("uid", "UID is the unique in time and space value for this object.", string()),
    ];
    // Server-side apply's managedFields: k/k#78738 (1.14); FieldsV1 with apply beta in 1.16.
    if emu.minor >= 14 {
        om.push(p("managedFields", "ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow.", array(r(&format!("{META}.ManagedFieldsEntry")))));
    }
    // `metadata.clusterName`: removed in 1.25 (k/k#108717).
    if emu.minor <= 24 {
        om.push(p(
            "clusterName",
            "The name of the cluster which the object belongs to.",
            string(),
        ));
    }
    // `metadata.initializers`: alpha Initializers, removed in 1.14 (k/k#72972).
    if emu.minor <= 13 {
        om.push(p(
            "initializers",
            "An initializer is a controller which enforces some system invariant at object creation time.",
            open(),
        ));
    }
    defs.insert(format!("{META}.ObjectMeta"), object("ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.", &[], om));
    defs.insert(format!("{META}.ListMeta"), object("ListMeta describes metadata that synthetic resources must have, including lists and various status objects.", &[], vec![
        p("continue", "continue may be set if the user set a limit on the number of items returned.", string()),
        p("remainingItemCount", "remainingItemCount is the number of subsequent items in the list which are not included in this list response.", int64()),
        p("resourceVersion", "String that identifies the server's internal version of this object.", string()),
        p("selfLink", "Deprecated: selfLink is a legacy read-only field that is no longer populated by the system.", string()),
    ]));
    defs.insert(format!("{META}.OwnerReference"), object("OwnerReference contains enough information to let you identify an owning object.", &["apiVersion", "kind", "name", "uid"], vec![
        p("apiVersion", "API version of the referent.", string()),
        p("blockOwnerDeletion", "If true, AND if the owner has the \"foregroundDeletion\" finalizer, then the owner cannot be deleted from the key-value store until this reference is removed.", boolean()),
        p("controller", "If true, this reference points to the managing controller.", boolean()),
        p("kind", "Kind of the referent.", string()),
        p("name", "Name of the referent.", string()),
        p("uid", "UID of the referent.", string()),
    ]));
    defs.insert(format!("{META}.ManagedFieldsEntry"), object("ManagedFieldsEntry is a workflow-id, a FieldSet and the group version of the resource that the fieldset applies to.", &[], vec![
        p("apiVersion", "", string()), p("fieldsType", "", string()), p("fieldsV1", "", r(&format!("{META}.FieldsV1"))),
        p("manager", "", string()), p("operation", "", string()), p("subresource", "", string()), p("time", "", r(TIME)),
    ]));
    defs.insert(
        format!("{META}.LabelSelector"),
        object(
            "A label selector is a label query over a set of resources.",
            &[],
            vec![
                p(
                    "matchExpressions",
                    "matchExpressions is a list of label selector requirements. The requirements are ANDed.",
                    array(r(&format!("{META}.LabelSelectorRequirement"))),
                ),
                p(
                    "matchLabels",
                    "matchLabels is a map of {key,value} pairs.",
                    string_map(),
                ),
            ],
        ),
    );
    defs.insert(format!("{META}.LabelSelectorRequirement"), object("A label selector requirement is a selector that contains values, a key, and an operator that relates the key and values.", &["key", "operator"], vec![
        p("key", "key is the label key that the selector applies to.", string()),
        p("operator", "operator represents a key's relationship to a set of values. Valid operators are In, NotIn, Exists and DoesNotExist.", string()),
        p("values", "values is an array of string values.", strings()),
    ]));
    defs.insert(
        format!("{META}.Condition"),
        object(
            "Condition contains details for one aspect of the current state of this API Resource.",
            &["type", "status", "lastTransitionTime", "reason", "message"],
            vec![
                p("lastTransitionTime", "", r(TIME)),
                p("message", "", string()),
                p("observedGeneration", "", int64()),
                p("reason", "", string()),
                p("status", "", string()),
                p("type", "", string()),
            ],
        ),
    );
}

fn core_defs(defs: &mut Defs) {
    let c = |n: &str| format!("{CORE}.{n}");
    defs.insert(
        c("PodTemplateSpec"),
        object(
            "PodTemplateSpec describes the data a pod should have when created from a template",
            &[],
            vec![
                p(
                    "metadata",
                    "Standard object's metadata.",
                    r(&format!("{META}.ObjectMeta")),
                ),
                p(
                    "spec",
                    "Specification of the desired behavior of the pod.",
                    r(&c("PodSpec")),
                ),
            ],
        ),
    );
    let mut spec = fields(&[
        ("activeDeadlineSeconds", int64),
        ("affinity", open),
        ("automountServiceAccountToken", boolean),
        ("dnsConfig", open),
        ("dnsPolicy", string),
        ("enableServiceLinks", boolean),
        ("hostAliases", || array(open())),
        ("hostIPC", boolean),
        ("hostNetwork", boolean),
        ("hostPID", boolean),
        ("hostUsers", boolean),
        ("hostname", string),
        ("imagePullSecrets", || array(open())),
        ("nodeName", string),
        ("nodeSelector", string_map),
        ("os", open),
        ("overhead", || map(r(QUANTITY))),
        ("preemptionPolicy", string),
        ("priority", int32),
        ("priorityClassName", string),
        ("readinessGates", || array(open())),
        ("resourceClaims", || array(open())),
        ("resources", open),
        ("restartPolicy", string),
        ("runtimeClassName", string),
        ("schedulerName", string),
        ("schedulingGates", || array(open())),
        ("securityContext", open),
        ("serviceAccount", string),
        ("serviceAccountName", string),
        ("setHostnameAsFQDN", boolean),
        ("shareProcessNamespace", boolean),
        ("subdomain", string),
        ("terminationGracePeriodSeconds", int64),
        ("tolerations", || array(r(&format!("{CORE}.Toleration")))),
        ("topologySpreadConstraints", || array(open())),
        ("volumes", || array(r(&format!("{CORE}.Volume")))),
    ]);
    spec.push(p(
        "containers",
        "List of containers belonging to the pod.",
        array(r(&c("Container"))),
    ));
    spec.push(p(
        "initContainers",
        "List of initialization containers belonging to the pod.",
        array(r(&c("Container"))),
    ));
    spec.push(p(
        "ephemeralContainers",
        "List of ephemeral containers run in this pod.",
        array(open()),
    ));
    defs.insert(
        c("PodSpec"),
        object("PodSpec is a description of a pod.", &["containers"], spec),
    );
    defs.insert(
        c("Container"),
        object(
            "A single application container that you want to run within a pod.",
            &["name"],
            fields(&[
                ("args", strings),
                ("command", strings),
                ("env", || array(r(&format!("{CORE}.EnvVar")))),
                ("envFrom", || array(open())),
                ("image", string),
                ("imagePullPolicy", string),
                ("lifecycle", open),
                ("livenessProbe", open),
                ("name", string),
                ("ports", || array(r(&format!("{CORE}.ContainerPort")))),
                ("readinessProbe", open),
                ("resizePolicy", || array(open())),
                ("resources", || r(&format!("{CORE}.ResourceRequirements"))),
                ("restartPolicy", string),
                ("securityContext", open),
                ("startupProbe", open),
                ("stdin", boolean),
                ("stdinOnce", boolean),
                ("terminationMessagePath", string),
                ("terminationMessagePolicy", string),
                ("tty", boolean),
                ("volumeDevices", || array(open())),
                ("volumeMounts", || array(r(&format!("{CORE}.VolumeMount")))),
                ("workingDir", string),
            ]),
        ),
    );
    defs.insert(
        c("EnvVar"),
        object(
            "EnvVar represents an environment variable present in a Container.",
            &["name"],
            fields(&[("name", string), ("value", string), ("valueFrom", open)]),
        ),
    );
    defs.insert(
        c("ContainerPort"),
        object(
            "ContainerPort represents a network port in a single container.",
            &["containerPort"],
            fields(&[
                ("containerPort", int32),
                ("hostIP", string),
                ("hostPort", int32),
                ("name", string),
                ("protocol", string),
            ]),
        ),
    );
    defs.insert(
        c("ResourceRequirements"),
        object(
            "ResourceRequirements describes the compute resource requirements.",
            &[],
            vec![
                p("claims", "", array(open())),
                p("limits", "", map(r(QUANTITY))),
                p("requests", "", map(r(QUANTITY))),
            ],
        ),
    );
    defs.insert(
        c("VolumeMount"),
        object(
            "VolumeMount describes a mounting of a Volume within a container.",
            &["name", "mountPath"],
            fields(&[
                ("mountPath", string),
                ("mountPropagation", string),
                ("name", string),
                ("readOnly", boolean),
                ("recursiveReadOnly", string),
                ("subPath", string),
                ("subPathExpr", string),
            ]),
        ),
    );
    defs.insert(
        c("Volume"),
        object(
            "Volume represents a named volume in a pod that may be accessed by any container in the pod.",
            &["name"],
            fields(&[
                ("awsElasticBlockStore", open),
                ("azureDisk", open),
                ("azureFile", open),
                ("cephfs", open),
                ("cinder", open),
                ("configMap", open),
                ("csi", open),
                ("downwardAPI", open),
                ("emptyDir", open),
                ("ephemeral", open),
                ("fc", open),
                ("flexVolume", open),
                ("flocker", open),
                ("gcePersistentDisk", open),
                ("gitRepo", open),
                ("glusterfs", open),
                ("hostPath", open),
                ("image", open),
                ("iscsi", open),
                ("name", string),
                ("nfs", open),
                ("persistentVolumeClaim", open),
                ("photonPersistentDisk", open),
                ("portworxVolume", open),
                ("projected", open),
                ("quobyte", open),
                ("rbd", open),
                ("scaleIO", open),
                ("secret", open),
                ("storageos", open),
                ("vsphereVolume", open),
            ]),
        ),
    );
    defs.insert(c("Toleration"), object("The pod this Toleration is attached to tolerates any taint that matches the triple <key,value,effect> using the matching operator <operator>.", &[], fields(&[
        ("effect", string), ("key", string), ("operator", string), ("tolerationSeconds", int64), ("value", string),
    ])));
    defs.insert(c("Taint"), object("The node this Taint is attached to has the \"effect\" on any pod that does not tolerate the Taint.", &["key", "effect"], vec![
        p("effect", "", string()), p("key", "", string()), p("timeAdded", "", r(TIME)), p("value", "", string()),
    ]));
    defs.insert(
        c("PodStatus"),
        object(
            "PodStatus represents information about the status of a pod.",
            &[],
            fields(&[
                ("conditions", || array(open())),
                ("containerStatuses", || array(open())),
                ("ephemeralContainerStatuses", || array(open())),
                ("hostIP", string),
                ("hostIPs", || array(open())),
                ("initContainerStatuses", || array(open())),
                ("message", string),
                ("nominatedNodeName", string),
                ("observedGeneration", int64),
                ("phase", string),
                ("podIP", string),
                ("podIPs", || array(open())),
                ("qosClass", string),
                ("reason", string),
                ("resize", string),
                ("resourceClaimStatuses", || array(open())),
                ("startTime", || r(TIME)),
            ]),
        ),
    );
    defs.insert(
        c("NodeSpec"),
        object(
            "NodeSpec describes the attributes that a node is created with.",
            &[],
            vec![
                p("configSource", "", open()),
                p(
                    "externalID",
                    "Deprecated. Not all kubelets will set this field.",
                    string(),
                ),
                p(
                    "podCIDR",
                    "PodCIDR represents the pod IP range assigned to the node.",
                    string(),
                ),
                p(
                    "podCIDRs",
                    "podCIDRs represents the IP ranges assigned to the node for usage by Pods on that node.",
                    strings(),
                ),
                p(
                    "providerID",
                    "ID of the node assigned by the cloud provider.",
                    string(),
                ),
                p(
                    "taints",
                    "If specified, the node's taints.",
                    array(r(&c("Taint"))),
                ),
                p(
                    "unschedulable",
                    "Unschedulable controls node schedulability of new pods.",
                    boolean(),
                ),
            ],
        ),
    );
    defs.insert(
        c("NodeStatus"),
        object(
            "NodeStatus is information about the current status of a node.",
            &[],
            fields(&[
                ("addresses", || array(open())),
                ("allocatable", || map(r(QUANTITY))),
                ("capacity", || map(r(QUANTITY))),
                ("conditions", || array(open())),
                ("config", open),
                ("daemonEndpoints", open),
                ("features", open),
                ("images", || array(open())),
                ("nodeInfo", open),
                ("phase", string),
                ("runtimeHandlers", || array(open())),
                ("volumesAttached", || array(open())),
                ("volumesInUse", strings),
            ]),
        ),
    );
    defs.insert(
        c("NamespaceSpec"),
        object(
            "NamespaceSpec describes the attributes on a Namespace.",
            &[],
            vec![p("finalizers", "", strings())],
        ),
    );
    defs.insert(
        c("NamespaceStatus"),
        object(
            "NamespaceStatus is information about the current status of a Namespace.",
            &[],
            vec![p("conditions", "", array(open())), p("phase", "", string())],
        ),
    );
}

fn apps_defs(emu: Emulation, defs: &mut Defs, group: &str, version: &str) {
    let n = |k: &str| def_name(group, version, k);
    let template = r(&format!("{CORE}.PodTemplateSpec"));
    let selector = r(&format!("{META}.LabelSelector"));
    // apps/v1 and apps/v1beta2 require a selector (k/k#50164); extensions/v1beta1 defaulted it.
    let required: &[&str] = if group == "extensions" {
        &["template"]
    } else {
        &["selector", "template"]
    };
    let mut ds_spec = vec![
        p("minReadySeconds", "The minimum number of seconds for which a newly created DaemonSet pod should be ready without any of its container crashing, for it to be considered available.", int32()),
        p("revisionHistoryLimit", "The number of old history to retain to allow rollback.", int32()),
        p("selector", "A label query over pods that are managed by the daemon set.", selector.clone()),
        p("template", "An object that describes the pod that will be created.", template.clone()),
        p("updateStrategy", "An update strategy to replace existing DaemonSet pods with new pods.", open()),
    ];
    if group == "extensions" {
        ds_spec.push(p(
            "templateGeneration",
            "DEPRECATED. A sequence number representing a specific generation of the template.",
            int64(),
        ));
    }
    defs.insert(
        n("DaemonSetSpec"),
        object(
            "DaemonSetSpec is the specification of a daemon set.",
            required,
            ds_spec,
        ),
    );
    defs.insert(
        n("DaemonSetStatus"),
        object(
            "DaemonSetStatus represents the current status of a daemon set.",
            &[
                "currentNumberScheduled",
                "numberMisscheduled",
                "desiredNumberScheduled",
                "numberReady",
            ],
            fields(&[
                ("collisionCount", int32),
                ("conditions", || array(open())),
                ("currentNumberScheduled", int32),
                ("desiredNumberScheduled", int32),
                ("numberAvailable", int32),
                ("numberMisscheduled", int32),
                ("numberReady", int32),
                ("numberUnavailable", int32),
                ("observedGeneration", int64),
                ("updatedNumberScheduled", int32),
            ]),
        ),
    );
    kind_object(
        defs,
        (group, version),
        "DaemonSet",
        "DaemonSet represents the configuration of a daemon set.",
        Some(&n("DaemonSetSpec")),
        Some(&n("DaemonSetStatus")),
        vec![],
    );
    defs.insert(n("ReplicaSetSpec"), object("ReplicaSetSpec is the specification of a ReplicaSet.", if group == "extensions" { &[] } else { &["selector"] }, vec![
        p("minReadySeconds", "Minimum number of seconds for which a newly created pod should be ready without any of its container crashing, for it to be considered available.", int32()),
        p("replicas", "Replicas is the number of desired pods.", int32()),
        p("selector", "Selector is a label query over pods that should match the replica count.", selector),
        p("template", "Template is the object that describes the pod that will be created if insufficient replicas are detected.", template),
    ]));
    let mut rs_status = fields(&[
        ("availableReplicas", int32),
        ("conditions", || array(open())),
        ("fullyLabeledReplicas", int32),
        ("observedGeneration", int64),
        ("readyReplicas", int32),
        ("replicas", int32),
    ]);
    // ReplicaSetStatus.terminatingReplicas: k/k#128546 (1.33).
    if emu.minor >= 33 {
        rs_status.push(p(
            "terminatingReplicas",
            "The number of terminating pods for this replica set.",
            int32(),
        ));
    }
    defs.insert(
        n("ReplicaSetStatus"),
        object(
            "ReplicaSetStatus represents the current status of a ReplicaSet.",
            &["replicas"],
            rs_status,
        ),
    );
    kind_object(
        defs,
        (group, version),
        "ReplicaSet",
        "ReplicaSet ensures that a specified number of pod replicas are running at any given time.",
        Some(&n("ReplicaSetSpec")),
        Some(&n("ReplicaSetStatus")),
        vec![],
    );
}

/// Deployment (the kube-system/coredns addon): DeploymentSpec/DeploymentStatus as the real
/// definitions list them (kubernetes api/openapi-spec/swagger.json, io.k8s.api.apps.v1.Deployment*).
fn deployment_defs(emu: Emulation, defs: &mut Defs, group: &str, version: &str) {
    let n = |k: &str| def_name(group, version, k);
    let required: &[&str] = if group == "extensions" {
        &["template"]
    } else {
        &["selector", "template"]
    };
    let mut spec = vec![
        p("minReadySeconds", "Minimum number of seconds for which a newly created pod should be ready without any of its container crashing, for it to be considered available.", int32()),
        p("paused", "Indicates that the deployment is paused.", boolean()),
        p("progressDeadlineSeconds", "The maximum time in seconds for a deployment to make progress before it is considered to be failed.", int32()),
        p("replicas", "Number of desired pods. This is a pointer to distinguish between explicit zero and not specified. Defaults to 1.", int32()),
        p("revisionHistoryLimit", "The number of old ReplicaSets to retain to allow rollback.", int32()),
        p("selector", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.", r(&format!("{META}.LabelSelector"))),
        p("strategy", "The deployment strategy to use to replace existing pods with new ones.", open()),
        p("template", "Template describes the pods that will be created.", r(&format!("{CORE}.PodTemplateSpec"))),
    ];
    // rollbackTo: extensions/v1beta1 (and apps/v1beta1) only; apps/v1beta2 and v1 dropped it.
    if group == "extensions" {
        spec.push(p(
            "rollbackTo",
            "DEPRECATED. The config this deployment is rolling back to.",
            open(),
        ));
    }
    defs.insert(
        n("DeploymentSpec"),
        object(
            "DeploymentSpec is the specification of the desired behavior of the Deployment.",
            required,
            spec,
        ),
    );
    let mut status = fields(&[
        ("availableReplicas", int32),
        ("collisionCount", int32),
        ("conditions", || array(open())),
        ("observedGeneration", int64),
        ("readyReplicas", int32),
        ("replicas", int32),
        ("unavailableReplicas", int32),
        ("updatedReplicas", int32),
    ]);
    // DeploymentStatus.terminatingReplicas: k/k#128546 (1.33), as ReplicaSetStatus's.
    if emu.minor >= 33 {
        status.push(p(
            "terminatingReplicas",
            "Total number of terminating pods targeted by this deployment.",
            int32(),
        ));
    }
    defs.insert(
        n("DeploymentStatus"),
        object(
            "DeploymentStatus is the most recently observed status of the Deployment.",
            &[],
            status,
        ),
    );
    kind_object(
        defs,
        (group, version),
        "Deployment",
        "Deployment enables declarative updates for Pods and ReplicaSets.",
        Some(&n("DeploymentSpec")),
        Some(&n("DeploymentStatus")),
        vec![],
    );
}

fn policy_defs(emu: Emulation, defs: &mut Defs, version: &str) {
    let n = |k: &str| def_name("policy", version, k);
    let mut spec = vec![
        p("maxUnavailable", "An eviction is allowed if at most \"maxUnavailable\" pods selected by \"selector\" are unavailable after the eviction, i.e. even in absence of the evicted pod. For example, one can prevent all voluntary evictions by specifying 0. This is a mutually exclusive setting with \"minAvailable\".", r(INT_OR_STRING)),
        p("minAvailable", "An eviction is allowed if at least \"minAvailable\" pods selected by \"selector\" will still be available after the eviction, i.e. even in the absence of the evicted pod.  So for example you can prevent all voluntary evictions by specifying \"100%\".", r(INT_OR_STRING)),
        p("selector", "Label query over pods whose evictions are managed by the disruption budget. A null selector will match no pods, while an empty ({}) selector will select all pods within the namespace.", r(&format!("{META}.LabelSelector"))),
    ];
    // unhealthyPodEvictionPolicy: KEP-3017, alpha 1.26 (the field is in the API from then on).
    if emu.minor >= 26 {
        spec.push(p("unhealthyPodEvictionPolicy", "UnhealthyPodEvictionPolicy defines the criteria for when unhealthy pods should be considered for eviction. Valid policies are IfHealthyBudget and AlwaysAllow.", string()));
    }
    defs.insert(
        n("PodDisruptionBudgetSpec"),
        object(
            "PodDisruptionBudgetSpec is a description of a PodDisruptionBudget.",
            &[],
            spec,
        ),
    );
    let mut status = vec![
        p("currentHealthy", "current number of healthy pods", int32()),
        p("desiredHealthy", "minimum desired number of healthy pods", int32()),
        p("disruptedPods", "DisruptedPods contains information about pods whose eviction was processed by the API server eviction subresource handler but has not yet been observed by the PodDisruptionBudget controller.", map(r(TIME))),
        p("disruptionsAllowed", "Number of pod disruptions that are currently allowed.", int32()),
        p("expectedPods", "total number of pods counted by this disruption budget", int32()),
        p("observedGeneration", "Most recent generation observed when updating this PDB status.", int64()),
    ];
    if emu.pdb_status_conditions() {
        status.push(p(
            "conditions",
            "Conditions contain conditions for PDB.",
            array(r(&format!("{META}.Condition"))),
        ));
    }
    defs.insert(n("PodDisruptionBudgetStatus"), object("PodDisruptionBudgetStatus represents information about the status of a PodDisruptionBudget. Status may trail the actual state of a system.", &["disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"], status));
    kind_object(defs, ("policy", version), "PodDisruptionBudget", "PodDisruptionBudget is an object to define the max disruption that can be caused to a collection of pods", Some(&n("PodDisruptionBudgetSpec")), Some(&n("PodDisruptionBudgetStatus")), vec![]);
    let mut ev = object(
        "Eviction evicts a pod from its node subject to certain policies and safety constraints.",
        &[],
        vec![
            p(
                "apiVersion",
                "APIVersion defines the versioned schema of this representation of an object.",
                string(),
            ),
            p("deleteOptions", "DeleteOptions may be provided", open()),
            p(
                "kind",
                "Kind is a string value representing the REST resource this object represents.",
                string(),
            ),
            p(
                "metadata",
                "ObjectMeta describes the pod that is being evicted.",
                r(&format!("{META}.ObjectMeta")),
            ),
        ],
    );
    ev["x-kubernetes-group-version-kind"] = gvk("policy", version, "Eviction");
    defs.insert(n("Eviction"), ev);
}

fn lease_defs(emu: Emulation, defs: &mut Defs, version: &str) {
    let n = |k: &str| def_name("coordination.k8s.io", version, k);
    let mut spec = vec![
        p("acquireTime", "acquireTime is a time when the current lease was acquired.", r(MICRO_TIME)),
        p("holderIdentity", "holderIdentity contains the identity of the holder of a current lease.", string()),
        p("leaseDurationSeconds", "leaseDurationSeconds is a duration that candidates for a lease need to wait to force acquire it.", int32()),
        p("leaseTransitions", "leaseTransitions is the number of transitions of a lease between holders.", int32()),
        p("renewTime", "renewTime is a time when the current holder of a lease has last updated the lease.", r(MICRO_TIME)),
    ];
    // Coordinated leader election (KEP-4355): strategy and preferredHolder, alpha 1.31.
    if emu.minor >= 31 {
        spec.push(p("preferredHolder", "PreferredHolder signals to a lease holder that the lease has a more optimal holder and should be given up.", string()));
        spec.push(p(
            "strategy",
            "Strategy indicates the strategy for picking the leader for coordinated leader election.",
            string(),
        ));
    }
    defs.insert(
        n("LeaseSpec"),
        object("LeaseSpec is a specification of a Lease.", &[], spec),
    );
    kind_object(
        defs,
        ("coordination.k8s.io", version),
        "Lease",
        "Lease defines a lease concept.",
        Some(&n("LeaseSpec")),
        None,
        vec![],
    );
}

/// Every definition of the release: the kinds of each served group version and what they use.
pub(crate) fn definitions(emu: Emulation) -> Defs {
    let mut defs = Defs::new();
    meta_defs(emu, &mut defs);
    core_defs(&mut defs);
    let c = |n: &str| format!("{CORE}.{n}");
    kind_object(
        &mut defs,
        ("", "v1"),
        "Pod",
        "Pod is a collection of containers that can run on a host.",
        Some(&c("PodSpec")),
        Some(&c("PodStatus")),
        vec![],
    );
    kind_object(
        &mut defs,
        ("", "v1"),
        "Node",
        "Node is a worker node in Kubernetes.",
        Some(&c("NodeSpec")),
        Some(&c("NodeStatus")),
        vec![],
    );
    kind_object(
        &mut defs,
        ("", "v1"),
        "Namespace",
        "Namespace provides a scope for Names.",
        Some(&c("NamespaceSpec")),
        Some(&c("NamespaceStatus")),
        vec![],
    );
    let mut cm = vec![
        p(
            "binaryData",
            "BinaryData contains the binary data.",
            map(json!({"type": "string", "format": "byte"})),
        ),
        p("data", "Data contains the configuration data.", string_map()),
    ];
    // ConfigMap `immutable`: k/k#86377 (alpha 1.18), beta 1.19; the field exists from 1.18.
    if emu.minor >= 18 {
        cm.push(p(
            "immutable",
            "Immutable, if set to true, ensures that data stored in the ConfigMap cannot be updated.",
            boolean(),
        ));
    }
    kind_object(
        &mut defs,
        ("", "v1"),
        "ConfigMap",
        "ConfigMap holds configuration data for pods to consume.",
        None,
        None,
        cm,
    );
    for group in emu.groups() {
        for version in emu.group_versions(group) {
            match group {
                "apps" | "extensions" => {
                    apps_defs(emu, &mut defs, group, version);
                    deployment_defs(emu, &mut defs, group, version);
                }
                "policy" => policy_defs(emu, &mut defs, version),
                "coordination.k8s.io" => lease_defs(emu, &mut defs, version),
                _ => {}
            }
        }
    }
    // The Eviction body's group version even when policy/v1beta1 is no longer served (1.25+).
    let (eg, ev) = emu
        .eviction_group_version()
        .split_once('/')
        .unwrap_or(("policy", "v1beta1"));
    if !defs.contains_key(&def_name(eg, ev, "Eviction")) {
        policy_defs(emu, &mut defs, ev);
    }
    defs
}

/// The kinds a group version serves (as `Kind`s of the store), from the release's discovery.
pub(crate) fn kinds_of(emu: Emulation, group: &str, version: &str) -> Vec<(Kind, &'static str, bool)> {
    emu.resources(group, version)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| !r.name.contains('/'))
        .filter_map(|r| Kind::from_resource(group, r.name).map(|k| (k, r.name, r.namespaced)))
        .collect()
}
