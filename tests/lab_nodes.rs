#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The lab for real (issue: the lab), and the host modules on its nodes (issue: host modules):
//! one apt lab and one rpm lab, each brought up, exercised over real ssh and real kubectl, and taken
//! down leaving nothing behind.

use e2e::lab::{leftovers, LabOptions, TestLab};
use serde_json::{json, Value};
use std::time::Duration;

const MODULES: &[&str] = &[
    "package_pin",
    "service_state",
    "kubeadm_upgrade",
    "kubeadm_download",
    "upgrade_preflight",
];

/// Runs a module four times: check, apply, check, apply; returns the four results.
fn four_runs(lab: &TestLab, node: u8, module: &str, args: &Value) -> [Value; 4] {
    let with = |extra: Value| {
        let mut a = args.clone();
        a.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        a
    };
    let check = json!({"_ansible_check_mode": true, "_ansible_diff": true});
    let runs = [
        lab.module(node, module, &with(check.clone())),
        lab.module(node, module, &with(json!({"_ansible_diff": true}))),
        lab.module(node, module, &with(check)),
        lab.module(node, module, args),
    ];
    let changed: Vec<bool> = runs.iter().map(|r| r["changed"] == true).collect();
    for r in &runs {
        assert_eq!(r["failed"], false, "{module} failed: {r}");
    }
    assert_eq!(
        changed,
        [true, true, false, false],
        "{module} check/apply/check/apply: {runs:?}"
    );
    assert!(
        runs[0].get("diff").is_some() && runs[1].get("diff").is_some(),
        "{module}: no diff in diff mode"
    );
    runs
}

