//! What drains need to know about pods and the server: where evictions live, who owns a pod,
//! and kubectl drain's filters (which pods a drain removes, skips, or is blocked by).

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams};
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

/// DELETEs a pod (with the given grace period, or the pod's own).
pub async fn delete(
    client: &Client,
    namespace: &str,
    name: &str,
    grace_period: Option<i64>,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        grace_period_seconds: grace_period.and_then(|g| u32::try_from(g).ok()),
        ..DeleteParams::default()
    };
    api.delete(name, &params).await.map(|_| ())
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
