//! `cluster_survey`: the cluster-side half of `kup plan` in one pass over the API, however many
//! nodes there are: every node's kubelet version, Ready and cordon; the control plane's versions
//! (the image tags of its static pods); and for every node what a drain would run into: the pods
//! that block it (kubectl drain's filters, the same rules and wording as `node_drain`) and the pods
//! it would have to wait for because their PodDisruptionBudget allows no disruption now.
//!
//! Nodes, PodDisruptionBudgets and then pods are each listed once, cluster-wide, in pages of
//! `page_size` (`limit`/`continue`); each page is reduced to per-node tallies as it arrives and
//! dropped, and only the fields the survey reads are deserialised, so memory stays flat in the
//! size of the cluster. Read-only: never reports a change.

mod slim;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use kube_kit::kube::api::ListParams;
use kube_kit::kube::Client;
use kube_kit::pods::{self, Decision, DrainFacts, DrainFilters};
use kube_kit::{Connection, NodeName};
use module_kit::{de, Context, Failure, Module, Name, Outcome, Seconds};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;

use slim::{LabelSelector, List};

pub struct ClusterSurvey;

#[derive(Debug, Clone, Deserialize, Serialize, module_kit::Params)]
pub struct Params {
    /// Report these nodes only (default: every node). The lists stay cluster-wide.
    #[serde(
        default,
        deserialize_with = "node_names",
        skip_serializing_if = "Option::is_none"
    )]
    pub names: Option<Vec<NodeName>>,
    #[serde(default, deserialize_with = "de::boolean")]
    pub ignore_daemonsets: bool,
    #[serde(default, alias = "delete_local_data", deserialize_with = "de::boolean")]
    pub delete_emptydir_data: bool,
    #[serde(default, deserialize_with = "de::boolean")]
    pub force: bool,
    /// Objects per list request (`limit`).
    #[serde(default = "default_page_size", deserialize_with = "de::int")]
    pub page_size: u32,
    /// Seconds the whole survey may take (transient API errors are retried until then).
    #[serde(default = "default_timeout")]
    pub timeout: Seconds,
    /// `kubeconfig`, `context`, `request_timeout`.
    #[serde(flatten)]
    pub connection: Connection,
}

impl Default for Params {
    /// Every node, kubectl drain's default filters (for callers such as kup).
    fn default() -> Params {
        Params {
            names: None,
            ignore_daemonsets: false,
            delete_emptydir_data: false,
            force: false,
            page_size: default_page_size(),
            timeout: default_timeout(),
            connection: Connection::default(),
        }
    }
}

fn default_page_size() -> u32 {
    500
}
fn default_timeout() -> Seconds {
    Seconds::of(120)
}

/// Names without NUL or control characters first (refused at `names[i]`), then each one a node
/// name (refused at `names`).
fn node_names<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<NodeName>>, D::Error> {
    Option::<Vec<Name>>::deserialize(d)?
        .map(|names| names.iter().map(|n| NodeName::new(n)).collect())
        .transpose()
        .map_err(serde::de::Error::custom)
}

/// The static pods whose image tags say which version the control plane runs.
const CONTROL_PLANE: &[&str] = &[
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "etcd",
];

impl Params {
    fn validate(&self) -> Result<(), Failure> {
        if self.page_size == 0 {
            return Err(Failure::param("page_size", "must be at least 1"));
        }
        if let Some(names) = &self.names {
            if names.is_empty() {
                return Err(Failure::param(
                    "names",
                    "expected at least one node name (leave it out for every node)",
                ));
            }
        }
        Ok(())
    }
}

impl Module for ClusterSurvey {
    const NAME: &'static str = "cluster_survey";
    const DOCS: &'static str = include_str!("../cluster_survey.yml");
    type Params = Params;

    fn validate(p: &Params) -> Result<(), Failure> {
        p.validate()
    }

    fn run(p: Params, _ctx: &Context) -> Result<Outcome, Failure> {
        // Read-only: check mode runs the same survey.
        kube_kit::block_on(survey(p))?
    }
}

/// One pod and why.
#[derive(Debug, Serialize)]
struct Verdict {
    pod: String,
    reason: String,
}

