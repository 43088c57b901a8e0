#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! kubeadm_config_edit's argument intake: fuzzed, and refusals naming the field, before any
//! kubeconfig is read.

use serde_json::json;

module_kit::intake_tests!(
    kubeadm_config_edit::KubeadmConfigEdit,
    env!("CARGO_BIN_EXE_kubeadm_config_edit"),
    fuzz: json!({"target": "v1.12.10", "node": "master-1", "kubeconfig": "/nonexistent/kubeconfig"}),
    unknown_null: (json!({"target": "v1.12.10", "node": "master-1"}), "config"),
);

#[test]
fn ill_typed_and_missing_parameters_are_refused_naming_them() {
    let base = json!({"target": "v1.12.10", "node": "master-1"});
    let with = |k: &str, v: serde_json::Value| {
        let mut a = base.clone();
        a[k] = v;
        a
    };
    for (args, field) in [
        (json!({"node": "master-1"}), "target"),
        (json!({"target": "v1.12"}), "node"),
    ] {
        let ran = MODULE.run(args);
        assert!(
            ran.failed()
                && ran
                    .msg()
                    .contains(&format!("missing required parameter `{field}`")),
            "{}",
            ran.stdout
        );
    }
    for (field, bad) in [
        ("target", json!("v1.12.10 -y")),
        ("target", json!("latest")),
        ("target", json!(12)),
        ("node", json!("Master_1")),
        ("node", json!("m\u{0}")),
        ("first", json!("perhaps")),
        ("config_path", json!("relative.yaml")),
        ("config_path", json!("")),
        ("cri_socket", json!("")),
        ("cri_socket", json!("/run/x\u{0}")),
        ("kubeconfig", json!("")),
    ] {
        MODULE.refused(with(field, bad), field);
    }
    let ran = MODULE.run(with("configpath", json!("/x")));
    assert!(ran.failed() && ran.msg().contains("configpath"), "{}", ran.stdout);
}

#[test]
fn huge_timeouts_are_refused() {
    let base = json!({"target": "v1.12.10", "node": "master-1", "kubeconfig": "/nonexistent/kubeconfig"});
    MODULE.huge_durations_refused(base, &["timeout", "request_timeout"]);
}

#[test]
fn a_target_without_edits_needs_no_cluster() {
    // No kubeconfig anywhere to read: a target other than 1.12 and 1.13 never connects.
    let ran =
        MODULE.run(json!({"target": "v1.9.2", "node": "master-1", "kubeconfig": "/nonexistent/kubeconfig"}));
    assert!(!ran.failed() && !ran.changed(), "{}", ran.stdout);
    assert_eq!(ran.json["edits"], json!([]));
    assert_eq!(ran.json["config_file"], serde_json::Value::Null);
    let ran = MODULE
        .run(json!({"target": "v1.12.10", "node": "master-1", "kubeconfig": "/nonexistent/kubeconfig"}));
    assert!(ran.failed(), "{}", ran.stdout);
}

#[test]
fn a_huge_argument_is_not_echoed_whole() {
    MODULE.refused_small(
        json!({"target": "v1.12.10", "node": "N".repeat(1 << 20)}),
        "node",
        "(1048576 bytes)",
    );
}
