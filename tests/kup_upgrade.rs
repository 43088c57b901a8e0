#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `kup` end to end on real labs: 1.8.3 -> 1.9.2 on apt and on rpm nodes, one modern minor upgrade,
//! and the faults of the runbook (a flaky secondary, a PDB holding a drain, a kubelet that does not
//! come back: the rollout stops there, and a rerun resumes and completes).

use e2e::lab::{LabOptions, TestLab};
use e2e::schema::validate_stream;
use e2e::{dist, kup, kup_upgrade_args, output_text, root};
use serde_json::Value;

/// The documented schema of kup's --json events.
fn events_schema() -> Value {
    let text = std::fs::read_to_string(root().join("docs/kup-events.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}
use std::process::{Command, Stdio};

#[test]
fn kup_upgrades_an_apt_lab_from_1_8_to_1_9() {
    let Some(lab) = TestLab::up(LabOptions {
        flavour: "apt",
        from: "1.8.3",
        control_planes: 3,
        workers: 2,
        id: 3,
    }) else {
        return;
    };
    // An admin's cordon before the upgrade must still be there after it.
    lab.kubectl(&["cordon", "lab-cp3"]);
    // The runbook's flaky secondary: its first apply fails.
    lab.ssh_ok(2, "touch /etc/kup-lab/kubeadm-fail-once");

    let plan = kup(
        &lab.inventory,
        &["plan", "--to", "v1.9.2", "--cni-version", "0.6.0"],
    );
    assert!(plan.status.success(), "kup plan:\n{}", output_text(&plan));
    assert!(
        output_text(&plan).contains("the upgrade can go ahead"),
        "{}",
        output_text(&plan)
    );
    assert!(
        lab.nodes().iter().all(|(_, _, v)| v == "v1.8.3"),
        "plan changed something"
    );
    // On a terminal (here script(1)'s pseudo-terminal) progress is a live host x step table,
    // redrawn in place; the report still follows it.
    let on_tty = format!(
        "{} plan --to v1.9.2 --cni-version 0.6.0 -i {}",
        dist().join("kup").display(),
        lab.inventory.display()
    );
    let tty = Command::new("script")
        .args(["-qefc", &on_tty, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .expect("script");
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "kup plan on a terminal:\n{screen}");
    assert!(screen.contains("\x1b[J"), "the table is never redrawn:\n{screen}");
    assert!(
        screen.contains("+ changed  . unchanged"),
        "no live table:\n{screen}"
    );
    assert!(
        screen
            .lines()
            .any(|l| l.starts_with("lab-w2 ") && l.contains("> ")),
        "no running step shown for lab-w2:\n{screen}"
    );
    assert!(screen.contains("the upgrade can go ahead"), "{screen}");
    assert!(
        !output_text(&plan).contains("\x1b["),
        "escape codes without a terminal"
    );

    let up = kup(&lab.inventory, &kup_upgrade_args("stable-1.9", "0.6.0"));
    let log = output_text(&up);
    assert!(up.status.success(), "kup upgrade:\n{log}");
    assert!(
        log.contains("after 1 failed attempts"),
        "the secondary's retry is not reported:\n{log}"
    );
    // A verified snapshot of the lab's external etcd (the inventory's etcd_* variables) before the
    // first apply, named in the report.
    assert!(
        log.contains("etcd snapshot /var/lib/kubeadm-ha-upgrade/etcd-snapshots/etcd-snapshot-v1.9.3-"),
        "{log}"
    );
    assert!(lab
        .ssh_ok(1, "ls /var/lib/kubeadm-ha-upgrade/etcd-snapshots")
        .contains("etcd-snapshot-v1.9.3-"));
    lab.assert_all_at("v1.9.3");
    assert_eq!(lab.pdb_violations(), 0, "a PodDisruptionBudget was violated");
    assert!(lab.unschedulable("lab-cp3"), "the admin's cordon was lost");
    for node in ["lab-cp1", "lab-cp2", "lab-w1", "lab-w2"] {
        assert!(!lab.unschedulable(node), "{node} left cordoned");
    }
    let pods: Value =
        serde_json::from_str(&lab.kubectl(&["get", "pods", "-l", "app=web", "-o", "json"])).unwrap();
    let running = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .count();
    assert_eq!(running, 4, "web pods not all rescheduled and running: {pods}");

    let again = kup(&lab.inventory, &kup_upgrade_args("v1.9.3", "0.6.0"));
    assert!(
        again.status.success(),
        "second kup upgrade:\n{}",
        output_text(&again)
    );
    assert!(
        output_text(&again).contains("nothing to do"),
        "second run changed something:\n{}",
        output_text(&again)
    );

    // Several minors go one at a time; what cannot work is refused before anything changes.
    let down = kup(&lab.inventory, &["upgrade", "--to", "v1.8.3", "--yes"]);
    assert!(!down.status.success());
    assert!(
        output_text(&down).contains("does not downgrade"),
        "a downgrade went ahead:\n{}",
        output_text(&down)
    );
    let off = kup(
        &lab.inventory,
        &["upgrade", "--to", "v1.11.10", "--via", "v1.12.0", "--yes"],
    );
    assert!(!off.status.success());
    assert!(
        output_text(&off).contains("--via v1.12.0 is not a minor between"),
        "a --via off the way went ahead:\n{}",
        output_text(&off)
    );
}

#[test]
fn kup_stops_at_a_broken_kubelet_then_resumes() {
    let Some(lab) = TestLab::up(LabOptions {
        flavour: "apt",
        from: "1.8.3",
        control_planes: 1,
        workers: 2,
        id: 4,
    }) else {
        return;
    };
    lab.ssh_ok(2, "touch /etc/kup-lab/kubelet-broken");
    let mut args = kup_upgrade_args("v1.9.2", "0.6.0");
    args.extend(["--ready-timeout", "20"]);
    let first = kup(&lab.inventory, &args);
    let log = output_text(&first);
    assert_eq!(first.status.code(), Some(1), "{log}");
    assert!(
        log.contains("lab-w1: step start-services failed") && log.contains("kubelet-broken"),
        "{log}"
    );
    assert!(log.contains("what to do"), "{log}");
    // The rollout stopped there: the next worker was not touched.
    assert_eq!(lab.ssh_ok(3, "dpkg-query -W -f '${Version}' kubelet"), "1.8.3-00");
    assert!(!lab.unschedulable("lab-w2"));

    // Repaired; and a PodDisruptionBudget answers 429 a few times on the next evictions.
    lab.ssh_ok(2, "rm /etc/kup-lab/kubelet-broken");
    let fault = lab.dir.join("fault.json");
    std::fs::write(
        &fault,
        r#"{"method":"POST","path_contains":"/eviction","status":429,"count":3}"#,
    )
    .unwrap();
    lab.kubectl(&["create", "--raw", "/_lab/faults", "-f", &fault.to_string_lossy()]);
    let second = kup(&lab.inventory, &args);
    let log = output_text(&second);
    assert!(second.status.success(), "{log}");
    assert!(log.contains("resuming"), "{log}");
    lab.assert_all_at("v1.9.2");
    assert_eq!(lab.pdb_violations(), 0);
}

#[test]
fn kup_upgrades_an_rpm_lab() {
    let Some(lab) = TestLab::up(LabOptions {
        flavour: "rpm",
        from: "1.8.3",
        control_planes: 1,
        workers: 2,
        id: 7,
    }) else {
        return;
    };
    // The plan's whole --json stream follows the documented schema (docs/kup-events.schema.json).
    let schema = events_schema();
    let plan = kup(&lab.inventory, &["plan", "--to", "v1.9.2", "--json"]);
    let events = validate_stream(
        &schema,
        &String::from_utf8_lossy(&plan.stdout),
        plan.status.code(),
    )
    .unwrap_or_else(|e| panic!("kup plan --json breaks the schema: {e}\n{}", output_text(&plan)));
    assert_eq!(events[0]["event"], "start");
    assert_eq!(
        events[0]["hosts"],
        serde_json::json!(["lab-cp1", "lab-w1", "lab-w2"])
    );
    let report = events.iter().find(|e| e["event"] == "report").unwrap();
    assert_eq!(report["target"], "v1.9.2", "the plan's report names its target");
    // Its kubelet now: the package's version, or the node's when the check could not tell.
    assert!(
        report["hosts"]["lab-w1"]["kubelet_before"]
            .as_str()
            .is_some_and(|v| v.trim_start_matches('v').starts_with("1.8.3")),
        "{}",
        output_text(&plan)
    );
    let blockers = events.iter().find(|e| e["event"] == "blockers").unwrap();
    let last = events.last().unwrap();
    if plan.status.code() == Some(1) {
        // Blocked: every blocker named, and the stream ends with the error that says so.
        assert_eq!(last["event"], "error", "{}", output_text(&plan));
        assert!(
            (last["kind"] == "blocked" && !blockers["blockers"].as_array().unwrap().is_empty())
                || last["kind"] == "failed",
            "{}",
            output_text(&plan)
        );
    } else {
        assert_eq!(plan.status.code(), Some(0), "{}", output_text(&plan));
        assert_eq!(last["event"], "report");
    }
    // No --cni-version: kubelet 1.9.2 requires kubernetes-cni >= 0.6.0 and the node's 0.5.1 is
    // version-locked, so package_pin finds it in the repository's metadata and moves it along.
    let up = kup(
        &lab.inventory,
        &[
            "upgrade",
            "--to",
            "v1.9.2",
            "--retry-delay",
            "1",
            "--yes",
            "--json",
        ],
    );
    assert!(up.status.success(), "{}", output_text(&up));
    assert!(lab
        .ssh_ok(2, "rpm -q kubernetes-cni")
        .contains("kubernetes-cni-0.6.0-0"));
    // The run's whole stream, validated the same way: start, every step-start and step, report.
    let events = validate_stream(&schema, &String::from_utf8_lossy(&up.stdout), up.status.code())
        .unwrap_or_else(|e| panic!("kup upgrade --json breaks the schema: {e}\n{}", output_text(&up)));
    assert_eq!(events[0]["event"], "start");
    assert_eq!(events[0]["command"], "upgrade");
    assert!(events.iter().any(|e| e["event"] == "step-start"));
    let report = events.last().unwrap();
    assert_eq!(report["event"], "report");
    assert_eq!(report["target"], "v1.9.2");
    assert_eq!(report["hosts"]["lab-w1"]["kubelet_after"], "1.9.2-0", "{report}");
    assert_eq!(
        report["hosts"]["lab-w1"]["kubelet_before_from"], "run",
        "{report}"
    );
    assert!(
        report["hosts"]["lab-w1"]["kubelet_before"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.8.3")),
        "{report}"
    );
    lab.assert_all_at("v1.9.2");
    assert!(lab.ssh_ok(2, "rpm -q kubelet").contains("1.9.2-0"));
    // Every node's packages were staged while the control plane's kubeadm ran, and each install
    // took them (signatures checked) instead of downloading; the stage is cleaned up after.
    for host in ["lab-cp1", "lab-w1", "lab-w2"] {
        let staged = events
            .iter()
            .find(|e| e["event"] == "step" && e["step"] == "stage" && e["host"] == host);
        assert!(
            staged.is_some_and(|e| e["status"] == "changed"),
            "{host} not staged: {}",
            output_text(&up)
        );
        let installed = events
            .iter()
            .find(|e| e["event"] == "step" && e["step"] == "packages" && e["host"] == host)
            .unwrap_or_else(|| panic!("no packages step on {host}"));
        assert!(
            installed["msg"]
                .as_str()
                .unwrap_or("")
                .contains("from the staged files"),
            "{host}: {installed}"
        );
    }
    assert_eq!(
        lab.ssh_ok(2, "ls /var/lib/kubeadm-ha-upgrade/staged/ | wc -l")
            .trim(),
        "0"
    );
}

/// 1.34 -> 1.35 on the strict lab, as upstream documents it: each node's pkgs.k8s.io repository
/// switched to v1.35 (one-line and deb822 files), `kubeadm upgrade node` on the second control plane
/// and on the workers (whose 1.34 kubeadm-flags.env holds --pod-infra-container-image, which the
/// 1.35 kubelet refuses), containerd, stacked etcd.
#[test]
fn kup_upgrades_a_modern_lab_one_minor() {
    let Some(lab) = TestLab::up(LabOptions {
        flavour: "apt",
        from: "1.34.2",
        control_planes: 2,
        workers: 2,
        id: 8,
    }) else {
        return;
    };
    // From 1.11 control planes are drained too: the lab's bare pod on lab-cp1 blocks it, and the
    // plan says so (exit 1) until the operator accepts deleting it.
    let plan = kup(&lab.inventory, &["plan", "--to", "v1.35.1"]);
    let text = output_text(&plan);
    assert_eq!(plan.status.code(), Some(1), "{text}");
    assert!(
        text.contains("cannot drain node lab-cp1") && text.contains("default/admin-debug"),
        "{text}"
    );
    let plan = kup(&lab.inventory, &["plan", "--to", "v1.35.1", "--force-drain"]);
    let text = output_text(&plan);
    assert!(plan.status.success(), "{text}");
    assert!(text.contains("switches from v1.34 to v1.35 first"), "{text}");

    let up = kup(
        &lab.inventory,
        &[kup_upgrade_args("v1.35.1", "1.8.0"), vec!["--force-drain"]].concat(),
    );
    let log = output_text(&up);
    assert!(up.status.success(), "{log}");
    // Staged while the control planes' kubeadm ran: every node's install downloaded nothing (apt's
    // own "Need to get 0 B", in the run log's full results).
    let run_log = std::fs::read_to_string(
        lab.inventory
            .with_file_name(".inventory.ini.kup-journal.json.log"),
    )
    .expect("the run log");
    let fetched: Vec<&str> = run_log
        .lines()
        .filter(|l| l.contains("\"step\":\"packages\"") && l.contains("\"fetched\""))
        .collect();
    assert_eq!(fetched.len(), 4, "one install per node:\n{run_log}");
    assert!(
        fetched.iter().all(|l| l.contains("\"fetched\":\"0 B\"")),
        "{fetched:#?}"
    );
    assert!(
        log.contains("kubeadm-node"),
        "the second control plane and the workers should use `kubeadm upgrade node`:\n{log}"
    );
    // A verified snapshot of the lab's real etcd before the first apply, named in the report.
    assert!(
        log.contains("etcd snapshot /var/lib/kubeadm-ha-upgrade/etcd-snapshots/etcd-snapshot-v1.35.1-"),
        "{log}"
    );
    assert!(lab
        .ssh_ok(1, "ls /var/lib/kubeadm-ha-upgrade/etcd-snapshots")
        .contains("etcd-snapshot-v1.35.1-"));
    lab.assert_all_at("v1.35.1");
    for node in 1..=4 {
        assert_eq!(
            lab.ssh_ok(node, "dpkg-query -W -f '${Version}' kubelet"),
            "1.35.1-1.1"
        );
        assert!(
            !lab.ssh_ok(node, "cat /var/lib/kubelet/kubeadm-flags.env")
                .contains("--pod-infra-container-image"),
            "node {node} keeps a flag the 1.35 kubelet refuses"
        );
    }
    assert!(lab
        .ssh_ok(4, "cat /etc/apt/sources.list.d/kubernetes.sources")
        .contains("core:/stable:/v1.35/deb/"));
    assert_eq!(lab.pdb_violations(), 0);

    let again = kup(
        &lab.inventory,
        &[kup_upgrade_args("v1.35.1", "1.8.0"), vec!["--force-drain"]].concat(),
    );
    assert!(again.status.success(), "{}", output_text(&again));
    assert!(
        output_text(&again).contains("nothing to do"),
        "{}",
        output_text(&again)
    );
}

/// A worker whose new kubelet refuses to start (a flag 1.35 removed, left in /etc/default/kubelet
/// where `kubeadm upgrade node` does not look) is rolled back: its 1.34 packages reinstalled from
/// its repository switched back, Ready at v1.34.2, left cordoned, and the rollout stops there. With
/// the fault removed, a rerun upgrades it and finishes.
#[test]
fn kup_rolls_back_a_worker_whose_kubelet_does_not_come_back() {
    let Some(lab) = TestLab::up(LabOptions {
        flavour: "apt",
        from: "1.34.2",
        control_planes: 1,
        workers: 2,
        id: 24,
    }) else {
        return;
    };
    let fault = "echo 'KUBELET_EXTRA_ARGS=--pod-infra-container-image=registry.k8s.io/pause:3.10' > /etc/default/kubelet";
    lab.ssh_ok(2, fault);
    let args = [kup_upgrade_args("v1.35.1", "1.8.0"), vec!["--force-drain"]].concat();
    let up = kup(&lab.inventory, &args);
    let log = output_text(&up);
    assert!(!up.status.success(), "{log}");
    assert!(
        log.contains("kup rolled lab-w1 back to kubelet 1.34.2-1.1: Ready at v1.34.2, left cordoned"),
        "{log}"
    );
    assert_eq!(
        lab.ssh_ok(2, "dpkg-query -W -f '${Version}' kubelet"),
        "1.34.2-1.1"
    );
    assert!(lab
        .ssh_ok(2, "cat /etc/apt/sources.list.d/kubernetes.*")
        .contains("core:/stable:/v1.34/"));
    let node = lab.kubectl(&[
        "get",
        "node",
        "lab-w1",
        "-o",
        "jsonpath={.status.nodeInfo.kubeletVersion} {.spec.unschedulable}",
    ]);
    assert_eq!(node.trim(), "v1.34.2 true", "rolled back and left cordoned");
    // The rollout stopped at lab-w1: the other worker was not touched.
    assert_eq!(
        lab.ssh_ok(3, "dpkg-query -W -f '${Version}' kubelet"),
        "1.34.2-1.1"
    );

    lab.ssh_ok(2, "rm /etc/default/kubelet");
    let again = kup(&lab.inventory, &args);
    assert!(again.status.success(), "{}", output_text(&again));
    lab.assert_all_at("v1.35.1");
    assert_eq!(lab.pdb_violations(), 0);
}
