//! `node_ready`: the runbook's closing "kubectl get nodes until every STATUS is Ready". Waits until
//! each node (or the named ones) is Ready, and at the expected kubelet version when one is given;
//! otherwise fails listing every node that is not, and why. Read-only: never reports a change.
//! While it waits, it says which node it waits for and why (`module_kit::progress`, for kup).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube_kit::k8s_openapi::api::core::v1::{Node, Pod};
use kube_kit::kube::api::{Api, ListParams};
use kube_kit::{Connection, NodeName};
use module_kit::{de, shown, Context, Failure, Module, Outcome};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};

pub struct NodeReady;

#[derive(Debug, Clone, Deserialize, Serialize, module_kit::Params)]
pub struct Params {
    /// Nodes to wait for (default: every node).
    #[serde(default, deserialize_with = "names", skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<NodeName>>,
    /// Expected `status.nodeInfo.kubeletVersion` (`v1.9.2`, `1.9.2`, or `1.9` for any patch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet_version: Option<String>,
    /// Seconds to wait in all (0: look once; at most 7 days).
    #[serde(default = "default_timeout", deserialize_with = "de::seconds_or_zero")]
    pub timeout: u64,
    /// Seconds between two looks (1 s to 7 days).
    #[serde(default = "default_interval", deserialize_with = "de::seconds")]
    pub interval: u64,
    /// Also wait until each node's control-plane static pods (its API server, and its etcd when
    /// stacked) are Ready, as their mirror pods report.
    #[serde(default, deserialize_with = "de::boolean")]
    pub control_plane: bool,
    /// `kubeconfig`, `context`, `request_timeout`.
    #[serde(flatten)]
    pub connection: Connection,
}

impl Default for Params {
    /// Every node, any version, the default waits (for callers such as kup).
    fn default() -> Params {
        Params {
            names: None,
            kubelet_version: None,
            timeout: default_timeout(),
            interval: default_interval(),
            control_plane: false,
            connection: Connection::default(),
        }
    }
}

fn default_timeout() -> u64 {
    300
}
fn default_interval() -> u64 {
    5
}

/// A list of node names, or one comma-separated string (what Ansible passes for `names: a,b`).
fn names<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<NodeName>>, D::Error> {
    let list: Vec<String> = match Value::deserialize(d)? {
        Value::String(s) => s.split(',').map(|n| n.trim().to_string()).collect(),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.trim().to_string()),
                other => Err(serde::de::Error::custom(format!(
                    "expected node names (strings), got {}",
                    module_kit::echo::shown_value(&other)
                ))),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected a list of node names, got {}",
                module_kit::echo::shown_value(&other)
            )))
        }
    };
    let list: Vec<String> = list.into_iter().filter(|n| !n.is_empty()).collect();
    if list.is_empty() {
        return Err(serde::de::Error::custom("expected at least one node name"));
    }
    list.iter()
        .map(|n| NodeName::new(n))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// What one look found about one node.
#[derive(Debug, Clone)]
struct Seen {
    name: String,
    found: bool,
    ready: bool,
    kubelet_version: Option<String>,
    schedulable: bool,
    /// Empty when the node is as wanted.
    problem: String,
}

impl Seen {
    fn ok(&self) -> bool {
        self.problem.is_empty()
    }

    fn json(&self) -> Value {
        json!({
            "name": self.name,
            "found": self.found,
            "ready": self.ready,
            "kubelet_version": self.kubelet_version,
            "schedulable": self.schedulable,
            "problem": if self.ok() { Value::Null } else { Value::String(self.problem.clone()) },
        })
    }
}

/// `1.9` matches `v1.9.2`; `v1.9.2` matches `1.9.2` and `v1.9.2+build`.
pub fn version_matches(expected: &str, actual: &str) -> bool {
    let e = expected.trim().trim_start_matches('v');
    let a = actual.trim().trim_start_matches('v');
    a == e
        || [".", "+", "-"]
            .iter()
            .any(|sep| a.starts_with(&format!("{e}{sep}")))
}

