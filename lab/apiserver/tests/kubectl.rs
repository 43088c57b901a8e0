//! Real kubectl clients (the Google Cloud SDK's newest, and Debian's 1.20) against both emulated
//! releases, over HTTPS with a CA and a bearer token (1.30) and plain HTTP with a token (1.9).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{kubectl_1_20, modern_kubectl, wait_until, Lab};
use lab_apiserver::cluster::IntOrPercent;
use lab_apiserver::store::Kind;
use lab_apiserver::testing::pods_on;
use lab_apiserver::{Cluster, Emulation};
use serde_json::Value;

fn tls_for(emu: Emulation) -> bool {
    emu == Emulation::V1_30
}

fn owner_kind(p: &Value) -> String {
    p.pointer("/metadata/ownerReferences/0/kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// get nodes / pods / kubeadm-config, cordon, uncordon.
fn read_and_cordon(kubectl: &Path, emu: Emulation) {
    let lab = Lab::start(emu, tls_for(emu), Cluster::sample(None));
    let v = emu.git_version();

    let nodes = lab.kubectl_ok(kubectl, &["get", "nodes", "-o", "wide"]);
    println!("{nodes}");
    for n in [
        "master-1", "master-2", "master-3", "worker-1", "worker-2", "worker-3",
    ] {
        let line = nodes
            .lines()
            .find(|l| l.starts_with(n))
            .unwrap_or_else(|| panic!("{n} missing in {nodes}"));
        assert!(line.contains(" Ready "), "{line}");
        assert!(line.contains(&v), "{line}");
    }
    let role = if emu.minor >= 24 {
        "control-plane"
    } else {
        "master"
    };
    assert!(
        nodes
            .lines()
            .any(|l| l.starts_with("master-1") && l.contains(role)),
        "{nodes}"
    );

    let pods = lab.kubectl_ok(kubectl, &["get", "pods", "-A", "-o", "wide"]);
    println!("{pods}");
    let header = pods.lines().next().unwrap();
    assert!(
        header.contains("NAMESPACE") && header.contains("NODE") && header.contains("STATUS"),
        "{header}"
    );
    let cache = pods
        .lines()
        .find(|l| l.contains(" cache "))
        .expect("pod cache listed");
    assert!(
        cache.starts_with("default") && cache.contains("worker-1") && cache.contains("Running"),
        "{cache}"
    );
    assert!(
        pods.lines()
            .any(|l| l.starts_with("kube-system") && l.contains("kube-apiserver-master-1")),
        "{pods}"
    );

    let by_node = lab.kubectl_ok(
        kubectl,
        &[
            "get",
            "pods",
            "-A",
            "--field-selector",
            "spec.nodeName=worker-2",
            "-o",
            "name",
        ],
    );
    assert!(
        by_node
            .lines()
            .all(|l| !l.contains("cache") && !l.contains("toolbox")),
        "{by_node}"
    );
    assert!(by_node.lines().any(|l| l.contains("kube-proxy")), "{by_node}");
    let web = lab.kubectl_ok(kubectl, &["get", "pods", "-l", "app=web", "-o", "name"]);
    assert_eq!(web.lines().count(), 3, "{web}");

    let cm = lab.kubectl_ok(
        kubectl,
        &["get", "cm", "-n", "kube-system", "kubeadm-config", "-o", "yaml"],
    );
    println!("{cm}");
    if emu.minor <= 10 {
        assert!(cm.contains("MasterConfiguration: |"), "{cm}");
        assert!(cm.contains("    nodeName: master-1\n"), "{cm}");
        assert!(cm.contains(&format!("kubernetesVersion: {v}")), "{cm}");
    } else {
        assert!(cm.contains("ClusterConfiguration: |"), "{cm}");
        assert!(!cm.contains("nodeName"), "{cm}");
        assert_eq!(cm.contains("ClusterStatus"), emu.minor < 22, "{cm}");
    }

    let out = lab.kubectl_ok(kubectl, &["cordon", "worker-3"]);
    assert!(out.contains("node/worker-3 cordoned"), "{out}");
    let unsched = |lab: &Lab| {
        lab.handle().with_store(|s| {
            s.get(Kind::Node, "", "worker-3")
                .unwrap()
                .pointer("/spec/unschedulable")
                .and_then(Value::as_bool)
        })
    };
    assert_eq!(unsched(&lab), Some(true));
    let nodes = lab.kubectl_ok(kubectl, &["get", "nodes"]);
    assert!(
        nodes
            .lines()
            .any(|l| l.starts_with("worker-3") && l.contains("SchedulingDisabled")),
        "{nodes}"
    );
    let out = lab.kubectl_ok(kubectl, &["uncordon", "worker-3"]);
    assert!(out.contains("node/worker-3 uncordoned"), "{out}");
    assert_eq!(unsched(&lab), None);

    let missing = lab.kubectl(kubectl, &["get", "pod", "nope"]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("pods \"nope\" not found"), "{err}");
}

fn drain_flags(kubectl: &Path) -> &'static str {
    let out = Command::new(kubectl)
        .args(["version", "--client", "-o", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let minor: u32 = v
        .pointer("/clientVersion/minor")
        .and_then(Value::as_str)
        .unwrap_or("99")
        .trim_end_matches('+')
        .parse()
        .unwrap_or(99);
    // --delete-emptydir-data replaced --delete-local-data in kubectl 1.20's successors.
    if minor <= 20 {
        "--delete-local-data"
    } else {
        "--delete-emptydir-data"
    }
}

/// A full drain: bare pod (needs --force), emptyDir pod, DaemonSet pod ignored, ReplicaSet pod
/// recreated elsewhere with a new name and UID; the PDB is respected.
fn drain(kubectl: &Path, emu: Emulation) {
    let lab = Lab::start(emu, tls_for(emu), Cluster::sample(None));
    let before = pods_on(&lab, "worker-1");
    let web_before: Vec<Value> = before
        .iter()
        .filter(|p| owner_kind(p) == "ReplicaSet")
        .cloned()
        .collect();
    assert_eq!(web_before.len(), 1);
    let out = lab.kubectl_ok(
        kubectl,
        &[
            "drain",
            "worker-1",
            "--ignore-daemonsets",
            drain_flags(kubectl),
            "--force",
            "--timeout=60s",
        ],
    );
    println!("{out}");
    let after = pods_on(&lab, "worker-1");
    assert!(
        after.iter().all(|p| owner_kind(p) == "DaemonSet"),
        "left on worker-1: {after:?}"
    );
    assert_eq!(after.len(), 1);
    let web = lab.handle().with_store(|s| {
        let sel = lab_apiserver::selector::LabelSelector::parse("app=web").unwrap();
        let (items, _) = s
            .list(Kind::Pod, Some("default"), &sel, &Default::default(), None, None)
            .unwrap();
        items.into_iter().cloned().collect::<Vec<_>>()
    });
    assert_eq!(web.len(), 3, "{web:?}");
    let old_uid = web_before[0].pointer("/metadata/uid").unwrap();
    assert!(web.iter().all(|p| p.pointer("/metadata/uid").unwrap() != old_uid));
    assert!(web
        .iter()
        .all(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) != Some("worker-1")));
    let nodes = lab.kubectl_ok(kubectl, &["get", "nodes"]);
    assert!(
        nodes
            .lines()
            .any(|l| l.starts_with("worker-1") && l.contains("SchedulingDisabled")),
        "{nodes}"
    );
    assert!(
        lab.handle().pdb_violations().is_empty(),
        "{:?}",
        lab.handle().pdb_violations()
    );
    lab.kubectl_ok(kubectl, &["uncordon", "worker-1"]);
}

/// Drain blocked by a PDB (minAvailable = replicas) keeps retrying until the PDB is relaxed.
fn drain_blocked_by_pdb(kubectl: &Path, emu: Emulation) {
    let mut cluster = Cluster::sample(None);
    cluster.pdbs[0].min_available = Some(IntOrPercent::Int(3));
    let lab = Lab::start(emu, tls_for(emu), cluster);
    let log = lab.dir.path().join("drain.log");
    let logf = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(&lab.kubeconfig)
        .args([
            "drain",
            "worker-1",
            "--ignore-daemonsets",
            drain_flags(kubectl),
            "--force",
            "--timeout=90s",
        ])
        .env("HOME", lab.dir.path())
        .stdout(Stdio::from(logf.try_clone().unwrap()))
        .stderr(Stdio::from(logf))
        .spawn()
        .unwrap();
    let read_log = || {
        let mut s = String::new();
        std::fs::File::open(&log).unwrap().read_to_string(&mut s).unwrap();
        s
    };
    let blocked = wait_until(Duration::from_secs(30), || {
        read_log().contains("disruption budget")
    });
    assert!(blocked, "drain was not blocked by the PDB:\n{}", read_log());
    // Still blocked a few seconds later: the web pod on worker-1 is untouched, and kubectl retries.
    std::thread::sleep(Duration::from_secs(6));
    let log_now = read_log();
    assert!(
        log_now.matches("disruption budget").count() >= 2,
        "no retry:\n{log_now}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "drain ended while blocked:\n{log_now}"
    );
    let web_on_1: Vec<Value> = pods_on(&lab, "worker-1")
        .into_iter()
        .filter(|p| owner_kind(p) == "ReplicaSet")
        .collect();
    assert_eq!(web_on_1.len(), 1);
    assert!(web_on_1[0].pointer("/metadata/deletionTimestamp").is_none());
    // Relax the PDB through the API (policy/v1beta1 on 1.9, policy/v1 on modern releases).
    let pdbs = lab.kubectl_ok(kubectl, &["get", "pdb", "web", "-o", "json"]);
    let pdb: Value = serde_json::from_str(&pdbs).unwrap();
    assert_eq!(
        pdb.pointer("/status/disruptionsAllowed").and_then(Value::as_i64),
        Some(0),
        "{pdb}"
    );
    assert_eq!(
        pdb["apiVersion"],
        if emu.minor >= 21 {
            "policy/v1"
        } else {
            "policy/v1beta1"
        }
    );
    lab.kubectl_ok(
        kubectl,
        &[
            "patch",
            "pdb",
            "web",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"minAvailable":2}}"#,
        ],
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "drain did not finish:\n{}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = read_log();
    println!("{out}");
    assert!(status.success(), "{out}");
    assert!(pods_on(&lab, "worker-1")
        .iter()
        .all(|p| owner_kind(p) == "DaemonSet"));
    assert!(lab.handle().pdb_violations().is_empty());
}

macro_rules! kubectl_tests {
    ($client:ident, $($name:ident: $f:ident, $emu:expr;)*) => {
        $(
            #[test]
            fn $name() {
                let Some(bin) = $client() else { return };
                $f(&bin, $emu);
            }
        )*
    };
}

kubectl_tests! {modern_kubectl,
    modern_kubectl_read_and_cordon_1_9: read_and_cordon, Emulation::V1_9;
    modern_kubectl_read_and_cordon_1_30: read_and_cordon, Emulation::V1_30;
    modern_kubectl_drain_1_9: drain, Emulation::V1_9;
    modern_kubectl_drain_1_30: drain, Emulation::V1_30;
    modern_kubectl_drain_blocked_by_pdb_1_9: drain_blocked_by_pdb, Emulation::V1_9;
    modern_kubectl_drain_blocked_by_pdb_1_30: drain_blocked_by_pdb, Emulation::V1_30;
}

kubectl_tests! {kubectl_1_20,
    kubectl_1_20_read_and_cordon_1_9: read_and_cordon, Emulation::V1_9;
    kubectl_1_20_read_and_cordon_1_30: read_and_cordon, Emulation::V1_30;
    kubectl_1_20_drain_1_9: drain, Emulation::V1_9;
    kubectl_1_20_drain_1_30: drain, Emulation::V1_30;
    kubectl_1_20_drain_blocked_by_pdb_1_9: drain_blocked_by_pdb, Emulation::V1_9;
    kubectl_1_20_drain_blocked_by_pdb_1_30: drain_blocked_by_pdb, Emulation::V1_30;
}
