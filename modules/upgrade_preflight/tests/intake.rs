#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! upgrade_preflight's argument intake: fuzzed, and the defects fuzzing found (issue 17, item 8).

use module_kit::testkit::Ran;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

module_kit::intake_tests!(
    upgrade_preflight::UpgradePreflight,
    env!("CARGO_BIN_EXE_upgrade_preflight"),
    fuzz: json!({"version": "v1.9.2", "skip": LOCAL_ONLY, "kubeconfig": "/nonexistent/kubeconfig"}),
    unknown_null: (json!({"version": "v1.9.2"}), "skips"),
);

/// Only the checks that need neither a cluster nor this host's state.
const LOCAL_ONLY: [&str; 7] = [
    "swap",
    "version_skew",
    "api",
    "nodes_ready",
    "control_plane",
    "disk",
    "etcd_backup",
];

fn kubeadm(dir: &Path, version: &str) -> PathBuf {
    let path = dir.join("kubeadm");
    std::fs::write(&path, format!("#!/bin/sh\necho {version}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn kubeadm_check(ran: &Ran) -> Value {
    ran.json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "kubeadm")
        .cloned()
        .unwrap_or_else(|| panic!("no kubeadm check: {}", ran.stdout))
}

#[test]
fn a_huge_request_timeout_is_refused() {
    MODULE.huge_durations_refused(
        json!({"version": "v1.9.2", "skip": ["kubeadm"]}),
        &["request_timeout"],
    );
}

#[test]
fn a_version_with_a_suffix_is_refused_not_cut() {
    for v in ["v1.9.2-y --force", "v1.9.2-$(id)", "1.9.2-dirty"] {
        MODULE.refused(json!({"version": v, "skip": LOCAL_ONLY}), "version");
    }
}

#[test]
fn a_pre_release_target_is_kept_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = kubeadm(dir.path(), "v1.10.0-beta.1");
    let ran = MODULE.run(json!({"version": "v1.10.0-beta.1", "kubeadm_path": path, "skip": LOCAL_ONLY}));
    assert!(!ran.failed(), "{}", ran.stdout);
    assert_eq!(ran.json["target"], "v1.10.0-beta.1");
    // A beta kubeadm is older than the release.
    let ran = MODULE.run(json!({"version": "v1.10.0", "kubeadm_path": path, "skip": LOCAL_ONLY}));
    assert!(ran.failed(), "{}", ran.stdout);
    assert!(kubeadm_check(&ran)["detail"]
        .as_str()
        .unwrap()
        .contains("older than the target"));
}

#[test]
fn nul_bytes_and_empty_paths_are_refused() {
    MODULE.refused(json!({"version": "v1.9.2", "kubeadm_path": ""}), "kubeadm_path");
    MODULE.refused(
        json!({"version": "v1.9.2", "kubeadm_path": "/var/lib/kup/kube\u{0}adm"}),
        "kubeadm_path",
    );
    MODULE.refused(json!({"version": "v1.9.2", "disk_path": ""}), "disk_path");
    MODULE.refused(
        json!({"version": "v1.9.2", "kubeconfig": "/etc/kubernetes/admin.conf\u{0}"}),
        "kubeconfig",
    );
    MODULE.refused(json!({"version": "v1.9.2", "kubeconfig": ""}), "kubeconfig");
    MODULE.refused(json!({"version": "v1.9.2", "context": "a\u{0}"}), "context");
}

#[test]
fn the_default_kubeadm_is_not_in_tmp() {
    let ran = MODULE.run(json!({"version": "v1.9.2", "skip": LOCAL_ONLY}));
    let detail = kubeadm_check(&ran)["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("/var/lib/kup/kubeadm"), "{detail}");
}

#[test]
fn a_kubeadm_others_could_replace_is_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = kubeadm(dir.path(), "v1.9.2");
    let args = json!({"version": "v1.9.2", "kubeadm_path": path, "skip": LOCAL_ONLY});
    assert!(!MODULE.run(args.clone()).failed());
    for (file, parent) in [(0o757, 0o700), (0o775, 0o700), (0o755, 0o777), (0o755, 0o770)] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(parent)).unwrap();
        let ran = MODULE.run(args.clone());
        assert!(ran.failed(), "{file:o}/{parent:o}: {}", ran.stdout);
        let detail = kubeadm_check(&ran)["detail"].as_str().unwrap().to_string();
        assert!(detail.starts_with("refusing to run"), "{detail}");
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn a_kubeconfig_token_never_reaches_the_check_details() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let token = "preflight-s3cr3t-token";
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:9\n\
             users:\n- name: u\n  user:\n    token: {token}: oops\ncontexts: []\n"
        ),
    )
    .unwrap();
    let ran = MODULE.run(json!({"version": "v1.9.2", "kubeconfig": kubeconfig,
                         "skip": ["swap", "kubeadm", "disk"]}));
    assert!(ran.failed());
    assert!(!ran.stdout.contains(token), "{}", ran.stdout);
    assert!(ran.stdout.contains("line 10"), "{}", ran.stdout);
}

#[test]
fn a_huge_argument_is_not_echoed_whole() {
    MODULE.refused_small(
        json!({"version": "v1.9.2", "skip": ["kubeadm", "x".repeat(1 << 20)]}),
        "skip",
        "",
    );
}
