// Tests: a failed expectation is a failed test, so panicking is their job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The strict lab, seen with the real tools on its nodes (apt-get, systemd, journalctl): the next
//! minor's packages appear only after the repository switch, a kubelet refuses the flags its release
//! removed until `kubeadm upgrade node` cleans them, and kubeadm subcommands exist only in their
//! releases. The upgrade is done by hand here, as the kubernetes.io pages say, step by step.

use e2e::lab::{LabOptions, TestLab};
use std::time::{Duration, Instant};

const STANDIN: &str = "/usr/local/lib/kup-lab/standin";

/// Polls `command` on `node` until its output contains `want`.
fn wait_output(lab: &TestLab, node: u8, command: &str, want: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let out = lab.ssh(node, command);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if text.contains(want) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "`{command}` on node {node} never said {want:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn switch_repository(lab: &TestLab, node: u8, from: &str, to: &str) {
    lab.ssh_ok(
        node,
        &format!(
            "sed -i 's#core:/stable:/{from}/#core:/stable:/{to}/#' /etc/apt/sources.list.d/kubernetes.* && apt-get update -qq"
        ),
    );
}

fn install(lab: &TestLab, node: u8, packages: &str) -> std::process::Output {
    lab.ssh(
        node,
        &format!(
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-change-held-packages {packages}"
        ),
    )
}

