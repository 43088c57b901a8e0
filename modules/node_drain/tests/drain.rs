#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! node_drain (the binary) against the lab API server, both emulated releases, HTTP and HTTPS+token.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{matrix, pod_names_on, pods_on, unschedulable, with, Lab};
use lab_apiserver::cluster::{IntOrPercent, PdbSeed, ReplicaSetSeed};
use lab_apiserver::patch::PatchKind;
use lab_apiserver::store::Kind;
use lab_apiserver::{Cluster, Emulation, FaultSpec};
use serde_json::{json, Value};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_node_drain"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn runbook_drain(node: &str) -> Value {
    json!({"name": node, "state": "drain", "ignore_daemonsets": true, "delete_local_data": true, "force": true,
           "timeout": 60})
}

#[test]
fn blockers_first_then_check_apply_recheck_rerun() {
    for (emu, tls) in matrix() {
        let lab = Lab::start(emu, tls, Cluster::sample(None));
        let label = lab.label();
        let before = pod_names_on(&lab, "worker-1");
        assert_eq!(before.len(), 4, "{before:?}");

        // kubectl drain's defaults: the DaemonSet pod, the emptyDir pod and the bare pod all block,
        // each named with its reason, and nothing at all is done.
        let ran = lab.run(bin(), json!({"name": "worker-1"}));
        assert!(ran.failed(), "{label}: {}", ran.stdout);
        let msg = ran.msg();
        assert!(msg.contains("3 pod(s) would block it"), "{msg}");
        assert!(
            msg.contains("kube-proxy") && msg.contains("ignore_daemonsets"),
            "{msg}"
        );
        assert!(
            msg.contains("default/cache: uses emptyDir") && msg.contains("delete_emptydir_data"),
            "{msg}"
        );
        assert!(
            msg.contains("default/toolbox: not managed by a controller") && msg.contains("force"),
            "{msg}"
        );
        assert!(msg.contains("not cordoned"), "{msg}");
        assert_eq!(ran.json["blocking"].as_array().unwrap().len(), 3);
        assert!(!unschedulable(&lab, "worker-1"));
        assert_eq!(pod_names_on(&lab, "worker-1"), before);

        // With the first two flags, both bare pods (cache has no controller either) still block,
        // now for that reason; the DaemonSet pod is skipped.
        let ran = lab.run(
            bin(),
            json!({"name": "worker-1", "ignore_daemonsets": true, "delete_emptydir_data": true}),
        );
        assert!(ran.failed());
        let blocking = ran.json["blocking"].as_array().unwrap();
        assert_eq!(blocking.len(), 2, "{}", ran.stdout);
        assert!(blocking.iter().all(|b| b["reason"]
            .as_str()
            .unwrap()
            .starts_with("not managed by a controller")));
        assert!(!unschedulable(&lab, "worker-1"));

        let args = runbook_drain("worker-1");
        let check = lab.run(
            bin(),
            with(&args, json!({"_ansible_check_mode": true, "_ansible_diff": true})),
        );
        assert!(!check.failed() && check.changed(), "{label}: {}", check.stdout);
        assert_eq!(strs(&check.json["would_evict"]).len(), 3, "{}", check.stdout);
        assert_eq!(check.json["diff"]["before"]["unschedulable"], false);
        assert_eq!(check.json["diff"]["after"]["unschedulable"], true);
        assert!(!unschedulable(&lab, "worker-1"), "check mode cordoned");
        assert_eq!(pod_names_on(&lab, "worker-1"), before, "check mode evicted");

        let apply = lab.run(bin(), args.clone());
        assert!(!apply.failed() && apply.changed(), "{label}: {}", apply.stdout);
        let evicted = strs(&apply.json["evicted"]);
        assert_eq!(evicted.len(), 3, "{}", apply.stdout);
        assert!(
            evicted.contains(&"default/cache".to_string())
                && evicted.contains(&"default/toolbox".to_string())
        );
        assert_eq!(apply.json["eviction_api"], emu.eviction_group_version());
        assert_eq!(apply.json["cordoned"], true);
        assert_eq!(apply.json["was_cordoned"], false);
        assert_eq!(apply.json["still_pending"], json!([]));
        assert!(apply.json["skipped_pods"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("DaemonSet kube-proxy"));
        assert!(
            apply.json["warnings"].as_array().unwrap().len() >= 2,
            "{}",
            apply.stdout
        );
        assert!(unschedulable(&lab, "worker-1"));
        let left = pods_on(&lab, "worker-1");
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0]["metadata"]["ownerReferences"][0]["kind"], "DaemonSet");
        // The ReplicaSet's pod came back elsewhere; the budget was never broken.
        assert!(
            lab.handle().pdb_violations().is_empty(),
            "{:?}",
            lab.handle().pdb_violations()
        );

        let recheck = lab.run(bin(), with(&args, json!({"_ansible_check_mode": true})));
        assert!(!recheck.failed() && !recheck.changed(), "{}", recheck.stdout);
        let rerun = lab.run(bin(), args.clone());
        assert!(!rerun.failed() && !rerun.changed(), "{}", rerun.stdout);

        // Uncordon: the cordon was ours, so it is lifted; then nothing to do.
        let up = json!({"name": "worker-1", "state": "uncordon"});
        let check = lab.run(bin(), with(&up, json!({"_ansible_check_mode": true})));
        assert!(
            check.changed() && unschedulable(&lab, "worker-1"),
            "{}",
            check.stdout
        );
        let ran = lab.run(bin(), up.clone());
        assert!(
            ran.changed() && !unschedulable(&lab, "worker-1"),
            "{}",
            ran.stdout
        );
        assert!(lab.node("worker-1")["metadata"]["annotations"]
            .get("kubeadm-ha-upgrade/cordoned")
            .is_none());
        let ran = lab.run(bin(), up);
        assert!(!ran.changed() && !ran.failed(), "{}", ran.stdout);
    }
}

