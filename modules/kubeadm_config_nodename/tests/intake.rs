#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! kubeadm_config_nodename's argument intake: fuzzed, and the defects fuzzing found (issue 17,
//! item 8). The refusals below happen before any kubeconfig is read.

use kubeadm_config_nodename::KubeadmConfigNodename;
use module_kit::testkit::{fuzz_intake, run_with_args_file, Ran};
use serde_json::{json, Value};
use std::path::Path;

fn run(args: Value) -> Ran {
    run_with_args_file(Path::new(env!("CARGO_BIN_EXE_kubeadm_config_nodename")), &args).unwrap()
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
    let base = json!({"node_name": "master-1", "kubeconfig": "/nonexistent/kubeconfig"});
    let report = fuzz_intake::<KubeadmConfigNodename>(0x17_08, 400, &base).unwrap();
    assert!(report.accepted > 5 && report.refused > 100, "{report:?}");
}

#[test]
fn huge_timeouts_are_refused() {
    for field in ["timeout", "request_timeout"] {
        let ran = refused(
            json!({"node_name": "master-1", field: 9223372036854775807i64,
                   "kubeconfig": "/nonexistent/kubeconfig", "_ansible_check_mode": true}),
            field,
        );
        assert!(ran.msg().contains("at most 604800 seconds"), "{}", ran.msg());
    }
}

#[test]
fn nul_bytes_and_empty_paths_are_refused() {
    refused(json!({"node_name": "master-1\u{0}"}), "node_name");
    refused(json!({"node_name": "master-1", "kubeconfig": ""}), "kubeconfig");
    refused(
        json!({"node_name": "master-1", "kubeconfig": "/k\u{0}"}),
        "kubeconfig",
    );
    refused(json!({"node_name": "master-1", "context": "\u{0}"}), "context");
    refused(
        json!({"node_name": "master-1", "namespace": "kube-system\u{0}"}),
        "namespace",
    );
}

#[test]
fn an_unknown_null_parameter_is_refused() {
    let ran = run(json!({"node_name": "master-1", "nodename": null}));
    assert!(
        ran.msg().contains("unknown parameter `nodename`"),
        "{}",
        ran.msg()
    );
}

#[test]
fn a_huge_argument_is_not_echoed_whole() {
    let ran = refused(json!({"node_name": "N".repeat(1 << 20)}), "node_name");
    assert!(ran.stdout.len() < 1_000, "{} bytes", ran.stdout.len());
    assert!(ran.msg().contains("(1048576 bytes)"), "{}", ran.msg());
}