#[test]
fn apt_lab_nodes_and_host_modules() {
    let Some(lab) = TestLab::up(LabOptions {
        flavour: "apt",
        from: "1.8.3",
        control_planes: 2,
        workers: 1,
        id: 1,
    }) else {
        return;
    };
    let (dir, bridge) = (lab.dir.clone(), lab.bridge.clone());

    // Every node is Ready at the starting version, as real kubectl sees it; real ssh reaches each.
    let nodes = lab.nodes();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    for (name, ready, version) in &nodes {
        assert!(
            *ready && version == "v1.8.3",
            "{name}: ready={ready} version={version}"
        );
    }
    for (n, name) in [(1, "lab-cp1"), (2, "lab-cp2"), (3, "lab-w1")] {
        assert_eq!(lab.ssh_ok(n, "hostname").trim(), name);
        assert_eq!(
            lab.ssh_ok(n, "systemctl is-active kubelet docker")
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["active", "active"]
        );
    }
    assert!(lab.ssh_ok(1, "systemctl is-active keepalived").contains("active"));
    let inventory = std::fs::read_to_string(&lab.inventory).unwrap();
    // The control planes in order, each naming its own member of the external etcd (1.9 HA guide).
    assert!(
        inventory.contains(
            "[control_plane]\nlab-cp1 ansible_host=10.213.101.11 etcd_endpoint=https://10.213.101.11:2379 "
        ) && inventory
            .contains("\nlab-cp2 ansible_host=10.213.101.12 etcd_endpoint=https://10.213.101.12:2379 ")
            && inventory.contains("\n[workers]\nlab-w1 ansible_host=10.213.101.13\n"),
        "{inventory}"
    );

    // Before the control plane moves, a 1.9 kubelet is newer than the API server: it does not start
    // (the version skew policy), and says so in its journal.
    lab.ssh_ok(
        3,
        "apt-mark unhold kubelet kubeadm kubernetes-cni >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install \
         -y -qq kubelet=1.9.2-00 kubeadm=1.9.2-00 kubernetes-cni=0.6.0-00 >/dev/null && systemctl daemon-reload \
         && systemctl restart kubelet",
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !lab
        .ssh_ok(3, "journalctl -u kubelet --no-pager -n 20")
        .contains("is newer than the API server v1.8.3")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the 1.9 kubelet ran against a 1.8 API server"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    for n in 1..=3 {
        lab.install_modules(n, MODULES);
    }

    // kubeadm_upgrade on the primary: download the target's kubeadm, plan, apply (four runs).
    let dl = lab.module(
        1,
        "kubeadm_download",
        &json!({"version": "v1.9.2", "base_url": lab.release_url()}),
    );
    assert_eq!(dl["changed"], true, "{dl}");
    // Before proceeding: on the real node, with its /etc/kubernetes/admin.conf.
    let ready = lab.module(1, "upgrade_preflight", &json!({"version": "v1.9.2"}));
    assert_eq!(ready["failed"], false, "{ready}");
    assert_eq!(ready["checks"].as_array().unwrap().len(), 8, "{ready}");
    // An external etcd (the runbook's): no local data for kubeadm to copy.
    assert!(
        ready["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "etcd_backup"
                && c["detail"].as_str().unwrap().starts_with("no local etcd here")),
        "{ready}"
    );
    let skipping = lab.module(1, "upgrade_preflight", &json!({"version": "v1.10.13"}));
    assert!(
        skipping["msg"]
            .as_str()
            .unwrap()
            .contains("skips a minor version"),
        "{skipping}"
    );
    let plan = lab.module(1, "kubeadm_upgrade", &json!({"action": "plan"}));
    assert_eq!(plan["target"], "v1.9.2", "{plan}");
    assert_eq!(
        plan["components"][0],
        json!({"name": "API Server", "current": "v1.8.3", "available": "v1.9.2"})
    );
    let skip = lab.module(
        1,
        "kubeadm_upgrade",
        &json!({"action": "apply", "version": "v1.10.13"}),
    );
    assert!(
        skip["msg"]
            .as_str()
            .unwrap()
            .contains("one minor version at a time"),
        "{skip}"
    );
    four_runs(
        &lab,
        1,
        "kubeadm_upgrade",
        &json!({"action": "apply", "version": "v1.9.2"}),
    );
    assert!(lab
        .kubectl(&["version", "-o", "json"])
        .contains("\"gitVersion\": \"v1.9.2\""));

    // Now an upgrade of one node's packages by hand, with apt: the new kubelet reports the new version.
    // kubelet alone cannot move: the held 1.8 kubeadm wants kubernetes-cni (= 0.5.1)
    // (kubernetes/kubernetes issue #57334), as apt says.
    let alone = lab.ssh(
        2,
        "apt-mark unhold kubelet kubernetes-cni >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y \
         kubelet=1.9.2-00 kubernetes-cni=0.6.0-00",
    );
    let said = e2e::output_text(&alone);
    assert!(
        !alone.status.success(),
        "kubelet 1.9 installed beside a held kubeadm 1.8"
    );
    assert!(
        said.contains("kubeadm : Depends: kubernetes-cni (= 0.5.1)"),
        "{said}"
    );
    lab.ssh_ok(2, "apt-mark hold kubelet kubernetes-cni >/dev/null");
    lab.wait_node("lab-w1", "v1.9.2", Duration::from_secs(30));

    // package_pin on the second control plane: four runs, then what it did, for real.
    let runs = four_runs(
        &lab,
        2,
        "package_pin",
        &json!({"version": "1.9.2", "cni_version": "0.6.0"}),
    );
    assert_eq!(runs[1]["manager"], "apt");
    assert_eq!(runs[1]["packages"][0]["before"], "1.8.3-00");
    assert_eq!(runs[1]["packages"][0]["after"], "1.9.2-00");
    let installed = lab.ssh_ok(
        2,
        "dpkg-query -W -f '${Package}=${Version} ' kubelet kubeadm kubectl kubernetes-cni",
    );
    assert_eq!(
        installed.trim(),
        "kubeadm=1.9.2-00 kubectl=1.9.2-00 kubelet=1.9.2-00 kubernetes-cni=0.6.0-00"
    );
    assert_eq!(lab.ssh_ok(2, "apt-mark showhold").split_whitespace().count(), 4);
    let down = lab.module(2, "package_pin", &json!({"version": "1.8.3"}));
    assert_eq!(down["failed"], true);
    assert!(
        down["msg"].as_str().unwrap().contains("refusing to downgrade"),
        "{down}"
    );
    let missing = lab.module(2, "package_pin", &json!({"version": "1.9.9"}));
    assert!(
        missing["msg"]
            .as_str()
            .unwrap()
            .contains("available: 1.8.3-00, 1.9.2-00"),
        "{missing}"
    );
    // A transaction that fails (apt's dpkg pre-invoke hook refuses) leaves versions and holds as they were.
    lab.ssh_ok(
        2,
        "echo 'DPkg::Pre-Invoke {\"/bin/false\";};' > /etc/apt/apt.conf.d/99kup-test-fail",
    );
    let bad = lab.module(2, "package_pin", &json!({"version": "1.9.3"}));
    assert_eq!(bad["failed"], true, "{bad}");
    assert!(
        bad["msg"]
            .as_str()
            .unwrap()
            .contains("previous versions and holds are still in place"),
        "{bad}"
    );
    assert_eq!(lab.ssh_ok(2, "dpkg-query -W -f '${Version}' kubelet"), "1.9.2-00");
    assert_eq!(lab.ssh_ok(2, "apt-mark showhold").split_whitespace().count(), 4);
    lab.ssh_ok(2, "rm /etc/apt/apt.conf.d/99kup-test-fail");

    // service_state: the runbook's stop, then start in reverse order; the new kubelet comes back.
    let units = json!(["keepalived", "kubelet", "docker"]);
    let stop = four_runs(
        &lab,
        2,
        "service_state",
        &json!({"units": units, "state": "stopped"}),
    );
    assert_eq!(
        stop[1]["daemon_reloaded"], true,
        "the kubelet package changed its unit file: {}",
        stop[1]
    );
    assert_eq!(lab.ssh(2, "systemctl is-active kubelet").status.code(), Some(3));
    let start = four_runs(
        &lab,
        2,
        "service_state",
        &json!({"units": units, "state": "started"}),
    );
    assert!(
        start[1]["msg"]
            .as_str()
            .unwrap()
            .starts_with("started docker.service, started kubelet.service, started keepalived"),
        "{}",
        start[1]
    );
    lab.wait_node("lab-cp2", "v1.9.2", Duration::from_secs(30));
    // A worker has no keepalived: ignored by default, an error when asked.
    let worker = lab.module(3, "service_state", &json!({"units": units, "state": "started"}));
    assert_eq!(worker["changed"], false, "{worker}");
    assert_eq!(worker["missing"], json!(["keepalived.service"]));
    let strict = lab.module(
        3,
        "service_state",
        &json!({"units": units, "state": "started", "missing": "fail"}),
    );
    assert!(
        strict["msg"]
            .as_str()
            .unwrap()
            .contains("no such unit: keepalived.service"),
        "{strict}"
    );
    // A kubelet that cannot start fails the module with its journal.
    lab.ssh_ok(3, "systemctl stop kubelet && touch /etc/kup-lab/kubelet-broken");
    let broken = lab.module(
        3,
        "service_state",
        &json!({"units": ["kubelet"], "state": "started"}),
    );
    assert_eq!(broken["failed"], true, "{broken}");
    assert!(
        broken["journal"].as_str().unwrap().contains("kubelet-broken"),
        "{broken}"
    );
    lab.ssh_ok(3, "rm /etc/kup-lab/kubelet-broken");
    let repaired = lab.module(
        3,
        "service_state",
        &json!({"units": ["kubelet"], "state": "restarted"}),
    );
    assert_eq!(repaired["failed"], false, "{repaired}");
    // Unit state is read over D-Bus; the systemctl fallback must read exactly the same.
    lab.ssh_ok(3, "systemctl stop docker");
    let mixed = json!({"units": ["kubelet", "docker", "nosuch", "dbus.socket"], "state": "restarted",
                       "enabled": false, "_ansible_check_mode": true, "_ansible_diff": true});
    let over_bus = lab.module(3, "service_state", &mixed);
    let over_systemctl = lab.module_with_env(3, "service_state", "KUP_SYSTEMD_BACKEND=systemctl", &mixed);
    assert_eq!(over_bus, over_systemctl);
    assert!(
        over_bus.get("warnings").is_none(),
        "the bus was not used: {over_bus}"
    );
    assert_eq!(over_bus["missing"], json!(["nosuch.service"]), "{over_bus}");
    assert!(
        over_bus["msg"]
            .as_str()
            .unwrap()
            .contains("would disable kubelet.service"),
        "{over_bus}"
    );
    assert_eq!(
        over_bus["diff"]["before"]["docker.service"], "inactive",
        "{over_bus}"
    );
    lab.ssh_ok(3, "systemctl start docker");

    // The secondary: with kubeadm-config still naming the primary, the old kubeadm's apply fails
    // (as in the runbook); once nodeName names it, a flaky first attempt is retried and succeeds.
    let dl = lab.module(
        2,
        "kubeadm_download",
        &json!({"version": "v1.9.2", "base_url": lab.release_url()}),
    );
    assert_eq!(dl["failed"], false, "{dl}");
    let stale = lab.module(
        2,
        "kubeadm_upgrade",
        &json!({"action": "apply", "version": "v1.9.2", "retries": 0}),
    );
    assert_eq!(stale["failed"], true, "{stale}");
    assert!(
        stale["msg"]
            .as_str()
            .unwrap()
            .contains("timed out waiting for the condition"),
        "{stale}"
    );
    set_node_name(&lab, "lab-cp2");
    lab.ssh_ok(2, "touch /etc/kup-lab/kubeadm-fail-once");
    let flaky = lab.module(
        2,
        "kubeadm_upgrade",
        &json!({"action": "apply", "version": "v1.9.2", "retry_delay": 1}),
    );
    assert_eq!(flaky["changed"], true, "{flaky}");
    assert_eq!(flaky["attempts"].as_array().unwrap().len(), 2, "{flaky}");
    assert!(lab
        .ssh_ok(2, "cat /etc/kubernetes/manifests/kube-apiserver.yaml")
        .contains("kube-apiserver-amd64:v1.9.2"));

    drop(lab);
    let left = leftovers(&dir, &bridge);
    assert!(left.is_empty(), "kup-lab down left: {left:?}");
}

