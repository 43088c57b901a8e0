#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! service_state's argument intake: fuzzed, and the defects fuzzing found (issue 17, item 8). The
//! refusals below happen before systemd is asked anything.

use serde_json::json;

module_kit::intake_tests!(
    service_state::ServiceState,
    env!("CARGO_BIN_EXE_service_state"),
    fuzz: json!({"units": ["kup-test-nonexistent"], "state": "stopped"}),
    unknown_null: (json!({"units": ["x"], "state": "stopped"}), "name"),
);

#[test]
fn huge_durations_are_refused() {
    let base = json!({"units": ["kup-test-nonexistent"], "state": "started"});
    MODULE.huge_durations_refused(base, &["wait_timeout", "settle"]);
    MODULE.refused(
        json!({"units": ["x"], "state": "started", "wait_timeout": "0"}),
        "wait_timeout",
    );
}

#[test]
fn nul_bytes_in_unit_names_are_refused() {
    MODULE.refused(json!({"units": ["kubelet\u{0}"], "state": "stopped"}), "units");
    MODULE.refused(json!({"units": [""], "state": "stopped"}), "units");
}

#[test]
fn a_huge_argument_is_not_echoed_whole() {
    let args = json!({"units": ["a".repeat(1 << 20)], "state": "stopped"});
    MODULE.refused_small(args, "units", "(1048576 bytes)");
}