#[test]
fn a_kubelet_refuses_flags_its_release_removed_until_kubeadm_upgrade_node_cleans_them() {
    let Some(lab) = TestLab::up(LabOptions {
        flavour: "apt",
        from: "1.34.2",
        control_planes: 1,
        workers: 1,
        id: 10,
    }) else {
        return;
    };
    // The nodes were provisioned as the install guide says: one-line and deb822 definitions.
    assert!(lab
        .ssh_ok(1, "cat /etc/apt/sources.list.d/kubernetes.list")
        .contains("signed-by="));
    assert!(lab
        .ssh_ok(2, "cat /etc/apt/sources.list.d/kubernetes.sources")
        .contains("Signed-By:"));
    assert!(lab
        .ssh_ok(2, "cat /var/lib/kubelet/kubeadm-flags.env")
        .contains("--pod-infra-container-image"));

    // Before the switch the next minor is simply not there.
    let early = install(&lab, 1, "kubeadm=1.35.1-1.1");
    assert!(
        !early.status.success(),
        "1.35 installed from the v1.34 repository"
    );
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("Version '1.35.1-1.1' for 'kubeadm' was not found"),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );

    // The control plane first: its kubeadm, then `upgrade apply`.
    switch_repository(&lab, 1, "v1.34", "v1.35");
    let kubeadm = install(&lab, 1, "kubeadm=1.35.1-1.1");
    assert!(
        kubeadm.status.success(),
        "{}",
        String::from_utf8_lossy(&kubeadm.stderr)
    );
    // A kubeadm that fails after moving the first manifest leaves a half-upgraded control plane;
    // running it again repairs it. The slow switch makes each run wait, healthy.
    lab.ssh_ok(
        1,
        "echo 0.5 > /etc/kup-lab/kubeadm-slow && touch /etc/kup-lab/kubeadm-fail-midway-once",
    );
    let half = lab.ssh(1, "kubeadm upgrade apply v1.35.1 -y");
    assert!(!half.status.success(), "the midway fault did not fail the apply");
    let image = |component: &str| {
        lab.ssh_ok(
            1,
            &format!("grep 'image:' /etc/kubernetes/manifests/{component}.yaml"),
        )
    };
    assert!(image("kube-apiserver").contains("v1.35.1"));
    assert!(
        image("kube-controller-manager").contains("v1.34.2"),
        "not half-upgraded"
    );
    let apply = lab.ssh_ok(1, "kubeadm upgrade apply v1.35.1 -y");
    assert!(apply.contains("SUCCESS"), "{apply}");
    assert!(
        apply.contains("Waiting for the restarted static pods (lab: 0.5 s)"),
        "{apply}"
    );
    assert!(image("kube-controller-manager").contains("v1.35.1"));
    lab.ssh_ok(1, "rm /etc/kup-lab/kubeadm-slow");
    assert!(lab
        .ssh_ok(1, "ls /etc/kubernetes/tmp")
        .contains("kubeadm-backup-etcd-"));

    // The worker's kubelet moves without `kubeadm upgrade node`: 1.35 has no --pod-infra-container-image.
    switch_repository(&lab, 2, "v1.34", "v1.35");
    let kubelet = install(&lab, 2, "kubelet=1.35.1-1.1");
    assert!(
        kubelet.status.success(),
        "{}",
        String::from_utf8_lossy(&kubelet.stderr)
    );
    lab.ssh_ok(2, "systemctl daemon-reload && systemctl restart kubelet");
    wait_output(
        &lab,
        2,
        "journalctl -u kubelet --no-pager -n 20",
        "failed to parse kubelet flag: unknown flag: --pod-infra-container-image",
        Duration::from_secs(30),
    );
    assert_ne!(
        String::from_utf8_lossy(&lab.ssh(2, "systemctl is-active kubelet").stdout).trim(),
        "active"
    );

    // `kubeadm upgrade node` of the target cleans the flags; systemd's restart brings it back.
    let kubeadm = install(&lab, 2, "kubeadm=1.35.1-1.1");
    assert!(
        kubeadm.status.success(),
        "{}",
        String::from_utf8_lossy(&kubeadm.stderr)
    );
    let node = lab.ssh_ok(2, "kubeadm upgrade node");
    assert!(node.contains("successfully updated"), "{node}");
    assert_eq!(
        lab.ssh_ok(2, "cat /var/lib/kubelet/kubeadm-flags.env").trim(),
        "KUBELET_KUBEADM_ARGS=\"\""
    );
    lab.wait_node("lab-w1", "v1.35.1", Duration::from_secs(60));

    // Subcommands exist only in their releases, as the real CLI refuses them.
    let old = lab.ssh(2, &format!("{STANDIN} kubeadm v1.13.12 upgrade node"));
    assert!(!old.status.success(), "a 1.13 `kubeadm upgrade node` ran");
    let config = lab.ssh(
        2,
        &format!("{STANDIN} kubeadm v1.35.1 upgrade node config --kubelet-version v1.35.1"),
    );
    assert!(
        String::from_utf8_lossy(&config.stderr).contains("unknown flag: --kubelet-version"),
        "{}",
        String::from_utf8_lossy(&config.stderr)
    );

    // A kubelet newer than the API server does not start (the version skew policy).
    let skew = lab.ssh(
        2,
        &format!(
            "{STANDIN} kubelet v1.36.0 --kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml"
        ),
    );
    assert!(!skew.status.success());
    assert!(
        String::from_utf8_lossy(&skew.stderr).contains("newer than the API server"),
        "{}",
        String::from_utf8_lossy(&skew.stderr)
    );
}

