//! The modules linked into kup, listed once ([`MODULES`]: the multicall entry `kup module NAME`,
//! where each runs, what each links, `kup module --list` for scripts and tests), their arguments as
//! typed values ([`Args`]), what `kup plan` asks each host in check mode, and what it makes of the
//! one cluster survey.

use crate::inventory::Host;
use crate::inventory::Inventory;
use crate::procedure::{Run, Stop};
use kube_kit::Connection;
use kube_version::Version;
use module_kit::Module;
use serde::Serialize;
use serde_json::{json, Value};
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

/// What a module's binary links beyond std, which sets its size budget (tests/static_binaries.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Nothing that talks HTTP.
    Std,
    /// An HTTPS client (rustls).
    Https,
    /// The Kubernetes client (kube, rustls).
    Kube,
}

impl Links {
    pub fn name(self) -> &'static str {
        match self {
            Links::Std => "std",
            Links::Https => "https",
            Links::Kube => "kube",
        }
    }
}

/// One module kup carries.
pub struct ModuleInfo {
    /// Its name, as its `Module` declares it.
    pub name: &'static str,
    /// Talks only to the API server: runs on this machine when the inventory gives a kubeconfig,
    /// else on the first control plane with its admin.conf. Other modules run on their host.
    pub api: bool,
    pub links: Links,
    /// Seconds a run may take when its arguments name no `timeout` (kup adds its margin).
    pub limit: u64,
    main: fn(std::vec::IntoIter<OsString>) -> !,
    /// Its sidecar documentation (`NAME.yml`, Ansible's format), built in: `kup module describe`.
    pub docs: &'static str,
    /// The module's own intake on some arguments (never runs it): what it makes of what kup sends.
    #[cfg_attr(not(test), allow(dead_code))]
    pub intake: fn(Value) -> Value,
}

const fn module<M: Module>(api: bool, links: Links, limit: u64) -> ModuleInfo {
    ModuleInfo {
        name: M::NAME,
        api,
        links,
        limit,
        main: entry::<M>,
        docs: M::DOCS,
        intake: module_kit::intake_value::<M>,
    }
}

fn entry<M: Module>(args: std::vec::IntoIter<OsString>) -> ! {
    module_kit::main_with_args::<M>(args)
}

/// Every module kup carries, once: read by the multicall entry, by where a step runs and how long it
/// may take, and (through `kup module --list`) by tests/static_binaries.rs and
/// playbooks/build-collection.
pub const MODULES: &[ModuleInfo] = &[
    module::<kubeadm_download::KubeadmDownload>(false, Links::Https, 300),
    module::<kubeadm_config_nodename::KubeadmConfigNodename>(true, Links::Kube, 300),
    module::<kubeadm_config_edit::KubeadmConfigEdit>(false, Links::Kube, 300),
    module::<kubeadm_upgrade::KubeadmUpgrade>(false, Links::Std, 600),
    module::<package_pin::PackagePin>(false, Links::Std, 900),
    module::<package_repo::PackageRepo>(false, Links::Std, 300),
    module::<service_state::ServiceState>(false, Links::Std, 300),
    module::<node_drain::NodeDrain>(true, Links::Kube, 120),
    module::<node_ready::NodeReady>(true, Links::Kube, 120),
    module::<upgrade_preflight::UpgradePreflight>(false, Links::Kube, 300),
    module::<cluster_survey::ClusterSurvey>(true, Links::Kube, 120),
    module::<cluster_lock::ClusterLock>(true, Links::Kube, 300),
    module::<etcd_snapshot::EtcdSnapshot>(false, Links::Https, 600),
];

/// The module named `name`, if kup has it.
pub fn info(name: &str) -> Option<&'static ModuleInfo> {
    MODULES.iter().find(|m| m.name == name)
}

