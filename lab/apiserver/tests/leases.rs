//! Leases (coordination.k8s.io) where the emulated release served them, and the optimistic
//! concurrency a lock relies on: 409 AlreadyExists on create, 409 Conflict on a stale PUT, DELETE
//! preconditions (UID always, resourceVersion from 1.14). Over raw HTTP and through kube-rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

mod common;

use std::time::Duration;

use common::Lab;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::Discovery;
use kube::{Client, Config};
use lab_apiserver::{Cluster, Emulation};
use reqwest::blocking::Client as Http;
use serde_json::{json, Value};

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";

struct Raw {
    lab: Lab,
    http: Http,
}

impl Raw {
    fn new(emu: Emulation, tls: bool) -> Raw {
        let lab = Lab::start(emu, tls, Cluster::sample(None));
        let mut b = Http::builder().timeout(Duration::from_secs(10));
        if let Some(ca) = lab.handle().ca_pem() {
            b = b.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
        }
        Raw {
            lab,
            http: b.build().unwrap(),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.lab.handle().url());
        let mut r = self.http.request(method.parse().unwrap(), url);
        if let Some(t) = self.lab.handle().token() {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&b).unwrap());
        }
        let resp = r.send().unwrap();
        let code = resp.status().as_u16();
        (
            code,
            serde_json::from_slice(&resp.bytes().unwrap()).unwrap_or(Value::Null),
        )
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None)
    }
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|g| g["name"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn lease(holder: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "kup-upgrade", "namespace": "kube-system"},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 120,
            "acquireTime": "2024-05-01T10:00:00.000000Z",
            "renewTime": "2024-05-01T10:00:00.000000Z",
        },
    })
}

