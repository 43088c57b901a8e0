// Tests: a failed expectation is a failed test, so panicking is their job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! One minor, era by era, with `kup upgrade` on the strict lab, each checked the same way: every
//! node Ready at the target, its packages at the target and held, a pkgs.k8s.io repository at the
//! target's minor, no kubelet flag the target refuses left in `kubeadm-flags.env`, no
//! PodDisruptionBudget violated, and a second run with nothing to do.
//!
//! The 1.13 -> 1.14 hop (the kubeadm package on the legacy repository, `upgrade node
//! experimental-control-plane`, `upgrade node config` on workers) always runs; the others are the
//! slow era hops, run with `KUP_ERA_HOPS=1` (README: "Tests").

use e2e::lab::{LabOptions, TestLab};
use e2e::{kup, output_text};
use lab_standin::kubelet_files;

fn hops_wanted() -> bool {
    let wanted = std::env::var("KUP_ERA_HOPS").is_ok_and(|v| v == "1");
    if !wanted {
        eprintln!("SKIPPED: a slow era hop; run it with KUP_ERA_HOPS=1");
    }
    wanted
}

/// `kup upgrade` of a 2 + 2 lab from `from` to `to`, and the checks every hop shares.
fn hop(flavour: &str, from: &str, to: &str, id: u8) {
    let Some(lab) = TestLab::up(LabOptions {
        flavour,
        from,
        control_planes: 2,
        workers: 2,
        id,
    }) else {
        return;
    };
    let target = format!("v{to}");
    // Control planes are drained from 1.11: the lab's bare pod on lab-cp1 goes (--force-drain).
    let args = [
        "upgrade",
        "--to",
        &target,
        "--retry-delay",
        "1",
        "--force-drain",
        "--yes",
    ];
    let up = kup(&lab.inventory, &args);
    let log = output_text(&up);
    assert!(up.status.success(), "{from} -> {to}:\n{log}");
    lab.assert_all_at(&target);
    let minor: u32 = to.split('.').nth(1).unwrap().parse().unwrap();
    for node in 1..=4 {
        let (versions, holds) = match flavour {
            "apt" => (
                lab.ssh_ok(node, "dpkg-query -W -f '${Version} ' kubelet kubeadm kubectl"),
                lab.ssh_ok(node, "apt-mark showhold"),
            ),
            _ => (
                lab.ssh_ok(node, "rpm -q --qf '%{VERSION} ' kubelet kubeadm kubectl"),
                lab.ssh_ok(node, "dnf -q versionlock list"),
            ),
        };
        assert_eq!(
            versions.split_whitespace().filter(|v| v.starts_with(to)).count(),
            3,
            "node {node}: {versions}"
        );
        for package in ["kubelet", "kubeadm", "kubectl"] {
            assert!(
                holds.contains(package),
                "node {node}: {package} not held: {holds}"
            );
        }
        let flags = lab.ssh_ok(node, "cat /var/lib/kubelet/kubeadm-flags.env 2>/dev/null || true");
        for flag in kubelet_files::parse_flags_env(&flags) {
            assert_eq!(
                kubelet_files::refusal(minor, &flag),
                None,
                "node {node} keeps {flag}"
            );
        }
        if minor >= 24 {
            let definition = lab.ssh_ok(
                node,
                "cat /etc/apt/sources.list.d/kubernetes.* /etc/yum.repos.d/kubernetes.repo 2>/dev/null || true",
            );
            assert!(
                definition.contains(&format!("core:/stable:/v1.{minor}/")),
                "node {node}: {definition}"
            );
        }
    }
    assert_eq!(lab.pdb_violations(), 0, "a PodDisruptionBudget was violated");
    let again = kup(&lab.inventory, &args);
    assert!(again.status.success(), "{}", output_text(&again));
    assert!(
        output_text(&again).contains("nothing to do"),
        "{}",
        output_text(&again)
    );
}

/// 1.10 -> 1.11: kubeadm still downloaded; its first apply reads 1.10's v1alpha1 `nodeName` (kup
/// points it at the first control plane), then stores v1alpha2 without a node name, so the other
/// control planes' applies need no rewrite; every node drained, `upgrade node config` on workers.
#[test]
fn kup_upgrades_1_10_to_1_11() {
    if hops_wanted() {
        hop("apt", "1.10.13", "1.11.10", 20);
    }
}

#[test]
fn kup_upgrades_1_13_to_1_14_with_experimental_control_plane_and_node_config() {
    hop("apt", "1.13.12", "1.14.10", 14);
}

#[test]
fn kup_upgrades_1_26_to_1_27() {
    if hops_wanted() {
        hop("apt", "1.26.15", "1.27.16", 15);
    }
}

#[test]
fn kup_upgrades_1_33_to_1_34_on_rpm() {
    if hops_wanted() {
        hop("rpm", "1.33.1", "1.34.2", 16);
    }
}

/// Several minors in one command: `--to 1.35` on a 1.33 cluster is two rollouts, the latest 1.34
/// (its release channel) then 1.35's; a second run has nothing to do.
fn chained(flavour: &str, id: u8) {
    let Some(lab) = TestLab::up(LabOptions {
        flavour,
        from: "1.33.1",
        control_planes: 1,
        // Two workers: every node is drained, and the web pods' budget needs somewhere to go.
        workers: 2,
        id,
    }) else {
        return;
    };
    let args = [
        "upgrade",
        "--to",
        "1.35",
        "--retry-delay",
        "1",
        "--force-drain",
        "--yes",
    ];
    // A target below the cluster is refused before anything changes.
    let down = kup(&lab.inventory, &["upgrade", "--to", "v1.32.0", "--yes"]);
    assert!(!down.status.success());
    assert!(
        output_text(&down).contains("does not downgrade"),
        "{}",
        output_text(&down)
    );
    let plan = kup(&lab.inventory, &["plan", "--to", "1.35", "--force-drain"]);
    let text = output_text(&plan);
    assert!(plan.status.success(), "{text}");
    assert!(
        text.contains("2 rollouts, one minor at a time: v1.34.2 -> v1.35.1"),
        "{text}"
    );
    let up = kup(&lab.inventory, &args);
    let log = output_text(&up);
    assert!(up.status.success(), "{log}");
    assert!(
        log.contains("hop 1/2: v1.34.2") && log.contains("hop 2/2: v1.35.1"),
        "{log}"
    );
    lab.assert_all_at("v1.35.1");
    let sources =
        "cat /etc/apt/sources.list.d/kubernetes.* /etc/yum.repos.d/kubernetes.repo 2>/dev/null || true";
    for node in 1..=3 {
        assert!(
            lab.ssh_ok(node, sources).contains("core:/stable:/v1.35/"),
            "node {node}"
        );
    }
    let again = kup(&lab.inventory, &args);
    assert!(again.status.success(), "{}", output_text(&again));
    assert!(
        output_text(&again).contains("nothing to do"),
        "{}",
        output_text(&again)
    );
}

#[test]
fn kup_upgrades_1_33_to_1_35_in_one_command() {
    chained("apt", 22);
}

#[test]
fn kup_upgrades_1_33_to_1_35_in_one_command_on_rpm() {
    if hops_wanted() {
        chained("rpm", 23);
    }
}
