//! `application/json;as=Table` responses (what `kubectl get` asks for): the columns of the real
//! server's printers (kubernetes/pkg/printers/internalversion/printers.go) for every kind served.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap};
use serde_json::{json, Value};

use crate::emulation::Emulation;
use crate::store::object::{condition_status, internal_ip};
use crate::store::{Kind, Store};

/// The Table group version the client accepts and this release serves, if a table is wanted.
pub fn wanted(headers: &HeaderMap, emu: Emulation) -> Option<&'static str> {
    let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
    for part in accept.split(',') {
        let p = part.replace(' ', "");
        if !p.contains("as=Table") || !p.contains("g=meta.k8s.io") {
            continue;
        }
        if p.contains("v=v1;") || p.ends_with("v=v1") {
            if emu.serves_table_v1() {
                return Some("meta.k8s.io/v1");
            }
        } else if p.contains("v=v1beta1") {
            return Some("meta.k8s.io/v1beta1");
        }
    }
    None
}

fn parse_time(s: &str) -> Option<u64> {
    // YYYY-MM-DDTHH:MM:SSZ
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok());
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + se).ok()
}

/// kubectl's short durations (`5s`, `3m`, `2d4h`).
pub fn age(ts: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let Some(t) = parse_time(ts) else {
        return "<unknown>".into();
    };
    let s = now.saturating_sub(t);
    if s < 120 {
        format!("{s}s")
    } else if s < 600 {
        format!("{}m{}s", s / 60, s % 60)
    } else if s < 3 * 3600 {
        format!("{}m", s / 60)
    } else if s < 8 * 3600 {
        format!("{}h{}m", s / 3600, (s % 3600) / 60)
    } else if s < 48 * 3600 {
        format!("{}h", s / 3600)
    } else {
        format!("{}d", s / 86_400)
    }
}

fn col(name: &str, ty: &str, prio: u8, desc: &str) -> Value {
    let fmt = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": fmt, "description": desc, "priority": prio})
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn node_row(n: &Value) -> Vec<Value> {
    let ready = condition_status(n, "Ready").unwrap_or("Unknown");
    let mut status = if ready == "True" {
        "Ready".to_string()
    } else {
        "NotReady".to_string()
    };
    if n.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = n
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|l| {
            l.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/").map(String::from))
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };
    let ip = internal_ip(n).unwrap_or("<none>");
    vec![
        json!(s(n, "/metadata/name")),
        json!(status),
        json!(roles),
        json!(age(s(n, "/metadata/creationTimestamp"))),
        json!(s(n, "/status/nodeInfo/kubeletVersion")),
        json!(ip),
        json!("<none>"),
        json!(s(n, "/status/nodeInfo/osImage")),
        json!(s(n, "/status/nodeInfo/kernelVersion")),
        json!(s(n, "/status/nodeInfo/containerRuntimeVersion")),
    ]
}

fn pod_row(p: &Value) -> Vec<Value> {
    let statuses = p.pointer("/status/containerStatuses").and_then(Value::as_array);
    let total = p
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(Vec::len)
        .unwrap_or(0);
    let ready = statuses
        .map(|a| {
            a.iter()
                .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                .count()
        })
        .unwrap_or(0);
    let restarts: i64 = statuses
        .map(|a| {
            a.iter()
                .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                .sum()
        })
        .unwrap_or(0);
    let mut status = s(p, "/status/phase").to_string();
    if status == "Pending" && !s(p, "/spec/nodeName").is_empty() {
        status = "ContainerCreating".to_string();
    }
    if p.pointer("/metadata/deletionTimestamp").is_some() {
        status = "Terminating".to_string();
    }
    let ip = s(p, "/status/podIP");
    let node = s(p, "/spec/nodeName");
    vec![
        json!(s(p, "/metadata/name")),
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts),
        json!(age(s(p, "/metadata/creationTimestamp"))),
        json!(if ip.is_empty() { "<none>" } else { ip }),
        json!(if node.is_empty() { "<none>" } else { node }),
        json!("<none>"),
        json!("<none>"),
    ]
}

fn int(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s
    }
}

/// `metav1.FormatLabelSelector`: `app=web,tier in (a,b)`; `<none>` when empty.
fn format_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return "<none>".to_string();
    };
    let mut parts: Vec<String> = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = s(e, "/key");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(match s(e, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op}"),
        });
    }
    or_none(parts.join(","))
}

