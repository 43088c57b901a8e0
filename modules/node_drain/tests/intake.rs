#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! node_drain's argument intake: fuzzed, and the defects fuzzing found (issue 17, item 8). The
//! refusals below happen before any kubeconfig is read.

use serde_json::json;

module_kit::intake_tests!(
    node_drain::NodeDrain,
    env!("CARGO_BIN_EXE_node_drain"),
    fuzz: json!({"name": "worker-1", "state": "drain", "kubeconfig": "/nonexistent/kubeconfig"}),
);

#[test]
fn huge_durations_are_refused() {
    let base = json!({"name": "worker-1", "kubeconfig": "/nonexistent/kubeconfig"});
    MODULE.huge_durations_refused(
        base,
        &["timeout", "request_timeout", "skip_wait_for_delete_timeout"],
    );
    MODULE.refused_with(
        json!({"name": "worker-1", "timeout": 0}),
        "timeout",
        "at least 1 second",
    );
}

#[test]
fn nul_bytes_and_empty_paths_are_refused() {
    MODULE.refused_with(json!({"name": "worker-1\u{0}"}), "name", "not a valid node name");
    for (field, bad, why) in [
        ("kubeconfig", "", "must not be empty"),
        ("kubeconfig", "/k\u{0}", "NUL"),
        ("context", "\u{0}", "NUL"),
        ("pod_selector", "app=web\u{0}", "control character"),
    ] {
        MODULE.refused_with(json!({"name": "worker-1", field: bad}), field, why);
    }
}

#[test]
fn an_unknown_null_parameter_is_refused() {
    let base = json!({"name": "worker-1", "kubeconfig": "/nonexistent/kubeconfig"});
    MODULE.unknown_null_refused(base.clone(), "delete_local");
    // The alias, given as null, is a known parameter: its default applies.
    let ran = MODULE.run(module_kit::testkit::merged(
        &base,
        json!({"delete_local_data": null}),
    ));
    assert!(ran.msg().starts_with("parameter `kubeconfig`"), "{}", ran.msg());
}

#[test]
fn a_huge_argument_is_not_echoed_whole() {
    MODULE.refused_small(json!({"name": "N".repeat(1 << 20)}), "name", "(1048576 bytes)");
    let args = json!({"name": "w", "pod_selector": "(".repeat(1 << 20)});
    MODULE.refused_small(args, "pod_selector", "(1048576 bytes)");
}
