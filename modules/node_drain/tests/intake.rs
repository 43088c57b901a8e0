#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! node_drain's argument intake: fuzzed, and the defects fuzzing found (issue 17, item 8). The
//! refusals below happen before any kubeconfig is read.

use module_kit::testkit::{fuzz_intake, run_with_args_file, Ran};
use node_drain::NodeDrain;
use serde_json::{json, Value};
use std::path::Path;

fn run(args: Value) -> Ran {
    run_with_args_file(Path::new(env!("CARGO_BIN_EXE_node_drain")), &args).unwrap()
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
    let base = json!({"name": "worker-1", "state": "drain", "kubeconfig": "/nonexistent/kubeconfig"});
    let report = fuzz_intake::<NodeDrain>(0x17_08, 400, &base).unwrap();
    assert!(report.accepted > 5 && report.refused > 100, "{report:?}");
}

#[test]
fn huge_durations_are_refused() {
    for field in ["timeout", "request_timeout", "skip_wait_for_delete_timeout"] {
        refused(
            json!({"name": "worker-1", field: 9223372036854775807i64,
                   "kubeconfig": "/nonexistent/kubeconfig", "_ansible_check_mode": true}),
            field,
            "at most 604800 seconds",
        );
    }
    refused(
        json!({"name": "worker-1", "timeout": 0}),
        "timeout",
        "at least 1 second",
    );
}

#[test]
fn nul_bytes_and_empty_paths_are_refused() {
    refused(json!({"name": "worker-1\u{0}"}), "name", "not a valid node name");
    refused(
        json!({"name": "worker-1", "kubeconfig": ""}),
        "kubeconfig",
        "must not be empty",
    );
    refused(
        json!({"name": "worker-1", "kubeconfig": "/k\u{0}"}),
        "kubeconfig",
        "NUL",
    );
    refused(json!({"name": "worker-1", "context": "\u{0}"}), "context", "NUL");
    refused(
        json!({"name": "worker-1", "pod_selector": "app=web\u{0}"}),
        "pod_selector",
        "control character",
    );
}

#[test]
fn an_unknown_null_parameter_is_refused() {
    let ran = run(json!({"name": "worker-1", "delete_local": null, "kubeconfig": "/nonexistent/kubeconfig"}));
    assert!(
        ran.msg().contains("unknown parameter `delete_local`"),
        "{}",
        ran.msg()
    );
    // The alias, given as null, is a known parameter: its default applies.
    let ran =
        run(json!({"name": "worker-1", "delete_local_data": null, "kubeconfig": "/nonexistent/kubeconfig"}));
    assert!(ran.msg().starts_with("parameter `kubeconfig`"), "{}", ran.msg());
}

#[test]
fn a_huge_argument_is_not_echoed_whole() {
    let ran = refused(json!({"name": "N".repeat(1 << 20)}), "name", "(1048576 bytes)");
    assert!(ran.stdout.len() < 1_000, "{} bytes", ran.stdout.len());
    let ran = refused(
        json!({"name": "w", "pod_selector": "(".repeat(1 << 20)}),
        "pod_selector",
        "(1048576 bytes)",
    );
    assert!(ran.stdout.len() < 1_000, "{} bytes", ran.stdout.len());
}