/// A pod a drain would evict but could not yet: its PodDisruptionBudget allows no disruption.
#[derive(Debug, Serialize)]
struct PdbWait {
    pod: String,
    pdb: String,
    /// Set when the budget can never allow the eviction (the drain would wait until it times out).
    #[serde(skip_serializing_if = "Option::is_none")]
    never: Option<String>,
}

/// One reported node.
#[derive(Debug, Serialize)]
struct NodeRow {
    name: String,
    kubelet_version: Option<String>,
    ready: bool,
    cordoned: bool,
    /// Pods bound to the node.
    pods: u32,
    /// Pods a drain would evict (with the given filters).
    would_evict: u32,
    blocking: Vec<Verdict>,
    pdb_waits: Vec<PdbWait>,
    /// Budget (`namespace/name`) -> the pods on this node it covers that a drain would evict:
    /// how many disruptions draining this node costs each budget (a batch of drains must not
    /// cost a budget more than it allows).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    budgeted: BTreeMap<String, u32>,
}

/// A static control-plane pod.
#[derive(Debug, Serialize)]
struct ControlPlanePod {
    node: String,
    component: String,
    image: String,
    version: Option<String>,
}

/// A PodDisruptionBudget that allows no disruption now.
#[derive(Debug)]
struct Budget {
    name: String,
    /// Its status's `disruptionsAllowed` (0 without a status: the disruption controller has not
    /// looked yet, and evictions are refused).
    allowed: i64,
    selector: Option<LabelSelector>,
    /// Why it can never allow a disruption, if it never can.
    never: Option<String>,
}

impl Budget {
    /// An empty selector selects every pod of the namespace in policy/v1 and none in v1beta1; a
    /// missing one selects none.
    fn covers(&self, labels: &BTreeMap<String, String>, empty_selects_all: bool) -> bool {
        match &self.selector {
            None => false,
            Some(s) if s.is_empty() => empty_selects_all,
            Some(s) => s.matches(labels),
        }
    }
}

/// What the pod pass accumulates.
#[derive(Debug, Default)]
struct PodPass {
    pods: u64,
    pages: u32,
    control_plane: Vec<ControlPlanePod>,
    rows: BTreeMap<String, NodeRow>,
}

/// The version in an image reference: the tag, without a digest (`repo/kube-apiserver:v1.9.2`).
fn image_tag(image: &str) -> Option<String> {
    let image = image.split('@').next().unwrap_or(image);
    let name = image.rsplit('/').next().unwrap_or(image);
    name.split_once(':').map(|(_, tag)| tag.to_string())
}

/// Lists `path` in pages of `page_size`, handing each object to `each`; returns the page count.
async fn list_each<T, F>(
    client: &Client,
    path: &str,
    page_size: u32,
    deadline: Instant,
    mut each: F,
) -> Result<u32, kube_kit::kube::Error>
where
    T: DeserializeOwned,
    F: FnMut(T),
{
    let mut next: Option<String> = None;
    let mut pages = 0u32;
    loop {
        let lp = ListParams {
            limit: Some(page_size),
            continue_token: next.take(),
            ..ListParams::default()
        };
        let page: List<T> = kube_kit::retry(deadline, || {
            let req = kube_kit::kube::core::Request::new(path)
                .list(&lp)
                .map_err(kube_kit::kube::Error::BuildRequest);
            async move { client.request::<List<T>>(req?).await }
        })
        .await?;
        pages += 1;
        next = page.metadata.next.filter(|c| !c.is_empty());
        page.items.into_iter().for_each(&mut each);
        if next.is_none() {
            return Ok(pages);
        }
    }
}

/// The policy group/version serving PodDisruptionBudgets (the server's preferred one), if any.
async fn pdb_group_version(
    client: &Client,
    deadline: Instant,
) -> Result<Option<String>, kube_kit::kube::Error> {
    let groups = kube_kit::retry(deadline, || client.list_api_groups()).await?;
    Ok(groups.groups.iter().find(|g| g.name == "policy").and_then(|g| {
        g.preferred_version
            .as_ref()
            .or_else(|| g.versions.first())
            .map(|v| v.group_version.clone())
    }))
}

