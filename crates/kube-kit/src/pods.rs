//! What drains need to know about pods and the server: where evictions live, who owns a pod,
//! which PodDisruptionBudgets cover it, and kubectl drain's filters (which pods a drain removes,
//! skips, or is blocked by).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::Client;
use serde_json::{json, Value};

/// How pods are removed from a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// The `pods/eviction` subresource with an Eviction of this group/version
    /// (`policy/v1beta1` on 1.8–1.21, `policy/v1` from 1.22).
    Evict(String),
    /// The server has no eviction subresource: plain DELETE.
    Delete,
}

impl Removal {
    /// `policy/v1`, `policy/v1beta1` or `delete`.
    pub fn name(&self) -> &str {
        match self {
            Removal::Evict(gv) => gv,
            Removal::Delete => "delete",
        }
    }
}

/// Discovers the eviction subresource from `GET /api/v1`, as kubectl does.
pub async fn eviction_api(client: &Client) -> Result<Removal, kube::Error> {
    let list = client.list_core_api_resources("v1").await?;
    let found = list.resources.iter().find(|r| r.name == "pods/eviction");
    Ok(match found {
        None => Removal::Delete,
        Some(r) => match (r.group.as_deref(), r.version.as_deref()) {
            (Some(g), Some(v)) if !g.is_empty() && !v.is_empty() => Removal::Evict(format!("{g}/{v}")),
            // Servers before 1.8 did not say; policy/v1beta1 is what they took.
            _ => Removal::Evict("policy/v1beta1".to_string()),
        },
    })
}

/// POSTs an Eviction of the given group/version for a pod.
pub async fn evict(
    client: &Client,
    group_version: &str,
    namespace: &str,
    name: &str,
    grace_period: Option<i64>,
) -> Result<(), kube::Error> {
    let mut body = json!({
        "apiVersion": group_version,
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": namespace},
    });
    if let Some(g) = grace_period {
        body["deleteOptions"] = json!({"gracePeriodSeconds": g});
    }
    let bytes = serde_json::to_vec(&body).map_err(kube::Error::SerdeError)?;
    let req = http::Request::post(format!("/api/v1/namespaces/{namespace}/pods/{name}/eviction"))
        .header("content-type", "application/json")
        .body(bytes)
        .map_err(kube::Error::HttpError)?;
    client.request::<Value>(req).await.map(|_| ())
}

