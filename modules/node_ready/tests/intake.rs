#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! node_ready's argument intake: fuzzed, and the defects fuzzing found (issue 17, item 8). The
//! refusals below happen before any kubeconfig is read.

use serde_json::json;

module_kit::intake_tests!(
    node_ready::NodeReady,
    env!("CARGO_BIN_EXE_node_ready"),
    fuzz: json!({"names": ["worker-1"], "kubelet_version": "v1.9.2",
          "kubeconfig": "/nonexistent/kubeconfig"}),
    unknown_null: (json!({"kubeconfig": "/nonexistent/kubeconfig"}), "name"),
);

#[test]
fn huge_durations_are_refused_not_a_panic() {
    // Before the bound, `start + timeout` overflowed before anything else: "internal error".
    let base = json!({"kubeconfig": "/nonexistent/kubeconfig"});
    MODULE.huge_durations_refused(base, &["timeout", "interval", "request_timeout"]);
    MODULE.refused_with(json!({"interval": 0}), "interval", "at least 1 second");
    // 0 still means "look once".
    let ran = MODULE.run(json!({"timeout": 0, "kubeconfig": "/nonexistent/kubeconfig"}));
    assert!(ran.msg().starts_with("parameter `kubeconfig`"), "{}", ran.msg());
}

#[test]
fn nul_bytes_and_empty_paths_are_refused() {
    for (args, field, why) in [
        (json!({"names": ["worker-1\u{0}"]}), "names", "control character"),
        (json!({"names": "worker-1,\u{0}x"}), "names", "control character"),
        (json!({"kubeconfig": ""}), "kubeconfig", "must not be empty"),
        (json!({"kubeconfig": "/k\u{0}"}), "kubeconfig", "NUL"),
        (json!({"context": "a\u{0}"}), "context", "NUL"),
        (
            json!({"kubelet_version": "1.9\u{0}"}),
            "kubelet_version",
            "expected a version",
        ),
    ] {
        MODULE.refused_with(args, field, why);
    }
}

#[test]
fn a_huge_argument_is_not_echoed_whole() {
    let args = json!({"kubelet_version": "x".repeat(1 << 20)});
    MODULE.refused_small(args, "kubelet_version", "(1048576 bytes)");
}
