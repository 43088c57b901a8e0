#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The release binary resolves names through the stub resolver set as reqwest's resolver
//! (`/etc/hosts`, then resolv.conf's nameservers), never through glibc's getaddrinfo.

mod common;

use common::{binary_for, run, Lab};
use serde_json::json;

#[test]
fn localhost_resolves_through_etc_hosts() {
    let lab = Lab::start();
    let base = format!("http://localhost:{}", lab.server.addr().port());
    let dest = lab.dest("kubeadm");
    let ran = run(json!({"version": "stable-1.9", "base_url": base, "dest": dest}));
    assert!(ran.changed() && !ran.failed(), "{}", ran.stdout);
    assert_eq!(ran.json["url"], format!("{base}/v1.9.3/bin/linux/amd64/kubeadm"));
    assert_eq!(std::fs::read(&dest).unwrap(), binary_for("v1.9.3"));
}

#[test]
fn a_name_the_resolver_refuses_fails_with_its_message() {
    // A 64-character label: a valid URL, not a DNS name. The stub resolver refuses it before
    // asking any nameserver (so the test needs no network), in words getaddrinfo never uses.
    let host = format!("{}.test", "x".repeat(64));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("kubeadm");
    let ran = run(json!({
        "version": "v1.9.2", "base_url": format!("http://{host}:1"), "dest": dest, "retries": 0
    }));
    assert!(ran.failed(), "{}", ran.stdout);
    assert!(
        ran.stdout.contains(&format!("cannot resolve {host}"))
            && ran.stdout.contains("is not a valid host name"),
        "{}",
        ran.stdout
    );
    assert!(!dest.exists());
}