#[test]
fn mirror_pods_are_skipped_and_cordon_is_idempotent() {
    for (emu, tls) in [(Emulation::V1_9, false), (Emulation::V1_30, true)] {
        let lab = Lab::start(emu, tls, Cluster::sample(None));
        let statics = pods_on(&lab, "master-1").len();
        assert!(statics >= 4, "{statics}");
        let args = json!({"name": "master-1", "ignore_daemonsets": true});
        let ran = lab.run(bin(), args.clone());
        assert!(ran.changed() && !ran.failed(), "{}", ran.stdout);
        assert_eq!(ran.json["evicted"], json!([]));
        let reasons: Vec<&str> = ran.json["skipped_pods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["reason"].as_str().unwrap())
            .collect();
        assert_eq!(
            reasons.iter().filter(|r| r.starts_with("mirror pod")).count(),
            4,
            "{reasons:?}"
        );
        assert_eq!(pods_on(&lab, "master-1").len(), statics);
        assert!(!lab.run(bin(), args).changed());

        let cordon = json!({"name": "worker-3", "state": "cordon"});
        let seq: Vec<bool> = [
            json!({"_ansible_check_mode": true}),
            json!({}),
            json!({"_ansible_check_mode": true}),
            json!({}),
        ]
        .into_iter()
        .map(|extra| {
            let r = lab.run(bin(), with(&cordon, extra));
            assert!(!r.failed(), "{}", r.stdout);
            r.changed()
        })
        .collect();
        assert_eq!(seq, vec![true, true, false, false]);
        assert!(unschedulable(&lab, "worker-3"));
    }
}

#[test]
fn an_admins_cordon_survives_drain_and_uncordon() {
    for (emu, tls) in [(Emulation::V1_9, true), (Emulation::V1_30, false)] {
        let mut cluster = Cluster::sample(None);
        cluster.node_mut("worker-2").unwrap().unschedulable = true;
        let lab = Lab::start(emu, tls, cluster);
        assert!(unschedulable(&lab, "worker-2"));

        let ran = lab.run(bin(), runbook_drain("worker-2"));
        assert!(!ran.failed(), "{}", ran.stdout);
        assert_eq!(ran.json["was_cordoned"], true);
        assert_eq!(ran.json["admin_cordon"], true);

        let up = json!({"name": "worker-2", "state": "uncordon"});
        let ran = lab.run(bin(), up.clone());
        assert!(!ran.failed() && !ran.changed(), "{}", ran.stdout);
        assert!(ran.msg().contains("stays cordoned"), "{}", ran.msg());
        assert_eq!(ran.json["admin_cordon"], true);
        assert!(unschedulable(&lab, "worker-2"), "the admin's cordon was lifted");

        // force lifts it, with a warning.
        let ran = lab.run(bin(), with(&up, json!({"force": true})));
        assert!(
            ran.changed() && !unschedulable(&lab, "worker-2"),
            "{}",
            ran.stdout
        );
        assert!(ran.json["warnings"][0].as_str().unwrap().contains("someone else"));
    }
}

fn pdb_cluster(min_available: i64) -> Cluster {
    let mut c = Cluster::sample(None);
    c.replica_sets.push(ReplicaSetSeed {
        name: "db-5c8f7".into(),
        namespace: "default".into(),
        replicas: 2,
        labels: [("app".to_string(), "db".to_string())].into(),
        nodes: vec!["worker-1".into(), "worker-2".into()],
        termination_grace_period_seconds: 30,
        empty_dir: false,
        image: None,
    });
    c.pdbs.push(PdbSeed {
        name: "db".into(),
        namespace: "default".into(),
        selector: [("app".to_string(), "db".to_string())].into(),
        min_available: Some(IntOrPercent::Int(min_available)),
        max_unavailable: None,
    });
    c
}

#[test]
fn a_pdb_blocks_until_it_allows_or_the_timeout_names_the_pod() {
    for (emu, tls) in [(Emulation::V1_9, false), (Emulation::V1_30, true)] {
        // Never allowed: the failure names the pod and the budget; the node stays cordoned
        // unless uncordon_on_failure.
        let lab = Lab::start(emu, tls, pdb_cluster(2));
        let db = pods_on(&lab, "worker-1")
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .find(|n| n.starts_with("db-"))
            .unwrap();
        let started = Instant::now();
        let ran = lab.run(
            bin(),
            with(
                &runbook_drain("worker-1"),
                json!({"timeout": 3, "uncordon_on_failure": true}),
            ),
        );
        assert!(ran.failed(), "{}", ran.stdout);
        assert!(started.elapsed() < Duration::from_secs(10));
        let msg = ran.msg();
        assert!(
            msg.contains(&format!("default/{db}: eviction still refused")),
            "{msg}"
        );
        assert!(
            msg.contains("HTTP 429") && msg.contains("disruption budget"),
            "{msg}"
        );
        assert!(msg.contains("uncordoned again"), "{msg}");
        assert!(!unschedulable(&lab, "worker-1"));
        assert!(pod_names_on(&lab, "worker-1").contains(&db));
        assert!(lab.handle().pdb_violations().is_empty());

        // Allowed after a while (the budget is relaxed 1.5 s in): the drain goes through.
        let lab = Lab::start(emu, tls, pdb_cluster(2));
        let ran = std::thread::scope(|scope| {
            let module = scope.spawn(|| lab.run(bin(), runbook_drain("worker-1")));
            std::thread::sleep(Duration::from_millis(1500));
            lab.handle()
                .with_store(|s| {
                    s.patch(
                        Kind::Pdb,
                        "default",
                        "db",
                        PatchKind::Merge,
                        &json!({"spec": {"minAvailable": 1}}),
                        false,
                    )
                })
                .unwrap();
            module.join().unwrap()
        });
        assert!(!ran.failed() && ran.changed(), "{}", ran.stdout);
        assert!(ran.json["duration"].as_f64().unwrap() >= 1.4, "{}", ran.stdout);
        assert!(strs(&ran.json["evicted"])
            .iter()
            .any(|p| p.starts_with("default/db-")));
        assert_eq!(pods_on(&lab, "worker-1").len(), 1);
    }
}

#[test]
fn server_faults_and_429s_are_retried() {
    for (emu, tls) in [(Emulation::V1_9, true), (Emulation::V1_30, false)] {
        let lab = Lab::start(emu, tls, Cluster::sample(None));
        lab.inject(FaultSpec::evictions_429(4));
        lab.inject(FaultSpec {
            method: Some("POST".into()),
            path_contains: Some("/eviction".into()),
            status: Some(503),
            count: Some(2),
            ..FaultSpec::default()
        });
        lab.inject(FaultSpec::fail("GET", "/api/v1/pods", 500, 2));
        lab.inject(FaultSpec::fail("PATCH", "/api/v1/nodes/worker-1", 504, 1));
        lab.inject(FaultSpec::fail("GET", "/api/v1/nodes/worker-1", 503, 1));
        let ran = lab.run(bin(), runbook_drain("worker-1"));
        assert!(!ran.failed() && ran.changed(), "{}: {}", lab.label(), ran.stdout);
        assert_eq!(strs(&ran.json["evicted"]).len(), 3);
        assert_eq!(pods_on(&lab, "worker-1").len(), 1);

        // A refusal that is not transient fails at once with the status and message.
        let lab = Lab::start(emu, tls, Cluster::sample(None));
        lab.inject(FaultSpec {
            message: Some("pods \"web\" is forbidden: not allowed".into()),
            ..FaultSpec::fail("POST", "/api/v1/namespaces/default/pods", 403, 100)
        });
        let ran = lab.run(bin(), runbook_drain("worker-1"));
        assert!(ran.failed());
        assert!(
            ran.msg().contains("HTTP 403") && ran.msg().contains("forbidden: not allowed"),
            "{}",
            ran.msg()
        );
    }
}

#[test]
fn slow_pods_time_out_naming_them_and_delete_mode_works() {
    for (emu, tls) in [(Emulation::V1_9, false), (Emulation::V1_30, true)] {
        let mut cluster = Cluster::sample(None);
        cluster
            .pod_mut("toolbox")
            .unwrap()
            .termination_grace_period_seconds = 3000;
        let lab = Lab::start(emu, tls, cluster);
        let ran = lab.run(bin(), with(&runbook_drain("worker-1"), json!({"timeout": 2})));
        ran.assert_failed_saying(&["timed out", "default/toolbox (Running, terminating)"]);
        assert_eq!(ran.json["still_pending"], json!(["default/toolbox"]));
        assert!(
            unschedulable(&lab, "worker-1"),
            "without uncordon_on_failure the cordon stays"
        );

        // A shorter grace period, by DELETE instead of eviction.
        let ran = lab.run(
            bin(),
            with(
                &runbook_drain("worker-1"),
                json!({"disable_eviction": true, "grace_period": 1, "timeout": 20}),
            ),
        );
        assert!(!ran.failed(), "{}", ran.stdout);
        assert_eq!(ran.json["eviction_api"], "delete");
        assert_eq!(ran.json["deleted"], json!(["default/toolbox"]));
        assert_eq!(pods_on(&lab, "worker-1").len(), 1);
    }
}

#[test]
fn pod_selector_limits_the_drain() {
    let lab = Lab::start(Emulation::V1_30, true, Cluster::sample(None));
    let ran = lab.run(
        bin(),
        json!({"name": "worker-1", "pod_selector": "app=web", "timeout": 30}),
    );
    assert!(!ran.failed(), "{}", ran.stdout);
    let evicted = strs(&ran.json["evicted"]);
    assert_eq!(evicted.len(), 1);
    assert!(evicted[0].starts_with("default/web-"), "{evicted:?}");
    assert_eq!(pods_on(&lab, "worker-1").len(), 3);
}

#[test]
fn bad_params_name_the_field() {
    let lab = Lab::start(Emulation::V1_9, false, Cluster::sample(None));
    for (args, field) in [
        (json!({"name": "worker-1", "state": "drained"}), "state"),
        (json!({"name": "worker-1", "concurrency": 0}), "concurrency"),
        (json!({"name": "worker-1", "grace_period": -5}), "grace_period"),
        (json!({"name": "worker-1", "force": "maybe"}), "force"),
        (json!({"name": "Worker 1"}), "name"),
        (json!({"state": "drain"}), "name"),
        (
            json!({"name": "worker-1", "delete_emptydir": true}),
            "delete_emptydir",
        ),
        (json!({"name": "worker-1", "pod_selector": ""}), "pod_selector"),
    ] {
        let ran = lab.run(bin(), args.clone());
        assert!(ran.failed(), "{args}: {}", ran.stdout);
        assert!(ran.msg().contains(field), "{args}: {}", ran.msg());
    }
    let ran = lab.run(bin(), json!({"name": "ghost"}));
    ran.assert_failed_saying(&["node ghost not found"]);
}

fn warnings(v: &Value) -> Vec<String> {
    v["warnings"]
        .as_array()
        .map(|a| a.iter().map(|w| w.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn db_pod_on(lab: &Lab, node: &str) -> String {
    pod_names_on(lab, node)
        .into_iter()
        .find(|n| n.starts_with("db-"))
        .unwrap()
}

#[test]
fn refused_evictions_report_what_was_done_and_what_is_left() {
    for (emu, tls) in [(Emulation::V1_9, true), (Emulation::V1_30, false)] {
        // The budget allows no disruption for db; cache, toolbox and web are evictable.
        let lab = Lab::start(emu, tls, pdb_cluster(2));
        let db = db_pod_on(&lab, "worker-1");
        let others: Vec<String> = pod_names_on(&lab, "worker-1")
            .into_iter()
            .filter(|n| !n.starts_with("db-") && !n.starts_with("kube-proxy"))
            .map(|n| format!("default/{n}"))
            .collect();
        assert_eq!(others.len(), 3, "{others:?}");
        let ran = lab.run(bin(), with(&runbook_drain("worker-1"), json!({"timeout": 3})));
        assert!(ran.failed(), "{}: {}", lab.label(), ran.stdout);
        // It cordoned the node and evicted three pods: that is a change, failed or not.
        assert!(ran.changed(), "{}", ran.stdout);
        assert!(unschedulable(&lab, "worker-1"));
        assert_eq!(strs(&ran.json["evicted"]), others, "{}", ran.stdout);
        assert_eq!(ran.json["deleted"], json!([]), "{}", ran.stdout);
        // Exactly what is still on the node: the refused pod, not the evicted ones.
        assert_eq!(
            ran.json["still_pending"],
            json!([format!("default/{db}")]),
            "{}",
            ran.stdout
        );
        assert!(pod_names_on(&lab, "worker-1").contains(&db));
        let msg = ran.msg();
        assert!(
            msg.contains(&format!("default/{db}: eviction still refused")),
            "{msg}"
        );
        assert!(msg.contains("PodDisruptionBudget default/db"), "{msg}");
        assert!(msg.contains("1 pod(s) could not be evicted"), "{msg}");
        assert!(lab.handle().pdb_violations().is_empty());
    }
}

#[test]
fn a_404_from_the_eviction_of_a_pod_that_exists_is_not_taken_for_gone() {
    for (emu, tls) in [(Emulation::V1_9, false), (Emulation::V1_30, true)] {
        // The server answers 404 to toolbox's eviction (as one that does not serve pods/eviction
        // would), but the pod is there: no budget covers it, so it is deleted instead, and reported as
        // deleted, not evicted.
        let lab = Lab::start(emu, tls, Cluster::sample(None));
        let bare = "toolbox";
        lab.inject(FaultSpec {
            path_contains: Some("/eviction".into()),
            message: Some("the server could not find the requested resource".into()),
            ..FaultSpec::fail(
                "POST",
                &format!("/api/v1/namespaces/default/pods/{bare}/"),
                404,
                100,
            )
        });
        let ran = lab.run(bin(), runbook_drain("worker-1"));
        assert!(!ran.failed() && ran.changed(), "{}: {}", lab.label(), ran.stdout);
        let bare_key = format!("default/{bare}");
        assert!(!strs(&ran.json["evicted"]).contains(&bare_key), "{}", ran.stdout);
        assert_eq!(ran.json["deleted"], json!([bare_key]), "{}", ran.stdout);
        assert_eq!(strs(&ran.json["evicted"]).len(), 2, "{}", ran.stdout);
        assert!(
            warnings(&ran.json)
                .iter()
                .any(|w| w.contains(&bare_key) && w.contains("404")),
            "{}",
            ran.stdout
        );
        assert_eq!(
            pods_on(&lab, "worker-1").len(),
            1,
            "{:?}",
            pod_names_on(&lab, "worker-1")
        );

        // A pod a PodDisruptionBudget covers is not deleted behind the budget's back: that pod fails,
        // named with the budget, and it is still there.
        let lab = Lab::start(emu, tls, pdb_cluster(1));
        let db = db_pod_on(&lab, "worker-1");
        lab.inject(FaultSpec {
            path_contains: Some("/eviction".into()),
            ..FaultSpec::fail(
                "POST",
                &format!("/api/v1/namespaces/default/pods/{db}/"),
                404,
                100,
            )
        });
        let ran = lab.run(bin(), runbook_drain("worker-1"));
        assert!(ran.failed(), "{}", ran.stdout);
        let db_key = format!("default/{db}");
        assert!(!strs(&ran.json["evicted"]).contains(&db_key), "{}", ran.stdout);
        assert_eq!(ran.json["deleted"], json!([]), "{}", ran.stdout);
        assert_eq!(ran.json["still_pending"], json!([db_key]), "{}", ran.stdout);
        let msg = ran.msg();
        assert!(
            msg.contains(&db_key) && msg.contains("404") && msg.contains("PodDisruptionBudget default/db"),
            "{msg}"
        );
        assert!(pod_names_on(&lab, "worker-1").contains(&db));
    }
}

#[test]
fn a_server_that_ignores_the_field_selector_never_gets_other_nodes_pods_evicted() {
    for (emu, tls) in [(Emulation::V1_9, true), (Emulation::V1_30, false)] {
        let lab = Lab::start(emu, tls, Cluster::sample(None));
        let nodes = ["master-1", "master-2", "master-3", "worker-2", "worker-3"];
        let uids = |node: &str| -> Vec<String> {
            pods_on(&lab, node)
                .iter()
                .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
                .collect()
        };
        let elsewhere: Vec<(String, Vec<String>)> = nodes.iter().map(|n| (n.to_string(), uids(n))).collect();
        assert!(elsewhere.iter().any(|(_, u)| !u.is_empty()));
        let mine: Vec<String> = pod_names_on(&lab, "worker-1")
            .into_iter()
            .map(|n| format!("default/{n}"))
            .collect();
        // Every pod list answers with the pods of all nodes.
        lab.inject(FaultSpec::ignore_field_selector("/api/v1/pods"));
        let ran = lab.run(bin(), runbook_drain("worker-1"));
        assert!(!ran.failed() && ran.changed(), "{}: {}", lab.label(), ran.stdout);
        let evicted = strs(&ran.json["evicted"]);
        assert_eq!(evicted.len(), 3, "{}", ran.stdout);
        assert!(
            evicted.iter().all(|p| mine.contains(p)),
            "{evicted:?} not all in {mine:?}"
        );
        assert!(
            ran.json["skipped_pods"]
                .as_array()
                .unwrap()
                .iter()
                .all(|v| v["pod"].as_str().unwrap().starts_with("kube-system/kube-proxy")),
            "{}",
            ran.stdout
        );
        // Every pod of every other node is still there (same UID); new ones may have arrived.
        for (node, before) in &elsewhere {
            let now = uids(node);
            assert!(
                before.iter().all(|u| now.contains(u)),
                "{node}: {before:?} -> {now:?}"
            );
        }
        assert_eq!(pods_on(&lab, "worker-1").len(), 1);
    }
}