struct Survey<'a> {
    p: &'a Params,
    client: &'a Client,
    deadline: Instant,
    filters: DrainFilters,
}

impl Survey<'_> {
    /// Lists every pod once, sorting each into its node's tally as the pages arrive.
    async fn pods(
        &self,
        rows: BTreeMap<String, NodeRow>,
        budgets: &HashMap<String, Vec<Budget>>,
        empty_selects_all: bool,
    ) -> Result<PodPass, kube_kit::kube::Error> {
        let mut pass = PodPass {
            rows,
            ..PodPass::default()
        };
        let filters = self.filters;
        let pages = list_each(
            self.client,
            "/api/v1/pods",
            self.p.page_size,
            self.deadline,
            |pod: slim::Pod| {
                pass.pods += 1;
                let Some(node) = pod.spec.node_name.as_deref() else {
                    return;
                };
                if pod.is_mirror() && pod.namespace() == "kube-system" {
                    let component = pod.metadata.labels.get("component");
                    if let Some(component) = component.filter(|c| CONTROL_PLANE.contains(&c.as_str())) {
                        let image = pod.spec.containers.first().and_then(|c| c.image.clone());
                        let image = image.unwrap_or_default();
                        pass.control_plane.push(ControlPlanePod {
                            node: node.to_string(),
                            component: component.clone(),
                            version: image_tag(&image),
                            image,
                        });
                    }
                }
                let Some(row) = pass.rows.get_mut(node) else {
                    return;
                };
                row.pods += 1;
                match pods::drain_decision(&pod, &filters) {
                    Decision::Skip(_) => {}
                    Decision::Block(reason) => row.blocking.push(Verdict {
                        pod: pod.key(),
                        reason,
                    }),
                    Decision::Remove { .. } => {
                        row.would_evict += 1;
                        // Finished pods are evicted without asking their budget.
                        if pod.is_finished() {
                            return;
                        }
                        let covering = budgets
                            .get(pod.namespace())
                            .into_iter()
                            .flatten()
                            .filter(|b| b.covers(&pod.metadata.labels, empty_selects_all));
                        for budget in covering {
                            *row.budgeted.entry(budget.name.clone()).or_default() += 1;
                            if budget.allowed <= 0 {
                                row.pdb_waits.push(PdbWait {
                                    pod: pod.key(),
                                    pdb: budget.name.clone(),
                                    never: budget.never.clone(),
                                });
                            }
                        }
                    }
                }
            },
        )
        .await?;
        pass.pages = pages;
        Ok(pass)
    }
}

