//! `kubeadm_config_nodename`: the runbook's "replace a hard reference to some master host by the
//! current master host's FQDN" in `configmap/kubeadm-config`, before `kubeadm upgrade apply` on
//! each control-plane node.
//!
//! kubeadm 1.8–1.10 store `data.MasterConfiguration` (v1alpha1) with a top-level `nodeName`: it is
//! set to this node, writing back with the resourceVersion that was read (a 409 means someone else
//! wrote meanwhile: read again, decide again). The edit touches only the `nodeName` line, so every
//! other key, comment and formatting choice is kept; the result is parsed again and must equal the
//! original with only `nodeName` changed. Newer formats (v1alpha2's per-node `nodeRegistration`,
//! 1.12+'s `ClusterConfiguration`) have no such field: nothing to do, and the message says why.

mod hostname;
mod yaml;

use std::time::{Duration, Instant};

use kube_kit::k8s_openapi::api::core::v1::ConfigMap;
use kube_kit::kube::api::{Api, PostParams};
use kube_kit::{is_dns1123_subdomain, Connection, NodeName};
use module_kit::{shown, Context, Failure, Module, Outcome, Seconds};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub struct KubeadmConfigNodename;

#[derive(Debug, Clone, Deserialize, Serialize, module_kit::Params)]
pub struct Params {
    /// The node name to set (default: this host's FQDN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<NodeName>,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default = "default_name")]
    pub name: String,
    /// Seconds for the whole operation, retries included.
    #[serde(default = "default_timeout")]
    pub timeout: Seconds,
    /// `kubeconfig`, `context`, `request_timeout`.
    #[serde(flatten)]
    pub connection: Connection,
}

impl Params {
    /// `nodeName` set to `node_name` (`None`: this host's FQDN), everything else at its default (for
    /// callers such as kup).
    pub fn new(node_name: Option<NodeName>) -> Params {
        Params {
            node_name,
            namespace: default_namespace(),
            name: default_name(),
            timeout: default_timeout(),
            connection: Connection::default(),
        }
    }
}

fn default_namespace() -> String {
    "kube-system".into()
}
fn default_name() -> String {
    "kubeadm-config".into()
}
fn default_timeout() -> Seconds {
    Seconds::of(120)
}

/// What the ConfigMap holds, and what to do about it.
enum Plan {
    /// Nothing to do (already set, or a format without `nodeName`).
    Keep {
        msg: String,
        format: &'static str,
        current: Option<String>,
    },
    /// Rewrite `data[key]` from `before` to `after`.
    Rewrite {
        key: String,
        before: String,
        after: String,
        current: Option<String>,
        cm: Box<ConfigMap>,
    },
}

fn plan(cm: ConfigMap, node: &str, where_: &str) -> Result<Plan, Failure> {
    let data = cm.data.clone().unwrap_or_default();
    if let Some(text) = data.get("MasterConfiguration") {
        let doc = yaml::parse(text)
            .map_err(|e| Failure::new(format!("{where_}: MasterConfiguration is not valid YAML: {e}")))?;
        if yaml::is_v1alpha2_or_later(&doc) {
            return Ok(Plan::Keep {
                msg: format!(
                    "{where_} holds a v1alpha2 MasterConfiguration (kubeadm 1.11): the node name lives in each \
                     node's nodeRegistration, not in the shared config, so the nodeName rewrite is not needed"
                ),
                format: "MasterConfiguration v1alpha2",
                current: None,
            });
        }
        let current = yaml::node_name(&doc);
        if current.as_deref() == Some(node) {
            return Ok(Plan::Keep {
                msg: format!("nodeName in {where_} is already {node}"),
                format: "MasterConfiguration v1alpha1",
                current,
            });
        }
        let after = yaml::set_node_name(text, node).map_err(|e| Failure::new(format!("{where_}: {e}")))?;
        return Ok(Plan::Rewrite {
            key: "MasterConfiguration".into(),
            before: text.clone(),
            after,
            current,
            cm: Box::new(cm),
        });
    }
    if data.contains_key("ClusterConfiguration") {
        return Ok(Plan::Keep {
            msg: format!(
                "{where_} holds a ClusterConfiguration (kubeadm 1.12+), which has no nodeName: the rewrite is \
                 not needed with this kubeadm"
            ),
            format: "ClusterConfiguration",
            current: None,
        });
    }
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    Err(Failure::new(format!(
        "{where_} has neither MasterConfiguration nor ClusterConfiguration (its keys: {}): is it kubeadm's?",
        if keys.is_empty() {
            "none".to_string()
        } else {
            keys.join(", ")
        }
    )))
}