/// What the runbook does with sed and `kubectl apply --force` (the module for it is
/// kubeadm_config_nodename): point kubeadm-config's nodeName at `node`.
fn set_node_name(lab: &TestLab, node: &str) {
    let mut cm: Value = serde_json::from_str(&lab.kubectl(&[
        "get",
        "cm",
        "-n",
        "kube-system",
        "kubeadm-config",
        "-o",
        "json",
    ]))
    .unwrap();
    let text = cm["data"]["MasterConfiguration"].as_str().unwrap().to_string();
    let rewritten: String = text
        .lines()
        .map(|l| {
            if l.starts_with("nodeName:") {
                format!("nodeName: {node}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_ne!(text, rewritten, "no nodeName line in {text}");
    cm["data"]["MasterConfiguration"] = json!(rewritten);
    let file = lab.dir.join("kubeadm-config.json");
    std::fs::write(&file, cm.to_string()).unwrap();
    lab.kubectl(&["replace", "--validate=false", "-f", &file.to_string_lossy()]);
}

#[test]
fn rpm_lab_nodes_and_package_pin_with_dnf() {
    let Some(lab) = TestLab::up(LabOptions {
        flavour: "rpm",
        from: "1.8.3",
        control_planes: 1,
        workers: 1,
        id: 2,
    }) else {
        return;
    };
    let (dir, bridge) = (lab.dir.clone(), lab.bridge.clone());
    let nodes = lab.nodes();
    assert_eq!(nodes.len(), 2);
    assert!(
        nodes.iter().all(|(_, ready, v)| *ready && v == "v1.8.3"),
        "{nodes:?}"
    );
    assert!(lab.ssh_ok(2, "cat /etc/os-release").contains("ID=\"centos\""));
    assert!(lab.ssh_ok(2, "rpm -q kubelet").contains("kubelet-1.8.3-0"));

    // The control plane first (the target's kubeadm, as the runbook downloads it), then the worker
    // by hand with yum (dnf underneath), past the repository's exclude= as the install guide does.
    let apply = lab.ssh_ok(
        1,
        "/usr/local/lib/kup-lab/standin kubeadm v1.9.2 upgrade apply v1.9.2 -y",
    );
    assert!(apply.contains("SUCCESS"), "{apply}");
    lab.ssh_ok(
        2,
        "yum install -y -q --disableexcludes=kubernetes kubelet-1.9.2-0 kubeadm-1.9.2-0 kubernetes-cni-0.6.0-0 && \
         systemctl daemon-reload && systemctl restart kubelet",
    );
    lab.wait_node("lab-w1", "v1.9.2", Duration::from_secs(30));

    lab.install_modules(1, &["package_pin"]);
    let runs = four_runs(
        &lab,
        1,
        "package_pin",
        &json!({"version": "1.9.2", "cni_version": "0.6.0"}),
    );
    assert_eq!(runs[1]["manager"], "dnf");
    assert_eq!(runs[1]["packages"][0]["after"], "1.9.2-0");
    assert!(lab.ssh_ok(1, "rpm -q kubeadm").contains("kubeadm-1.9.2-0"));
    let locks = lab.ssh_ok(1, "dnf -q versionlock list");
    assert!(
        locks.contains("kubelet-0:1.9.2-0") && locks.contains("kubernetes-cni-0:0.6.0-0"),
        "{locks}"
    );

    drop(lab);
    let left = leftovers(&dir, &bridge);
    assert!(left.is_empty(), "kup-lab down left: {left:?}");
}
