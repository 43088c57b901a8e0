//! Real kubectl with validation on against the served OpenAPI documents: `apply`/`create` of a
//! PodDisruptionBudget, a misspelt field refused (server-side `fieldValidation=Strict` from 1.25,
//! client-side against `/openapi/v2` before), `explain`, and the PDB table of `kubectl get`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

mod common;

use std::path::Path;

use common::{modern_kubectl, Lab};
use lab_apiserver::{Cluster, Emulation};
use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};

fn release(minor: u32) -> Emulation {
    Emulation::parse(&format!("1.{minor}")).unwrap()
}

fn pdb_yaml(emu: Emulation, name: &str, spec_field: &str) -> String {
    let api = if emu.serves_policy_v1() {
        "policy/v1"
    } else {
        "policy/v1beta1"
    };
    format!(
        "apiVersion: {api}\nkind: PodDisruptionBudget\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  {spec_field}: 1\n  selector:\n    matchLabels:\n      app: web\n"
    )
}

fn write(lab: &Lab, file: &str, text: &str) -> String {
    let p = lab.dir.path().join(file);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn stderr_of(lab: &Lab, kubectl: &Path, args: &[&str]) -> String {
    let out = lab.kubectl(kubectl, args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "kubectl {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// Apply, refuse a typo, print the PDB table, explain: what rehearsing a PDB change needs.
fn rehearse_pdb(kubectl: &Path, emu: Emulation, tls: bool) {
    let lab = Lab::start(emu, tls, Cluster::sample(None));
    let good = write(&lab, "pdb.yaml", &pdb_yaml(emu, "rehearsal", "maxUnavailable"));
    let out = lab.kubectl_ok(kubectl, &["apply", "-f", &good]);
    assert!(
        out.contains("poddisruptionbudget.policy/rehearsal created"),
        "{out}"
    );
    // A second apply is a (strategic merge) PATCH with the same validation.
    let changed = write(
        &lab,
        "pdb2.yaml",
        &pdb_yaml(emu, "rehearsal", "minAvailable").replace("  minAvailable: 1\n", "  minAvailable: 2\n"),
    );
    let out = lab.kubectl_ok(kubectl, &["apply", "-f", &changed]);
    assert!(
        out.contains("poddisruptionbudget.policy/rehearsal configured"),
        "{out}"
    );

    let typo = write(&lab, "typo.yaml", &pdb_yaml(emu, "typo", "maxUnavailabel"));
    if emu.advertises_field_validation() && !emu.honours_field_validation() {
        // 1.23 and 1.24 list `fieldValidation` in their OpenAPI, so kubectl >= 1.25 leaves the
        // check to the server, whose ServerSideFieldValidation gate is off: the typo goes through,
        // as it does against real 1.23/1.24 servers. The rest of the rehearsal is the same.
        lab.kubectl_ok(kubectl, &["apply", "-f", &typo]);
        lab.kubectl_ok(kubectl, &["delete", "pdb", "typo"]);
        return check_tables_and_explain(&lab, kubectl, emu);
    }
    let err = stderr_of(&lab, kubectl, &["apply", "-f", &typo]);
    println!("{err}");
    if emu.honours_field_validation() {
        // Server-side: kubectl >= 1.25 sends fieldValidation=Strict when the OpenAPI says so.
        assert!(
            err.contains("strict decoding error: unknown field \"spec.maxUnavailabel\""),
            "{err}"
        );
    } else {
        // Client-side, against the v2 document (kubectl's ValidationError).
        assert!(err.contains("unknown field \"maxUnavailabel\""), "{err}");
    }
    let err = stderr_of(&lab, kubectl, &["create", "-f", &typo]);
    assert!(err.contains("maxUnavailabel"), "{err}");
    // Nothing was created by the refused manifests.
    let pdbs = lab.kubectl_ok(kubectl, &["get", "pdb", "-o", "name"]);
    assert!(!pdbs.contains("typo"), "{pdbs}");
    // With validation off the manifest goes through.
    lab.kubectl_ok(kubectl, &["apply", "--validate=false", "-f", &typo]);
    check_tables_and_explain(&lab, kubectl, emu);
}

fn check_tables_and_explain(lab: &Lab, kubectl: &Path, emu: Emulation) {
    let table = lab.kubectl_ok(kubectl, &["get", "pdb"]);
    println!("{table}");
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE"
        ],
        "{table}"
    );
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("rehearsal "))
        .unwrap()
        .split_whitespace()
        .collect();
    // minAvailable 2 of the three web pods, and the maxUnavailable of the first apply removed.
    assert_eq!(&row[..4], ["rehearsal", "2", "N/A", "1"], "{table}");
    let web: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&web[..4], ["web", "2", "N/A", "1"], "{table}");

    let explain = lab.kubectl_ok(kubectl, &["explain", "pdb.spec"]);
    let version = if emu.serves_policy_v1() { "v1" } else { "v1beta1" };
    assert!(explain.contains(version), "{explain}");
    println!("{explain}");
    assert!(
        explain.contains("KIND:") && explain.contains("PodDisruptionBudget"),
        "{explain}"
    );
    for f in ["maxUnavailable", "minAvailable", "selector"] {
        assert!(explain.contains(f), "{f} missing:\n{explain}");
    }
    let explain = lab.kubectl_ok(kubectl, &["explain", "pods.spec.containers.name"]);
    assert!(explain.contains("name"), "{explain}");

    let ds = lab.kubectl_ok(kubectl, &["get", "ds", "-A"]);
    println!("{ds}");
    assert!(
        ds.lines()
            .next()
            .unwrap()
            .contains("DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR"),
        "{ds}"
    );
    let rs = lab.kubectl_ok(kubectl, &["get", "rs", "-o", "wide"]);
    println!("{rs}");
    assert!(
        rs.lines().next().unwrap().contains("DESIRED   CURRENT   READY"),
        "{rs}"
    );
    assert!(rs.contains("app=web"), "{rs}");
}