/// The containers' names and images of a pod template (the wide columns of controllers).
fn template_containers(v: &Value) -> (String, String) {
    let cs = v
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// `printPodDisruptionBudget`: the budget as given (`N/A` when unset), and the disruptions the
/// status allows. policy/v1beta1 servers store `minAvailable: 1` when neither is set.
fn pdb_row(store: &Store, pdb: &Value) -> Vec<Value> {
    let with_status = store.pdb_with_status(pdb);
    let budget = |p: &str| match pdb.pointer(p) {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(x)) => x.clone(),
        _ => "N/A".to_string(),
    };
    let mut min = budget("/spec/minAvailable");
    let max = budget("/spec/maxUnavailable");
    if min == "N/A" && max == "N/A" && store.emu.pdb_defaults_min_available_one() {
        min = "1".to_string();
    }
    vec![
        json!(s(pdb, "/metadata/name")),
        json!(min),
        json!(max),
        json!(int(&with_status, "/status/disruptionsAllowed")),
        json!(age(s(pdb, "/metadata/creationTimestamp"))),
    ]
}

fn daemonset_row(d: &Value) -> Vec<Value> {
    let node_selector = d
        .pointer("/spec/template/spec/nodeSelector")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let (names, images) = template_containers(d);
    vec![
        json!(s(d, "/metadata/name")),
        json!(int(d, "/status/desiredNumberScheduled")),
        json!(int(d, "/status/currentNumberScheduled")),
        json!(int(d, "/status/numberReady")),
        json!(int(d, "/status/updatedNumberScheduled")),
        json!(int(d, "/status/numberAvailable")),
        json!(or_none(node_selector)),
        json!(age(s(d, "/metadata/creationTimestamp"))),
        json!(names),
        json!(images),
        json!(format_selector(d.pointer("/spec/selector"))),
    ]
}

/// printDeployment (printers.go): READY is ready/desired, UP-TO-DATE and AVAILABLE the status counts.
fn deployment_row(d: &Value) -> Vec<Value> {
    let (names, images) = template_containers(d);
    vec![
        json!(s(d, "/metadata/name")),
        json!(format!(
            "{}/{}",
            int(d, "/status/readyReplicas"),
            int(d, "/spec/replicas")
        )),
        json!(int(d, "/status/updatedReplicas")),
        json!(int(d, "/status/availableReplicas")),
        json!(age(s(d, "/metadata/creationTimestamp"))),
        json!(names),
        json!(images),
        json!(format_selector(d.pointer("/spec/selector"))),
    ]
}

fn replicaset_row(r: &Value) -> Vec<Value> {
    let (names, images) = template_containers(r);
    vec![
        json!(s(r, "/metadata/name")),
        json!(int(r, "/spec/replicas")),
        json!(int(r, "/status/replicas")),
        json!(int(r, "/status/readyReplicas")),
        json!(age(s(r, "/metadata/creationTimestamp"))),
        json!(names),
        json!(images),
        json!(format_selector(r.pointer("/spec/selector"))),
    ]
}

