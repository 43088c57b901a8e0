// Tests: a failed expectation is a failed test, so panicking is their job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A lab that fails the way real releases fail: the container runtime owns a control plane's static
//! pods (stopping dockerd stops them, stopping containerd does not), keepalived holds the virtual
//! address that clients use (a stopped holder moves it, with none running it refuses connections),
//! a kubelet moving to a new minor restarts its static pods, and from 1.28 the addons (kube-proxy,
//! CoreDNS) wait for the last control plane's `kubeadm upgrade node`. Everything is done by hand on
//! the nodes over real ssh and read back from the lab API server with real kubectl.

use e2e::lab::{LabOptions, TestLab};
use serde_json::Value;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Both tests use lab id 11: one lab at a time.
static LAB: Mutex<()> = Mutex::new(());

/// What the lab API server counts: control planes' availability, the virtual address (read at the
/// server's own address, which answers while nobody holds the virtual one).
fn services(lab: &TestLab) -> Value {
    serde_json::from_str(&lab.kubectl_direct(&["get", "--raw", "/_lab/control-planes"])).unwrap()
}

/// kubectl through the virtual address, until it succeeds (the listener follows the holder within a
/// moment); returns its output.
fn through_vip(lab: &TestLab, args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = lab.kubectl_with(&lab.kubeconfig, args);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "kubectl {args:?} through the VIP: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn coredns_image(lab: &TestLab) -> String {
    lab.kubectl(&[
        "-n",
        "kube-system",
        "get",
        "deployment",
        "coredns",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ])
}

fn control_plane<'a>(services: &'a Value, node: &str) -> &'a Value {
    services["controlPlanes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|cp| cp["node"] == node)
        .unwrap_or_else(|| panic!("no control plane {node} in {services}"))
}