/// DELETEs a pod (with the given grace period, or the pod's own). With `uid`, only that pod: a
/// pod recreated under the same name is left alone (the server answers 409 Conflict).
pub async fn delete(
    client: &Client,
    namespace: &str,
    name: &str,
    grace_period: Option<i64>,
    uid: Option<&str>,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        grace_period_seconds: grace_period.and_then(|g| u32::try_from(g).ok()),
        preconditions: uid.map(|u| Preconditions {
            uid: Some(u.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    api.delete(name, &params).await.map(|_| ())
}

/// Whether the pod is bound to `node`. Lists by `fieldSelector=spec.nodeName=...` are checked
/// with this: a server (or a proxy in front of it) that ignores field selectors answers with every
/// pod, and a drain must never touch another node's pods.
pub fn on_node(pod: &Pod, node: &str) -> bool {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
}

/// A PodDisruptionBudget that covers a pod, with what its status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// `namespace/name`.
    pub key: String,
    pub disruptions_allowed: Option<i64>,
    pub current_healthy: Option<i64>,
    pub desired_healthy: Option<i64>,
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PodDisruptionBudget {}", self.key)?;
        match (
            self.disruptions_allowed,
            self.current_healthy,
            self.desired_healthy,
        ) {
            (Some(a), Some(c), Some(d)) => {
                write!(f, " (allows {a} disruption(s): {c} healthy pod(s), {d} needed)")
            }
            (Some(a), _, _) => write!(f, " (allows {a} disruption(s))"),
            _ => Ok(()),
        }
    }
}

/// The PodDisruptionBudgets of the pod's namespace whose selector matches the pod, read from
/// `policy/v1` or `policy/v1beta1` (`group_version` first, then the other).
pub async fn budgets_for(
    client: &Client,
    group_version: &str,
    pod: &Pod,
) -> Result<Vec<Budget>, kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let other = if group_version == "policy/v1" {
        "policy/v1beta1"
    } else {
        "policy/v1"
    };
    let mut last = None;
    for gv in [group_version, other] {
        let req = http::Request::get(format!("/apis/{gv}/namespaces/{ns}/poddisruptionbudgets"))
            .body(Vec::new())
            .map_err(kube::Error::HttpError)?;
        match client.request::<Value>(req).await {
            Ok(list) => {
                let labels = pod.metadata.labels.clone().unwrap_or_default();
                let items = list
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                return Ok(items
                    .iter()
                    .filter(|pdb| budget_selects(pdb, gv, &labels))
                    .map(|pdb| {
                        let int =
                            |field: &str| pdb.pointer(&format!("/status/{field}")).and_then(Value::as_i64);
                        let name = pdb
                            .pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        Budget {
                            key: format!("{ns}/{name}"),
                            disruptions_allowed: int("disruptionsAllowed"),
                            current_healthy: int("currentHealthy"),
                            desired_healthy: int("desiredHealthy"),
                        }
                    })
                    .collect());
            }
            Err(e) if crate::status(&e) == Some(404) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    match last {
        Some(e) => Err(e),
        None => Ok(Vec::new()),
    }
}

/// Whether a PodDisruptionBudget's `spec.selector` selects a pod with these labels. A missing
/// selector selects nothing; an empty one selects every pod in policy/v1 and none in policy/v1beta1.
fn budget_selects(pdb: &Value, group_version: &str, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = pdb.pointer("/spec/selector").filter(|s| s.is_object()) else {
        return false;
    };
    let match_labels = sel.get("matchLabels").and_then(Value::as_object);
    let exprs = sel.get("matchExpressions").and_then(Value::as_array);
    if match_labels.is_none_or(|m| m.is_empty()) && exprs.is_none_or(|e| e.is_empty()) {
        return group_version == "policy/v1";
    }
    selector_matches(sel, labels)
}

/// A `LabelSelector` (`matchLabels` and `matchExpressions`, all of them ANDed) against labels.
pub fn selector_matches(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let equal = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| {
            m.iter().all(|(k, v)| {
                v.as_str()
                    .is_some_and(|v| labels.get(k).map(String::as_str) == Some(v))
            })
        });
    let exprs = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_none_or(|es| {
            es.iter().all(|e| {
                let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
                let values: Vec<&str> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|vs| vs.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let have = labels.get(key).map(String::as_str);
                match e.get("operator").and_then(Value::as_str) {
                    Some("In") => have.is_some_and(|h| values.contains(&h)),
                    Some("NotIn") => have.is_none_or(|h| !values.contains(&h)),
                    Some("Exists") => have.is_some(),
                    Some("DoesNotExist") => have.is_none(),
                    // An operator we do not know: assume it selects (a budget must not be missed).
                    _ => true,
                }
            })
        });
    equal && exprs
}

/// The API groups that ever served DaemonSets.
const DAEMONSET_GROUPS: &[&str] = &["extensions/v1beta1", "apps/v1beta2", "apps/v1"];

/// A pod's controlling owner.
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub kind: &'a str,
    pub api_version: &'a str,
    pub name: &'a str,
}

/// What kubectl drain's filters look at, so that a full `Pod` (node_drain) and a listing that
/// deserialised only these fields (cluster_survey) are judged by the same rules.
pub trait DrainFacts {
    /// `namespace/name`.
    fn key(&self) -> String;
    /// A mirror pod: the API's copy of a static pod the kubelet runs from a manifest.
    fn is_mirror(&self) -> bool;
    /// The owner reference with `controller: true`, if any.
    fn controller(&self) -> Option<Owner<'_>>;
    /// Succeeded or Failed.
    fn is_finished(&self) -> bool;
    /// Names of the pod's emptyDir volumes.
    fn empty_dirs(&self) -> Vec<String>;

    /// The DaemonSet controlling the pod, recognised in any of extensions/v1beta1, apps/v1beta2, apps/v1.
    fn daemonset_owner(&self) -> Option<Owner<'_>> {
        self.controller()
            .filter(|r| r.kind == "DaemonSet" && DAEMONSET_GROUPS.contains(&r.api_version))
    }
}

impl DrainFacts for Pod {
    fn key(&self) -> String {
        key(self)
    }