impl Module for KubeadmConfigNodename {
    const NAME: &'static str = "kubeadm_config_nodename";
    const DOCS: &'static str = include_str!("../kubeadm_config_nodename.yml");
    type Params = Params;

    fn validate(p: &Params) -> Result<(), Failure> {
        for (field, value) in [("namespace", &p.namespace), ("name", &p.name)] {
            if !is_dns1123_subdomain(value) {
                return Err(Failure::param(
                    field,
                    format!("{} is not a valid object name", shown(value)),
                ));
            }
        }
        Ok(())
    }

    fn run(p: Params, ctx: &Context) -> Result<Outcome, Failure> {
        let (node, source) = match &p.node_name {
            Some(n) => (n.clone(), "parameter"),
            None => {
                let fqdn = hostname::fqdn().map_err(|e| Failure::param("node_name", e))?;
                // This host's name must be one Kubernetes accepts too.
                let node = NodeName::new(&fqdn).map_err(|e| Failure::param("node_name", e))?;
                (node, "hostname")
            }
        };
        let check = ctx.check_mode;
        kube_kit::block_on(async move {
            let out = apply(&p, &node, check).await?;
            Ok(out.with("node_name", &node).with("node_name_source", source))
        })?
    }
}

/// The outcome of a rewrite of the MasterConfiguration (done, or in check mode to be done).
fn rewritten(msg: String, current: &Option<String>, conflicts: u32, before: &str, after: &str) -> Outcome {
    Outcome::changed(msg)
        .with("format", "MasterConfiguration v1alpha1")
        .with("previous", current)
        .with("conflicts", conflicts)
        .with_diff(json!(before), json!(after))
}

async fn apply(p: &Params, node: &str, check: bool) -> Result<Outcome, Failure> {
    let deadline = Instant::now() + p.timeout.duration();
    let api = kube_kit::connect(&p.connection).await?;
    let cms: Api<ConfigMap> = Api::namespaced(api.client.clone(), &p.namespace);
    let where_ = format!("configmap {}/{}", p.namespace, p.name);
    let mut conflicts = 0u32;
    loop {
        let cm = kube_kit::get_kubeadm_config(&cms, &p.name, &where_, &api.server, deadline).await?;
        match plan(cm, node, &where_)? {
            Plan::Keep { msg, format, current } => {
                return Ok(Outcome::unchanged(msg)
                    .with("format", format)
                    .with("previous", current)
                    .with("conflicts", conflicts));
            }
            Plan::Rewrite {
                key,
                before,
                after,
                current,
                mut cm,
            } => {
                let was = current.as_deref().unwrap_or("(unset)");
                if check {
                    return Ok(rewritten(
                        format!("would set nodeName in {where_} from {was} to {node}"),
                        &current,
                        conflicts,
                        &before,
                        &after,
                    ));
                }
                if let Some(data) = cm.data.as_mut() {
                    data.insert(key, after.clone());
                }
                // The object keeps the resourceVersion it was read with: a concurrent write is a 409.
                let post = PostParams::default();
                match kube_kit::retry(deadline, || cms.replace(&p.name, &post, &cm)).await {
                    Ok(_) => {
                        return Ok(rewritten(
                            format!("set nodeName in {where_} from {was} to {node}"),
                            &current,
                            conflicts,
                            &before,
                            &after,
                        ));
                    }
                    Err(e) if kube_kit::status(&e) == Some(409) => {
                        conflicts += 1;
                        if conflicts >= 10 || Instant::now() >= deadline {
                            return Err(kube_kit::api_failure(
                                format!("{where_} kept changing under us ({conflicts} conflicts)"),
                                &e,
                            ));
                        }
                        kube_kit::tokio::time::sleep(Duration::from_millis(50 * u64::from(conflicts))).await;
                    }
                    Err(e) => {
                        return Err(kube_kit::api_failure(
                            format!("cannot write {where_} on {}", api.server),
                            &e,
                        ));
                    }
                }
            }
        }
    }
}
