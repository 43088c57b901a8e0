#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! kup's output side without a lab: whole `--json` streams of `kup plan` and `kup upgrade` (run
//! against an inventory of local hosts, where the preflight and the cluster's lock fail at once for
//! want of an API server) validated against the documented schema (docs/kup-events.schema.json),
//! usage errors (exit 2, no host table, one `error` event with `--json`), and `kup module`.

#[path = "../../../tests/support/schema.rs"]
mod schema;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn kup(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kup"))
        .args(args)
        .current_dir(dir)
        // No kubeconfig of the machine running the tests is found by the local modules.
        .env("HOME", dir)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("kup")
}

fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/kup-events.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A directory with `hosts.ini`: two hosts reached locally (no ssh), no cluster behind them.
fn local_inventory() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts.ini");
    std::fs::write(
        &path,
        "[control_plane]\ncp1 ansible_connection=local\n[workers]\nw1 ansible_connection=local\n",
    )
    .unwrap();
    (dir, path)
}

/// The stream on stdout, validated as a whole against the schema and kup's exit code.
fn stream(out: &Output) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    schema::validate_stream(&schema(), &stdout, out.status.code())
        .unwrap_or_else(|e| panic!("the stream breaks the documented schema: {e}\n{}", text(out)))
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["event"].as_str().unwrap()).collect()
}