fn inspect(node: &Node, expected: Option<&str>) -> Seen {
    let name = node.metadata.name.clone().unwrap_or_default();
    let status = node.status.as_ref();
    let version = status
        .and_then(|s| s.node_info.as_ref())
        .map(|i| i.kubelet_version.clone());
    let ready_cond = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    let ready = ready_cond.is_some_and(|c| c.status == "True");
    let mut problems = Vec::new();
    match ready_cond {
        None => problems.push("has no Ready condition yet".to_string()),
        Some(c) if c.status != "True" => {
            let state = if c.status == "Unknown" {
                "NotReady (status Unknown)"
            } else {
                "NotReady"
            };
            let why = reason_and_message(c.reason.as_deref(), c.message.as_deref());
            problems.push(if why.is_empty() {
                state.to_string()
            } else {
                format!("{state}: {why}")
            });
        }
        Some(_) => {}
    }
    if let Some(want) = expected {
        match &version {
            Some(v) if version_matches(want, v) => {}
            Some(v) => problems.push(format!("kubelet is {v}, expected {want}")),
            None => problems.push(format!("reports no kubelet version, expected {want}")),
        }
    }
    Seen {
        name,
        found: true,
        ready,
        kubelet_version: version,
        schedulable: !node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false),
        problem: problems.join("; "),
    }
}

/// A condition's reason and message, as one phrase (`KubeletNotReady: PLEG is not healthy`).
fn reason_and_message(reason: Option<&str>, message: Option<&str>) -> String {
    [reason, message]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

/// The control-plane static pods kubeadm writes carry `tier: control-plane` and `component: <name>`
/// (cmd/kubeadm/app/util/staticpod/utils.go, ComponentPod); the kubelet mirrors them into the API
/// as `<component>-<node>` in kube-system, Ready as their probes say.
const CONTROL_PLANE_PODS: &str = "tier=control-plane";

/// What is wrong with `node`'s control-plane pods (`None`: its API server is there and every one
/// of them is Ready).
fn control_plane_problem(node: &str, pods: &[Pod]) -> Option<String> {
    let mine: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        .collect();
    let component = |p: &Pod| {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("component"))
            .cloned()
            .unwrap_or_else(|| p.metadata.name.clone().unwrap_or_default())
    };
    let mut problems = Vec::new();
    if !mine.iter().any(|p| component(p) == "kube-apiserver") {
        problems.push("no kube-apiserver pod (is it a control plane?)".to_string());
    }
    for pod in &mine {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
        match ready {
            Some(c) if c.status == "True" => {}
            Some(c) => {
                let why = reason_and_message(c.reason.as_deref(), c.message.as_deref());
                problems.push(if why.is_empty() {
                    format!("{} not Ready", component(pod))
                } else {
                    format!("{} not Ready ({why})", component(pod))
                });
            }
            None => problems.push(format!("{} has no Ready condition yet", component(pod))),
        }
    }
    (!problems.is_empty()).then(|| format!("control plane: {}", problems.join(", ")))
}

fn evaluate(
    nodes: &[Node],
    wanted: Option<&[NodeName]>,
    expected: Option<&str>,
    control_plane: Option<&[Pod]>,
) -> Vec<Seen> {
    let mut seen = evaluate_nodes(nodes, wanted, expected);
    if let Some(pods) = control_plane {
        for s in seen.iter_mut().filter(|s| s.found) {
            if let Some(problem) = control_plane_problem(&s.name, pods) {
                if !s.problem.is_empty() {
                    s.problem.push_str("; ");
                }
                s.problem.push_str(&problem);
            }
        }
    }
    seen
}

fn evaluate_nodes(nodes: &[Node], wanted: Option<&[NodeName]>, expected: Option<&str>) -> Vec<Seen> {
    let by_name: BTreeMap<String, &Node> = nodes
        .iter()
        .map(|n| (n.metadata.name.clone().unwrap_or_default(), n))
        .collect();
    match wanted {
        Some(names) => names
            .iter()
            .map(|name| match by_name.get(name.as_str()) {
                Some(node) => inspect(node, expected),
                None => Seen {
                    name: name.to_string(),
                    found: false,
                    ready: false,
                    kubelet_version: None,
                    schedulable: false,
                    problem: "not found (not registered with the API server)".to_string(),
                },
            })
            .collect(),
        None => by_name.values().map(|n| inspect(n, expected)).collect(),
    }
}

impl Module for NodeReady {
    const NAME: &'static str = "node_ready";
    const DOCS: &'static str = include_str!("../node_ready.yml");
    type Params = Params;

    fn validate(p: &Params) -> Result<(), Failure> {
        if let Some(v) = &p.kubelet_version {
            let t = v.trim().trim_start_matches('v');
            let valid = !t.is_empty()
                && t.split(['.', '-', '+'])
                    .next()
                    .is_some_and(|m| m.parse::<u32>().is_ok())
                && t.contains('.')
                && !t.contains(char::is_control);
            if !valid {
                return Err(Failure::param(
                    "kubelet_version",
                    format!("expected a version such as v1.9.2 or 1.9, got {}", shown(v)),
                ));
            }
        }
        Ok(())
    }

    fn run(p: Params, _ctx: &Context) -> Result<Outcome, Failure> {
        kube_kit::block_on(wait(p))?
    }
}

