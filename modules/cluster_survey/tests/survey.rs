#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! cluster_survey (the binary) against the lab API server: both emulated releases, HTTP and
//! HTTPS+token.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use lab_apiserver::cluster::{IntOrPercent, PdbSeed, PodSeed, ReplicaSetSeed};
use lab_apiserver::store::Kind;
use lab_apiserver::testing::{matrix, with, Lab};
use lab_apiserver::{Cluster, Emulation};
use module_kit::testkit::run_with_args_file;
use serde_json::{json, Value};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cluster_survey"))
}

const BARE: &str =
    "not managed by a controller (ReplicaSet, Job, StatefulSet...): nothing would recreate it; set force";

/// The sample cluster (kube-proxy everywhere; on worker-1 a bare pod `toolbox` and a bare emptyDir
/// pod `cache`; `web` with 3 replicas and a PDB allowing 1 disruption), plus: a bare pod on
/// worker-2, an emptyDir ReplicaSet on worker-3, worker-3 cordoned, and a second PDB over `web`
/// that allows no disruption.
fn cluster() -> Cluster {
    let mut c = Cluster::sample(None);
    let labels = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
    c.pods.push(PodSeed {
        name: "debug".into(),
        namespace: "default".into(),
        node: "worker-2".into(),
        labels: labels("run", "debug"),
        termination_grace_period_seconds: 30,
        empty_dir: false,
        mirror: false,
    });
    c.replica_sets.push(ReplicaSetSeed {
        name: "scratch-5c8d".into(),
        namespace: "batch".into(),
        replicas: 1,
        labels: labels("app", "scratch"),
        nodes: vec!["worker-3".into()],
        termination_grace_period_seconds: 30,
        empty_dir: true,
        image: None,
    });
    c.pdbs.push(PdbSeed {
        name: "web-strict".into(),
        namespace: "default".into(),
        selector: labels("app", "web"),
        min_available: Some(IntOrPercent::Int(3)),
        max_unavailable: None,
    });
    if let Some(n) = c.node_mut("worker-3") {
        n.unschedulable = true;
    }
    c
}

fn row<'a>(survey: &'a Value, name: &str) -> &'a Value {
    survey["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no row for {name}: {survey}"))
}

/// `pod: reason` of a node's blockers, sorted.
fn blockers(survey: &Value, node: &str) -> Vec<String> {
    let mut v: Vec<String> = row(survey, node)["blocking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            format!(
                "{}: {}",
                b["pod"].as_str().unwrap(),
                b["reason"].as_str().unwrap()
            )
        })
        .collect();
    v.sort();
    v
}

fn pdb_allowed(lab: &Lab, name: &str) -> i64 {
    lab.handle().with_store(|s| {
        let pdb = s.get(Kind::Pdb, "default", name).cloned().unwrap();
        s.pdb_with_status(&pdb)["status"]["disruptionsAllowed"]
            .as_i64()
            .unwrap()
    })
}

