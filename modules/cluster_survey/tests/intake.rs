#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! cluster_survey's argument intake: fuzzed, and the defects fuzzing found (issue 17, item 8). The
//! refusals below happen before any kubeconfig is read.

use cluster_survey::ClusterSurvey;
use module_kit::testkit::Intake;
use serde_json::json;

const MODULE: Intake<ClusterSurvey> = Intake::new(env!("CARGO_BIN_EXE_cluster_survey"));

#[test]
fn fuzzed_arguments_fail_cleanly() {
    MODULE.fuzz(json!({"names": ["worker-1"], "kubeconfig": "/nonexistent/kubeconfig"}));
}

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
fn an_unknown_null_parameter_is_refused() {
    MODULE.unknown_null_refused(json!({"kubeconfig": "/nonexistent/kubeconfig"}), "name");
}

#[test]
fn a_huge_argument_is_not_echoed_whole() {
    MODULE.refused_small(json!({"names": [" ".repeat(4000)]}), "names", "(4000 bytes)");
    MODULE.refused_small(json!({"names": ["n".repeat(1 << 20)]}), "names[0]", "");
}