/// Polls the API server's services until `want` holds.
fn wait_services(lab: &TestLab, what: &str, limit: Duration, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let s = services(lab);
        if want(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never {what}: {s}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn wait_journal(lab: &TestLab, node: u8, unit: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = lab.ssh_ok(node, &format!("journalctl -u {unit} --no-pager -n 20"));
        if text.contains(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{unit} never said {want:?}: {text}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn pod_ready(lab: &TestLab, pod: &str) -> bool {
    lab.kubectl(&[
        "-n",
        "kube-system",
        "get",
        "pod",
        pod,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ])
    .trim()
        == "True"
}

fn kube_proxy_image(lab: &TestLab) -> String {
    lab.kubectl(&[
        "-n",
        "kube-system",
        "get",
        "daemonset",
        "kube-proxy",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ])
}

fn switch_repository(lab: &TestLab, node: u8, from: &str, to: &str) {
    lab.ssh_ok(
        node,
        &format!(
            "sed -i 's#core:/stable:/{from}/#core:/stable:/{to}/#' /etc/apt/sources.list.d/kubernetes.* && apt-get update -qq"
        ),
    );
}

fn install(lab: &TestLab, node: u8, packages: &str) {
    lab.ssh_ok(
        node,
        &format!(
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-change-held-packages {packages} >/dev/null"
        ),
    );
}

#[test]
fn containerd_keepalived_addons_and_a_kubelets_new_minor_on_an_ha_lab() {
    let _one = LAB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(lab) = TestLab::up(LabOptions {
        flavour: "apt",
        from: "1.33.1",
        control_planes: 2,
        workers: 1,
        id: 11,
    }) else {
        return;
    };
    let limit = Duration::from_secs(30);
    // Both runtimes' containers report running; keepalived on both, the first holds the address.
    let s = wait_services(
        &lab,
        "both control planes reported, the VIP on lab-cp1",
        limit,
        |s| {
            ["lab-cp1", "lab-cp2"]
                .iter()
                .all(|n| control_plane(s, n)["staticPods"] == "running")
                && s["vip"]["holder"] == "lab-cp1"
                && s["vip"]["keepalived"].as_array().is_some_and(|k| k.len() == 2)
        },
    );
    // What the boot itself counted (a runtime restarted before the node's network was up) is the
    // baseline: the steps below are judged by what they add to it.
    let count = |s: &Value, node: &str| control_plane(s, node)["interruptions"].as_u64().unwrap();
    let (base, base_cp1, base_cp2) = (
        s["interruptions"].as_u64().unwrap(),
        count(&s, "lab-cp1"),
        count(&s, "lab-cp2"),
    );
    let vip = |s: &Value| {
        (
            s["vip"]["moves"].as_u64().unwrap(),
            s["vip"]["interruptions"].as_u64().unwrap(),
        )
    };
    let (moves, vip_base) = vip(&s);
    assert_eq!(control_plane(&s, "lab-cp1")["runtime"], "containerd", "{s}");
    assert!(lab
        .ssh_ok(1, "systemctl show -p KillMode containerd keepalived")
        .contains("KillMode=process"));

    // Stopping containerd leaves the containers to their shims: the control plane stays up.
    lab.ssh_ok(1, "systemctl stop containerd");
    // The containers' process survived the daemon (KillMode=process).
    lab.ssh_ok(1, "test -d /proc/$(cat /run/kup-lab/containerd-containers.pid)");
    std::thread::sleep(Duration::from_secs(3));
    let s = services(&lab);
    assert_eq!(control_plane(&s, "lab-cp1")["available"], true, "{s}");
    assert_eq!(s["interruptions"].as_u64(), Some(base), "{s}");
    assert!(pod_ready(&lab, "kube-apiserver-lab-cp1"));
    lab.ssh_ok(1, "systemctl start containerd");
    wait_journal(&lab, 1, "containerd", "containers still running");

    // Clients use the virtual address: the admin kubeconfig and every kubelet's name it, and the
    // API server's certificate carries it (kubectl verifies it).
    let server = format!("server: https://{}:6443", lab.vip());
    assert!(
        std::fs::read_to_string(&lab.kubeconfig)
            .unwrap()
            .contains(&server),
        "the admin kubeconfig does not use the VIP"
    );
    for node in 1..=3 {
        let kubelet_conf = lab.ssh_ok(node, "cat /etc/kubernetes/kubelet.conf");
        assert!(kubelet_conf.contains(&server), "node {node}: {kubelet_conf}");
    }
    assert!(through_vip(&lab, &["get", "nodes"]).contains("lab-w1"));
    // From a node too, with the kubelet's kubeconfig.
    lab.ssh_ok(3, &format!("exec 3<>/dev/tcp/{}/6443", lab.vip()));

    // Stopping keepalived on the holder: the address is lost, then moves to lab-cp2, and clients
    // reach the API server through it again.
    lab.ssh_ok(1, "systemctl stop keepalived");
    let s = wait_services(&lab, "the VIP on lab-cp2", limit, |s| {
        s["vip"]["holder"] == "lab-cp2"
    });
    assert_eq!(vip(&s), (moves + 1, vip_base + 1), "{s}");
    assert!(through_vip(&lab, &["get", "nodes"]).contains("lab-cp1"));
    // Back on lab-cp1 (keepalived preempts by default): another move, another interruption.
    lab.ssh_ok(1, "systemctl start keepalived");
    let s = wait_services(&lab, "the VIP back on lab-cp1", limit, |s| {
        s["vip"]["holder"] == "lab-cp1"
    });
    assert_eq!(vip(&s), (moves + 2, vip_base + 2), "{s}");
    assert_eq!(
        s["interruptions"].as_u64(),
        Some(base),
        "keepalived is not the control plane: {s}"
    );

    // keepalived stopped everywhere: nobody holds the address, which refuses connections (from the
    // host and from a node), while the API server itself still runs.
    lab.ssh_ok(1, "systemctl stop keepalived");
    lab.ssh_ok(2, "systemctl stop keepalived");
    wait_services(&lab, "nobody holding the VIP", limit, |s| {
        s["vip"]["holder"].is_null() && s["vip"]["failingOver"] == false
    });
    let refused = lab.kubectl_with(&lab.kubeconfig, &["get", "nodes"]);
    assert!(!refused.status.success(), "kubectl worked with no keepalived");
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("refused"), "{why}");
    let probe = lab.ssh(3, &format!("exec 3<>/dev/tcp/{}/6443", lab.vip()));
    assert!(
        !probe.status.success(),
        "the VIP answered a node with no keepalived"
    );
    assert!(lab.kubectl_direct(&["get", "nodes"]).contains("lab-cp1"));
    lab.ssh_ok(2, "systemctl start keepalived");
    lab.ssh_ok(1, "systemctl start keepalived");
    wait_services(&lab, "the VIP on lab-cp1 again", limit, |s| {
        s["vip"]["holder"] == "lab-cp1"
    });
    assert!(through_vip(&lab, &["get", "nodes"]).contains("lab-cp2"));

    // 1.33 -> 1.34: apply on lab-cp1 leaves the addons (kube-proxy, CoreDNS v1.12.0 -> v1.12.1,
    // kubeadm constants.go CoreDNSVersion) to the last control plane.
    assert_eq!(kube_proxy_image(&lab), "registry.k8s.io/kube-proxy:v1.33.1");
    assert_eq!(coredns_image(&lab), "registry.k8s.io/coredns/coredns:v1.12.0");
    switch_repository(&lab, 1, "v1.33", "v1.34");
    install(&lab, 1, "kubeadm=1.34.2-1.1");
    let apply = lab.ssh_ok(1, "kubeadm upgrade apply v1.34.2 -y");
    assert!(apply.contains("SUCCESS"), "{apply}");
    assert!(
        apply.contains(
            "[upgrade/addons] skip upgrade addons because control plane instances [lab-cp2] have not been upgraded"
        ),
        "{apply}"
    );
    assert_eq!(kube_proxy_image(&lab), "registry.k8s.io/kube-proxy:v1.33.1");
    assert_eq!(coredns_image(&lab), "registry.k8s.io/coredns/coredns:v1.12.0");
    switch_repository(&lab, 2, "v1.33", "v1.34");
    install(&lab, 2, "kubeadm=1.34.2-1.1");
    let node = lab.ssh_ok(2, "kubeadm upgrade node");
    assert!(node.contains("Applied essential addon: kube-proxy"), "{node}");
    assert!(node.contains("Applied essential addon: CoreDNS"), "{node}");
    assert_eq!(kube_proxy_image(&lab), "registry.k8s.io/kube-proxy:v1.34.2");
    assert_eq!(coredns_image(&lab), "registry.k8s.io/coredns/coredns:v1.12.1");
    let table = lab.kubectl(&["-n", "kube-system", "get", "deployment", "coredns"]);
    assert!(
        table.starts_with("NAME      READY   UP-TO-DATE   AVAILABLE   AGE"),
        "{table}"
    );

    // lab-cp1's kubelet moves to 1.34: its static pods restart, an interruption of that control plane.
    install(&lab, 1, "kubelet=1.34.2-1.1");
    lab.ssh_ok(1, "systemctl daemon-reload && systemctl restart kubelet");
    let s = wait_services(
        &lab,
        "lab-cp1 interrupted by the kubelet's new minor",
        limit,
        |s| count(s, "lab-cp1") == base_cp1 + 1,
    );
    assert_eq!(count(&s, "lab-cp2"), base_cp2, "{s}");
    wait_services(&lab, "lab-cp1 back", limit, |s| {
        control_plane(s, "lab-cp1")["available"] == true
    });
    lab.wait_node("lab-cp1", "v1.34.2", limit);
    // A restart at the same minor restarts nothing.
    lab.ssh_ok(1, "systemctl restart kubelet");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(services(&lab)["interruptions"].as_u64(), Some(base + 1));

    // kup-lab status shows what the API server counted.
    let status = std::process::Command::new(e2e::dist().join("kup-lab"))
        .args(["status", "--dir"])
        .arg(&lab.dir)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains(&format!("interruptions {}", base_cp1 + 1)),
        "{status}"
    );
    assert!(status.contains("virtual address held by lab-cp1"), "{status}");
}

#[test]
fn stopping_docker_stops_a_control_planes_static_pods() {
    let _one = LAB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(lab) = TestLab::up(LabOptions {
        flavour: "apt",
        from: "1.23.17",
        control_planes: 1,
        workers: 0,
        id: 11,
    }) else {
        return;
    };
    let limit = Duration::from_secs(30);
    wait_services(&lab, "lab-cp1 reported by docker", limit, |s| {
        control_plane(s, "lab-cp1")["staticPods"] == "running"
            && control_plane(s, "lab-cp1")["runtime"] == "docker"
    });
    assert!(pod_ready(&lab, "kube-apiserver-lab-cp1"));

    // dockerd's shutdown stops its containers (live-restore is off by default).
    lab.ssh_ok(1, "systemctl stop docker");
    let s = wait_services(&lab, "lab-cp1 unavailable", limit, |s| {
        control_plane(s, "lab-cp1")["available"] == false
    });
    assert_eq!(control_plane(&s, "lab-cp1")["interruptions"], 1, "{s}");
    assert!(!pod_ready(&lab, "kube-apiserver-lab-cp1"));
    assert!(!pod_ready(&lab, "etcd-lab-cp1"));
    lab.ssh_ok(1, "test ! -e /run/kup-lab/docker-containers.pid");

    // Started again: new containers, the control plane back; still one interruption.
    lab.ssh_ok(1, "systemctl start docker");
    let s = wait_services(&lab, "lab-cp1 back", limit, |s| {
        control_plane(s, "lab-cp1")["available"] == true
    });
    assert_eq!(s["interruptions"], 1, "{s}");
    // Ready again once the kubelet (which exits while its runtime is away) reports the node again.
    let deadline = Instant::now() + limit;
    while !pod_ready(&lab, "kube-apiserver-lab-cp1") {
        assert!(
            Instant::now() < deadline,
            "kube-apiserver-lab-cp1 never Ready again"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn before_1_28_apply_moves_the_addons_on_the_first_control_plane() {
    let _one = LAB.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(lab) = TestLab::up(LabOptions {
        flavour: "apt",
        from: "1.26.15",
        control_planes: 2,
        workers: 0,
        id: 11,
    }) else {
        return;
    };
    // CoreDNS as kubeadm 1.26 deployed it (constants.go CoreDNSVersion v1.9.3).
    assert_eq!(coredns_image(&lab), "registry.k8s.io/coredns/coredns:v1.9.3");
    assert_eq!(kube_proxy_image(&lab), "registry.k8s.io/kube-proxy:v1.26.15");
    // kubeadm 1.27's apply upgrades the addons at once, lab-cp2 still at 1.26.
    switch_repository(&lab, 1, "v1.26", "v1.27");
    install(&lab, 1, "kubeadm=1.27.16-1.1");
    let apply = lab.ssh_ok(1, "kubeadm upgrade apply v1.27.16 -y");
    assert!(apply.contains("SUCCESS"), "{apply}");
    assert!(!apply.contains("skip upgrade addons"), "{apply}");
    assert!(apply.contains("Applied essential addon: CoreDNS"), "{apply}");
    assert_eq!(coredns_image(&lab), "registry.k8s.io/coredns/coredns:v1.10.1");
    assert_eq!(kube_proxy_image(&lab), "registry.k8s.io/kube-proxy:v1.27.16");
    // The other control plane's `kubeadm upgrade node` has no addon phase before 1.28.
    switch_repository(&lab, 2, "v1.26", "v1.27");
    install(&lab, 2, "kubeadm=1.27.16-1.1");
    let node = lab.ssh_ok(2, "kubeadm upgrade node");
    assert!(!node.contains("Applied essential addon"), "{node}");
    assert_eq!(coredns_image(&lab), "registry.k8s.io/coredns/coredns:v1.10.1");
}
