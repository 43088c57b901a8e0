//! What drains need to know about pods and the server: where evictions live, who owns a pod.

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

/// The controlling owner of a pod, if any.
pub fn controller(pod: &Pod) -> Option<&OwnerReference> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// The DaemonSet controlling a pod, recognised in any of extensions/v1beta1, apps/v1beta2, apps/v1.
pub fn daemonset_owner(pod: &Pod) -> Option<&OwnerReference> {
    controller(pod).filter(|r| r.kind == "DaemonSet" && DAEMONSET_GROUPS.contains(&r.api_version.as_str()))
}

/// A mirror pod: the API's copy of a static pod the kubelet runs from a manifest.
pub fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"))
}

/// Succeeded or Failed: always removable.
pub fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Names of the pod's emptyDir volumes.
pub fn empty_dirs(pod: &Pod) -> Vec<String> {
    pod.spec
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

/// `namespace/name`.
pub fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}
