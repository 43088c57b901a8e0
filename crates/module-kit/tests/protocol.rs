#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The protocol as Ansible sees it: a real process, an args file or stdin, one JSON object out.

use module_kit::testkit::{run_with_args_file, run_with_stdin, Ran};
use serde_json::{json, Value};
use std::path::Path;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_module-kit-selftest"))
}

#[test]
fn args_file_success_and_ansible_keys_split_off() {
    let ran = run_with_args_file(
        bin(),
        &json!({"name": "a", "count": "3", "_ansible_check_mode": false, "_ansible_version": "2.17",
                "_ansible_diff": true, "_ansible_verbosity": 2}),
    )
    .unwrap();
    assert!(!ran.failed(), "{}", ran.stdout);
    assert!(ran.changed());
    assert_eq!(ran.json["name"], "a");
    assert_eq!(ran.json["diff"]["after"]["count"], 3);
    assert_eq!(ran.exit_code, 0);
}

#[test]
fn check_mode_is_passed_and_diff_only_when_asked() {
    let ran = run_with_args_file(
        bin(),
        &json!({"name": "a", "count": 1, "_ansible_check_mode": "yes"}),
    )
    .unwrap();
    assert_eq!(ran.json["check_mode"], true);
    assert!(!ran.changed());
    assert!(
        ran.json.get("diff").is_none(),
        "diff without diff mode: {}",
        ran.stdout
    );
}

#[test]
fn stdin_and_dash_are_accepted() {
    let ran = run_with_stdin(bin(), br#"{"name": "b"}"#).unwrap();
    assert_eq!(ran.json["name"], "b");
    assert!(!ran.changed());
}

#[test]
fn bad_params_name_the_field() {
    let cases = [
        (json!({"name": "a", "colour": 1}), "colour"),
        (json!({"name": "a", "count": "many"}), "count"),
        (json!({"name": "a", "count": -2}), "count"),
        (json!({"name": 5}), "name"),
        (json!({}), "name"),
        (
            json!({"name": "a", "_ansible_check_mode": "perhaps"}),
            "_ansible_check_mode",
        ),
    ];
    for (args, field) in cases {
        let ran = run_with_args_file(bin(), &args).unwrap();
        assert!(ran.failed(), "{args} should fail");
        assert!(
            ran.msg().contains(field),
            "{args}: message {:?} does not name {field}",
            ran.msg()
        );
        assert_eq!(ran.exit_code, 1);
    }
}

#[test]
fn unknown_parameter_lists_the_accepted_ones() {
    let ran = run_with_args_file(bin(), &json!({"name": "a", "cuont": 1})).unwrap();
    assert!(ran.msg().contains("unknown parameter `cuont`"), "{}", ran.msg());
    assert!(ran.msg().contains("count"), "{}", ran.msg());
}

#[test]
fn null_means_default() {
    let ran = run_with_args_file(bin(), &json!({"name": "a", "count": null})).unwrap();
    assert!(!ran.failed(), "{}", ran.stdout);
}

#[test]
fn junk_and_empty_input_fail_as_json() {
    for input in [
        &b""[..],
        b"   \n",
        b"not json",
        b"[1,2]",
        b"\"str\"",
        b"{\"name\":",
        b"\xff\xfe",
    ] {
        let ran = run_with_stdin(bin(), input).unwrap();
        assert!(ran.failed(), "{input:?}");
        assert!(!ran.msg().is_empty());
    }
}

#[test]
fn missing_args_file_fails_as_json() {
    let out = std::process::Command::new(bin())
        .arg("/nonexistent/args")
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["failed"], true);
    assert!(json["msg"].as_str().unwrap().contains("/nonexistent/args"));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn panic_becomes_a_json_failure() {
    let ran = run_with_args_file(bin(), &json!({"name": "boom", "panic": true})).unwrap();
    ran.assert_failed_saying(&["internal error", "asked to panic for boom"]);
    assert!(
        !ran.stderr.contains("RUST_BACKTRACE"),
        "trace leaked: {}",
        ran.stderr
    );
}

#[test]
fn command_failure_carries_rc_stdout_stderr() {
    let ran = run_with_args_file(bin(), &json!({"name": "a", "fail": true})).unwrap();
    assert!(ran.failed());
    assert_eq!(ran.json["rc"], 4);
    assert_eq!(ran.json["stdout"], "partial\n");
    assert_eq!(ran.json["stderr"], "went wrong\n");
    assert!(ran.msg().contains("went wrong"), "{}", ran.msg());
}

#[test]
fn secrets_never_appear_in_output() {
    let ran = run_with_args_file(bin(), &json!({"name": "a", "token": "s3cr3t-value"})).unwrap();
    assert!(!ran.stdout.contains("s3cr3t-value"), "{}", ran.stdout);
    assert_eq!(ran.json["echo_token"], "token is ********");
    // Also when the failure message would carry it.
    let ran = run_with_args_file(
        bin(),
        &json!({"name": "s3cr3t-value", "token": "s3cr3t-value", "count": "x"}),
    )
    .unwrap();
    assert!(!ran.stdout.contains("s3cr3t-value"), "{}", ran.stdout);
}

#[test]
fn help_prints_the_docs() {
    let out = std::process::Command::new(bin()).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("exercises the module protocol"));
}

#[test]
fn version_prints_the_name_and_the_release() {
    for flag in ["--version", "-V"] {
        let out = std::process::Command::new(bin()).arg(flag).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{flag}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("module_kit_selftest {}\n", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
    }
}

#[test]
fn an_unknown_parameter_is_refused_even_when_null() {
    let ran = run_with_args_file(bin(), &json!({"name": "a", "colour": null})).unwrap();
    ran.assert_failed_saying(&[
        "unknown parameter `colour`",
        "accepted parameters: `name`, `count`",
    ]);
    // A known one given as null still means its default.
    let ran = run_with_args_file(bin(), &json!({"name": "a", "count": null, "token": null})).unwrap();
    assert!(!ran.failed(), "{}", ran.stdout);
}

/// Runs the module with `args`, which must fail with a result under 1,000 bytes.
fn fails_with_a_small_result(args: &Value) -> Ran {
    let ran = run_with_args_file(bin(), args).unwrap();
    assert!(ran.failed());
    assert!(
        ran.stdout.len() < 1_000,
        "{} bytes: {}",
        ran.stdout.len(),
        &ran.stdout[..300]
    );
    ran
}

#[test]
fn a_huge_argument_gives_a_small_result() {
    let big = "9".repeat(50 * 1024 * 1024);
    let ran = fails_with_a_small_result(&json!({"name": "a", "count": format!("x{big}")}));
    assert!(ran.msg().starts_with("parameter `count`"), "{}", ran.msg());
    assert!(ran.msg().contains("(52428801 bytes)"), "{}", ran.msg());

    // serde's own messages (an invalid type) and an unknown parameter's name are cut too.
    let big = "k".repeat(1024 * 1024);
    for args in [
        json!({"name": "a", "panic": big}),
        json!({"name": "a", big.clone(): 1}),
        json!({"name": "a", big.clone(): null}),
    ] {
        let ran = fails_with_a_small_result(&args);
        assert!(ran.msg().contains("bytes)"), "{}", ran.msg());
    }
}
