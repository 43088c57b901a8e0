#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! service_state's argument intake: fuzzed, and the defects fuzzing found (issue 17, item 8). The
//! refusals below happen before systemd is asked anything.

use module_kit::testkit::{fuzz_intake, run_with_args_file, Ran};
use serde_json::{json, Value};
use service_state::ServiceState;
use std::path::Path;

fn run(args: Value) -> Ran {
    run_with_args_file(Path::new(env!("CARGO_BIN_EXE_service_state")), &args).unwrap()
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
    let base = json!({"units": ["kup-test-nonexistent"], "state": "stopped"});
    let report = fuzz_intake::<ServiceState>(0x17_08, 400, &base).unwrap();
    assert!(report.accepted > 5 && report.refused > 100, "{report:?}");
}

#[test]
fn huge_durations_are_refused() {
    for field in ["wait_timeout", "settle"] {
        let ran = refused(
            json!({"units": ["kup-test-nonexistent"], "state": "started", field: 9223372036854775807i64,
                   "_ansible_check_mode": true}),
            field,
        );
        assert!(ran.msg().contains("at most 604800 seconds"), "{}", ran.msg());
    }
    refused(
        json!({"units": ["x"], "state": "started", "wait_timeout": "0"}),
        "wait_timeout",
    );
}

#[test]
fn nul_bytes_in_unit_names_are_refused() {
    refused(json!({"units": ["kubelet\u{0}"], "state": "stopped"}), "units");
    refused(json!({"units": [""], "state": "stopped"}), "units");
}

#[test]
fn an_unknown_null_parameter_is_refused() {
    let ran = run(json!({"units": ["x"], "state": "stopped", "name": null}));
    assert!(ran.failed());
    assert!(ran.msg().contains("unknown parameter `name`"), "{}", ran.msg());
}

#[test]
fn a_huge_argument_is_not_echoed_whole() {
    let ran = refused(
        json!({"units": ["a".repeat(1 << 20)], "state": "stopped"}),
        "units",
    );
    assert!(ran.stdout.len() < 1_000, "{} bytes", ran.stdout.len());
    assert!(ran.msg().contains("(1048576 bytes)"), "{}", ran.msg());
}
