#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! kubeadm_config_nodename's argument intake: fuzzed, and the defects fuzzing found (issue 17,
//! item 8). The refusals below happen before any kubeconfig is read.

use serde_json::json;

module_kit::intake_tests!(
    kubeadm_config_nodename::KubeadmConfigNodename,
    env!("CARGO_BIN_EXE_kubeadm_config_nodename"),
    fuzz: json!({"node_name": "master-1", "kubeconfig": "/nonexistent/kubeconfig"}),
    unknown_null: (json!({"node_name": "master-1"}), "nodename"),
);

#[test]
fn huge_timeouts_are_refused() {
    let base = json!({"node_name": "master-1", "kubeconfig": "/nonexistent/kubeconfig"});
    MODULE.huge_durations_refused(base, &["timeout", "request_timeout"]);
}

#[test]
fn nul_bytes_and_empty_paths_are_refused() {
    MODULE.refused(json!({"node_name": "master-1\u{0}"}), "node_name");
    for (field, bad) in [
        ("kubeconfig", ""),
        ("kubeconfig", "/k\u{0}"),
        ("context", "\u{0}"),
        ("namespace", "kube-system\u{0}"),
    ] {
        MODULE.refused(json!({"node_name": "master-1", field: bad}), field);
    }
}

#[test]
fn a_huge_argument_is_not_echoed_whole() {
    MODULE.refused_small(
        json!({"node_name": "N".repeat(1 << 20)}),
        "node_name",
        "(1048576 bytes)",
    );
}