async fn survey(p: Params) -> Result<Outcome, Failure> {
    let start = Instant::now();
    let deadline = start + p.timeout.duration();
    let api = kube_kit::connect(&p.connection).await?;
    let client = &api.client;
    let server = &api.server;
    let failed =
        |what: &str, e: &kube_kit::kube::Error| kube_kit::api_failure(format!("{what} on {server}"), e);

    let server_version = kube_kit::retry(deadline, || client.apiserver_version())
        .await
        .map_err(|e| failed("cannot read the server version", &e))?
        .git_version;

    // Nodes: versions and state for every node, a row for each reported one.
    let wanted: Option<BTreeSet<&str>> = p.names.as_ref().map(|n| n.iter().map(|s| s.as_str()).collect());
    let mut kubelet_versions: BTreeMap<String, u32> = BTreeMap::new();
    let mut rows: BTreeMap<String, NodeRow> = BTreeMap::new();
    let mut node_count = 0u32;
    let mut unlisted: Vec<String> = Vec::new();
    list_each(
        client,
        "/api/v1/nodes",
        p.page_size,
        deadline,
        |node: slim::Node| {
            node_count += 1;
            let version = node.status.node_info.kubelet_version.clone();
            *kubelet_versions
                .entry(version.clone().unwrap_or_else(|| "unknown".into()))
                .or_default() += 1;
            if wanted
                .as_ref()
                .is_some_and(|w| !w.contains(node.metadata.name.as_str()))
            {
                // A node the caller did not name: an inventory that does not cover the cluster.
                unlisted.push(node.metadata.name.clone());
                return;
            }
            rows.insert(
                node.metadata.name.clone(),
                NodeRow {
                    name: node.metadata.name.clone(),
                    kubelet_version: version,
                    ready: node.ready(),
                    cordoned: node.spec.unschedulable,
                    pods: 0,
                    would_evict: 0,
                    blocking: Vec::new(),
                    pdb_waits: Vec::new(),
                    budgeted: BTreeMap::new(),
                },
            );
        },
    )
    .await
    .map_err(|e| failed("cannot list nodes", &e))?;
    let missing: Vec<String> = wanted
        .iter()
        .flatten()
        .filter(|n| !rows.contains_key(**n))
        .map(|n| n.to_string())
        .collect();

    // PodDisruptionBudgets: only those allowing no disruption now matter to a drain.
    let pdb_api = pdb_group_version(client, deadline)
        .await
        .map_err(|e| failed("cannot discover the API groups (GET /apis)", &e))?;
    let mut budgets: HashMap<String, Vec<Budget>> = HashMap::new();
    let mut pdb_count = 0u32;
    let mut zero_budgets: Vec<String> = Vec::new();
    let mut allowances: BTreeMap<String, i64> = BTreeMap::new();
    if let Some(gv) = &pdb_api {
        let path = format!("/apis/{gv}/poddisruptionbudgets");
        list_each(client, &path, p.page_size, deadline, |pdb: slim::Pdb| {
            pdb_count += 1;
            // No status yet means the disruption controller has not looked: evictions are refused.
            let allowed = pdb
                .status
                .as_ref()
                .and_then(|s| s.disruptions_allowed)
                .unwrap_or(0);
            let never = (allowed <= 0).then(|| pdb.never_allows()).flatten();
            let ns = pdb.metadata.namespace.unwrap_or_else(|| "default".into());
            let name = format!("{ns}/{}", pdb.metadata.name);
            if allowed <= 0 {
                zero_budgets.push(name.clone());
            }
            allowances.insert(name.clone(), allowed);
            budgets.entry(ns).or_default().push(Budget {
                name,
                allowed,
                selector: pdb.spec.selector,
                never,
            });
        })
        .await
        .map_err(|e| failed(&format!("cannot list {gv} PodDisruptionBudgets"), &e))?;
    }
    let empty_selects_all = pdb_api.as_deref() == Some("policy/v1");

    let s = Survey {
        p: &p,
        client,
        deadline,
        filters: DrainFilters {
            ignore_daemonsets: p.ignore_daemonsets,
            delete_emptydir_data: p.delete_emptydir_data,
            force: p.force,
        },
    };
    // A continue token the server has expired (410 Gone) means starting the pod list over.
    let mut attempts = 0;
    let pass = loop {
        attempts += 1;
        match s.pods(rows_template(&rows), &budgets, empty_selects_all).await {
            Ok(pass) => break pass,
            Err(e) if kube_kit::status(&e) == Some(410) && attempts < 3 && Instant::now() < deadline => {}
            Err(e) => return Err(failed("cannot list pods", &e)),
        }
    };
    Ok(report(Report {
        p: &p,
        server_version,
        node_count,
        kubelet_versions,
        missing,
        unlisted,
        pdb_api,
        pdb_count,
        zero_budgets,
        allowances,
        pass,
        seconds: start.elapsed().as_secs_f64(),
    }))
}

/// Fresh rows for a (re)started pod pass.
fn rows_template(rows: &BTreeMap<String, NodeRow>) -> BTreeMap<String, NodeRow> {
    rows.iter()
        .map(|(k, r)| {
            (
                k.clone(),
                NodeRow {
                    name: r.name.clone(),
                    kubelet_version: r.kubelet_version.clone(),
                    ready: r.ready,
                    cordoned: r.cordoned,
                    pods: 0,
                    would_evict: 0,
                    blocking: Vec::new(),
                    pdb_waits: Vec::new(),
                    budgeted: BTreeMap::new(),
                },
            )
        })
        .collect()
}

