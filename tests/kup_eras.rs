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

fn hops_wanted() -> bool {
    e2e::slow_runs_wanted()
}

/// `kup upgrade` of a 2 + 2 lab from `from` to `to`, and the checks every hop shares.
fn hop(flavour: &str, from: &str, to: &str, id: u8) {
    hop_on(flavour, from, to, id, &[], &[]);
}

/// [`hop`] on a lab brought up with `lab_args`, kup given `kup_args` too; the lab, for more checks.
fn hop_on(
    flavour: &str,
    from: &str,
    to: &str,
    id: u8,
    lab_args: &[&str],
    kup_args: &[&str],
) -> Option<TestLab> {
    let lab = TestLab::up_with(
        LabOptions {
            flavour,
            from,
            control_planes: 2,
            workers: 2,
            id,
        },
        lab_args,
    )?;
    let target = format!("v{to}");
    // Control planes are drained from 1.11: the lab's bare pod on lab-cp1 goes (--force-drain).
    let mut args = vec![
        "upgrade",
        "--to",
        &target,
        "--retry-delay",
        "1",
        "--force-drain",
        "--yes",
    ];
    args.extend_from_slice(kup_args);
    let up = kup(&lab.inventory, &args);
    let log = output_text(&up);
    assert!(up.status.success(), "{from} -> {to}:\n{log}");
    lab.assert_all_at(&target);
    lab.assert_packages_at(to);
    assert_eq!(lab.pdb_violations(), 0, "a PodDisruptionBudget was violated");
    let again = kup(&lab.inventory, &args);
    assert!(again.status.success(), "{}", output_text(&again));
    assert!(
        output_text(&again).contains("nothing to do"),
        "{}",
        output_text(&again)
    );
    Some(lab)
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

/// The 1.11 -> 1.12 and 1.12 -> 1.13 HA pages on a stacked etcd (`kup-lab up --etcd stacked`: the 1.11
/// HA guide's members, whose flags kubeadm-config's `extraArgs` name): kup edits kubeadm-config before
/// each control plane's kubeadm as the pages ask (the lab's kubeadm refuses without the edits), in one
/// command through 1.12.9 (the last 1.12 package whose kubeadm did not need a 1.13 kubelet) to 1.13;
/// etcd stays one healthy cluster, and a second run has nothing to do.
#[test]
fn kup_upgrades_a_stacked_etcd_cluster_from_1_11_through_1_12_to_1_13() {
    let Some(lab) = hop_on(
        "apt",
        "1.11.10",
        "1.13.12",
        32,
        &["--etcd", "stacked"],
        &["--via", "v1.12.9"],
    ) else {
        return;
    };
    let config = lab.kubeadm_config();
    let cluster = config["ClusterConfiguration"].as_str().unwrap_or_default();
    assert!(cluster.contains("kubernetesVersion: v1.13.12"), "{cluster}");
    // 1.13's page: the etcd section's per-node flags are gone (kubeadm writes each member's itself).
    assert!(
        !cluster.contains("extraArgs:\n      advertise-client-urls"),
        "{cluster}"
    );
    assert!(!cluster.contains("initial-cluster"), "{cluster}");
    let status = config["ClusterStatus"].as_str().unwrap_or_default();
    for n in 1..=2 {
        assert!(status.contains(&format!("lab-cp{n}:")), "{status}");
        assert!(status.contains(&lab.address(n)), "{status}");
    }
    // 1.12's page: the other control plane annotated with its CRI socket.
    let annotations = lab.kubectl(&["get", "node", "lab-cp2", "-o", "jsonpath={.metadata.annotations}"]);
    assert!(
        annotations.contains("kubeadm.alpha.kubernetes.io/cri-socket"),
        "{annotations}"
    );
    // etcd: both members healthy, as one cluster.
    let pki = "/etc/kubernetes/pki/etcd";
    let health = lab.ssh_ok(
        1,
        &format!(
            "ETCDCTL_API=3 etcdctl --endpoints=https://{}:2379,https://{}:2379 --cacert={pki}/ca.crt \
             --cert={pki}/healthcheck-client.crt --key={pki}/healthcheck-client.key endpoint health -w json",
            lab.address(1),
            lab.address(2)
        ),
    );
    assert_eq!(health.matches("\"health\":true").count(), 2, "{health}");
}

/// The 1.11 -> 1.12 HA page on an external etcd (the old labs' default): every control plane gets
/// a root-only copy of 1.11's MasterConfiguration with its own advertiseAddress before the first
/// apply, and `kubeadm upgrade apply --config` with it (the lab's kubeadm 1.12 refuses without).
#[test]
fn kup_upgrades_an_external_etcd_cluster_from_1_11_to_1_12_with_its_config_file() {
    if !hops_wanted() {
        return;
    }
    let Some(lab) = hop_on("apt", "1.11.10", "1.12.9", 33, &[], &[]) else {
        return;
    };
    for n in 1..=2 {
        let file = lab.ssh_ok(
            n,
            "stat -c '%a %U' /etc/kubernetes/kubeadm-upgrade-config.yaml && \
             cat /etc/kubernetes/kubeadm-upgrade-config.yaml",
        );
        assert!(file.starts_with("600 root"), "node {n}: {file}");
        assert!(file.contains("kind: MasterConfiguration"), "node {n}: {file}");
        assert!(
            file.contains(&format!("advertiseAddress: {}", lab.address(n))),
            "node {n}: {file}"
        );
    }
}