/// Renders objects as a Table.
pub fn render(
    store: &Store,
    kind: Kind,
    items: &[&Value],
    table_gv: &str,
    rv: &str,
    cont: Option<&str>,
    include_object: Option<&str>,
) -> Value {
    let emu = store.emu;
    let columns = match kind {
        Kind::Node => vec![
            col("Name", "string", 0, "Name must be unique within a namespace."),
            col("Status", "string", 0, "The status of the node"),
            col("Roles", "string", 0, "The roles of the node"),
            col("Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
            col("Version", "string", 0, "Kubelet Version reported by the node."),
            col("Internal-IP", "string", 1, "List of internal IPs for the node."),
            col("External-IP", "string", 1, "List of external IPs for the node."),
            col("OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
            col("Kernel-Version", "string", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
            col("Container-Runtime", "string", 1, "Container runtime version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
        ],
        Kind::Pod => vec![
            col("Name", "string", 0, "Name must be unique within a namespace."),
            col("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
            col("Status", "string", 0, "The aggregate status of the containers in this pod."),
            col("Restarts", "integer", 0, "The number of times the containers in this pod have been restarted."),
            col("Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
            col("IP", "string", 1, "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
            col("Node", "string", 1, "NodeName is a request to schedule this pod onto a specific node."),
            col("Nominated Node", "string", 1, "nominatedNodeName is set when this pod preempts other pods on the node."),
            col("Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
        ],
        // leaseColumnDefinitions (kubernetes/pkg/printers/internalversion/printers.go).
        Kind::Lease => vec![
            col("Name", "string", 0, "Name must be unique within a namespace."),
            col("Holder", "string", 0, "holderIdentity contains the identity of the holder of a current lease."),
            col("Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
        ],
        // podDisruptionBudgetColumnDefinitions (printers.go), the same for policy/v1beta1 and v1.
        Kind::Pdb => vec![
            col("Name", "string", 0, "Name must be unique within a namespace."),
            col("Min Available", "string", 0, "The minimum number of pods that must be available."),
            col("Max Unavailable", "string", 0, "The maximum number of pods that may be unavailable."),
            col("Allowed Disruptions", "integer", 0, "Calculated number of pods that may be disrupted at this time."),
            col("Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
        ],
        // daemonSetColumnDefinitions (printers.go).
        Kind::DaemonSet => vec![
            col("Name", "string", 0, "Name must be unique within a namespace."),
            col("Desired", "integer", 0, "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
            col("Current", "integer", 0, "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
            col("Ready", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
            col("Up-to-date", "integer", 0, "The total number of nodes that are running updated daemon pod"),
            col("Available", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
            col("Node Selector", "string", 0, "NodeSelector is a selector which must be true for the pod to fit on a node."),
            col("Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
            col("Containers", "string", 1, "Names of each container in the template."),
            col("Images", "string", 1, "Images referenced by each container in the template."),
            col("Selector", "string", 1, "A label query over pods that are managed by the daemon set."),
        ],
        // replicaSetColumnDefinitions (printers.go).
        Kind::ReplicaSet => vec![
            col("Name", "string", 0, "Name must be unique within a namespace."),
            col("Desired", "integer", 0, "Replicas is the number of desired replicas."),
            col("Current", "integer", 0, "Replicas is the most recently observed number of replicas."),
            col("Ready", "integer", 0, "The number of ready replicas for this replica set."),
            col("Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
            col("Containers", "string", 1, "Names of each container in the template."),
            col("Images", "string", 1, "Images referenced by each container in the template."),
            col("Selector", "string", 1, "Selector is a label query over pods that should match the replica count."),
        ],
        // deploymentColumnDefinitions (printers.go): READY, UP-TO-DATE and AVAILABLE are strings.
        Kind::Deployment => vec![
            col("Name", "string", 0, "Name must be unique within a namespace."),
            col("Ready", "string", 0, "Number of the pod with ready state"),
            col("Up-to-date", "string", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            col("Available", "string", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            col("Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
            col("Containers", "string", 1, "Names of each container in the template."),
            col("Images", "string", 1, "Images referenced by each container in the template."),
            col("Selector", "string", 1, "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
        ],
        // configMapColumnDefinitions (printers.go).
        Kind::ConfigMap => vec![
            col("Name", "string", 0, "Name must be unique within a namespace."),
            col("Data", "string", 0, "Data contains the configuration data."),
            col("Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
        ],
        // namespaceColumnDefinitions (printers.go).
        Kind::Namespace => vec![
            col("Name", "string", 0, "Name must be unique within a namespace."),
            col("Status", "string", 0, "The status of the namespace"),
            col("Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
        ],
    };
    let part_meta_gv = table_gv;
    let rows: Vec<Value> = items
        .iter()
        .map(|it| {
            let cells = match kind {
                Kind::Node => node_row(it),
                Kind::Pod => pod_row(it),
                Kind::Lease => vec![
                    json!(s(it, "/metadata/name")),
                    json!(s(it, "/spec/holderIdentity")),
                    json!(age(s(it, "/metadata/creationTimestamp"))),
                ],
                Kind::Pdb => pdb_row(store, it),
                Kind::DaemonSet => daemonset_row(it),
                Kind::ReplicaSet => replicaset_row(it),
                Kind::Deployment => deployment_row(it),
                Kind::ConfigMap => {
                    let count = |p: &str| it.get(p).and_then(Value::as_object).map_or(0, |m| m.len());
                    vec![
                        json!(s(it, "/metadata/name")),
                        json!(count("data") + count("binaryData")),
                        json!(age(s(it, "/metadata/creationTimestamp"))),
                    ]
                }
                Kind::Namespace => vec![
                    json!(s(it, "/metadata/name")),
                    json!(s(it, "/status/phase")),
                    json!(age(s(it, "/metadata/creationTimestamp"))),
                ],
            };
            let object = match include_object {
                Some("None") => Value::Null,
                Some("Object") => {
                    let mut o = if kind == Kind::Pdb {
                        store.pdb_with_status(it)
                    } else {
                        (*it).clone()
                    };
                    if let Some(m) = o.as_object_mut() {
                        m.insert("kind".into(), json!(kind.kind()));
                    }
                    o
                }
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": part_meta_gv,
                    "metadata": it.get("metadata").cloned().unwrap_or(json!({}))}),
            };
            let mut row = json!({"cells": cells});
            if !object.is_null() {
                if let Some(r) = row.as_object_mut() {
                    r.insert("object".into(), object);
                }
            }
            row
        })
        .collect();
    let mut meta = json!({"resourceVersion": rv});
    if let (Some(m), Some(c)) = (meta.as_object_mut(), cont) {
        m.insert("continue".into(), json!(c));
    }
    if emu.self_links() {
        if let Some(m) = meta.as_object_mut() {
            m.insert("selfLink".into(), json!(""));
        }
    }
    json!({"kind": "Table", "apiVersion": table_gv, "metadata": meta, "columnDefinitions": columns, "rows": rows})
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn time_roundtrip() {
        assert_eq!(parse_time("1970-01-01T00:00:10Z"), Some(10));
        assert_eq!(parse_time("2024-02-29T23:59:59Z"), Some(1_709_251_199));
    }
}
