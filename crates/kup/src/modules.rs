//! The modules linked into kup (the multicall entry `kup module NAME`), what `kup plan` asks
//! each host in check mode, and what it makes of the one cluster survey.

use crate::inventory::{Host, Inventory};
use crate::procedure::Run;
use kube_version::Version;
use serde_json::{json, Value};
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

pub const NAMES: &[&str] = &[
    "kubeadm_download",
    "kubeadm_config_nodename",
    "kubeadm_upgrade",
    "package_pin",
    "service_state",
    "node_drain",
    "node_ready",
    "upgrade_preflight",
    "cluster_survey",
    "cluster_lock",
];

/// Runs module `name` as its own binary would (never returns for a known module).
pub fn run(name: &str, args: Vec<OsString>) -> ExitCode {
    let args = args.into_iter();
    match name {
        "kubeadm_download" => module_kit::main_with_args::<kubeadm_download::KubeadmDownload>(args),
        "kubeadm_config_nodename" => {
            module_kit::main_with_args::<kubeadm_config_nodename::KubeadmConfigNodename>(args)
        }
        "kubeadm_upgrade" => module_kit::main_with_args::<kubeadm_upgrade::KubeadmUpgrade>(args),
        "package_pin" => module_kit::main_with_args::<package_pin::PackagePin>(args),
        "service_state" => module_kit::main_with_args::<service_state::ServiceState>(args),
        "node_drain" => module_kit::main_with_args::<node_drain::NodeDrain>(args),
        "node_ready" => module_kit::main_with_args::<node_ready::NodeReady>(args),
        "upgrade_preflight" => module_kit::main_with_args::<upgrade_preflight::UpgradePreflight>(args),
        "cluster_survey" => module_kit::main_with_args::<cluster_survey::ClusterSurvey>(args),
        "cluster_lock" => module_kit::main_with_args::<cluster_lock::ClusterLock>(args),
        other => {
            let failure = json!({"failed": true, "changed": false,
                                 "msg": format!("no module {other:?}; kup has: {}", NAMES.join(", "))});
            let _ = writeln!(std::io::stdout(), "{failure}");
            ExitCode::FAILURE
        }
    }
}

/// What `kup plan` runs in check mode for one host. Drains are judged once for every node by
/// [`survey_args`], not host by host.
pub fn plan_steps(run: &Run<'_>, target: Version, worker: bool) -> Vec<(&'static str, Value)> {
    let mut steps = Vec::new();
    let version = target.to_string();
    if !worker {
        steps.push((
            "kubeadm_download",
            json!({"version": version, "base_url": run.opts.base_url}),
        ));
        steps.push(("kubeadm_upgrade", json!({"action": "apply", "version": version})));
    }
    let mut pin = json!({"version": version.trim_start_matches('v')});
    if let Some(cni) = &run.opts.cni_version {
        pin["cni_version"] = json!(cni);
    }
    steps.push(("package_pin", pin));
    steps
}

/// The one cluster survey of `kup plan`: the inventory's nodes, with the drain flags `kup upgrade`
/// uses for workers.
pub fn survey_args(inventory: &Inventory, force_drain: bool) -> Value {
    let names: Vec<String> = inventory.all_hosts().map(Host::node_name).collect();
    json!({"names": names, "ignore_daemonsets": true, "delete_emptydir_data": true, "force": force_drain})
}

/// What the survey means for the plan: blockers (`host: what`), and notes per host.
#[derive(Debug, Default)]
pub struct Findings {
    pub blockers: Vec<String>,
    pub notes: Vec<(String, String)>,
}

pub fn survey_findings(inventory: &Inventory, survey: &Value, allow_partial: bool) -> Findings {
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
        let node = host.node_name();
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
        // Control planes are only cordoned: their pods never block or wait.
        if i >= workers && !waits.is_empty() {
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
        if i >= workers && !blocking.is_empty() {
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
        let args = survey_args(&inv, false);
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
                 "blocking": [bare], "pdb_waits": [{"pod": "default/web-1", "pdb": "default/web"}]},
                {"name": "w2", "kubelet_version": "v1.9.11", "ready": true, "cordoned": false, "would_evict": 1,
                 "blocking": [], "pdb_waits": []},
            ]
        });
        let f = survey_findings(&inv, &survey, false);
        assert_eq!(
            f.blockers,
            [
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
        let f = survey_findings(&inv, &survey, false);
        assert_eq!(f.blockers.len(), 1, "{:?}", f.blockers);
        assert!(
            f.blockers[0].starts_with("cp1: the cluster has 2 node(s) the inventory does not name: cp2, w9"),
            "{:?}",
            f.blockers
        );
        let allowed = survey_findings(&inv, &survey, true);
        assert!(allowed.blockers.is_empty());
        assert!(allowed.notes.iter().any(|(_, n)| n.contains("--allow-partial")));
        let covered = survey_findings(&inv, &json!({"nodes": [], "missing": [], "unlisted": []}), false);
        assert!(covered.blockers.is_empty());
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
