#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! package_repo's argument intake: fuzzed, and the refusals every module makes. All of them happen
//! before any file is read.

use module_kit::testkit::merged;
use serde_json::json;

module_kit::intake_tests!(
    package_repo::PackageRepo,
    env!("CARGO_BIN_EXE_package_repo"),
    fuzz: json!({"version": "1.31", "manager": "apt", "path": "/nonexistent/kubernetes.list",
                 "key_path": "/nonexistent/k.asc", "key_fingerprint": "0E57BCCE4D01EC30D45929FCCB4BFB28AAAADA12"}),
    unknown_null: (json!({"version": "1.31"}), "repo_path"),
);

const FPR: &str = "0E57BCCE4D01EC30D45929FCCB4BFB28AAAADA12";

#[test]
fn a_huge_timeout_is_refused() {
    MODULE.huge_durations_refused(json!({"version": "1.31"}), &["timeout"]);
    MODULE.refused(
        json!({"version": "1.31", "timeout": 0, "_ansible_check_mode": true}),
        "timeout",
    );
}

#[test]
fn versions_that_name_no_minor_are_refused() {
    // In check mode, so that a version wrongly accepted changes nothing on this machine.
    for v in [
        "2.0",
        "1",
        "stable-1.31",
        "1.31-rc",
        "v1.31.2 --force",
        "1.31\n2",
        "",
    ] {
        let args = json!({"version": v, "_ansible_check_mode": true});
        MODULE.refused_with(args, "version", "expected a Kubernetes version");
    }
    MODULE
        .run(json!({"_ansible_check_mode": true}))
        .assert_failed_saying(&["missing required parameter `version`"]);
    MODULE.refused(json!({"version": 1.31, "_ansible_check_mode": true}), "version");
}

#[test]
fn ill_typed_and_unknown_arguments_name_their_field() {
    let base = json!({"version": "1.31", "_ansible_check_mode": true});
    for (field, bad) in [
        ("path", json!("relative/kubernetes.list")),
        ("path", json!("")),
        ("path", json!("/etc/apt/k\u{0}.list")),
        ("manager", json!("zypper")),
        ("update_cache", json!("maybe")),
        ("key_path", json!(5)),
        ("key_dest", json!("k.gpg")),
        ("timeout", json!("soon")),
    ] {
        MODULE.refused(merged(&base, json!({ field: bad })), field);
    }
    let ran = MODULE.run(merged(&base, json!({"minor": "1.31"})));
    assert!(ran.failed());
    assert!(ran.msg().contains("unknown parameter `minor`"), "{}", ran.msg());
}

#[test]
fn a_key_needs_its_pinned_fingerprint_and_the_other_way_round() {
    let check = json!({"version": "1.31", "_ansible_check_mode": true});
    let ran = MODULE.refused(
        merged(&check, json!({"key_path": "/root/k.asc"})),
        "key_fingerprint",
    );
    assert!(ran.msg().contains("is required with key_path"), "{}", ran.msg());
    MODULE.refused(merged(&check, json!({"key_fingerprint": FPR})), "key_path");
    MODULE.refused(merged(&check, json!({"key_dest": "/etc/k.gpg"})), "key_dest");
    for bad in [
        "0E57BCCE",
        "0x0E57BCCE4D01EC30D45929FCCB4BFB28AAAADA12",
        "ZZ57BCCE4D01EC30D45929FCCB4BFB28AAAADA12",
        "",
    ] {
        MODULE.refused_with(
            merged(&check, json!({"key_path": "/root/k.asc", "key_fingerprint": bad})),
            "key_fingerprint",
            "40 hex digits",
        );
    }
}

#[test]
fn a_huge_argument_is_not_echoed_whole() {
    let args = json!({"version": "1.31", "manager": "a".repeat(1 << 20), "_ansible_check_mode": true});
    MODULE.refused_small(args, "manager", "(1048576 bytes)");
}