#[test]
fn kubectl_rehearses_a_pdb_1_30() {
    let Some(k) = modern_kubectl() else { return };
    rehearse_pdb(&k, Emulation::V1_30, true);
}

#[test]
fn kubectl_rehearses_a_pdb_1_24() {
    let Some(k) = modern_kubectl() else { return };
    rehearse_pdb(&k, release(24), false);
}

#[test]
fn kubectl_rehearses_a_pdb_1_20() {
    let Some(k) = modern_kubectl() else { return };
    rehearse_pdb(&k, release(20), false);
}

/// 1.9 has no `/openapi/v2` (it came with 1.10) and no v3: a modern kubectl cannot validate
/// against it, exactly as against a real 1.9 server; `--validate=false` works, and the PDB table
/// is the server's.
#[test]
fn modern_kubectl_against_1_9_needs_validation_off() {
    let Some(kubectl) = modern_kubectl() else { return };
    let emu = Emulation::V1_9;
    let lab = Lab::start(emu, false, Cluster::sample(None));
    let good = write(&lab, "pdb.yaml", &pdb_yaml(emu, "rehearsal", "maxUnavailable"));
    let err = stderr_of(&lab, &kubectl, &["apply", "-f", &good]);
    assert!(err.contains("failed to download openapi"), "{err}");
    let out = lab.kubectl_ok(&kubectl, &["apply", "--validate=false", "-f", &good]);
    assert!(out.contains("created"), "{out}");
    let table = lab.kubectl_ok(&kubectl, &["get", "pdb", "rehearsal"]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    // maxUnavailable 1 over the three web pods: one disruption allowed.
    assert_eq!(&row[..4], ["rehearsal", "N/A", "1", "1"], "{table}");
}

/// The Google Cloud SDK's kubectl builds (kubectl.1.27 ..), each against 1.30: the oldest ones
/// with the OpenAPI v3 query-parameter check included.
#[test]
fn every_sdk_kubectl_refuses_a_misspelt_pdb_on_1_30() {
    let Some(newest) = modern_kubectl() else { return };
    let dir = newest.parent().unwrap().to_path_buf();
    let mut clients: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("kubectl.1."))
        })
        .collect();
    clients.sort();
    let emu = Emulation::V1_30;
    for kubectl in clients {
        let lab = Lab::start(emu, true, Cluster::sample(None));
        let good = write(&lab, "pdb.yaml", &pdb_yaml(emu, "rehearsal", "maxUnavailable"));
        lab.kubectl_ok(&kubectl, &["apply", "-f", &good]);
        let typo = write(&lab, "typo.yaml", &pdb_yaml(emu, "rehearsal", "maxUnavailabel"));
        let err = stderr_of(&lab, &kubectl, &["apply", "-f", &typo]);
        assert!(
            err.contains("strict decoding error: unknown field \"spec.maxUnavailabel\""),
            "{}: {err}",
            kubectl.display()
        );
        let table = lab.kubectl_ok(&kubectl, &["get", "pdb"]);
        assert!(
            table.starts_with("NAME        MIN AVAILABLE   MAX UNAVAILABLE   ALLOWED DISRUPTIONS   AGE"),
            "{}: {table}",
            kubectl.display()
        );
        println!("{}: ok", kubectl.display());
    }
}

trait JsonBody {
    fn json_body(self) -> Value;
}

impl JsonBody for Response {
    fn json_body(self) -> Value {
        serde_json::from_slice(&self.bytes().unwrap()).unwrap()
    }
}

/// Plain HTTP(S) requests against a lab.
fn http(lab: &Lab, method: &str, path: &str, accept: Option<&str>, body: Option<Value>) -> Response {
    let mut b = Client::builder();
    if let Some(ca) = lab.handle().ca_pem() {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
    }
    let mut r = b
        .build()
        .unwrap()
        .request(method.parse().unwrap(), format!("{}{path}", lab.handle().url()));
    if let Some(t) = lab.handle().token() {
        r = r.bearer_auth(t);
    }
    if let Some(a) = accept {
        r = r.header("accept", a);
    }
    if let Some(b) = body {
        r = r
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&b).unwrap());
    }
    r.send().unwrap()
}