struct Report<'a> {
    p: &'a Params,
    server_version: String,
    node_count: u32,
    kubelet_versions: BTreeMap<String, u32>,
    missing: Vec<String>,
    /// Nodes of the cluster that `names` left out, sorted.
    unlisted: Vec<String>,
    pdb_api: Option<String>,
    pdb_count: u32,
    zero_budgets: Vec<String>,
    /// Every budget's disruptions allowed now (`namespace/name` -> `disruptionsAllowed`).
    allowances: BTreeMap<String, i64>,
    pass: PodPass,
    seconds: f64,
}

fn report(r: Report<'_>) -> Outcome {
    let rows: Vec<NodeRow> = r.pass.rows.into_values().collect();
    let blocked: Vec<&str> = rows
        .iter()
        .filter(|n| !n.blocking.is_empty())
        .map(|n| n.name.as_str())
        .collect();
    let waits: usize = rows.iter().map(|n| n.pdb_waits.len()).sum();
    let mut control_plane_versions: BTreeMap<String, u32> = BTreeMap::new();
    for cp in r.pass.control_plane.iter().filter(|c| c.component != "etcd") {
        let v = cp.version.clone().unwrap_or_else(|| "unknown".into());
        *control_plane_versions.entry(v).or_default() += 1;
    }
    let mut msg = format!(
        "surveyed {} node(s), {} pod(s) and {} PodDisruptionBudget(s) on {} in {:.1}s: ",
        r.node_count, r.pass.pods, r.pdb_count, r.server_version, r.seconds
    );
    if blocked.is_empty() {
        msg.push_str("no drain blockers");
    } else {
        const SHOWN: usize = 10;
        let more = blocked
            .len()
            .checked_sub(SHOWN)
            .filter(|m| *m > 0)
            .map(|m| format!(" and {m} more"))
            .unwrap_or_default();
        let first: Vec<&str> = blocked.iter().take(SHOWN).copied().collect();
        msg.push_str(&format!(
            "drain blockers on {} node(s): {}{more}",
            blocked.len(),
            first.join(", ")
        ));
    }
    if waits > 0 {
        msg.push_str(&format!(
            "; {waits} pod(s) a drain would wait for (their PodDisruptionBudget allows no disruption now)"
        ));
    }
    if !r.missing.is_empty() {
        msg.push_str(&format!("; not registered: {}", r.missing.join(", ")));
    }
    let mut unlisted = r.unlisted;
    unlisted.sort();
    if !unlisted.is_empty() {
        msg.push_str(&format!("; nodes not named: {}", unlisted.join(", ")));
    }
    let filters = json!({
        "ignore_daemonsets": r.p.ignore_daemonsets,
        "delete_emptydir_data": r.p.delete_emptydir_data,
        "force": r.p.force,
    });
    Outcome::unchanged(msg)
        .with("server_version", &r.server_version)
        .with(
            "versions",
            json!({"kubelet": r.kubelet_versions, "control_plane": control_plane_versions}),
        )
        .with("control_plane", &r.pass.control_plane)
        .with("blocked_nodes", &blocked)
        .with("pdb_api", &r.pdb_api)
        .with("pdbs_disallowing", &r.zero_budgets)
        .with("pdb_allowances", &r.allowances)
        .with("missing", &r.missing)
        .with("unlisted", &unlisted)
        .with("filters", filters)
        .with(
            "counts",
            json!({"nodes": r.node_count, "pods": r.pass.pods, "pdbs": r.pdb_count, "pod_pages": r.pass.pages}),
        )
        .with("duration", (r.seconds * 100.0).round() / 100.0)
        .with("nodes", &rows)
}

#[cfg(test)]
mod tests {
    use super::image_tag;

    #[test]
    fn image_tags() {
        assert_eq!(
            image_tag("gcr.io/google_containers/kube-apiserver-amd64:v1.9.2").as_deref(),
            Some("v1.9.2")
        );
        assert_eq!(
            image_tag("registry.local:5000/kube-scheduler:v1.30.1@sha256:abc").as_deref(),
            Some("v1.30.1")
        );
        assert_eq!(image_tag("registry.local:5000/etcd"), None);
    }
}
