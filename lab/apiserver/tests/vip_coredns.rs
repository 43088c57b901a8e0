//! The virtual address keepalived holds (a listener that forwards to the server while some
//! keepalived holds it, refused otherwise) and the CoreDNS Deployment, with real kubectl.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::{modern_kubectl, wait_until, Lab};
use lab_apiserver::cluster::DeploymentSeed;
use lab_apiserver::{Cluster, Emulation};

/// A free port on 127.0.0.2 (loopback answers for the whole 127/8): the test's virtual address.
fn free_vip() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.2:0").unwrap();
    l.local_addr().unwrap()
}

fn refused(addr: SocketAddr) -> bool {
    matches!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

fn keepalived(lab: &Lab, node: &str, running: bool) {
    lab.handle()
        .with_store(|s| s.report_keepalived(node, running))
        .unwrap();
}

#[test]
fn kubectl_reaches_the_server_through_the_vip_while_keepalived_holds_it() {
    let Some(kubectl) = modern_kubectl() else { return };
    let vip = free_vip();
    let lab = Lab::start_with(Emulation::V1_30, true, Cluster::sample(None), |cfg| {
        cfg.vip = Some(vip);
        cfg.extra_sans.push(vip.ip().to_string());
    });
    assert_eq!(lab.handle().client_url(), format!("https://{vip}"));
    assert!(lab
        .handle()
        .kubeconfig()
        .contains(&format!("server: https://{vip}")));
    assert!(lab.handle().direct_kubeconfig().contains(lab.handle().url()));
    // Nobody holds the address yet: nothing listens there.
    assert!(refused(vip), "the VIP answered with no keepalived running");
    let out = lab.kubectl(&kubectl, &["get", "nodes"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("connection refused"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // keepalived on master-1 (and master-2, its backup): the address is held, kubectl works through it
    // with the certificate naming the VIP.
    keepalived(&lab, "master-1", true);
    keepalived(&lab, "master-2", true);
    assert!(wait_until(Duration::from_secs(5), || !refused(vip)));
    let nodes = lab.kubectl_ok(&kubectl, &["get", "nodes"]);
    assert!(nodes.contains("master-1"), "{nodes}");

    // The holder's keepalived stops: the address moves to master-2 after the failover window, and
    // kubectl works through it again.
    keepalived(&lab, "master-1", false);
    assert!(wait_until(Duration::from_secs(5), || {
        lab.handle().with_store(|s| s.vip_holder()).as_deref() == Some("master-2")
    }));
    assert!(wait_until(Duration::from_secs(5), || lab
        .kubectl(&kubectl, &["get", "nodes"])
        .status
        .success()));

    // Every keepalived stopped: the address refuses connections again.
    keepalived(&lab, "master-2", false);
    assert!(wait_until(Duration::from_secs(5), || refused(vip)));
    let status = lab.handle().with_store(|s| s.services_status());
    assert_eq!(status["vip"]["holder"], serde_json::Value::Null, "{status}");
    assert_eq!(status["vip"]["moves"], 1, "{status}");
}

fn with_coredns(image: &str) -> Cluster {
    let mut c = Cluster::sample(None);
    c.deployments.push(DeploymentSeed {
        name: "coredns".into(),
        namespace: "kube-system".into(),
        replicas: 2,
        labels: [("k8s-app".to_string(), "kube-dns".to_string())].into(),
        container: None,
        image: image.into(),
    });
    c
}

#[test]
fn kubectl_shows_the_coredns_deployment_as_real_servers_do() {
    let Some(kubectl) = modern_kubectl() else { return };
    for (emu, tls) in [(Emulation::V1_30, true), (Emulation::V1_9, false)] {
        let image = "registry.k8s.io/coredns/coredns:v1.11.1";
        let lab = Lab::start(emu, tls, with_coredns(image));
        let table = lab.kubectl_ok(&kubectl, &["-n", "kube-system", "get", "deployments"]);
        println!("{table}");
        let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            "{}",
            lab.label()
        );
        let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(row[..4], ["coredns", "2/2", "2", "2"], "{table}");
        let wide = lab.kubectl_ok(&kubectl, &["-n", "kube-system", "get", "deploy", "-o", "wide"]);
        assert!(
            wide.contains(image) && wide.contains("k8s-app=kube-dns"),
            "{wide}"
        );
        let jsonpath = "jsonpath={.spec.template.spec.containers[0].image}";
        let shown = lab.kubectl_ok(
            &kubectl,
            &["-n", "kube-system", "get", "deploy", "coredns", "-o", jsonpath],
        );
        assert_eq!(shown, image, "{}", lab.label());
        if emu == Emulation::V1_30 {
            // The OpenAPI document knows the kind: explain and validated writes work.
            let explain = lab.kubectl_ok(&kubectl, &["explain", "deployment.status.readyReplicas"]);
            assert!(explain.contains("readyReplicas"), "{explain}");
            // kubectl set image (a strategic-merge patch, validated against the OpenAPI document).
            lab.kubectl_ok(
                &kubectl,
                &[
                    "-n",
                    "kube-system",
                    "set",
                    "image",
                    "deployment/coredns",
                    "coredns=registry.k8s.io/coredns/coredns:v1.12.0",
                ],
            );
            let moved = lab.kubectl_ok(
                &kubectl,
                &["-n", "kube-system", "get", "deploy", "coredns", "-o", jsonpath],
            );
            assert_eq!(moved, "registry.k8s.io/coredns/coredns:v1.12.0");
        }
    }
}
