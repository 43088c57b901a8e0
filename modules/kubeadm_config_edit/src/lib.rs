//! `kubeadm_config_edit`: the kubeadm-config edits an era's HA upgrade page asks before a control
//! plane's kubeadm runs (kubernetes/website kubeadm-upgrade-ha-1-12.md and kubeadm-upgrade-ha-1-13.md).
//!
//! The stored configuration says whether etcd is stacked or external; the Nodes say each control
//! plane's address (its InternalIP, what kubeadm advertises). What to edit is decided without I/O
//! ([`edits::decide`]); the documents are edited on their lines ([`kubeadm_yaml`]), so everything else in
//! them stays as it was. The ConfigMap is written back with the resourceVersion that was read (a 409
//! means someone else wrote meanwhile: read everything again, decide again); the Node is annotated
//! with a merge patch; the external-etcd `--config` file is written 0600 atomically.

mod edits;
mod file;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use kube_kit::k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube_kit::kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube_kit::{Connection, NodeName};
use kube_version::Version;
use module_kit::{de, shown, Context, Failure, FilePath, Module, Name, Outcome, Seconds};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use edits::CRI_SOCKET_ANNOTATION;

pub struct KubeadmConfigEdit;

#[derive(Debug, Clone, Deserialize, Serialize, module_kit::Params)]
pub struct Params {
    /// The Kubernetes release being upgraded to (`v1.12.10`, or the minor `1.12`): 1.12 and 1.13
    /// have edits, any other has none.
    pub target: String,
    /// This control plane's node name.
    pub node: NodeName,
    /// This is the rollout's first control plane (the one that runs `kubeadm upgrade apply` first).
    #[serde(default, deserialize_with = "de::boolean")]
    pub first: bool,
    /// Where the external-etcd `--config` file for 1.12 goes.
    #[serde(default = "default_config_path")]
    pub config_path: FilePath,
    /// The value of the Node's cri-socket annotation (1.12, stacked, other control planes);
    /// `None`: [`DEFAULT_CRI_SOCKET`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cri_socket: Option<Name>,
    /// Seconds for the whole operation, retries included.
    #[serde(default = "default_timeout")]
    pub timeout: Seconds,
    /// `kubeconfig`, `context`, `request_timeout`.
    #[serde(flatten)]
    pub connection: Connection,
}

impl Params {
    /// The edits for `node` going to `target`, everything else at its default (for callers such as kup).
    pub fn new(target: impl Into<String>, node: NodeName, first: bool) -> Params {
        Params {
            target: target.into(),
            node,
            first,
            config_path: default_config_path(),
            cri_socket: None,
            timeout: default_timeout(),
            connection: Connection::default(),
        }
    }
}

/// Where the `--config` file goes unless told: beside kubeadm's own files, root's only.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/kubernetes/kubeadm-upgrade-config.yaml";

fn default_config_path() -> FilePath {
    FilePath::from_static(DEFAULT_CONFIG_PATH)
}
/// The 1.12 page's example of the cri-socket annotation (docker's dockershim).
pub const DEFAULT_CRI_SOCKET: &str = "/var/run/dockershim.sock";

fn default_timeout() -> Seconds {
    Seconds::of(120)
}

const NAMESPACE: &str = "kube-system";
const CONFIG_MAP: &str = "kubeadm-config";
const WHERE: &str = "configmap kube-system/kubeadm-config";