async fn wait(p: Params) -> Result<Outcome, Failure> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(p.timeout);
    let interval = Duration::from_secs(p.interval);
    let api = kube_kit::connect(&p.connection).await?;
    let nodes: Api<Node> = Api::all(api.client.clone());
    let pods: Api<Pod> = Api::namespaced(api.client.clone(), "kube-system");
    let expected = p.kubelet_version.as_deref();
    let mut last_error: Option<String>;
    let mut last_seen: Option<Vec<Seen>> = None;
    let mut looks = 0u32;
    loop {
        looks += 1;
        let looked = match nodes.list(&ListParams::default()).await {
            Ok(list) if p.control_plane => pods
                .list(&ListParams::default().labels(CONTROL_PLANE_PODS))
                .await
                .map(|pods| (list.items, Some(pods.items))),
            Ok(list) => Ok((list.items, None)),
            Err(e) => Err(e),
        };
        match looked {
            Ok((node_list, pod_list)) => {
                last_error = None;
                let seen = evaluate(&node_list, p.names.as_deref(), expected, pod_list.as_deref());
                if !seen.is_empty() && seen.iter().all(Seen::ok) {
                    let mut at = expected.map(|v| format!(" at {v}")).unwrap_or_default();
                    if p.control_plane {
                        at.push_str(", their control-plane pods Ready");
                    }
                    let names: Vec<&str> = seen.iter().map(|s| s.name.as_str()).collect();
                    return Ok(Outcome::unchanged(format!(
                        "{} node(s) Ready{at}: {}",
                        seen.len(),
                        names.join(", ")
                    ))
                    .with("nodes", seen.iter().map(Seen::json).collect::<Vec<_>>())
                    .with("not_ready", Vec::<String>::new())
                    .with("waited", round(start.elapsed()))
                    .with("looks", looks));
                }
                report_progress(&seen, expected, None, deadline);
                last_seen = Some(seen);
            }
            Err(e) => {
                // The API server may be restarting (that is what upgrades do): keep looking.
                if !kube_kit::transient(&e) {
                    return Err(kube_kit::api_failure(
                        format!(
                            "cannot list nodes (or kube-system's control-plane pods) on {}",
                            api.server
                        ),
                        &e,
                    ));
                }
                last_error = Some(kube_kit::describe(&e));
                let seen = last_seen.as_deref().unwrap_or_default();
                report_progress(seen, expected, last_error.as_deref(), deadline);
            }
        }
        // Look again until the deadline: the last look is at the deadline, not an interval before it.
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        kube_kit::tokio::time::sleep(interval.min(deadline - now)).await;
    }
    let waited = round(start.elapsed());
    let seen = last_seen.unwrap_or_default();
    let bad: Vec<&Seen> = seen.iter().filter(|s| !s.ok()).collect();
    let mut parts: Vec<String> = bad.iter().map(|s| format!("{} {}", s.name, s.problem)).collect();
    if seen.is_empty() && last_error.is_none() {
        parts.push("the API server has no nodes".to_string());
    }
    if let Some(e) = &last_error {
        parts.push(format!("the last look failed: {e}"));
    }
    let at = expected.map(|v| format!(" at {v}")).unwrap_or_default();
    Err(Failure::new(format!(
        "after {waited}s, not every node is Ready{at}: {}",
        parts.join("; ")
    ))
    .with("nodes", seen.iter().map(Seen::json).collect::<Vec<_>>())
    .with(
        "not_ready",
        bad.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
    )
    .with("waited", waited)
    .with("looks", looks))
}

/// Nodes named in a progress text; the others are counted.
const PROGRESS_NODES: usize = 2;

/// What a wait is at after a look, for kup's progress: the nodes not as wanted yet (each with why:
/// Ready=False and the condition's reason and message, the kubelet version against the wanted
/// one, control-plane pods not Ready), or why the look failed. The first node it waits for is the
/// line's node.
fn progress_text(
    seen: &[Seen],
    expected: Option<&str>,
    failed_look: Option<&str>,
) -> (String, Option<String>) {
    if let Some(e) = failed_look {
        return (format!("the API server did not answer the last look: {e}"), None);
    }
    let bad: Vec<&Seen> = seen.iter().filter(|s| !s.ok()).collect();
    let Some(first) = bad.first() else {
        return ("no node to wait for yet".into(), None);
    };
    let at = expected.map(|v| format!(" at {v}")).unwrap_or_default();
    let mut named: Vec<String> = bad
        .iter()
        .take(PROGRESS_NODES)
        .map(|s| format!("{} {}", s.name, s.problem))
        .collect();
    if bad.len() > PROGRESS_NODES {
        named.push(format!("+{} more", bad.len() - PROGRESS_NODES));
    }
    let text = format!(
        "waiting for {} of {} node(s) to be Ready{at}: {}",
        bad.len(),
        seen.len(),
        named.join("; ")
    );
    (text, Some(first.name.clone()))
}

