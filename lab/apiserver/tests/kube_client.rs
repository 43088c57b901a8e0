//! kube-rs (the client the modules use) against both emulated releases over HTTPS with a CA and a
//! bearer token: list, patch, replace with conflicts, evict (policy/v1 through kube's API on modern
//! releases, a raw policy/v1beta1 Eviction on 1.9), PDB blocking, error Status bodies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use lab_apiserver::{Cluster, Emulation, FaultSpec, Handle, ServerConfig};
use serde_json::{json, Value};

async fn lab(emu: Emulation) -> (Handle, Client, tempfile::TempDir) {
    let mut cfg = ServerConfig::new(emu, Cluster::sample(None));
    cfg.tls = true;
    cfg.time_factor = 0.02;
    cfg.pod_startup_seconds = 25.0; // 0.5 s: long enough to observe the PDB blocking
    cfg.node_grace = Duration::from_millis(500);
    let handle = lab_apiserver::start(cfg).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    handle.write_kubeconfig(&path).unwrap();
    let kc = Kubeconfig::read_from(&path).unwrap();
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    // kube 5 retries 429/503/504 by itself (up to 15 times, exponential backoff); these tests look
    // at the server's answers, so they turn that off (see `default_retry_hides_429s`).
    config.default_retry = false;
    let client = Client::try_from(config).unwrap();
    (handle, client, dir)
}

/// The status of the Ready condition among `(type, status)` pairs.
fn ready<'a>(mut conditions: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    conditions.find(|(t, _)| *t == "Ready").unwrap().1.clone()
}

fn node_ready(n: &Node) -> String {
    let conditions = n.status.as_ref().unwrap().conditions.as_ref().unwrap();
    ready(conditions.iter().map(|c| (&c.type_, &c.status)))
}

fn pod_ready(p: &Pod) -> String {
    let conditions = p.status.as_ref().unwrap().conditions.as_ref().unwrap();
    ready(conditions.iter().map(|c| (&c.type_, &c.status)))
}

