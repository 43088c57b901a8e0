#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! package_pin's argument intake: fuzzed, and the defects fuzzing found (issue 17, item 8). The
//! refusals below happen before any package manager is asked anything.

use module_kit::testkit::{fuzz_intake, run_with_args_file, Ran};
use package_pin::PackagePin;
use serde_json::{json, Value};
use std::path::Path;

fn refused(args: Value, field: &str) -> Ran {
    let ran = run_with_args_file(Path::new(env!("CARGO_BIN_EXE_package_pin")), &args).unwrap();
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
    let base = json!({"version": "1.9.2", "manager": "apt", "repo": "kubernetes"});
    let report = fuzz_intake::<PackagePin>(0x17_08, 400, &base).unwrap();
    assert!(report.accepted > 5 && report.refused > 100, "{report:?}");
}

#[test]
fn a_huge_timeout_is_refused() {
    let ran = refused(
        json!({"version": "1.9.2", "timeout": 9223372036854775807i64, "_ansible_check_mode": true}),
        "timeout",
    );
    assert!(ran.msg().contains("at most 604800 seconds"), "{}", ran.msg());
    refused(json!({"version": "1.9.2", "timeout": 0}), "timeout");
}

#[test]
fn nul_bytes_are_refused() {
    let check = |extra: Value| {
        let mut args = json!({"version": "1.9.2", "_ansible_check_mode": true});
        args.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        args
    };
    refused(check(json!({"repo": "kubernetes\u{0}"})), "repo");
    refused(check(json!({"repo": ""})), "repo");
    refused(
        check(json!({"disable_excludes": "kubernetes\u{0}"})),
        "disable_excludes",
    );
    refused(check(json!({"packages": ["kubelet\u{0}"]})), "packages");
    refused(check(json!({"version": "1.9.2\u{0}"})), "version");
}

#[test]
fn an_unknown_null_parameter_is_refused() {
    let ran = refused_any(json!({"version": "1.9.2", "enablerepo": null}));
    assert!(
        ran.msg().contains("unknown parameter `enablerepo`"),
        "{}",
        ran.msg()
    );
}

#[test]
fn a_huge_argument_is_not_echoed_whole() {
    let ran = refused(
        json!({"version": "1.9.2", "manager": "a".repeat(1 << 20)}),
        "manager",
    );
    assert!(ran.stdout.len() < 1_000, "{} bytes", ran.stdout.len());
    assert!(ran.msg().contains("(1048576 bytes)"), "{}", ran.msg());
}

fn refused_any(args: Value) -> Ran {
    let ran = run_with_args_file(Path::new(env!("CARGO_BIN_EXE_package_pin")), &args).unwrap();
    assert!(ran.failed(), "{args} accepted: {}", ran.stdout);
    ran
}