fn report_progress(seen: &[Seen], expected: Option<&str>, failed_look: Option<&str>, deadline: Instant) {
    let (text, node) = progress_text(seen, expected, failed_look);
    let mut progress = module_kit::progress::Progress::new(text).until(deadline);
    progress.node = node;
    module_kit::progress::report(&progress);
}

fn round(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::{control_plane_problem, evaluate, progress_text, version_matches};
    use kube_kit::k8s_openapi::api::core::v1::{Node, Pod};
    use kube_kit::NodeName;
    use serde_json::json;

    fn pod(component: &str, node: &str, ready: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{component}-{node}"), "namespace": "kube-system",
                         "labels": {"component": component, "tier": "control-plane"}},
            "spec": {"nodeName": node, "containers": [{"name": component}]},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": if ready == "True" { "" } else { "ContainersNotReady" }}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_control_plane_is_ready_when_its_api_server_and_every_static_pod_are() {
        let pods = [
            pod("kube-apiserver", "cp1", "True"),
            pod("etcd", "cp1", "True"),
            pod("kube-apiserver", "cp2", "False"),
            pod("etcd", "cp2", "True"),
            pod("etcd", "cp3", "False"),
        ];
        assert_eq!(control_plane_problem("cp1", &pods), None);
        assert_eq!(
            control_plane_problem("cp2", &pods).unwrap(),
            "control plane: kube-apiserver not Ready (ContainersNotReady)"
        );
        let cp3 = control_plane_problem("cp3", &pods).unwrap();
        assert!(cp3.contains("no kube-apiserver pod"), "{cp3}");
        assert!(cp3.contains("etcd not Ready"), "{cp3}");
        // Another node's pods say nothing about this one.
        assert!(control_plane_problem("w1", &pods)
            .unwrap()
            .contains("no kube-apiserver pod"));
    }

    fn node(name: &str, ready: &str, version: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"nodeInfo": {"kubeletVersion": version},
                       "conditions": [{"type": "Ready", "status": ready,
                                       "reason": if ready == "True" { "KubeletReady" } else { "KubeletNotReady" },
                                       "message": if ready == "True" { "kubelet is posting ready status" } else { "PLEG is not healthy" }}]}
        }))
        .unwrap()
    }

    #[test]
    fn progress_says_which_node_it_waits_for_and_why() {
        let nodes = [
            node("cp1", "True", "v1.9.2"),
            node("w1", "False", "v1.9.2"),
            node("w2", "True", "v1.8.3"),
            node("w3", "True", "v1.8.3"),
        ];
        let seen = evaluate(&nodes, None, Some("v1.9.2"), None);
        let (text, first) = progress_text(&seen, Some("v1.9.2"), None);
        assert_eq!(
            text,
            "waiting for 3 of 4 node(s) to be Ready at v1.9.2: w1 NotReady: KubeletNotReady: PLEG is not \
             healthy; w2 kubelet is v1.8.3, expected v1.9.2; +1 more"
        );
        assert_eq!(first.as_deref(), Some("w1"));
        // One node, a control plane whose API server pod is not Ready yet.
        let names = [NodeName::new("cp1").unwrap()];
        let pods = [pod("kube-apiserver", "cp1", "False"), pod("etcd", "cp1", "True")];
        let seen = evaluate(&nodes, Some(&names), Some("v1.9.2"), Some(&pods));
        let (text, first) = progress_text(&seen, Some("v1.9.2"), None);
        assert_eq!(
            text,
            "waiting for 1 of 1 node(s) to be Ready at v1.9.2: cp1 control plane: kube-apiserver not Ready \
             (ContainersNotReady)"
        );
        assert_eq!(first.as_deref(), Some("cp1"));
        // The API server restarting under the wait.
        let (text, first) = progress_text(&seen, None, Some("connection refused"));
        assert_eq!(
            text,
            "the API server did not answer the last look: connection refused"
        );
        assert_eq!(first, None);
    }

    #[test]
    fn versions() {
        assert!(version_matches("v1.9.2", "v1.9.2"));
        assert!(version_matches("1.9.2", "v1.9.2"));
        assert!(version_matches("1.9", "v1.9.11"));
        assert!(!version_matches("1.9", "v1.10.0"));
        assert!(!version_matches("v1.9.1", "v1.9.11"));
        assert!(version_matches("v1.30.2", "v1.30.2+k3s1"));
    }
}
