#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! cluster_survey's argument intake: fuzzed, and the defects fuzzing found (issue 17, item 8). The
//! refusals below happen before any kubeconfig is read.

use serde_json::json;

module_kit::intake_tests!(
    cluster_survey::ClusterSurvey,
    env!("CARGO_BIN_EXE_cluster_survey"),
    fuzz: json!({"names": ["worker-1"], "kubeconfig": "/nonexistent/kubeconfig"}),
    unknown_null: (json!({"kubeconfig": "/nonexistent/kubeconfig"}), "name"),
);

#[test]
fn huge_timeouts_are_refused() {
    let base = json!({"kubeconfig": "/nonexistent/kubeconfig"});
    MODULE.huge_durations_refused(base, &["timeout", "request_timeout"]);
}

#[test]
fn nul_bytes_and_empty_paths_are_refused() {
    MODULE.refused(json!({"names": ["worker-1\u{0}"]}), "names[0]");
    MODULE.refused(json!({"kubeconfig": ""}), "kubeconfig");
    MODULE.refused(
        json!({"kubeconfig": "/etc/kubernetes/admin.conf\u{0}"}),
        "kubeconfig",
    );
    MODULE.refused(json!({"context": "admin\u{0}"}), "context");
}

#[test]
fn a_huge_argument_is_not_echoed_whole() {
    MODULE.refused_small(json!({"names": [" ".repeat(4000)]}), "names", "(4000 bytes)");
    MODULE.refused_small(json!({"names": ["n".repeat(1 << 20)]}), "names[0]", "");
}
