#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! package_pin's argument intake: fuzzed, and the defects fuzzing found (issue 17, item 8). The
//! refusals below happen before any package manager is asked anything.

use module_kit::testkit::merged;
use serde_json::json;

module_kit::intake_tests!(
    package_pin::PackagePin,
    env!("CARGO_BIN_EXE_package_pin"),
    fuzz: json!({"version": "1.9.2", "manager": "apt", "repo": "kubernetes"}),
    unknown_null: (json!({"version": "1.9.2"}), "enablerepo"),
);

#[test]
fn a_huge_timeout_is_refused() {
    MODULE.huge_durations_refused(json!({"version": "1.9.2"}), &["timeout"]);
    MODULE.refused(json!({"version": "1.9.2", "timeout": 0}), "timeout");
}

#[test]
fn nul_bytes_are_refused() {
    let check = json!({"version": "1.9.2", "_ansible_check_mode": true});
    for (field, bad) in [
        ("repo", json!("kubernetes\u{0}")),
        ("repo", json!("")),
        ("disable_excludes", json!("kubernetes\u{0}")),
        ("packages", json!(["kubelet\u{0}"])),
        ("version", json!("1.9.2\u{0}")),
    ] {
        MODULE.refused(merged(&check, json!({ field: bad })), field);
    }
}

#[test]
fn a_huge_argument_is_not_echoed_whole() {
    let args = json!({"version": "1.9.2", "manager": "a".repeat(1 << 20)});
    MODULE.refused_small(args, "manager", "(1048576 bytes)");
}

#[test]
fn stage_with_assume_switched_is_refused() {
    let args = json!({"version": "1.9.2", "manager": "apt", "stage": true, "assume_switched": true,
                      "_ansible_check_mode": true});
    MODULE.refused(args, "assume_switched");
}