/// `(major, minor)` of a release (`v1.12.3`, `1.12.0-rc.1`) or a minor (`v1.12`, `1.12`).
pub fn target_minor(text: &str) -> Option<(u32, u32)> {
    if let Some(v) = Version::parse(text) {
        return Some(v.minor_release());
    }
    let bare = text.trim();
    let bare = bare.strip_prefix('v').unwrap_or(bare);
    let (major, minor) = bare.split_once('.')?;
    let number = |s: &str| {
        (!s.is_empty()
            && s.len() <= 6
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0')))
        .then(|| s.parse().ok())
        .flatten()
    };
    Some((number(major)?, number(minor)?))
}

impl Module for KubeadmConfigEdit {
    const NAME: &'static str = "kubeadm_config_edit";
    const DOCS: &'static str = include_str!("../kubeadm_config_edit.yml");
    type Params = Params;

    fn validate(p: &Params) -> Result<(), Failure> {
        if target_minor(&p.target).is_none() {
            return Err(Failure::param(
                "target",
                format!(
                    "expected a release such as v1.12.10 or a minor such as v1.12, got {}",
                    shown(&p.target)
                ),
            ));
        }
        Ok(())
    }

    fn run(p: Params, ctx: &Context) -> Result<Outcome, Failure> {
        let Some(target) = target_minor(&p.target) else {
            return Err(Failure::param("target", "is not a release"));
        };
        if !matches!(target, (1, 12) | (1, 13)) {
            return Ok(Outcome::unchanged(format!(
                "target {}: only the 1.11 -> 1.12 and 1.12 -> 1.13 HA upgrade pages ask kubeadm-config edits; \
                 nothing to do",
                p.target.trim()
            ))
            .with("edits", Vec::<String>::new())
            .with("config_file", None::<String>)
            .with("topology", None::<String>)
            .with("conflicts", 0));
        }
        let check = ctx.check_mode;
        kube_kit::block_on(async move { apply(&p, target, check).await })?
    }
}

/// Every control plane (by name, with its InternalIP) and this node's cri-socket annotation.
async fn survey(
    nodes: &Api<Node>,
    me: &str,
    deadline: Instant,
    server: &str,
) -> Result<(Vec<edits::ControlPlane>, Option<String>), Failure> {
    let ip = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.clone())
    };
    let mut found = BTreeMap::new();
    // kubeadm's label until 1.20, and the one after (either marks a control plane).
    for label in [
        "node-role.kubernetes.io/master",
        "node-role.kubernetes.io/control-plane",
    ] {
        let lp = ListParams::default().labels(label);
        let list = kube_kit::retry(deadline, || nodes.list(&lp)).await.map_err(|e| {
            kube_kit::api_failure(format!("cannot list the control-plane nodes on {server}"), &e)
        })?;
        for n in &list.items {
            if let Some(name) = &n.metadata.name {
                found.insert(name.clone(), ip(n));
            }
        }
    }
    let own = kube_kit::retry(deadline, || nodes.get(me)).await.map_err(|e| {
        if kube_kit::status(&e) == Some(404) {
            Failure::param("node", format!("node {me} not found on {server}"))
        } else {
            kube_kit::api_failure(format!("cannot read node {me} on {server}"), &e)
        }
    })?;
    if !found.contains_key(me) {
        return Err(Failure::param(
            "node",
            format!(
                "node {me} is not a control plane (labelled neither node-role.kubernetes.io/master nor \
                 node-role.kubernetes.io/control-plane)"
            ),
        ));
    }
    let annotation = own
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CRI_SOCKET_ANNOTATION))
        .cloned();
    let cps = found
        .into_iter()
        .map(|(name, ip)| edits::ControlPlane { name, ip })
        .collect();
    Ok((cps, annotation))
}

/// Before and after, as Ansible shows a diff: one text, a header per part that changes.
#[derive(Default)]
struct Shown {
    before: String,
    after: String,
}

impl Shown {
    fn part(&mut self, header: &str, before: &str, after: &str) {
        for (side, text) in [(&mut self.before, before), (&mut self.after, after)] {
            side.push_str(&format!("# {header}\n{text}"));
            if !text.ends_with('\n') {
                side.push('\n');
            }
        }
    }
}