fn api_err(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn kubelet_version(n: &Node) -> &str {
    &n.status
        .as_ref()
        .unwrap()
        .node_info
        .as_ref()
        .unwrap()
        .kubelet_version
}

fn resource_version(n: &Node) -> u64 {
    n.metadata.resource_version.clone().unwrap().parse().unwrap()
}

async fn patch_node(nodes: &Api<Node>, name: &str, patch: Patch<Value>) -> Node {
    nodes.patch(name, &PatchParams::default(), &patch).await.unwrap()
}

async fn evict_raw(client: &Client, emu: Emulation, ns: &str, name: &str) -> Result<Value, kube::Error> {
    let gv = emu.eviction_group_version();
    let body = json!({"apiVersion": gv, "kind": "Eviction", "metadata": {"name": name, "namespace": ns},
        "deleteOptions": {"gracePeriodSeconds": 1}});
    let req = axum::http::Request::post(format!("/api/v1/namespaces/{ns}/pods/{name}/eviction"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    client.request::<Value>(req).await
}

async fn evict(client: &Client, emu: Emulation, ns: &str, name: &str) -> Result<(), kube::Error> {
    if emu.minor >= 22 {
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        pods.evict(name, &EvictParams::default()).await.map(|_| ())
    } else {
        evict_raw(client, emu, ns, name).await.map(|_| ())
    }
}

async fn list_patch_evict(emu: Emulation) {
    let (handle, client, _dir) = lab(emu).await;

    // Discovery tells where evictions live.
    let v1 = client.list_core_api_resources("v1").await.unwrap();
    let ev = v1.resources.iter().find(|r| r.name == "pods/eviction").unwrap();
    assert_eq!(
        format!("{}/{}", ev.group.clone().unwrap(), ev.version.clone().unwrap()),
        emu.eviction_group_version()
    );
    let info = client.apiserver_version().await.unwrap();
    assert_eq!(info.git_version, emu.git_version());

    // Nodes: list, get, strategic and merge patches of spec.unschedulable.
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 6);
    let w1 = nodes.get("worker-1").await.unwrap();
    assert_eq!(kubelet_version(&w1), emu.git_version());
    assert_eq!(node_ready(&w1), "True");
    let rv_before = resource_version(&w1);
    let patched = patch_node(
        &nodes,
        "worker-1",
        Patch::Strategic(json!({"spec": {"unschedulable": true}})),
    )
    .await;
    assert_eq!(patched.spec.as_ref().unwrap().unschedulable, Some(true));
    let rv_after = resource_version(&patched);
    assert!(rv_after > rv_before);
    let patched = patch_node(
        &nodes,
        "worker-1",
        Patch::Merge(json!({"spec": {"unschedulable": null}})),
    )
    .await;
    assert_eq!(patched.spec.as_ref().unwrap().unschedulable, None);
    let sel = nodes
        .list(&ListParams::default().fields("spec.unschedulable=false"))
        .await
        .unwrap();
    assert_eq!(sel.items.len(), 6);

    // Pods by node and by label.
    let pods: Api<Pod> = Api::all(client.clone());
    let on_w1 = pods
        .list(&ListParams::default().fields("spec.nodeName=worker-1"))
        .await
        .unwrap();
    let names: Vec<String> = on_w1
        .items
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(on_w1.items.len(), 4, "{names:?}");
    assert!(names.contains(&"cache".to_string()) && names.contains(&"toolbox".to_string()));
    let ds_pod = on_w1
        .items
        .iter()
        .find(|p| p.metadata.name.as_deref().unwrap().starts_with("kube-proxy-"))
        .unwrap();
    let owner = &ds_pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.kind, "DaemonSet");
    assert_eq!(
        owner.api_version,
        if emu.minor < 10 {
            "extensions/v1beta1"
        } else {
            "apps/v1"
        }
    );
    let mirror = pods
        .list(&ListParams::default().labels("component=kube-apiserver"))
        .await
        .unwrap();
    assert_eq!(mirror.items.len(), 3);
    assert!(mirror.items[0]
        .metadata
        .annotations
        .as_ref()
        .unwrap()
        .contains_key("kubernetes.io/config.mirror"));
    let chunk = pods.list(&ListParams::default().limit(5)).await.unwrap();
    assert_eq!(chunk.items.len(), 5);
    let rest = pods
        .list(
            &ListParams::default()
                .limit(500)
                .continue_token(chunk.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    let all = pods.list(&ListParams::default()).await.unwrap();
    assert_eq!(chunk.items.len() + rest.items.len(), all.items.len());

    // ConfigMaps: kubeadm-config, a stale resourceVersion conflicts, a fresh one wins.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let kc = cms.get("kubeadm-config").await.unwrap();
    let data = kc.data.clone().unwrap();
    if emu.minor <= 10 {
        assert!(data["MasterConfiguration"].contains("nodeName: master-1"));
    } else {
        assert!(!data["ClusterConfiguration"].contains("nodeName"));
    }
    let mut edited = kc.clone();
    edited.data.as_mut().unwrap().insert("extra".into(), "1".into());
    let stored = cms
        .replace("kubeadm-config", &PostParams::default(), &edited)
        .await
        .unwrap();
    let (code, reason, msg) = api_err(
        cms.replace("kubeadm-config", &PostParams::default(), &edited)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"), "{msg}");
    assert!(msg.contains("the object has been modified"), "{msg}");
    assert_eq!(stored.data.unwrap()["extra"], "1");
    let created = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "lab-note"}, "data": {"a": "b"}})).unwrap(),
        )
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    for (name, code, reason) in [("lab-note", 409, "AlreadyExists"), ("Bad_Name", 422, "Invalid")] {
        let cm = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        let (got, why, _) = api_err(cms.create(&PostParams::default(), &cm).await.unwrap_err());
        assert_eq!((got, why.as_str()), (code, reason), "{name}");
    }
    let (code, reason, msg) = api_err(cms.get("nope").await.unwrap_err());
    assert_eq!(
        (code, reason.as_str(), msg.as_str()),
        (404, "NotFound", "configmaps \"nope\" not found")
    );

    // Evictions: the PDB (minAvailable 2 of 3) allows one, then blocks with 429 until the
    // replacement (new name, new UID, on another node) is Ready.
    let web_pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let web = web_pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(web.items.len(), 3);
    let first = web.items[0].metadata.name.clone().unwrap();
    let second = web.items[1].metadata.name.clone().unwrap();
    evict(&client, emu, "default", &first).await.unwrap();
    let (code, reason, msg) = api_err(evict(&client, emu, "default", &second).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (429, "TooManyRequests"), "{msg}");
    assert!(msg.contains("disruption budget"), "{msg}");
    let terminating = web_pods.get(&first).await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    let mut ok = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if evict(&client, emu, "default", &second).await.is_ok() {
            ok = true;
            break;
        }
    }
    assert!(ok, "eviction stayed blocked after the replacement became ready");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (code, _, _) = api_err(web_pods.get(&first).await.unwrap_err());
    assert_eq!(code, 404, "the evicted pod disappears after its grace period");
    let web = web_pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(web.items.len(), 3);
    assert!(web
        .items
        .iter()
        .all(|p| p.metadata.name.as_deref() != Some(first.as_str())));

    // The wrong Eviction version for the release is rejected.
    if emu.minor < 22 {
        let body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "toolbox"}});
        let req = axum::http::Request::post("/api/v1/namespaces/default/pods/toolbox/eviction")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap();
        let (code, _, _) = api_err(client.request::<Value>(req).await.unwrap_err());
        assert_eq!(code, 400);
    }

    // Fault injection: evictions answer 429 twice, then work.
    handle.inject(FaultSpec::evictions_429(2)).unwrap();
    assert_eq!(
        api_err(evict(&client, emu, "default", "toolbox").await.unwrap_err()).0,
        429
    );
    assert_eq!(
        api_err(evict(&client, emu, "default", "toolbox").await.unwrap_err()).0,
        429
    );
    evict(&client, emu, "default", "toolbox").await.unwrap();
    handle
        .inject(FaultSpec::fail("GET", "/api/v1/nodes", 500, 1))
        .unwrap();
    let (code, reason, _) = api_err(nodes.get("worker-2").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (500, "InternalError"));
    nodes.get("worker-2").await.unwrap();

    assert!(
        handle.pdb_violations().is_empty(),
        "{:?}",
        handle.pdb_violations()
    );
    handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_against_1_9() {
    list_patch_evict(Emulation::V1_9).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_against_1_30() {
    list_patch_evict(Emulation::V1_30).await;
}

/// A stand-in kubelet's heartbeats through nodes/status; when they stop, the node turns
/// NotReady (Ready=Unknown) after the grace, and its pods stop counting as healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_and_not_ready() {
    for emu in [Emulation::V1_9, Emulation::V1_30] {
        let (handle, client, _dir) = lab(emu).await;
        let nodes: Api<Node> = Api::all(client.clone());
        let ready = node_ready;
        let hb = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "lastHeartbeatTime": "2024-01-01T00:00:00Z"}], "nodeInfo": {"kubeletVersion": "v1.10.13"}}});
        for _ in 0..4 {
            nodes
                .patch_status("worker-2", &PatchParams::default(), &Patch::Strategic(hb.clone()))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let n = nodes.get("worker-2").await.unwrap();
        assert_eq!(ready(&n), "True");
        assert_eq!(kubelet_version(&n), "v1.10.13");
        assert_eq!(
            n.status.as_ref().unwrap().conditions.as_ref().unwrap().len(),
            4 // 1.9: OutOfDisk, Memory, Disk, Ready; 1.30: Memory, Disk, PID, Ready
        );
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let n = nodes.get("worker-2").await.unwrap();
        assert_eq!(ready(&n), "Unknown");
        let pods: Api<Pod> = Api::all(client.clone());
        let on = pods
            .list(&ListParams::default().fields("spec.nodeName=worker-2"))
            .await
            .unwrap();
        for p in &on.items {
            assert_eq!(pod_ready(p), "False");
        }
        // The kubelet comes back.
        nodes
            .patch_status("worker-2", &PatchParams::default(), &Patch::Strategic(hb.clone()))
            .await
            .unwrap();
        assert_eq!(ready(&nodes.get("worker-2").await.unwrap()), "True");
        handle.stop().await;
    }
}

/// With kube's default retry policy, injected 429s (and a PDB's 429 while a replacement starts)
/// are retried transparently: modules must know that an eviction call can take a while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_retry_hides_429s() {
    let (handle, _, dir) = lab(Emulation::V1_30).await;
    let kc = Kubeconfig::read_from(dir.path().join("kubeconfig")).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    assert!(config.default_retry);
    let client = Client::try_from(config).unwrap();
    handle.inject(FaultSpec::evictions_429(3)).unwrap();
    evict(&client, Emulation::V1_30, "default", "toolbox")
        .await
        .unwrap();
    handle
        .inject(FaultSpec::fail("GET", "/api/v1/nodes", 503, 2))
        .unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    nodes.get("worker-1").await.unwrap();
    handle.stop().await;
}