#[test]
fn discovery_lists_leases_only_where_the_release_served_them() {
    // (release, versions served: preferred first)
    for (emu, versions) in [
        ("1.9", vec![]),
        ("1.11", vec![]),
        ("1.13", vec!["v1beta1"]),
        ("1.14", vec!["v1", "v1beta1"]),
        ("1.21", vec!["v1", "v1beta1"]),
        ("1.22", vec!["v1"]),
        ("1.30", vec!["v1"]),
    ] {
        let emu = Emulation::parse(emu).unwrap();
        let raw = Raw::new(emu, false);
        let (_, apis) = raw.get("/apis");
        let listed = names(&apis, "groups").contains(&"coordination.k8s.io".to_string());
        assert_eq!(listed, !versions.is_empty(), "{emu:?}: {apis}");
        let (code, group) = raw.get("/apis/coordination.k8s.io");
        if versions.is_empty() {
            assert_eq!(code, 404, "{emu:?}");
            assert_eq!(raw.get("/apis/coordination.k8s.io/v1").0, 404);
            assert_eq!(raw.get("/apis/coordination.k8s.io/v1beta1").0, 404);
            assert_eq!(raw.get(LEASES).0, 404, "{emu:?}: no leases before 1.12");
            continue;
        }
        assert_eq!(code, 200);
        assert_eq!(
            group["preferredVersion"]["groupVersion"],
            format!("coordination.k8s.io/{}", versions[0])
        );
        let served: Vec<&str> = group["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_str().unwrap())
            .collect();
        assert_eq!(served, versions, "{emu:?}");
        for v in ["v1", "v1beta1"] {
            let (code, list) = raw.get(&format!("/apis/coordination.k8s.io/{v}"));
            assert_eq!(code == 200, versions.contains(&v), "{emu:?} {v}");
            if code == 200 {
                let r = &list["resources"][0];
                assert_eq!(r["name"], "leases");
                assert_eq!(r["kind"], "Lease");
                assert_eq!(r["namespaced"], true);
                let verbs = r["verbs"].as_array().unwrap();
                for verb in ["create", "get", "update", "delete"] {
                    assert!(verbs.contains(&json!(verb)), "{r}");
                }
            }
        }
        let (code, list) = raw.get(LEASES);
        assert_eq!(code == 200, versions.contains(&"v1"), "{emu:?}");
        if code == 200 {
            assert_eq!(list["kind"], "LeaseList");
        }
    }
}

#[test]
fn lease_create_update_delete_with_optimistic_concurrency() {
    for (emu, tls) in [
        (Emulation::V1_30, true),
        (Emulation::parse("1.14").unwrap(), false),
    ] {
        let raw = Raw::new(emu, tls);
        let (code, created) = raw.call("POST", LEASES, Some(lease("a")));
        assert_eq!(code, 201, "{created}");
        assert_eq!(created["apiVersion"], "coordination.k8s.io/v1");
        assert_eq!(created["kind"], "Lease");
        assert_eq!(created["spec"]["holderIdentity"], "a");
        assert_eq!(created["spec"]["renewTime"], "2024-05-01T10:00:00.000000Z");
        let rv = created["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        let uid = created["metadata"]["uid"].as_str().unwrap().to_string();

        // A second create of the same name: 409 AlreadyExists.
        let (code, v) = raw.call("POST", LEASES, Some(lease("b")));
        assert_eq!(code, 409, "{v}");
        assert_eq!(v["reason"], "AlreadyExists");
        assert_eq!(
            v["message"],
            "leases.coordination.k8s.io \"kup-upgrade\" already exists"
        );
        assert_eq!(
            v["details"],
            json!({"name": "kup-upgrade", "group": "coordination.k8s.io", "kind": "leases"})
        );

        // PUT with the resourceVersion read: 200 and a new one; with a stale one: 409 Conflict.
        let path = format!("{LEASES}/kup-upgrade");
        let mut renewed = created.clone();
        renewed["spec"]["renewTime"] = json!("2024-05-01T10:00:30.000000Z");
        let (code, v) = raw.call("PUT", &path, Some(renewed.clone()));
        assert_eq!(code, 200, "{v}");
        let rv2 = v["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        assert_ne!(rv2, rv);
        let mut stale = lease("b");
        stale["metadata"]["resourceVersion"] = json!(rv);
        let (code, v) = raw.call("PUT", &path, Some(stale));
        assert_eq!(code, 409, "{v}");
        assert_eq!(v["reason"], "Conflict");
        assert_eq!(
            v["message"],
            "Operation cannot be fulfilled on leases.coordination.k8s.io \"kup-upgrade\": the object has been \
             modified; please apply your changes to the latest version and try again"
        );
        assert_eq!(raw.get(&path).1["spec"]["holderIdentity"], "a");

        // Validation: a non-positive duration is refused.
        let mut bad = renewed.clone();
        bad["metadata"]["resourceVersion"] = json!(rv2);
        bad["spec"]["leaseDurationSeconds"] = json!(0);
        let (code, v) = raw.call("PUT", &path, Some(bad));
        assert_eq!(code, 422, "{v}");
        assert_eq!(
            v["message"],
            "Lease.coordination.k8s.io \"kup-upgrade\" is invalid: spec.leaseDurationSeconds: Invalid value: 0: \
             must be greater than 0"
        );

        // DELETE: stale resourceVersion and wrong UID preconditions are refused; the right ones delete.
        let (code, v) = raw.call(
            "DELETE",
            &path,
            Some(json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"resourceVersion": rv}})),
        );
        assert_eq!(code, 409, "{v}");
        assert_eq!(v["reason"], "Conflict");
        assert!(
            v["message"].as_str().unwrap().contains(&format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {rv2}"
            )),
            "{v}"
        );
        let (code, v) = raw.call(
            "DELETE",
            &path,
            Some(json!({"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}})),
        );
        assert_eq!(code, 409, "{v}");
        assert!(
            v["message"].as_str().unwrap().contains("UID in precondition"),
            "{v}"
        );
        assert_eq!(raw.get(&path).0, 200, "a refused delete deleted");
        let (code, v) = raw.call(
            "DELETE",
            &path,
            Some(json!({"preconditions": {"resourceVersion": rv2, "uid": uid}})),
        );
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["status"], "Success");
        let (code, v) = raw.get(&path);
        assert_eq!(code, 404);
        assert_eq!(
            v["message"],
            "leases.coordination.k8s.io \"kup-upgrade\" not found"
        );
    }
}

#[test]
fn configmap_replace_and_delete_preconditions_per_release() {
    for (emu, rv_precondition) in [(Emulation::V1_9, false), (Emulation::V1_30, true)] {
        let raw = Raw::new(emu, false);
        let base = "/api/v1/namespaces/kube-system/configmaps";
        let cm = json!({"metadata": {"name": "kup-upgrade", "annotations": {"x": "1"}}});
        assert_eq!(raw.call("POST", base, Some(cm.clone())).0, 201);
        let (code, v) = raw.call("POST", base, Some(cm));
        assert_eq!((code, v["reason"].as_str()), (409, Some("AlreadyExists")));
        let path = format!("{base}/kup-upgrade");
        let (_, read) = raw.get(&path);
        let rv = read["metadata"]["resourceVersion"].as_str().unwrap().to_string();
        let mut first = read.clone();
        first["metadata"]["annotations"]["x"] = json!("2");
        let (code, written) = raw.call("PUT", &path, Some(first));
        assert_eq!(code, 200);
        // A writer still holding the old resourceVersion loses.
        let mut second = read.clone();
        second["metadata"]["annotations"]["x"] = json!("3");
        let (code, v) = raw.call("PUT", &path, Some(second));
        assert_eq!((code, v["reason"].as_str()), (409, Some("Conflict")), "{v}");
        assert_eq!(raw.get(&path).1["metadata"]["annotations"]["x"], "2");

        // 1.9 knew only the UID precondition: a stale resourceVersion precondition is ignored.
        let stale = json!({"preconditions": {"resourceVersion": rv}});
        let (code, v) = raw.call("DELETE", &path, Some(stale));
        if rv_precondition {
            assert_eq!((code, v["reason"].as_str()), (409, Some("Conflict")), "{v}");
            let current = written["metadata"]["resourceVersion"].clone();
            let (code, _) = raw.call(
                "DELETE",
                &path,
                Some(json!({"preconditions": {"resourceVersion": current}})),
            );
            assert_eq!(code, 200);
        } else {
            assert_eq!(
                code, 200,
                "{emu:?} did not know preconditions.resourceVersion: {v}"
            );
        }
        assert_eq!(raw.get(&path).0, 404);
    }
}

async fn kube_client(lab: &Lab) -> Client {
    let kc = Kubeconfig::read_from(&lab.kubeconfig).unwrap();
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.default_retry = false;
    Client::try_from(config).unwrap()
}

fn api_code(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[test]
fn kube_rs_discovers_and_uses_leases() {
    for (emu, served) in [(Emulation::V1_9, false), (Emulation::V1_30, true)] {
        let lab = Lab::start(emu, true, Cluster::sample(None));
        lab.rt.block_on(async {
            let client = kube_client(&lab).await;
            let discovery = Discovery::new(client.clone()).run().await.unwrap();
            assert_eq!(discovery.has_group("coordination.k8s.io"), served, "{emu:?}");
            let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
            if !served {
                let err = leases.get("kup-upgrade").await.unwrap_err();
                assert_eq!(api_code(err).0, 404);
                // The fallback a lock uses there: a ConfigMap, with the same concurrency rules.
                let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
                let cm: ConfigMap =
                    serde_json::from_value(json!({"metadata": {"name": "kup-upgrade"}})).unwrap();
                cms.create(&PostParams::default(), &cm).await.unwrap();
                let err = cms.create(&PostParams::default(), &cm).await.unwrap_err();
                assert_eq!(api_code(err), (409, "AlreadyExists".to_string()));
                return;
            }
            let (res, caps) = discovery
                .resolve_gvk(&kube::api::GroupVersionKind::gvk(
                    "coordination.k8s.io",
                    "v1",
                    "Lease",
                ))
                .unwrap();
            assert_eq!(res.plural, "leases");
            assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
            let body: Lease = serde_json::from_value(lease("a")).unwrap();
            let created = leases.create(&PostParams::default(), &body).await.unwrap();
            let err = leases.create(&PostParams::default(), &body).await.unwrap_err();
            assert_eq!(api_code(err), (409, "AlreadyExists".to_string()));
            let mut mine = created.clone();
            mine.spec.as_mut().unwrap().lease_duration_seconds = Some(60);
            let replaced = leases
                .replace("kup-upgrade", &PostParams::default(), &mine)
                .await
                .unwrap();
            // `created` still carries the first resourceVersion: a lost race.
            let mut theirs = created.clone();
            theirs.spec.as_mut().unwrap().holder_identity = Some("b".into());
            let err = leases
                .replace("kup-upgrade", &PostParams::default(), &theirs)
                .await
                .unwrap_err();
            assert_eq!(api_code(err), (409, "Conflict".to_string()));
            let stale = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: created.metadata.resource_version.clone(),
                    uid: None,
                }),
                ..DeleteParams::default()
            };
            let err = leases.delete("kup-upgrade", &stale).await.unwrap_err();
            assert_eq!(api_code(err), (409, "Conflict".to_string()));
            let current = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: replaced.metadata.resource_version.clone(),
                    uid: replaced.metadata.uid.clone(),
                }),
                ..DeleteParams::default()
            };
            leases.delete("kup-upgrade", &current).await.unwrap();
            assert_eq!(api_code(leases.get("kup-upgrade").await.unwrap_err()).0, 404);
        });
    }
}