async fn apply(p: &Params, target: (u32, u32), check: bool) -> Result<Outcome, Failure> {
    let deadline = Instant::now() + p.timeout.duration();
    let api = kube_kit::connect(&p.connection).await?;
    let cms: Api<ConfigMap> = Api::namespaced(api.client.clone(), NAMESPACE);
    let nodes: Api<Node> = Api::all(api.client.clone());
    let node = p.node.as_str();
    let path: &Path = &p.config_path;
    let mut conflicts = 0u32;
    loop {
        let cm = kube_kit::get_kubeadm_config(&cms, CONFIG_MAP, WHERE, &api.server, deadline).await?;
        let (cps, annotation) = survey(&nodes, node, deadline, &api.server).await?;
        let data = cm.data.clone().unwrap_or_default();
        // The copy an earlier run made (an unsafe place is refused when it is written).
        let file_now = file::inspect(path, "").ok().and_then(|state| state.before);
        let facts = edits::Facts {
            target,
            data: &data,
            node,
            first: p.first,
            control_planes: &cps,
            annotation: annotation.as_deref(),
            cri_socket: p.cri_socket.as_deref().unwrap_or(DEFAULT_CRI_SOCKET),
            config_file_now: file_now.as_deref(),
        };
        let d = edits::decide(&facts).map_err(|e| Failure::new(format!("{WHERE}: {e}")))?;
        let mut list = d.edits.clone();
        let mut diff = Shown::default();
        for doc in &d.docs {
            diff.part(&format!("{WHERE} {}", doc.key), &doc.before, &doc.after);
        }
        if let Some(value) = &d.annotate {
            diff.part(
                &format!("node {node} annotation {CRI_SOCKET_ANNOTATION}"),
                annotation.as_deref().unwrap_or("(none)"),
                value,
            );
        }
        let file = match &d.config_file {
            Some((content, said)) => {
                let state = file::inspect(path, content).map_err(|e| Failure::param("config_path", e))?;
                if let Some(why) = &state.write {
                    list.push(format!(
                        "{}: {why}, mode 0600, for `kubeadm upgrade apply --config`",
                        path.display()
                    ));
                    list.extend(said.iter().map(|s| format!("{}: {s}", path.display())));
                    diff.part(
                        &path.display().to_string(),
                        state.before.as_deref().unwrap_or(""),
                        content,
                    );
                }
                Some((content, state.write.is_some()))
            }
            None => None,
        };
        let write_file = file.is_some_and(|(_, w)| w);
        let topology = d.topology.map(edits::Topology::name);
        let outcome = |changed: bool, msg: String| {
            let o = if changed {
                Outcome::changed(msg).with_diff(json!(diff.before), json!(diff.after))
            } else {
                Outcome::unchanged(msg)
            };
            o.with("edits", &list)
                .with("config_file", file.map(|_| path.display().to_string()))
                .with("topology", topology)
                .with("conflicts", conflicts)
        };
        if d.docs.is_empty() && d.annotate.is_none() && !write_file {
            return Ok(outcome(false, format!("{node}: {}; nothing to change", d.lead)));
        }
        let summary = list.join("; ");
        if check {
            return Ok(outcome(
                true,
                format!("{node}: {}; would change: {summary}", d.lead),
            ));
        }
        if !d.docs.is_empty() {
            let mut cm = cm;
            if let Some(data) = cm.data.as_mut() {
                for doc in &d.docs {
                    data.insert(doc.key.clone(), doc.after.clone());
                }
            }
            // The object keeps the resourceVersion it was read with: a concurrent write is a 409.
            let post = PostParams::default();
            match kube_kit::retry(deadline, || cms.replace(CONFIG_MAP, &post, &cm)).await {
                Ok(_) => {}
                Err(e) if kube_kit::status(&e) == Some(409) => {
                    conflicts += 1;
                    if conflicts >= 10 || Instant::now() >= deadline {
                        return Err(kube_kit::api_failure(
                            format!("{WHERE} kept changing under us ({conflicts} conflicts)"),
                            &e,
                        ));
                    }
                    kube_kit::tokio::time::sleep(Duration::from_millis(50 * u64::from(conflicts))).await;
                    continue;
                }
                Err(e) => {
                    return Err(kube_kit::api_failure(
                        format!("cannot write {WHERE} on {}", api.server),
                        &e,
                    ));
                }
            }
        }
        if let Some(value) = &d.annotate {
            let patch = json!({"metadata": {"annotations": {CRI_SOCKET_ANNOTATION: value}}});
            let params = PatchParams::default();
            let merge = Patch::Merge(&patch);
            kube_kit::retry(deadline, || nodes.patch(node, &params, &merge))
                .await
                .map_err(|e| {
                    kube_kit::api_failure(format!("cannot annotate node {node} on {}", api.server), &e)
                })?;
        }
        if let Some((content, true)) = file {
            file::replace(path, content).map_err(Failure::new)?;
        }
        return Ok(outcome(true, format!("{node}: {}; changed: {summary}", d.lead)));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::target_minor;

    #[test]
    fn targets_are_releases_or_minors() {
        assert_eq!(target_minor("v1.12.10"), Some((1, 12)));
        assert_eq!(target_minor("1.13.0-rc.1"), Some((1, 13)));
        assert_eq!(target_minor("v1.12"), Some((1, 12)));
        assert_eq!(target_minor(" 1.35 "), Some((1, 35)));
        for bad in ["", "1", "v1.012", "1.12.x", "1.12.3+a", "latest", "1.12 -y"] {
            assert_eq!(target_minor(bad), None, "{bad}");
        }
    }
}
