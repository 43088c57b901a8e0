//! The HTTP surface byte for byte where clients depend on it: discovery per release, Status
//! bodies and codes, Retry-After, authentication, graceful deletion timing, PDB violation
//! accounting, the admin endpoints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

mod common;

use std::time::Duration;

use common::{wait_until, Lab};
use lab_apiserver::{Cluster, Emulation, ServerConfig};
use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};

struct Api {
    lab: Lab,
    http: Client,
}

impl Api {
    fn new(emu: Emulation, tls: bool) -> Api {
        Api::with_config(emu, tls, |_| {})
    }

    fn with_config(emu: Emulation, tls: bool, tweak: impl FnOnce(&mut ServerConfig)) -> Api {
        let lab = Lab::start_with(emu, tls, Cluster::sample(None), tweak);
        let mut b = Client::builder().timeout(Duration::from_secs(10));
        if let Some(ca) = lab.handle().ca_pem() {
            b = b.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
        }
        Api {
            lab,
            http: b.build().unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.lab.handle().url())
    }

    fn send(&self, method: &str, path: &str, ct: &str, body: Option<Value>) -> Response {
        let mut r = self.http.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = self.lab.handle().token() {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.header("content-type", ct).body(serde_json::to_vec(&b).unwrap());
        }
        r.send().unwrap()
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let r = self.send("GET", path, "", None);
        (r.status().as_u16(), json_of(r))
    }