#[test]
fn versions_blockers_and_pdb_waits_on_every_node() {
    for (emu, tls) in matrix() {
        let lab = Lab::start(emu, tls, cluster());
        let label = lab.label();
        let version = emu.git_version();
        assert_eq!(pdb_allowed(&lab, "web"), 1, "{label}: the lab's web PDB");
        assert_eq!(pdb_allowed(&lab, "web-strict"), 0, "{label}");

        // kubectl drain's defaults: every node has something in the way.
        let ran = lab.run(bin(), json!({}));
        assert!(!ran.failed(), "{label}: {}", ran.stdout);
        assert!(!ran.changed());
        let s = &ran.json;
        assert_eq!(s["server_version"], version.as_str());
        assert_eq!(s["versions"]["kubelet"], json!({version.as_str(): 6}), "{label}");
        // kube-apiserver, controller-manager and scheduler on each of the 3 masters.
        assert_eq!(
            s["versions"]["control_plane"],
            json!({version.as_str(): 9}),
            "{label}"
        );
        let cp = s["control_plane"].as_array().unwrap();
        assert_eq!(cp.len(), 12, "{label}: {}", s["control_plane"]);
        assert!(cp.iter().any(|c| c["node"] == "master-2"
            && c["component"] == "kube-apiserver"
            && c["version"] == version.as_str()));
        let pdb_api = if emu.minor >= 21 {
            "policy/v1"
        } else {
            "policy/v1beta1"
        };
        assert_eq!(s["pdb_api"], pdb_api);
        assert_eq!(s["pdbs_disallowing"], json!(["default/web-strict"]));
        assert_eq!(s["nodes"].as_array().unwrap().len(), 6);
        assert_eq!(
            s["blocked_nodes"],
            json!(["master-1", "master-2", "master-3", "worker-1", "worker-2", "worker-3"])
        );
        let w1 = blockers(s, "worker-1");
        assert_eq!(w1.len(), 3, "{w1:?}");
        assert!(
            w1[0].starts_with("default/cache: uses emptyDir volume(s) "),
            "{w1:?}"
        );
        assert!(
            w1[0].ends_with("whose data would be lost; set delete_emptydir_data"),
            "{w1:?}"
        );
        assert_eq!(w1[1], format!("default/toolbox: {BARE}"));
        assert!(
            w1[2].starts_with("kube-system/kube-proxy-")
                && w1[2].contains(": managed by DaemonSet kube-proxy (")
                && w1[2].ends_with("): the DaemonSet would put it right back; set ignore_daemonsets"),
            "{w1:?}"
        );
        // The static pods are mirror pods: never blockers.
        assert_eq!(blockers(s, "master-1").len(), 1, "{:?}", blockers(s, "master-1"));
        let w3 = row(s, "worker-3");
        assert_eq!(w3["cordoned"], true);
        assert_eq!(row(s, "worker-2")["cordoned"], false);
        assert!(w3["ready"].as_bool().unwrap());
        assert_eq!(w3["kubelet_version"], version.as_str());

        // The runbook's flags: only the bare pods still block, on two nodes.
        let ran = lab.run(
            bin(),
            json!({"ignore_daemonsets": true, "delete_local_data": "yes", "_ansible_check_mode": true}),
        );
        assert!(!ran.failed() && !ran.changed(), "{label}: {}", ran.stdout);
        let s = &ran.json;
        assert_eq!(s["blocked_nodes"], json!(["worker-1", "worker-2"]), "{label}");
        assert_eq!(
            blockers(s, "worker-1"),
            vec![
                format!("default/cache: {BARE}"),
                format!("default/toolbox: {BARE}")
            ]
        );
        assert_eq!(blockers(s, "worker-2"), vec![format!("default/debug: {BARE}")]);
        assert!(blockers(s, "worker-3").is_empty());
        assert_eq!(row(s, "worker-3")["would_evict"], 1, "the emptyDir pod: {}", s);
        // Each web pod waits for web-strict (which allows no disruption), never for web (1).
        let waits: Vec<&Value> = s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|n| n["pdb_waits"].as_array().unwrap())
            .collect();
        assert_eq!(waits.len(), 3, "{label}: {}", s["nodes"]);
        // What draining each node costs each budget, and what each allows: both web budgets
        // cover every web pod, one a node; batches of drains are built from these.
        assert_eq!(
            s["pdb_allowances"],
            json!({"default/web": 1, "default/web-strict": 0}),
            "{label}"
        );
        let web_pods: u32 = s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                assert_eq!(
                    n["budgeted"]["default/web"], n["budgeted"]["default/web-strict"],
                    "{label}: {n}"
                );
                n["budgeted"]["default/web"].as_u64().unwrap_or(0) as u32
            })
            .sum();
        assert_eq!(web_pods, 3, "{label}: {}", s["nodes"]);
        assert!(waits
            .iter()
            .all(|w| w["pdb"] == "default/web-strict"
                && w["pod"].as_str().unwrap().starts_with("default/web-")));
        // minAvailable 3 of 3 web pods: no eviction can ever be allowed, the drain would never end.
        assert!(
            waits
                .iter()
                .all(|w| w["never"] == "minAvailable: 3 with 3 pod(s) expected"),
            "{label}: {waits:?}"
        );
        assert!(
            ran.msg().contains("3 pod(s) a drain would wait for"),
            "{}",
            ran.msg()
        );
        assert!(
            ran.msg()
                .contains("drain blockers on 2 node(s): worker-1, worker-2"),
            "{}",
            ran.msg()
        );

        // With force too, nothing blocks; only the budget's waits are left.
        let ran = lab.run(
            bin(),
            json!({"ignore_daemonsets": true, "delete_emptydir_data": true, "force": true}),
        );
        assert_eq!(ran.json["blocked_nodes"], json!([]), "{}", ran.stdout);
        assert!(ran.msg().contains("no drain blockers"), "{}", ran.msg());
    }
}

