#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! cluster_survey's argument intake: fuzzed, and the defects fuzzing found (issue 17, item 8). The
//! refusals below happen before any kubeconfig is read.

use cluster_survey::ClusterSurvey;
use module_kit::testkit::{fuzz_intake, run_with_args_file, Ran};
use serde_json::{json, Value};
use std::path::Path;

fn run(args: Value) -> Ran {
    run_with_args_file(Path::new(env!("CARGO_BIN_EXE_cluster_survey")), &args).unwrap()
}

fn refused(args: Value, field: &str) -> Ran {
    let ran = run(args.clone());
    assert!(ran.failed(), "{args} accepted: {}", ran.stdout);
    assert!(
        ran.msg().starts_with(&format!("parameter `{field}`")),
        "{args}: {}",
        ran.msg()
    );
    ran
}

#[test]
fn fuzzed_arguments_fail_cleanly() {
    let base = json!({"names": ["worker-1"], "kubeconfig": "/nonexistent/kubeconfig"});
    let report = fuzz_intake::<ClusterSurvey>(0x17_08, 400, &base).unwrap();
    assert!(report.accepted > 5 && report.refused > 100, "{report:?}");
}

#[test]
fn huge_timeouts_are_refused() {
    for field in ["timeout", "request_timeout"] {
        let ran = refused(
            json!({field: 9223372036854775807i64, "kubeconfig": "/nonexistent/kubeconfig",
                   "_ansible_check_mode": true}),
            field,
        );
        assert!(ran.msg().contains("at most 604800 seconds"), "{}", ran.msg());
    }
}

#[test]
fn nul_bytes_and_empty_paths_are_refused() {
    refused(json!({"names": ["worker-1\u{0}"]}), "names[0]");
    refused(json!({"kubeconfig": ""}), "kubeconfig");
    refused(
        json!({"kubeconfig": "/etc/kubernetes/admin.conf\u{0}"}),
        "kubeconfig",
    );
    refused(json!({"context": "admin\u{0}"}), "context");
}

#[test]
fn an_unknown_null_parameter_is_refused() {
    let ran = run(json!({"name": null, "kubeconfig": "/nonexistent/kubeconfig"}));
    assert!(ran.msg().contains("unknown parameter `name`"), "{}", ran.msg());
}

#[test]
fn a_huge_argument_is_not_echoed_whole() {
    let ran = refused(json!({"names": [" ".repeat(4000)]}), "names");
    assert!(ran.stdout.len() < 1_000, "{} bytes", ran.stdout.len());
    assert!(ran.msg().contains("(4000 bytes)"), "{}", ran.msg());
    let ran = refused(json!({"names": ["n".repeat(1 << 20)]}), "names[0]");
    assert!(ran.stdout.len() < 1_000, "{} bytes", ran.stdout.len());
}