#[test]
fn a_plans_whole_stream_follows_the_schema() {
    let (dir, _) = local_inventory();
    let out = kup(
        dir.path(),
        &["plan", "--json", "-i", "hosts.ini", "--to", "v1.9.2"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let events = stream(&out);
    let kinds = kinds(&events);
    assert_eq!(&kinds[..3], ["start", "phase", "step-start"], "{kinds:?}");
    assert_eq!(
        &kinds[kinds.len() - 3..],
        ["blockers", "report", "error"],
        "{kinds:?}"
    );
    assert_eq!(events[0]["command"], "plan");
    assert_eq!(events[0]["hosts"], serde_json::json!(["cp1", "w1"]));
    assert_eq!(events[0]["kup_version"], env!("CARGO_PKG_VERSION"));
    // The first look at the cluster (its versions, where the hops start) fails without an API server.
    let failed = events.iter().find(|e| e["status"] == "FAILED").unwrap();
    assert_eq!(
        (failed["host"].as_str(), failed["step"].as_str()),
        (Some("cp1"), Some("cluster_survey"))
    );
    assert!(failed["msg"].as_str().unwrap().contains("kubeconfig"), "{failed}");
    let report = &events[events.len() - 2];
    assert_eq!(report["target"], "v1.9.2", "the plan's report names its target");
    assert!(
        report["hosts"]["w1"].is_object(),
        "every host in the report: {report}"
    );
    let error = events.last().unwrap();
    assert_eq!(
        (error["kind"].as_str(), error["exit_code"].as_u64()),
        (Some("failed"), Some(1))
    );
    assert_eq!(error["step"], "cluster_survey");
    assert!(error["fix"].as_str().is_some_and(|f| !f.is_empty()), "{error}");
}

#[test]
fn an_upgrades_whole_stream_follows_the_schema() {
    let (dir, _) = local_inventory();
    let out = kup(
        dir.path(),
        &["upgrade", "--json", "--yes", "-i", "hosts.ini", "--to", "v1.9.2"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let events = stream(&out);
    let kinds = kinds(&events);
    assert_eq!(kinds.first(), Some(&"start"));
    assert_eq!(&kinds[kinds.len() - 2..], ["report", "error"], "{kinds:?}");
    assert_eq!(events[0]["command"], "upgrade");
    // Stopped before any node was taken out: no windows, nothing waited on, no ratio.
    let report = &events[events.len() - 2];
    assert_eq!(report["critical_path"], 0.0, "{report}");
    assert_eq!(report["ratio"], Value::Null, "{report}");
    assert!(report["wall"].as_f64().is_some_and(|w| w >= 0.0), "{report}");
    for host in ["cp1", "w1"] {
        assert_eq!(report["hosts"][host]["out_of_service"], Value::Null, "{report}");
    }
    // The documented types hold: a critical path or a window as a string is refused.
    let schema = schema();
    let mut broken = report.clone();
    broken["critical_path"] = Value::from("0.0 s");
    assert!(schema::validate(&schema, &broken).is_err(), "{broken}");
    let mut broken = report.clone();
    broken["hosts"]["w1"]["out_of_service"] = Value::from("12.5");
    assert!(schema::validate(&schema, &broken).is_err(), "{broken}");
    let mut numbers = report.clone();
    numbers["hosts"]["w1"]["out_of_service"] = Value::from(12.5);
    numbers["critical_path"] = Value::from(9.8);
    numbers["ratio"] = Value::from(1.04);
    assert!(schema::validate(&schema, &numbers).is_ok(), "{numbers}");
}

#[test]
fn usage_errors_exit_2_without_a_table_and_as_one_error_event() {
    let (dir, _) = local_inventory();
    for args in [
        &["plan", "--json", "-i", "missing.ini", "--to", "v1.9.2"][..],
        &["plan", "--json", "-i", "hosts.ini", "--to", "v1.9.99x"],
        &["plan", "--json", "--frobnicate"],
        &["upgrade", "--json", "-i", "hosts.ini"],
        &[
            "upgrade",
            "--json",
            "--yes",
            "-i",
            "missing.ini",
            "--to",
            "v1.9.2",
        ],
        &["status", "--json", "-i", "hosts.ini"],
    ] {
        let out = kup(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let events = stream(&out);
        assert_eq!(kinds(&events), ["error"], "{args:?}");
        assert_eq!(events[0]["kind"], "usage", "{args:?}");
        assert!(!events[0]["message"].as_str().unwrap().is_empty());
    }
    for args in [
        &["plan", "-i", "missing.ini", "--to", "v1.9.2"][..],
        &["plan", "-i", "hosts.ini", "--to", "banana"],
        &["plan", "--frobnicate"],
        &["upgrade", "-i", "hosts.ini", "--to", "v1.9.2"],
        &["module", "describe", "nosuch"],
        &["module", "nosuch"],
    ] {
        let out = kup(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stdout.contains("HOST"),
            "a host table for a usage error: {}",
            text(&out)
        );
    }
    let out = kup(dir.path(), &["plan", "-i", "hosts.ini", "--to", "banana"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expected a release"),
        "{}",
        text(&out)
    );
    // Not a usage error: the text report has its headings.
    let out = kup(dir.path(), &["plan", "-i", "hosts.ini", "--to", "v1.9.2"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("KUBELET NOW -> PLANNED"), "{}", text(&out));
    assert!(stdout.contains("(target v1.9.2)"), "{}", text(&out));
}

#[test]
fn kup_module_lists_and_describes_the_modules() {
    let dir = tempfile::tempdir().unwrap();
    let out = kup(dir.path(), &["module"]);
    assert!(out.status.success(), "{}", text(&out));
    let list = String::from_utf8_lossy(&out.stdout);
    for name in ["node_drain", "package_pin", "cluster_lock", "kubeadm_upgrade"] {
        assert!(
            list.lines()
                .any(|l| l.starts_with(&format!("{name} ")) && l.len() > name.len() + 20),
            "{name} missing or without its description:\n{list}"
        );
    }
    let out = kup(dir.path(), &["module", "describe", "node_ready"]);
    assert!(out.status.success(), "{}", text(&out));
    let doc = String::from_utf8_lossy(&out.stdout);
    assert!(
        doc.contains("ARGUMENT") && doc.contains("TYPE") && doc.contains("DEFAULT"),
        "{doc}"
    );
    assert!(doc.lines().any(|l| l.starts_with("timeout ")), "{doc}");
    // The scripts' list keeps its three words a line.
    let out = kup(dir.path(), &["module", "--list"]);
    assert!(String::from_utf8_lossy(&out.stdout)
        .lines()
        .all(|l| l.split_whitespace().count() == 3));
}

/// A kubeconfig whose API server refuses every connection (a closed local port).
fn unreachable_kubeconfig(dir: &Path) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"http://127.0.0.1:9\"}\n\
         contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\nusers:\n- name: u\n  user: {}\n",
    )
    .unwrap();
    path
}

fn module_with_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kup"))
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn kup_module_progress_writes_progress_lines_on_stderr_and_one_result_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    let args = serde_json::json!({"kubeconfig": kubeconfig, "timeout": 3, "interval": 1}).to_string();
    let with = module_with_stdin(dir.path(), &["module", "--progress", "node_ready"], &args);
    assert_eq!(with.status.code(), Some(1), "{}", text(&with));
    // stdout: exactly the one result object of the module protocol.
    let stdout = String::from_utf8_lossy(&with.stdout);
    assert_eq!(stdout.lines().count(), 1, "{}", text(&with));
    let result: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["failed"], true);
    let progress: Vec<Value> = String::from_utf8_lossy(&with.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kup_progress"] == 1)
        .collect();
    assert!(!progress.is_empty(), "no progress line: {}", text(&with));
    assert!(
        progress[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("the API server did not answer the last look"),
        "{}",
        progress[0]
    );
    assert!(
        progress[0]["left_s"].as_u64().is_some_and(|s| s <= 3),
        "{}",
        progress[0]
    );
    // Without --progress (as Ansible runs a module), nothing of it.
    let without = module_with_stdin(dir.path(), &["module", "node_ready"], &args);
    assert_eq!(without.status.code(), Some(1), "{}", text(&without));
    assert!(
        !String::from_utf8_lossy(&without.stderr).contains("kup_progress"),
        "{}",
        text(&without)
    );
}

#[test]
fn a_progress_event_follows_the_schema_and_a_broken_one_does_not() {
    let schema = schema();
    let event = serde_json::json!({"schema": "kup.events/v1", "event": "progress", "time": "2026-12-02T06:40:00Z",
        "at": 42.5, "host": "w1", "step": "drain", "module": "node_drain",
        "text": "drain w1: 1 pod(s) still on the node: default/web-0; eviction of default/web-0 refused (429 TooManyRequests) by PodDisruptionBudget default/web",
        "left_s": 300, "node": "w1"});
    schema::validate(&schema, &event).unwrap();
    let mut unsaid = event.clone();
    unsaid["left_s"] = Value::Null;
    unsaid["node"] = Value::Null;
    schema::validate(&schema, &unsaid).unwrap();
    for (field, value) in [
        ("left_s", Value::from("300")),
        ("left_s", Value::from(-5)),
        ("text", Value::Null),
        ("node", Value::from(7)),
        ("pods", Value::from(1)),
    ] {
        let mut broken = event.clone();
        broken[field] = value;
        assert!(schema::validate(&schema, &broken).is_err(), "{broken}");
    }
    let mut no_step = event.clone();
    no_step.as_object_mut().unwrap().remove("step");
    assert!(schema::validate(&schema, &no_step).is_err());
    // In a stream, between start and report.
    let start = serde_json::json!({"schema": "kup.events/v1", "event": "start", "time": "2026-12-02T06:39:00Z",
        "at": 0.0, "command": "upgrade", "target": "v1.9.2", "inventory": "hosts.ini", "hosts": ["w1"],
        "kup_version": "0"});
    let stream = format!("{start}\n{event}\n");
    let err = schema::validate_stream(&schema, &stream, Some(0)).unwrap_err();
    assert!(err.contains("ends with progress"), "{err}");
}

#[test]
fn eras_and_describe_print_json_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let out = kup(dir.path(), &["eras", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let eras: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = eras["eras"].as_array().unwrap();
    assert!(rows.len() >= 7, "{eras}");
    assert_eq!(rows[0]["minor"], 8);
    assert!(rows
        .iter()
        .all(|r| r["source"].as_str().is_some_and(|s| s.len() > 20)));
    let out = kup(dir.path(), &["module", "describe", "node_drain", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["name"], "node_drain");
    let timeout = doc["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "timeout")
        .unwrap();
    assert_eq!(
        (timeout["type"].as_str(), timeout["default"].as_u64()),
        (Some("int"), Some(600))
    );
    let out = kup(dir.path(), &["module", "describe", "--json", "nosuch"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(out.stdout.is_empty());
}