/// Requests the lab server has served so far (its admin endpoint, plain HTTP).
fn served(lab: &Lab) -> u64 {
    let mut s = std::net::TcpStream::connect(lab.handle().addr()).unwrap();
    s.write_all(b"GET /_lab/stats HTTP/1.0\r\nHost: lab\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str::<Value>(body).unwrap()["requests"]
        .as_u64()
        .unwrap()
}

#[test]
fn small_pages_give_the_same_answer() {
    for emu in [Emulation::V1_9, Emulation::V1_30] {
        let lab = Lab::start(emu, false, cluster());
        let args = json!({"ignore_daemonsets": true, "delete_emptydir_data": true});
        let before = served(&lab);
        let big = lab.run(bin(), with(&args, json!({"page_size": 500})));
        let big_requests = served(&lab) - before;
        let before = served(&lab);
        let small = lab.run(bin(), with(&args, json!({"page_size": 2})));
        let small_requests = served(&lab) - before;
        assert!(
            !big.failed() && !small.failed(),
            "{}\n{}",
            big.stdout,
            small.stdout
        );
        let pods = big.json["counts"]["pods"].as_u64().unwrap();
        assert!(pods > 20, "{}", big.json["counts"]);
        assert_eq!(big.json["counts"]["pod_pages"], 1);
        assert_eq!(
            small.json["counts"]["pod_pages"].as_u64().unwrap(),
            pods.div_ceil(2)
        );
        // Pods, nodes and PDBs each paged: many more requests actually reached the server.
        assert!(
            small_requests >= big_requests + pods / 2 + 2,
            "{} requests with page_size 2, {} with 500",
            small_requests,
            big_requests
        );
        for key in [
            "nodes",
            "control_plane",
            "versions",
            "blocked_nodes",
            "pdbs_disallowing",
            "counts/pods",
            "counts/nodes",
            "counts/pdbs",
        ] {
            let ptr = format!("/{key}");
            assert_eq!(
                big.json.pointer(&ptr),
                small.json.pointer(&ptr),
                "{}: {key} differs between page sizes",
                emu.git_version()
            );
        }
    }
}

#[test]
fn names_limit_the_report_not_the_lists() {
    let lab = Lab::start(Emulation::V1_30, true, cluster());
    let ran = lab.run(
        bin(),
        json!({"names": ["worker-2", "worker-9"], "ignore_daemonsets": true, "delete_emptydir_data": true}),
    );
    assert!(!ran.failed(), "{}", ran.stdout);
    let rows = ran.json["nodes"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], "worker-2");
    assert_eq!(ran.json["missing"], json!(["worker-9"]));
    assert_eq!(ran.json["blocked_nodes"], json!(["worker-2"]));
    assert_eq!(ran.json["counts"]["nodes"], 6);
    assert!(ran.msg().contains("not registered: worker-9"), "{}", ran.msg());
    // The other five nodes are the ones an inventory naming these two would leave out.
    let unlisted = ran.json["unlisted"].as_array().unwrap();
    assert_eq!(unlisted.len(), 5, "{}", ran.json["unlisted"]);
    assert!(!unlisted.contains(&json!("worker-2")));
    assert!(ran.msg().contains("nodes not named: "), "{}", ran.msg());
}

#[test]
fn bad_params_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "apiVersion: v1\nkind: Config\n").unwrap();
    let k = kubeconfig.display().to_string();
    for (args, field) in [
        (json!({"page_size": 0}), "page_size"),
        (json!({"page_size": "many"}), "page_size"),
        (json!({"pagesize": 10}), "pagesize"),
        (json!({"names": []}), "names"),
        (json!({"names": "worker-1"}), "names"),
        (json!({"timeout": 0}), "timeout"),
        (json!({"request_timeout": -1}), "request_timeout"),
        (json!({"force": "maybe"}), "force"),
        (json!({"kubeconfig": "/nonexistent/kubeconfig"}), "kubeconfig"),
    ] {
        let mut args = args;
        if args.get("kubeconfig").is_none() {
            args["kubeconfig"] = json!(k);
        }
        let ran = run_with_args_file(bin(), &args).unwrap();
        assert!(ran.failed(), "{args}: {}", ran.stdout);
        assert!(!ran.changed());
        assert!(ran.msg().contains(field), "{args}: {}", ran.msg());
    }
}

#[test]
fn an_unreachable_server_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"http://127.0.0.1:{port}\"}}\n\
             users:\n- name: u\n  user: {{}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let ran = run_with_args_file(
        bin(),
        &json!({"kubeconfig": kubeconfig.display().to_string(), "timeout": 1, "request_timeout": 1}),
    )
    .unwrap();
    ran.assert_failed_saying(&["cannot read the server version"]);
}