    fn is_mirror(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION))
    }

    fn controller(&self) -> Option<Owner<'_>> {
        let owners: &[OwnerReference] = self.metadata.owner_references.as_deref()?;
        owners.iter().find(|r| r.controller == Some(true)).map(|r| Owner {
            kind: &r.kind,
            api_version: &r.api_version,
            name: &r.name,
        })
    }

    fn is_finished(&self) -> bool {
        is_finished_phase(self.status.as_ref().and_then(|s| s.phase.as_deref()))
    }

    fn empty_dirs(&self) -> Vec<String> {
        self.spec
            .as_ref()
            .and_then(|s| s.volumes.as_ref())
            .map(|vs| {
                vs.iter()
                    .filter(|v| v.empty_dir.is_some())
                    .map(|v| v.name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The annotation that marks a mirror pod.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Succeeded or Failed: always removable.
pub fn is_finished_phase(phase: Option<&str>) -> bool {
    matches!(phase, Some("Succeeded" | "Failed"))
}

/// kubectl drain's flags that decide which pods may be removed.
#[derive(Debug, Clone, Copy, Default)]
pub struct DrainFilters {
    pub ignore_daemonsets: bool,
    pub delete_emptydir_data: bool,
    pub force: bool,
}

/// What a drain does with one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Left on the node, with the reason.
    Skip(String),
    /// Stops the drain, with the reason and the flag that would allow it.
    Block(String),
    /// Evicted. `local_data`: its emptyDir data goes with it; `forced`: nothing recreates it.
    Remove { local_data: bool, forced: bool },
}

/// kubectl drain's filters, in kubectl's order: mirror pods, DaemonSet pods, finished pods,
/// emptyDir pods, pods without a controller.
pub fn drain_decision(pod: &impl DrainFacts, f: &DrainFilters) -> Decision {
    if pod.is_mirror() {
        return Decision::Skip("mirror pod of a static pod (the kubelet runs it from a manifest)".into());
    }
    if let Some(ds) = pod.daemonset_owner() {
        let what = format!("managed by DaemonSet {} ({})", ds.name, ds.api_version);
        return if f.ignore_daemonsets {
            Decision::Skip(what)
        } else {
            Decision::Block(format!(
                "{what}: the DaemonSet would put it right back; set ignore_daemonsets"
            ))
        };
    }
    if pod.is_finished() {
        return Decision::Remove {
            local_data: false,
            forced: false,
        };
    }
    let dirs = pod.empty_dirs();
    if !dirs.is_empty() && !f.delete_emptydir_data {
        return Decision::Block(format!(
            "uses emptyDir volume(s) {} whose data would be lost; set delete_emptydir_data",
            dirs.join(", ")
        ));
    }
    let bare = pod.controller().is_none();
    if bare && !f.force {
        return Decision::Block(
            "not managed by a controller (ReplicaSet, Job, StatefulSet...): nothing would recreate it; \
             set force"
                .into(),
        );
    }
    Decision::Remove {
        local_data: !dirs.is_empty(),
        forced: bare,
    }
}

/// `namespace/name`.
pub fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn budget_selectors() {
        let db = labels(&[("app", "db"), ("tier", "data")]);
        let pdb = |sel: Value| json!({"spec": {"selector": sel}});
        assert!(budget_selects(
            &pdb(json!({"matchLabels": {"app": "db"}})),
            "policy/v1beta1",
            &db
        ));
        assert!(!budget_selects(
            &pdb(json!({"matchLabels": {"app": "web"}})),
            "policy/v1",
            &db
        ));
        let exprs = json!({"matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["data", "cache"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ]});
        assert!(budget_selects(&pdb(exprs), "policy/v1", &db));
        let not_in = json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]});
        assert!(!budget_selects(&pdb(not_in), "policy/v1", &db));
        // An empty selector: every pod in policy/v1, none in policy/v1beta1; none without a selector.
        assert!(budget_selects(&pdb(json!({})), "policy/v1", &db));
        assert!(!budget_selects(&pdb(json!({})), "policy/v1beta1", &db));
        assert!(!budget_selects(&json!({"spec": {}}), "policy/v1", &db));
    }

    #[test]
    fn pods_on_a_node() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"nodeName": "worker-1", "containers": []},
        }))
        .unwrap();
        assert!(on_node(&pod, "worker-1"));
        assert!(!on_node(&pod, "worker-2"));
        assert!(!on_node(&Pod::default(), "worker-1"));
    }
}
