#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! node_ready's argument intake: fuzzed, and the defects fuzzing found (issue 17, item 8). The
//! refusals below happen before any kubeconfig is read.

use module_kit::testkit::{fuzz_intake, run_with_args_file, Ran};
use node_ready::NodeReady;
use serde_json::{json, Value};
use std::path::Path;

fn run(args: Value) -> Ran {
    run_with_args_file(Path::new(env!("CARGO_BIN_EXE_node_ready")), &args).unwrap()
}

fn refused(args: Value, field: &str, why: &str) -> Ran {
    let ran = run(args.clone());
    assert!(ran.failed(), "{args} accepted: {}", ran.stdout);
    assert!(
        ran.msg().starts_with(&format!("parameter `{field}`")) && ran.msg().contains(why),
        "{args}: {}",
        ran.msg()
    );
    ran
}

#[test]
fn fuzzed_arguments_fail_cleanly() {
    let base =
        json!({"names": ["worker-1"], "kubelet_version": "v1.9.2", "kubeconfig": "/nonexistent/kubeconfig"});
    let report = fuzz_intake::<NodeReady>(0x17_08, 400, &base).unwrap();
    assert!(report.accepted > 5 && report.refused > 100, "{report:?}");
}

#[test]
fn huge_durations_are_refused_not_a_panic() {
    // Before the bound, `start + timeout` overflowed before anything else: "internal error".
    for field in ["timeout", "interval", "request_timeout"] {
        refused(
            json!({field: 9223372036854775807i64, "kubeconfig": "/nonexistent/kubeconfig",
                   "_ansible_check_mode": true}),
            field,
            "at most 604800 seconds",
        );
    }
    refused(json!({"interval": 0}), "interval", "at least 1 second");
    // 0 still means "look once".
    let ran = run(json!({"timeout": 0, "kubeconfig": "/nonexistent/kubeconfig"}));
    assert!(ran.msg().starts_with("parameter `kubeconfig`"), "{}", ran.msg());
}

#[test]
fn nul_bytes_and_empty_paths_are_refused() {
    refused(json!({"names": ["worker-1\u{0}"]}), "names", "control character");
    refused(json!({"names": "worker-1,\u{0}x"}), "names", "control character");
    refused(json!({"kubeconfig": ""}), "kubeconfig", "must not be empty");
    refused(json!({"kubeconfig": "/k\u{0}"}), "kubeconfig", "NUL");
    refused(json!({"context": "a\u{0}"}), "context", "NUL");
    refused(
        json!({"kubelet_version": "1.9\u{0}"}),
        "kubelet_version",
        "expected a version",
    );
}

#[test]
fn an_unknown_null_parameter_is_refused() {
    let ran = run(json!({"name": null, "kubeconfig": "/nonexistent/kubeconfig"}));
    assert!(ran.msg().contains("unknown parameter `name`"), "{}", ran.msg());
}

#[test]
fn a_huge_argument_is_not_echoed_whole() {
    let ran = refused(
        json!({"kubelet_version": "x".repeat(1 << 20)}),
        "kubelet_version",
        "(1048576 bytes)",
    );
    assert!(ran.stdout.len() < 1_000, "{} bytes", ran.stdout.len());
}