/// `kup module --list`: one module a line, `NAME api|host std|https|kube`.
pub fn list() -> ExitCode {
    let mut out = std::io::stdout().lock();
    for m in MODULES {
        let place = if m.api { "api" } else { "host" };
        if writeln!(out, "{} {place} {}", m.name, m.links.name()).is_err() {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Runs module `name` as its own binary would (never returns for a known module); an unknown
/// name is a usage error (exit 2), answered as a module would (one JSON object).
pub fn run(name: &str, args: Vec<OsString>) -> ExitCode {
    match info(name) {
        Some(m) => (m.main)(args.into_iter()),
        None => {
            let names: Vec<&str> = MODULES.iter().map(|m| m.name).collect();
            let failure = json!({"failed": true, "changed": false,
                                 "msg": format!("no module {name:?}; kup has: {}", names.join(", "))});
            let _ = writeln!(std::io::stdout(), "{failure}");
            ExitCode::from(2)
        }
    }
}

/// One module's arguments: its typed `Params`, serialized (what `kup module NAME` reads).
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    pub module: &'static str,
    pub json: Value,
}

impl Args {
    pub fn of<M: Module>(params: &M::Params) -> Args
    where
        M::Params: Serialize,
    {
        // Plain data (strings, numbers, lists): serializing it cannot fail; were it to, the module
        // would refuse the `null` by name.
        let json = serde_json::to_value(params).unwrap_or_default();
        Args {
            module: M::NAME,
            json,
        }
    }

    /// The same in check mode: the module changes nothing and says what it would change.
    pub fn check_mode(mut self) -> Args {
        if let Some(obj) = self.json.as_object_mut() {
            obj.insert("_ansible_check_mode".into(), Value::Bool(true));
        }
        self
    }
}

/// What `kup plan` runs in check mode for one host, in order: the repository switch first, since
/// the packages of another minor can only be judged after it. Drains are judged once for every
/// node by [`survey_args`], not host by host.
pub fn plan_steps(run: &Run<'_>, host: &Host, target: Version, worker: bool) -> Result<Vec<Args>, Stop> {
    let mut steps = Vec::new();
    if !worker {
        steps.push(run.download_args(&target.to_string(), false));
        steps.push(Args::of::<kubeadm_upgrade::KubeadmUpgrade>(
            &kubeadm_upgrade::Params::new(kubeadm_upgrade::Action::Apply, Some(target.to_string())),
        ));
        // The first control plane's kubeadm-config edits; the others' can only be judged once the
        // first apply has rewritten kubeadm-config.
        let first = run
            .inventory
            .control_plane
            .first()
            .is_some_and(|c| std::ptr::eq(c, host));
        if let Some(edit) = run.config_edit_args(host, target, true).filter(|_| first) {
            steps.push(edit.check_mode());
        }
    }
    steps.push(run.repo_args(Some(host), target)?);
    steps.push(run.pin_check_args(host, target));
    // Can the kubeadm package move first, the kubelet held (else its release binary runs)?
    if kube_eras::for_target(target).kubeadm == kube_eras::KubeadmSource::Package {
        steps.push(run.kubeadm_alone_check_args(host, target));
    }
    // What staging will download (the run stages while the control planes' kubeadm runs).
    if run.stage_wanted(host) {
        steps.push(run.stage_args(host, target).check_mode());
    }
    Ok(steps)
}

/// What the plan says of a host whose repository must switch first (package_repo in check mode
/// reported a change): the packages are judged as they will be after the switch.
pub fn repo_switch_note(repo: &Value) -> Option<String> {
    (repo["changed"] == true).then(|| {
        format!(
            "package repository {} switches from {} to {} first (pkgs.k8s.io has one repository per \
             minor); the target's packages are judged from that repository",
            repo["path"].as_str().unwrap_or("?"),
            repo["minor_before"].as_str().unwrap_or("?"),
            repo["minor_after"].as_str().unwrap_or("?")
        )
    })
}

/// What the plan says of the control plane's components, as `kubeadm upgrade plan` does: per
/// component (the static pods the survey saw), its versions now and on which nodes, the target,
/// and how it moves; then the addons. One line each.
pub fn component_plan(survey: &Value, target: Version, era: &kube_eras::Era, primary: &str) -> Vec<String> {
    let mut by_component: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
    for pod in survey["control_plane"].as_array().into_iter().flatten() {
        let (Some(component), Some(node)) = (pod["component"].as_str(), pod["node"].as_str()) else {
            continue;
        };
        let version = pod["version"].as_str().unwrap_or("unknown").to_string();
        by_component
            .entry(component.to_string())
            .or_default()
            .push((version, node.to_string()));
    }
    let others = match era.other_control_planes {
        kube_eras::OtherControlPlanes::Apply => "kubeadm upgrade apply",
        kube_eras::OtherControlPlanes::ExperimentalControlPlane => {
            "kubeadm upgrade node experimental-control-plane"
        }
        kube_eras::OtherControlPlanes::Node => "kubeadm upgrade node",
    };
    let mut lines = Vec::new();
    for (component, seen) in &by_component {
        let mut versions: Vec<String> = Vec::new();
        for (v, _) in seen {
            if !versions.contains(v) {
                versions.push(v.clone());
            }
        }
        let now = versions
            .iter()
            .map(|v| {
                let nodes: Vec<&str> = seen
                    .iter()
                    .filter(|(sv, _)| sv == v)
                    .map(|(_, n)| n.as_str())
                    .collect();
                format!("{v} on {}", nodes.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ");
        let to = if component == "etcd" {
            "the etcd version kubeadm of the target pins (stacked etcd moves with each control plane)"
                .to_string()
        } else {
            target.to_string()
        };
        lines.push(format!(
            "{component}: {now} -> {to}: kubeadm upgrade apply on {primary}, {others} on the others"
        ));
    }
    lines.push(if era.addons_at_last_control_plane {
        format!("kube-proxy, CoreDNS -> the target's: with the last control plane's {others} (from 1.28)")
    } else {
        format!("kube-proxy, CoreDNS -> the target's: with kubeadm upgrade apply on {primary}")
    });
    lines
}

/// The one cluster survey of `kup plan`: the inventory's nodes, with the drain flags `kup upgrade`
/// uses for workers.
pub fn survey_args(inventory: &Inventory, connection: Connection, force_drain: bool) -> Args {
    let names = inventory.all_hosts().map(|h| h.node_name.clone()).collect();
    Args::of::<cluster_survey::ClusterSurvey>(&cluster_survey::Params {
        names: Some(names),
        ignore_daemonsets: true,
        delete_emptydir_data: true,
        force: force_drain,
        connection,
        ..cluster_survey::Params::default()
    })
}

/// What the survey means for the plan: blockers (`host: what`), and notes per host.
#[derive(Debug, Default)]
pub struct Findings {
    pub blockers: Vec<String>,
    pub notes: Vec<(String, String)>,
}

/// `era`: how the target's era takes nodes out (only a drained node's pods can block or wait).
pub fn survey_findings(
    inventory: &Inventory,
    survey: &Value,
    allow_partial: bool,
    era: &kube_eras::Era,
) -> Findings {
    let mut out = Findings::default();
    let unlisted: Vec<&str> = survey["unlisted"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let (false, Some(primary)) = (unlisted.is_empty(), inventory.control_plane.first()) {
        let what = format!(
            "the cluster has {} node(s) the inventory does not name: {}; they would stay behind at their version",
            unlisted.len(),
            unlisted.join(", ")
        );
        if allow_partial {
            out.notes
                .push((primary.name.clone(), format!("{what} (--allow-partial)")));
        } else {
            out.blockers.push(format!(
                "{}: {what} (add them to the inventory's control_plane/workers, or pass --allow-partial)",
                primary.name
            ));
        }
    }
    let rows = survey["nodes"].as_array().map(Vec::as_slice).unwrap_or_default();
    let missing = survey["missing"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let api = survey["server_version"].as_str().unwrap_or("unknown");
    let control_plane = versions(&survey["versions"]["control_plane"]);
    let kubelets = versions(&survey["versions"]["kubelet"]);
    if let Some(primary) = inventory.control_plane.first() {
        out.notes.push((
            primary.name.clone(),
            format!("cluster: API server {api}; control plane {control_plane}; kubelets {kubelets}"),
        ));
    }
    let workers = inventory.control_plane.len();
    for (i, host) in inventory.all_hosts().enumerate() {
        let node = &host.node_name;
        if missing.iter().any(|m| m.as_str() == Some(node.as_str())) {
            out.blockers.push(format!(
                "{}: node {node} is not registered with the API server",
                host.name
            ));
            continue;
        }
        let Some(row) = rows.iter().find(|r| r["name"].as_str() == Some(node.as_str())) else {
            continue;
        };
        let list = |key: &str| row[key].as_array().map(Vec::as_slice).unwrap_or_default();
        let (blocking, waits) = (list("blocking"), list("pdb_waits"));
        let mut note = format!(
            "node {node}: kubelet {}, {}{}, {} pod(s) to evict",
            row["kubelet_version"].as_str().unwrap_or("unknown"),
            if row["ready"] == true { "Ready" } else { "NotReady" },
            if row["cordoned"] == true { ", cordoned" } else { "" },
            row["would_evict"].as_u64().unwrap_or(0)
        );
        // A node only cordoned (control planes up to 1.10): its pods never block or wait.
        let drained = if i >= workers {
            era.take_out_workers == kube_eras::TakeOut::Drain
        } else {
            era.take_out_control_planes == kube_eras::TakeOut::Drain
        };
        if drained && !waits.is_empty() {
            let pods: Vec<String> = waits
                .iter()
                .map(|w| {
                    format!(
                        "{} ({})",
                        w["pod"].as_str().unwrap_or("?"),
                        w["pdb"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            note.push_str(&format!(
                "; the drain will wait for {} pod(s) whose PodDisruptionBudget allows no disruption now: {}",
                waits.len(),
                pods.join(", ")
            ));
        }
        out.notes.push((host.name.clone(), note));
        // A budget that can never allow an eviction holds the drain until its timeout, every time.
        if drained {
            let mut never: Vec<(&str, &str)> = waits
                .iter()
                .filter_map(|w| Some((w["pdb"].as_str()?, w["never"].as_str()?)))
                .collect();
            never.sort_unstable();
            never.dedup();
            for (pdb, why) in never {
                out.blockers.push(format!(
                    "{}: PodDisruptionBudget {pdb} can never allow a disruption ({why}): the drain of node \
                     {node} would wait until --drain-timeout and fail; relax the budget (e.g. maxUnavailable: 1) \
                     or scale its workload up first",
                    host.name
                ));
            }
        }
        if drained && !blocking.is_empty() {
            let pods: Vec<String> = blocking
                .iter()
                .map(|b| {
                    format!(
                        "{}: {}",
                        b["pod"].as_str().unwrap_or("?"),
                        b["reason"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            out.blockers.push(format!(
                "{}: node_drain: cannot drain node {node}: {} pod(s) would block it. {}",
                host.name,
                blocking.len(),
                pods.join("; ")
            ));
        }
    }
    out
}

/// Another operator's rollout, from the `cluster_lock` module's status: a live lock held by
/// anyone blocks the plan (a stale one only needs `--take-over-lock`).
pub fn lock_blocker(status: &Value) -> Option<String> {
    if status["locked"] == false {
        return None;
    }
    let holder = status["holder"].as_str().filter(|h| !h.is_empty())?;
    let since = status["acquired"].as_str().unwrap_or("?");
    let host = status["host"].as_str().unwrap_or("?");
    if status["stale"] == true {
        return Some(format!(
            "the cluster's lock is held by {holder} ({host}) since {since} but no longer renewed: \
             if that run is gone, `kup upgrade --take-over-lock` takes it"
        ));
    }
    Some(format!(
        "another upgrade is running: the cluster's lock is held by {holder} ({host}) since {since}"
    ))
}

/// `v1.9.2 (3), v1.8.3 (2)` from a version -> count map.
fn versions(counts: &Value) -> String {
    let shown: Vec<String> = counts
        .as_object()
        .map(|m| m.iter().map(|(v, n)| format!("{v} ({n})")).collect())
        .unwrap_or_default();
    if shown.is_empty() {
        "not visible".into()
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn inventory() -> (tempfile::TempDir, Inventory) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.ini");
        std::fs::write(
            &path,
            "[control_plane]\ncp1\n[workers]\nw1 node_name=worker-1\nw2\nw3\n",
        )
        .unwrap();
        let inv = Inventory::load(&path).unwrap();
        (dir, inv)
    }

    #[test]
    fn survey_args_name_every_node() {
        let (_dir, inv) = inventory();
        let args = survey_args(&inv, Connection::default(), false).json;
        assert_eq!(args["names"], json!(["cp1", "worker-1", "w2", "w3"]));
        assert_eq!(args["ignore_daemonsets"], true);
        assert_eq!(args["force"], false);
    }

    #[test]
    fn blockers_of_workers_only_and_missing_nodes() {
        let (_dir, inv) = inventory();
        let bare = json!({"pod": "default/toolbox", "reason": "not managed by a controller"});
        let survey = json!({
            "server_version": "v1.9.11",
            "versions": {"kubelet": {"v1.9.11": 3}, "control_plane": {"v1.9.11": 3}},
            "missing": ["w3"],
            "nodes": [
                {"name": "cp1", "kubelet_version": "v1.9.11", "ready": true, "cordoned": false, "would_evict": 0,
                 "blocking": [bare.clone()], "pdb_waits": []},
                {"name": "worker-1", "kubelet_version": "v1.9.11", "ready": true, "cordoned": true, "would_evict": 2,
                 "blocking": [bare], "pdb_waits": [{"pod": "default/web-1", "pdb": "default/web"},
                                                   {"pod": "default/db-0", "pdb": "default/db", "never": "maxUnavailable: 0"},
                                                   {"pod": "default/db-1", "pdb": "default/db", "never": "maxUnavailable: 0"}]},
                {"name": "w2", "kubelet_version": "v1.9.11", "ready": true, "cordoned": false, "would_evict": 1,
                 "blocking": [], "pdb_waits": []},
            ]
        });
        // From 1.11 control planes are drained too: their bare pods block as well.
        let today = survey_findings(
            &inv,
            &survey,
            false,
            kube_eras::for_target(Version::parse("v1.35.1").unwrap()),
        );
        assert!(
            today
                .blockers
                .iter()
                .any(|b| b.starts_with("cp1: node_drain: cannot drain node cp1")),
            "{:?}",
            today.blockers
        );
        let f = survey_findings(
            &inv,
            &survey,
            false,
            kube_eras::for_target(Version::parse("v1.9.2").unwrap()),
        );
        assert_eq!(
            f.blockers,
            [
                "w1: PodDisruptionBudget default/db can never allow a disruption (maxUnavailable: 0): the drain of \
                 node worker-1 would wait until --drain-timeout and fail; relax the budget (e.g. maxUnavailable: 1) \
                 or scale its workload up first",
                "w1: node_drain: cannot drain node worker-1: 1 pod(s) would block it. default/toolbox: not managed by a controller",
                "w3: node w3 is not registered with the API server",
            ]
        );
        let note = |host: &str| {
            f.notes
                .iter()
                .filter(|(h, _)| h == host)
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>()
                .join(" | ")
        };
        assert!(
            note("cp1").contains("control plane v1.9.11 (3)"),
            "{}",
            note("cp1")
        );
        assert!(
            note("w1").contains("cordoned") && note("w1").contains("default/web-1 (default/web)"),
            "{}",
            note("w1")
        );
        assert!(!note("w2").contains("wait"), "{}", note("w2"));
    }

    #[test]
    fn nodes_the_inventory_leaves_out_block_unless_allowed() {
        let (_dir, inv) = inventory();
        let survey = json!({"nodes": [], "missing": [], "unlisted": ["cp2", "w9"]});
        let f = survey_findings(
            &inv,
            &survey,
            false,
            kube_eras::for_target(Version::parse("v1.9.2").unwrap()),
        );
        assert_eq!(f.blockers.len(), 1, "{:?}", f.blockers);
        assert!(
            f.blockers[0].starts_with("cp1: the cluster has 2 node(s) the inventory does not name: cp2, w9"),
            "{:?}",
            f.blockers
        );
        let allowed = survey_findings(
            &inv,
            &survey,
            true,
            kube_eras::for_target(Version::parse("v1.9.2").unwrap()),
        );
        assert!(allowed.blockers.is_empty());
        assert!(allowed.notes.iter().any(|(_, n)| n.contains("--allow-partial")));
        let covered = survey_findings(
            &inv,
            &json!({"nodes": [], "missing": [], "unlisted": []}),
            false,
            kube_eras::for_target(Version::parse("v1.9.2").unwrap()),
        );
        assert!(covered.blockers.is_empty());
    }

    #[test]
    fn package_repo_runs_on_its_host_and_takes_what_kup_sends() {
        let m = info("package_repo").unwrap();
        assert_eq!((m.api, m.links, m.limit), (false, Links::Std, 300));
        let args = Args::of::<package_repo::PackageRepo>(&package_repo::Params::new("1.31.2")).check_mode();
        assert_eq!(
            args.json,
            json!({"version": "1.31.2", "manager": "auto", "update_cache": true, "refresh_always": false,
                   "timeout": 300, "_ansible_check_mode": true})
        );
        let answer = (m.intake)(args.json);
        assert_eq!(answer["failed"], false, "{answer}");
    }

    #[test]
    fn a_lock_held_blocks_the_plan() {
        assert_eq!(lock_blocker(&json!({"holder": null})), None);
        let live = json!({"holder": "kup@ops1:/srv/j.json", "host": "root@ops1 pid 7", "acquired": "2026-12-02T01:00:00.000000Z", "stale": false});
        let b = lock_blocker(&live).unwrap();
        assert!(
            b.contains("another upgrade is running")
                && b.contains("kup@ops1")
                && b.contains("2026-12-02T01:00"),
            "{b}"
        );
        let stale = json!({"holder": "kup@ops1:/srv/j.json", "stale": true});
        assert!(lock_blocker(&stale).unwrap().contains("--take-over-lock"));
    }
}

#[cfg(test)]
mod component_plan_tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    #[test]
    fn each_component_says_where_it_is_and_how_it_moves() {
        let survey = json!({"control_plane": [
            {"node": "cp1", "component": "kube-apiserver", "version": "v1.34.2"},
            {"node": "cp2", "component": "kube-apiserver", "version": "v1.34.2"},
            {"node": "cp1", "component": "etcd", "version": "3.5.24-0"},
        ]});
        let target = Version::parse("v1.35.1").unwrap();
        let lines = component_plan(&survey, target, kube_eras::for_target(target), "cp1");
        assert_eq!(
            lines[1],
            "kube-apiserver: v1.34.2 on cp1, cp2 -> v1.35.1: kubeadm upgrade apply on cp1, kubeadm upgrade node on the others"
        );
        assert!(lines[0].starts_with("etcd: 3.5.24-0 on cp1 -> "), "{lines:?}");
        assert!(lines[2].contains("last control plane"), "{lines:?}");
        let old = Version::parse("v1.9.2").unwrap();
        let lines = component_plan(&json!({}), old, kube_eras::for_target(old), "m1");
        assert_eq!(
            lines,
            ["kube-proxy, CoreDNS -> the target's: with kubeadm upgrade apply on m1"]
        );
    }
}
