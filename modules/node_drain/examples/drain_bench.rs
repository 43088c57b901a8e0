//! Benchmark (not a test): wall time of `node_drain` vs real `kubectl drain` on the same lab API
//! server, a node with PODS pods (ReplicaSets with termination grace periods 1..=GRACE_MAX s, real
//! time), each run on a fresh server. Prints a Markdown table.
//!
//! cargo build --release -p node_drain
//! cargo run --release -p node_drain --example drain_bench -- \
//!     --module target/x86_64-unknown-linux-gnu/release/node_drain \
//!     --emulation 1.30 --kubectl /usr/lib/google-cloud-sdk/bin/kubectl.1.33 [--pods 100] [--grace-max 10] [--runs 3]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use lab_apiserver::cluster::{NodeSeed, ReplicaSetSeed, Role};
use lab_apiserver::{Cluster, Emulation, ServerConfig};

struct Opts {
    module: PathBuf,
    kubectl: PathBuf,
    emulation: Emulation,
    pods: u32,
    grace_max: i64,
    runs: usize,
}

fn opts() -> Opts {
    let mut o = Opts {
        module: PathBuf::from("target/x86_64-unknown-linux-gnu/release/node_drain"),
        kubectl: PathBuf::from("/usr/lib/google-cloud-sdk/bin/kubectl.1.33"),
        emulation: Emulation::V1_30,
        pods: 100,
        grace_max: 10,
        runs: 3,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--module" => o.module = v.into(),
            "--kubectl" => o.kubectl = v.into(),
            "--emulation" => o.emulation = Emulation::parse(&v).unwrap(),
            "--pods" => o.pods = v.parse().unwrap(),
            "--grace-max" => o.grace_max = v.parse().unwrap(),
            "--runs" => o.runs = v.parse().unwrap(),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

fn cluster(pods: u32, grace_max: i64) -> Cluster {
    let node = |name: &str, role: Role| NodeSeed {
        name: name.into(),
        roles: vec![role],
        kubelet_version: None,
        address: None,
        ready: true,
        unschedulable: false,
        kubelet: Default::default(),
        labels: Default::default(),
    };
    let mut c = Cluster {
        nodes: vec![
            node("master-1", Role::ControlPlane),
            node("worker-1", Role::Worker),
            node("worker-2", Role::Worker),
        ],
        static_pods: true,
        ..Cluster::default()
    };
    // grace_max ReplicaSets, the i-th with grace i seconds, sharing the pods out.
    let sets = grace_max.max(1) as u32;
    for i in 0..sets {
        let replicas = pods / sets + u32::from(i < pods % sets);
        c.replica_sets.push(ReplicaSetSeed {
            name: format!("app-{i}-7f9c"),
            namespace: "default".into(),
            replicas,
            labels: [("app".to_string(), format!("app-{i}"))].into(),
            nodes: vec!["worker-1".into()],
            termination_grace_period_seconds: i64::from(i) + 1,
            empty_dir: false,
            image: None,
        });
    }
    c
}

fn one(o: &Opts, kubectl: bool) -> Duration {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut cfg = ServerConfig::new(o.emulation, cluster(o.pods, o.grace_max));
    // Like the lab's kubectl tests: HTTPS + token for the modern release, HTTP for 1.9.
    cfg.tls = o.emulation.minor >= 22;
    cfg.time_factor = 1.0;
    cfg.pod_startup_seconds = 1.0;
    let handle = rt.block_on(lab_apiserver::start(cfg)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    handle.write_kubeconfig(&kubeconfig).unwrap();
    let on_node = |h: &lab_apiserver::Handle| {
        h.with_store(|s| {
            s.list(
                lab_apiserver::store::Kind::Pod,
                None,
                &Default::default(),
                &lab_apiserver::selector::FieldSelector::parse(
                    "spec.nodeName=worker-1",
                    lab_apiserver::store::Kind::Pod.field_labels(),
                )
                .unwrap(),
                None,
                None,
            )
            .map(|(items, _)| items.len())
            .unwrap()
        })
    };
    assert_eq!(on_node(&handle), o.pods as usize);
    let started = Instant::now();
    let out = if kubectl {
        // kubectl 1.20 added --delete-emptydir-data (the runbook's --delete-local-data, renamed).
        let local = "--delete-emptydir-data";
        Command::new(&o.kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args([
                "drain",
                "worker-1",
                "--ignore-daemonsets",
                local,
                "--force",
                "--timeout=600s",
            ])
            .env("HOME", dir.path())
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    } else {
        let args = serde_json::json!({"name": "worker-1", "ignore_daemonsets": true, "delete_emptydir_data": true,
            "force": true, "timeout": 600, "kubeconfig": kubeconfig});
        let file = dir.path().join("args.json");
        std::fs::write(&file, args.to_string()).unwrap();
        Command::new(&o.module).arg(&file).output().unwrap()
    };
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{} failed: {}{}",
        if kubectl { "kubectl" } else { "node_drain" },
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(on_node(&handle), 0, "pods left on worker-1");
    rt.block_on(handle.stop());
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let o = opts();
    let kubectl_version = Command::new(&o.kubectl)
        .args(["version", "--client"])
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..o.runs {
        ours.push(one(&o, false));
        theirs.push(one(&o, true));
    }
    let (m, k) = (median(ours.clone()), median(theirs.clone()));
    println!(
        "emulation {} | {} pods, grace 1..={} s | {} runs each (median)",
        o.emulation.git_version(),
        o.pods,
        o.grace_max,
        o.runs
    );
    println!("| drain | median | runs |");
    println!("|---|---|---|");
    let fmt = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("| node_drain | {:.2} s | {} |", m.as_secs_f64(), fmt(&ours));
    println!(
        "| kubectl drain ({}) | {:.2} s | {} |",
        kubectl_version.trim(),
        k.as_secs_f64(),
        fmt(&theirs)
    );
    println!(
        "node_drain / kubectl = {:.2}x; node_drain - longest grace = {:+.2} s",
        m.as_secs_f64() / k.as_secs_f64(),
        m.as_secs_f64() - o.grace_max as f64
    );
}
