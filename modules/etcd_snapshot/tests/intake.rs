#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! etcd_snapshot's argument intake: fuzzed, and the refusals every module makes, all before any
//! file is read or etcd is asked anything.

use module_kit::testkit::merged;
use serde_json::json;

module_kit::intake_tests!(
    etcd_snapshot::EtcdSnapshot,
    env!("CARGO_BIN_EXE_etcd_snapshot"),
    // Accepted arguments find no etcd (port 1) and write nothing (dest_dir's parent is missing).
    fuzz: json!({"target_version": "v1.31.2", "endpoint": "https://127.0.0.1:1",
                 "dest_dir": "/nonexistent/etcd-snapshots", "cacert": "/nonexistent/ca.crt",
                 "_ansible_check_mode": true}),
    unknown_null: (json!({"target_version": "v1.31.2"}), "dest"),
);

fn check() -> serde_json::Value {
    json!({"target_version": "v1.31.2", "_ansible_check_mode": true})
}

#[test]
fn target_version_is_required_and_must_be_a_version() {
    MODULE
        .run(json!({"_ansible_check_mode": true}))
        .assert_failed_saying(&["missing required parameter `target_version`"]);
    for bad in ["1.31", "v1.31.2 --force", "latest", "v1.31.2\n", ""] {
        MODULE.refused_with(
            merged(&check(), json!({ "target_version": bad })),
            "target_version",
            "expected a Kubernetes version",
        );
    }
    MODULE.refused(
        merged(&check(), json!({"target_version": 1.31})),
        "target_version",
    );
}

#[test]
fn the_endpoint_is_https_and_nothing_more() {
    for (bad, why) in [
        ("http://127.0.0.1:2379", "scheme"),
        ("127.0.0.1:2379", "https://HOST:PORT"),
        ("https://user:pw@127.0.0.1:2379", "without user or password"),
        ("https://127.0.0.1:2379/v3", "without a path"),
        ("https://127.0.0.1:2379?x=1", "without a path, query"),
        ("unix:///run/etcd.sock", "scheme"),
    ] {
        let ran = MODULE.refused_with(merged(&check(), json!({ "endpoint": bad })), "endpoint", why);
        // A password given is never echoed back.
        assert!(!ran.stdout.contains(":pw@"), "{}", ran.stdout);
    }
}

#[test]
fn ill_typed_and_unknown_arguments_name_their_field() {
    for (field, bad) in [
        ("cacert", json!("ca.crt")),
        ("cert", json!("")),
        ("key", json!(5)),
        ("dest_dir", json!("/var/lib/\u{0}snap")),
        ("keep", json!(0)),
        ("keep", json!(101)),
        ("keep", json!("three")),
        ("force", json!("maybe")),
        ("timeout", json!("soon")),
        ("timeout", json!(0)),
    ] {
        MODULE.refused(merged(&check(), json!({ field: bad })), field);
    }
    MODULE.huge_durations_refused(check(), &["timeout"]);
    let ran = MODULE.run(merged(&check(), json!({"snapshot_dir": "/tmp"})));
    ran.assert_failed_saying(&["unknown parameter `snapshot_dir`"]);
}

#[test]
fn a_huge_argument_is_not_echoed_whole() {
    let args = merged(&check(), json!({"target_version": "v".repeat(1 << 20)}));
    MODULE.refused_small(args, "target_version", "(1048576 bytes)");
}

#[test]
fn help_prints_the_documentation() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_etcd_snapshot"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("module: etcd_snapshot"), "{text}");
}

#[test]
fn without_etcd_certificates_it_says_so_when_asked_to_and_fails_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let absent = json!({"target_version": "v1.31.2", "cacert": "/nonexistent/ca.crt",
                        "dest_dir": dir.path().join("snapshots")});
    let ran = MODULE.run(merged(&absent, json!({"skip_without_certs": true})));
    let out = &ran.json;
    assert_eq!(
        (out["failed"].clone(), out["changed"].clone()),
        (json!(false), json!(false)),
        "{out}"
    );
    assert_eq!(out["skipped"], true, "{out}");
    assert!(
        out["msg"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/ca.crt does not exist"),
        "{out}"
    );
    assert!(!dir.path().join("snapshots").exists(), "nothing is created");
    MODULE.run(absent).assert_failed_saying(&["/nonexistent/ca.crt"]);
}