/// A patch published after the nodes were provisioned (`kup-lab up --withhold`, then `kup-lab
/// publish`) is only seen once the node refreshes its index, as with apt.kubernetes.io and pkgs.k8s.io.
/// kup's plan judges every node's packages from a fresh, private copy of its repository's index
/// (so it sees the patch without touching the node's own index), the preflight of `kup upgrade`
/// asks apt itself before anything changes and names the node that would refuse, and the run
/// refreshes the index before judging the packages, so the patch upgrade goes through.
#[test]
fn a_patch_published_after_provisioning_is_seen_only_after_an_index_refresh() {
    let Some(lab) = TestLab::up_with(
        LabOptions {
            flavour: "apt",
            from: "1.35.0",
            control_planes: 1,
            // Two workers: every node is drained, and the web pods' budget needs somewhere to go.
            workers: 2,
            id: 13,
        },
        &["--withhold", "1.35.1"],
    ) else {
        return;
    };
    let hosts = ["lab-cp1", "lab-w1", "lab-w2"];
    let plan_args = ["plan", "--to", "v1.35.1", "--force-drain"];
    // Not published: the plan is blocked, naming every node and what its repository offers.
    let plan = e2e::kup(&lab.inventory, &plan_args);
    let text = e2e::output_text(&plan);
    assert_eq!(plan.status.code(), Some(1), "{text}");
    for host in hosts {
        assert!(
            text.contains(&format!("{host}: package_pin: "))
                && text.contains("kubelet 1.35.1 is not offered"),
            "{host}: {text}"
        );
    }
    let simulate = "apt-get install -s --allow-change-held-packages kubelet=1.35.1-1.1";
    let before = lab.ssh(1, simulate);
    assert!(!before.status.success(), "1.35.1 offered before it was published");
    let publish = std::process::Command::new(e2e::dist().join("kup-lab"))
        .args(["publish", "--dir"])
        .arg(&lab.dir)
        .arg("1.35.1")
        .output()
        .unwrap();
    assert!(publish.status.success(), "{}", e2e::output_text(&publish));
    let stale = lab.ssh(1, simulate);
    assert!(!stale.status.success(), "seen without refreshing the index");
    // The plan sees the patch from its own fresh index, and leaves the nodes' index as it was.
    let plan = e2e::kup(&lab.inventory, &plan_args);
    assert!(plan.status.success(), "{}", e2e::output_text(&plan));
    assert!(
        !lab.ssh(1, simulate).status.success(),
        "the plan refreshed the node's own index"
    );

    // A node whose packages cannot resolve (a dependency the new kubelet declares is gone, and no
    // repository offers it): the upgrade stops in its preflight, naming the node and apt's
    // reason, before any node is touched.
    lab.ssh_ok(
        3,
        "cp /var/lib/dpkg/status /root/dpkg-status.kept && dpkg --remove --force-depends conntrack",
    );
    let up_args = [
        "upgrade",
        "--to",
        "v1.35.1",
        "--retry-delay",
        "1",
        "--force-drain",
        "--yes",
    ];
    let refused = e2e::kup(&lab.inventory, &up_args);
    let text = e2e::output_text(&refused);
    assert!(!refused.status.success(), "{text}");
    assert!(
        text.contains("lab-w2: apt would refuse the transaction") && text.contains("Depends: conntrack"),
        "{text}"
    );
    assert!(!text.contains("lab-w1: apt would refuse"), "{text}");
    lab.assert_all_at("v1.35.0");
    let unschedulable = lab.kubectl(&["get", "nodes", "-o", "jsonpath={.items[*].spec.unschedulable}"]);
    assert!(
        !unschedulable.contains("true"),
        "a node was taken out: {unschedulable}"
    );

    // The dependency back: kup refreshes the repository's index before it judges the packages,
    // and the patch upgrade goes.
    lab.ssh_ok(3, "cp /root/dpkg-status.kept /var/lib/dpkg/status");

    // --limit: the plan says what stays behind, the upgrade touches only the named hosts.
    let limited_plan = e2e::kup(
        &lab.inventory,
        &[&plan_args[..], &["--limit", "control_plane,lab-w1"]].concat(),
    );
    let text = e2e::output_text(&limited_plan);
    assert!(limited_plan.status.success(), "{text}");
    assert!(text.contains("outside --limit"), "{text}");
    let limited = e2e::kup(
        &lab.inventory,
        &[&up_args[..], &["--limit", "control_plane,lab-w1"]].concat(),
    );
    assert!(limited.status.success(), "{}", e2e::output_text(&limited));
    let kubelet = "dpkg-query -W -f '${Version}' kubelet";
    assert_eq!(lab.ssh_ok(2, kubelet), "1.35.1-1.1");
    assert_eq!(lab.ssh_ok(3, kubelet), "1.35.0-1.1", "lab-w2 was outside --limit");

    let up = e2e::kup(&lab.inventory, &up_args);
    assert!(up.status.success(), "{}", e2e::output_text(&up));
    lab.assert_all_at("v1.35.1");
}