    fn call(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        let ct = if method == "PATCH" {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        let r = self.send(method, path, ct, Some(body));
        (r.status().as_u16(), json_of(r))
    }
}

fn json_of(r: Response) -> Value {
    serde_json::from_slice(&r.bytes().unwrap()).unwrap_or(Value::Null)
}

fn assert_status(v: &Value, code: u16, reason: &str) {
    assert_eq!(v["kind"], "Status", "{v}");
    assert_eq!(v["apiVersion"], "v1", "{v}");
    assert_eq!(v["status"], "Failure", "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["reason"], reason, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}

/// The entry of a discovery list (groups, resources) with that name.
fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap()
}

/// The names of the groups an APIGroupList lists.
fn group_names(apis: &Value) -> Vec<&str> {
    let groups = apis["groups"].as_array().unwrap();
    groups.iter().map(|g| g["name"].as_str().unwrap()).collect()
}

#[test]
fn discovery_per_release() {
    let old = Api::new(Emulation::V1_9, false);
    let (_, v) = old.get("/version");
    assert_eq!(
        (v["major"].as_str(), v["minor"].as_str(), v["gitVersion"].as_str()),
        (Some("1"), Some("9"), Some("v1.9.11"))
    );
    let (_, apis) = old.get("/apis");
    assert_eq!(group_names(&apis), ["extensions", "apps", "policy"]);
    let apps = named(&apis["groups"], "apps");
    assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
    assert_eq!(apps["versions"].as_array().unwrap().len(), 2);
    let (_, policy) = old.get("/apis/policy");
    assert_eq!(policy["preferredVersion"]["groupVersion"], "policy/v1beta1");
    assert_eq!(old.get("/apis/policy/v1").0, 404);
    let (_, ext) = old.get("/apis/extensions/v1beta1");
    assert!(ext["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "daemonsets"));
    let (_, core) = old.get("/api/v1");
    let ev = named(&core["resources"], "pods/eviction");
    assert_eq!(
        (ev["group"].as_str(), ev["version"].as_str(), ev["kind"].as_str()),
        (Some("policy"), Some("v1beta1"), Some("Eviction"))
    );
    let (code, ds) = old.get("/apis/extensions/v1beta1/namespaces/kube-system/daemonsets/kube-proxy");
    assert_eq!(code, 200);
    assert_eq!(ds["apiVersion"], "extensions/v1beta1");
    assert!(
        ds["metadata"]["selfLink"].as_str().is_some(),
        "1.9 objects carry selfLink"
    );
    let (_, pdbs) = old.get("/apis/policy/v1beta1/poddisruptionbudgets");
    assert_eq!(pdbs["kind"], "PodDisruptionBudgetList");
    assert_eq!(pdbs["items"][0]["status"]["disruptionsAllowed"], 1);

    let new = Api::new(Emulation::V1_30, true);
    let (_, apis) = new.get("/apis");
    assert_eq!(group_names(&apis), ["apps", "policy", "coordination.k8s.io"]);
    assert_eq!(new.get("/apis/extensions/v1beta1").0, 404);
    assert_eq!(new.get("/apis/apps/v1beta2").0, 404);
    assert_eq!(new.get("/apis/policy/v1beta1/poddisruptionbudgets").0, 404);
    let (_, core) = new.get("/api/v1");
    let ev = named(&core["resources"], "pods/eviction");
    assert_eq!(ev["version"], "v1");
    let (_, node) = new.get("/api/v1/nodes/worker-1");
    assert!(node["metadata"].get("selfLink").is_none());
    assert_eq!(node["kind"], "Node");
}

#[test]
fn status_bodies_and_codes() {
    let api = Api::new(Emulation::V1_30, true);
    // 401 without the token; /version stays public.
    let r = api.http.get(api.url("/api/v1/nodes")).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_status(&json_of(r), 401, "Unauthorized");
    assert_eq!(
        api.http
            .get(api.url("/version"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    // 404
    let (code, v) = api.get("/api/v1/namespaces/default/pods/nope");
    assert_eq!(code, 404);
    assert_status(&v, 404, "NotFound");
    assert_eq!(v["message"], "pods \"nope\" not found");
    assert_eq!(v["details"], json!({"name": "nope", "kind": "pods"}));
    let (code, v) = api.get("/apis/policy/v1/namespaces/default/poddisruptionbudgets/nope");
    assert_eq!(code, 404);
    assert_eq!(v["message"], "poddisruptionbudgets.policy \"nope\" not found");
    assert_eq!(api.get("/api/v1/namespaces/nope/configmaps/x").0, 404);
    // 409 on a stale resourceVersion; the current one wins and bumps it.
    let (_, cm) = api.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config");
    let rv = cm["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    let mut stale = cm.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    let (code, v) = api.call(
        "PUT",
        "/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
        stale,
    );
    assert_eq!(code, 409);
    assert_status(&v, 409, "Conflict");
    let (code, v) = api.call(
        "PUT",
        "/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
        cm.clone(),
    );
    assert_eq!(code, 200);
    assert!(
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > rv.parse::<u64>().unwrap()
    );
    let (code, _) = api.call(
        "PATCH",
        "/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
        json!({"metadata": {"resourceVersion": rv}, "data": {"x": "y"}}),
    );
    assert_eq!(
        code, 409,
        "a patch with a stale resourceVersion precondition conflicts"
    );
    // 422
    let (code, v) = api.call(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {}}),
    );
    assert_eq!(code, 422);
    assert_status(&v, 422, "Invalid");
    assert_eq!(v["details"]["causes"][0]["field"], "metadata.name");
    // 415 for server-side apply
    let r = api.send(
        "PATCH",
        "/api/v1/nodes/worker-1",
        "application/apply-patch+yaml",
        Some(json!({})),
    );
    assert_eq!(r.status().as_u16(), 415);
    // 429 with Retry-After, then 500/503 injected, then normal again.
    let (code, _) = api.call("POST", "/_lab/faults", json!([
        {"method": "GET", "path_prefix": "/api/v1/nodes", "status": 429, "count": 1, "retry_after_seconds": 3},
        {"method": "GET", "path_prefix": "/api/v1/nodes", "status": 500, "count": 1},
        {"method": "GET", "path_prefix": "/api/v1/nodes", "status": 503, "count": 1}]));
    assert_eq!(code, 200);
    let r = api.send("GET", "/api/v1/nodes", "", None);
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    let v: Value = json_of(r);
    assert_status(&v, 429, "TooManyRequests");
    assert_eq!(v["details"]["retryAfterSeconds"], 3);
    let (code, v) = api.get("/api/v1/nodes");
    assert_eq!(code, 500);
    assert_status(&v, 500, "InternalError");
    let (code, v) = api.get("/api/v1/nodes");
    assert_eq!(code, 503);
    assert_status(&v, 503, "ServiceUnavailable");
    assert_eq!(api.get("/api/v1/nodes").0, 200);
    // Latency.
    api.call(
        "POST",
        "/_lab/faults",
        json!({"path_prefix": "/api/v1/namespaces", "latency_ms": 300, "count": 1}),
    );
    let t = std::time::Instant::now();
    assert_eq!(api.get("/api/v1/namespaces/default/pods").0, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    // Watches are not served.
    assert_eq!(api.get("/api/v1/pods?watch=true").0, 405);
    // Bad selectors are 400.
    assert_eq!(api.get("/api/v1/pods?fieldSelector=spec.bogus%3D1").0, 400);
}

#[test]
fn graceful_deletion_and_pdb_violations() {
    for emu in [Emulation::V1_9, Emulation::V1_30] {
        // Replacement pods stay unready for the whole test (1,000 s x 0.02 = 20 s): the PDB
        // accounting below must not depend on how fast the test runs after each deletion.
        let api = Api::with_config(emu, emu == Emulation::V1_30, |cfg| {
            cfg.pod_startup_seconds = 1000.0
        });
        // Graceful: deletionTimestamp now, gone after 30 s x 0.02 = 0.6 s.
        let (code, v) = api.call("DELETE", "/api/v1/namespaces/default/pods/toolbox", json!({}));
        assert_eq!(code, 200);
        assert!(v["metadata"]["deletionTimestamp"].as_str().is_some(), "{v}");
        assert_eq!(v["metadata"]["deletionGracePeriodSeconds"], 30);
        assert_eq!(api.get("/api/v1/namespaces/default/pods/toolbox").0, 200);
        assert!(wait_until(Duration::from_secs(5), || api
            .get("/api/v1/namespaces/default/pods/toolbox")
            .0
            == 404));
        // gracePeriodSeconds=0 in the query: gone at once.
        let r = api.send(
            "DELETE",
            "/api/v1/namespaces/default/pods/cache?gracePeriodSeconds=0",
            "",
            None,
        );
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(api.get("/api/v1/namespaces/default/pods/cache").0, 404);
        // A mirror pod comes back under the same name with a new UID.
        let (_, before) = api.get("/api/v1/namespaces/kube-system/pods/kube-scheduler-master-2");
        api.call(
            "DELETE",
            "/api/v1/namespaces/kube-system/pods/kube-scheduler-master-2",
            json!({"gracePeriodSeconds": 0}),
        );
        let (code, after) = api.get("/api/v1/namespaces/kube-system/pods/kube-scheduler-master-2");
        assert_eq!(code, 200);
        assert_ne!(before["metadata"]["uid"], after["metadata"]["uid"]);
        // No violation so far; deleting web pods directly (not evicting) breaks the PDB.
        let (_, v) = api.get("/_lab/pdb-violations");
        assert_eq!(v["count"], 0);
        let (_, web) = api.get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb");
        let names: Vec<String> = web["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names.len(), 3);
        api.call(
            "DELETE",
            &format!("/api/v1/namespaces/default/pods/{}", names[0]),
            json!({}),
        );
        let (_, v) = api.get("/_lab/pdb-violations");
        assert_eq!(
            v["count"], 0,
            "3 healthy, minAvailable 2: one deletion is within the budget"
        );
        let (_, pods_before) = api.get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb");
        let (code, deleted) = api.call(
            "DELETE",
            &format!("/api/v1/namespaces/default/pods/{}", names[1]),
            json!({}),
        );
        assert_eq!(code, 200, "{deleted}");
        let (_, v) = api.get("/_lab/pdb-violations");
        assert_eq!(v["count"], 1, "{v}; web pods before this deletion: {pods_before}");
        assert_eq!(v["violations"][0]["pdb"], "default/web");
        assert_eq!(v["violations"][0]["via"], "delete");
        // Evicting the third is refused with a real 429 Status (no Retry-After: clients back off).
        let ev = json!({"apiVersion": emu.eviction_group_version(), "kind": "Eviction", "metadata": {"name": names[2]}});
        let r = api.send(
            "POST",
            &format!("/api/v1/namespaces/default/pods/{}/eviction", names[2]),
            "application/json",
            Some(ev),
        );
        assert_eq!(r.status().as_u16(), 429);
        assert!(r.headers().get("retry-after").is_none());
        assert_status(&json_of(r), 429, "TooManyRequests");
    }
}

#[test]
fn admin_endpoints_for_stand_ins() {
    let api = Api::new(Emulation::V1_9, false);
    // The stand-in kubeadm upgrades the primary control-plane node.
    let (code, v) = api.call(
        "POST",
        "/_lab/control-plane",
        json!({"node": "master-1", "version": "v1.10.13"}),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["pods"].as_array().unwrap().len(), 3);
    let (_, pod) = api.get("/api/v1/namespaces/kube-system/pods/kube-apiserver-master-1");
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "gcr.io/google_containers/kube-apiserver-amd64:v1.10.13"
    );
    let (_, ver) = api.get("/version");
    assert_eq!(ver["gitVersion"], "v1.10.13");
    let (_, pod) = api.get("/api/v1/namespaces/kube-system/pods/kube-apiserver-master-2");
    assert!(pod["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .ends_with(":v1.9.11"));
    api.call(
        "POST",
        "/_lab/control-plane",
        json!({"node": "master-2", "version": "v1.10.13"}),
    );
    let (_, ver) = api.get("/version");
    assert_eq!(ver["gitVersion"], "v1.10.13");
    assert_eq!(
        api.call(
            "POST",
            "/_lab/control-plane",
            json!({"node": "nope", "version": "v1.10.13"})
        )
        .0,
        404
    );
    // A simulated kubelet stops: NotReady after the grace (0.6 s in these tests), Ready again on restart.
    let ready = |api: &Api| {
        let (_, n) = api.get("/api/v1/nodes/worker-3");
        n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(ready(&api), "True");
    api.call("POST", "/_lab/nodes/worker-3/kubelet", json!({"running": false}));
    assert!(wait_until(Duration::from_secs(5), || ready(&api) == "Unknown"));
    api.call("POST", "/_lab/nodes/worker-3/kubelet", json!({"running": true}));
    assert_eq!(ready(&api), "True");
    // Heartbeats through the admin endpoint keep an externally reported node Ready.
    for _ in 0..8 {
        assert_eq!(
            api.call("POST", "/_lab/nodes/worker-2/heartbeat", json!({})).0,
            200
        );
        std::thread::sleep(Duration::from_millis(150));
    }
    assert_eq!(
        api.get("/api/v1/nodes/worker-2").1["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()["status"],
        "True"
    );
    let (_, stats) = api.get("/_lab/stats");
    assert_eq!(stats["nodes"], 6);
    assert_eq!(stats["serverVersion"], "v1.10.13");
}