const PB: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

#[test]
fn openapi_endpoints_per_release() {
    let old = Lab::start(Emulation::V1_9, false, Cluster::sample(None));
    assert_eq!(http(&old, "GET", "/openapi/v2", Some(PB), None).status(), 404);
    assert_eq!(http(&old, "GET", "/openapi/v3", None, None).status(), 404);
    let pb = http(&old, "GET", "/swagger-2.0.0.pb-v1", None, None);
    assert_eq!(pb.status(), 200);
    assert!(pb.bytes().unwrap().starts_with(b"\x0a\x032.0"));
    let doc: Value = http(&old, "GET", "/swagger.json", None, None).json_body();
    let defs = doc["definitions"].as_object().unwrap();
    assert!(defs.contains_key("io.k8s.api.policy.v1beta1.PodDisruptionBudget"));
    assert!(defs.contains_key("io.k8s.api.extensions.v1beta1.DaemonSet"));
    assert!(!defs.contains_key("io.k8s.api.policy.v1.PodDisruptionBudget"));
    assert_eq!(
        defs["io.k8s.api.policy.v1beta1.PodDisruptionBudget"]["x-kubernetes-group-version-kind"],
        json!([{"group": "policy", "kind": "PodDisruptionBudget", "version": "v1beta1"}])
    );

    let new = Lab::start(Emulation::V1_30, true, Cluster::sample(None));
    assert_eq!(http(&new, "GET", "/swagger.json", None, None).status(), 404);
    let r = http(&new, "GET", "/openapi/v2", Some(PB), None);
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    );
    assert_eq!(
        http(&new, "GET", "/openapi/v2", Some("application/xml"), None).status(),
        406
    );
    let doc: Value = http(&new, "GET", "/openapi/v2", Some("application/json"), None).json_body();
    assert_eq!(doc["swagger"], "2.0");
    assert!(doc["definitions"]
        .get("io.k8s.api.policy.v1beta1.PodDisruptionBudget")
        .is_none());
    let index: Value = http(&new, "GET", "/openapi/v3", None, None).json_body();
    let url = index
        .pointer("/paths/apis~1policy~1v1/serverRelativeURL")
        .unwrap()
        .as_str()
        .unwrap();
    let r = http(&new, "GET", url, Some("application/json"), None);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "public, immutable");
    let doc: Value = r.json_body();
    assert_eq!(doc["openapi"], "3.0.0");
    assert!(doc
        .pointer("/components/schemas/io.k8s.api.policy.v1.PodDisruptionBudget")
        .is_some());
    assert_eq!(
        http(&new, "GET", "/openapi/v3/apis/policy/v1beta1", None, None).status(),
        404
    );
}

/// `?fieldValidation=` on writes, with the real messages, from 1.25; ignored on 1.24.
#[test]
fn server_side_field_validation() {
    let lab = Lab::start(Emulation::V1_30, false, Cluster::sample(None));
    let path = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";
    let pdb = |name: &str| {
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name}, "spec": {"maxUnavailabel": 1, "selector": {"matchLabels": {"app": "web"}}}})
    };
    let r = http(
        &lab,
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        None,
        Some(pdb("a")),
    );
    assert_eq!(r.status(), 400);
    let status: Value = r.json_body();
    assert_eq!(status["reason"], "BadRequest");
    assert_eq!(
        status["message"],
        "PodDisruptionBudget in version \"v1\" cannot be handled as a PodDisruptionBudget: strict decoding error: unknown field \"spec.maxUnavailabel\""
    );
    for (query, warned) in [
        ("?fieldValidation=Warn", true),
        ("", true),
        ("?fieldValidation=Ignore", false),
    ] {
        let name = format!("w{}", query.len());
        let r = http(&lab, "POST", &format!("{path}{query}"), None, Some(pdb(&name)));
        assert_eq!(r.status(), 201, "{query}");
        let warning = r
            .headers()
            .get("warning")
            .map(|h| h.to_str().unwrap().to_string());
        assert_eq!(
            warning.as_deref(),
            warned.then_some("299 - \"unknown field \\\"spec.maxUnavailabel\\\"\""),
            "{query}"
        );
    }
    let r = http(
        &lab,
        "POST",
        &format!("{path}?fieldValidation=Sometimes"),
        None,
        Some(pdb("b")),
    );
    assert_eq!(r.status(), 422);
    let patch = http(
        &lab,
        "PATCH",
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets/web?fieldValidation=Strict",
        None,
        None,
    );
    assert_eq!(patch.status(), 415, "a PATCH without a patch content type");

    let old = Lab::start(release(24), false, Cluster::sample(None));
    let r = http(
        &old,
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        None,
        Some(pdb("a")),
    );
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("warning").is_none());
}
