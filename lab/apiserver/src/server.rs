//! The HTTP(S) server: routing, authentication, fault injection, the admin endpoints.
//!
//! Admin endpoints (same authentication as the API):
//! - `GET|POST|DELETE /_lab/faults` — list, add (a [`FaultSpec`] or a list of them), clear.
//! - `GET /_lab/pdb-violations` — `{"count": N, "violations": [...]}`: every deletion or eviction
//!   that took a PodDisruptionBudget below its minimum healthy count.
//! - `POST /_lab/nodes/NAME/heartbeat` — a heartbeat without a status body.
//! - `POST /_lab/nodes/NAME/kubelet` `{"running": false}` — stop (or restart) a simulated kubelet.
//! - `POST /_lab/control-plane` `{"node": "master-1", "version": "v1.10.13"}` — what `kubeadm upgrade`
//!   does to a control-plane node: the image tags of its static pods change (new UIDs); when it is
//!   the primary (first) control-plane node, `/version` reports the new version.
//! - `POST /_lab/nodes/NAME/static-pods` `{"runtime": "containerd", "running": false}` — the node's
//!   container runtime reports its containers (the static pods): a control plane whose static pods
//!   are down is unavailable (its mirror pods not Ready) and counts an interruption.
//! - `POST /_lab/nodes/NAME/static-pods-restart` `{"seconds": 10}` — a kubelet at a new minor
//!   restarts the static pods: down for that many simulated seconds (an interruption).
//! - `POST /_lab/nodes/NAME/keepalived` `{"running": true}` — keepalived on a control plane; the
//!   first running one in node order holds the virtual address.
//! - `GET /_lab/control-planes` — each control plane's availability and interruptions, and the
//!   virtual address's holder, moves and interruptions.
//! - `POST /_lab/pods/NS/NAME/ready` `{"ready": true}` — flip a pod's readiness.
//! - `GET /_lab/stats` — resourceVersion, object counts, requests served, faults injected.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

use crate::cluster::{Cluster, KubeletMode};
use crate::emulation::Emulation;
use crate::error::ApiError;
use crate::faults::{FaultSpec, Faults};
use crate::patch::PatchKind;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Deleted, Kind, Preconditions, Store, StoreConfig};
use crate::table;

/// How to run a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The release to emulate.
    pub emulation: Emulation,
    /// The cluster to seed.
    pub cluster: Cluster,
    /// Serve HTTPS with a generated CA.
    pub tls: bool,
    /// Bearer token required on every request (except `/version` and health checks). With TLS
    /// and no token, one is generated.
    pub token: Option<String>,
    /// Real seconds per simulated second for grace periods and pod start-up (0.01 = 100x faster).
    pub time_factor: f64,
    /// A node whose externally reported heartbeats stop turns NotReady after this long.
    pub node_grace: Duration,
    /// Simulated seconds a new pod takes to become Ready.
    pub pod_startup_seconds: f64,
    /// Faults active from the start.
    pub faults: Vec<FaultSpec>,
    /// Seed for names and UIDs (random when `None`).
    pub seed: Option<u64>,
    /// Extra DNS names / IPs for the server certificate.
    pub extra_sans: Vec<String>,
    /// The cluster's virtual address (keepalived's): a listener there forwards to this server while
    /// some keepalived holds it, and the kubeconfig names it (see `vip`).
    pub vip: Option<SocketAddr>,
}

impl ServerConfig {
    /// Defaults: loopback with a free port, plain HTTP, no token, real time, 40s node grace.
    pub fn new(emulation: Emulation, cluster: Cluster) -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            emulation,
            cluster,
            tls: false,
            token: None,
            time_factor: 1.0,
            node_grace: Duration::from_secs(40),
            pod_startup_seconds: 2.0,
            faults: Vec::new(),
            seed: None,
            extra_sans: Vec::new(),
            vip: None,
        }
    }
}

pub(crate) struct Shared {
    store: Mutex<Store>,
    faults: Mutex<Faults>,
    token: Option<String>,
    emu: Emulation,
    server_address: String,
    clock: Notify,
    requests: AtomicU64,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn vip_holder(&self) -> Option<String> {
        self.store().vip_holder()
    }
}

/// A running server.
pub struct Handle {
    addr: SocketAddr,
    url: String,
    /// `https://VIP:PORT` when the server has a virtual address.
    vip_url: Option<String>,
    vip_task: Option<JoinHandle<()>>,
    ca_pem: Option<String>,
    token: Option<String>,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    clock: JoinHandle<()>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("url", &self.url).finish()
    }
}

impl Handle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` or `https://...`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CA certificate (PEM) when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The bearer token, if one is required.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The URL clients use: the virtual address's when there is one, else [`Handle::url`].
    pub fn client_url(&self) -> &str {
        self.vip_url.as_deref().unwrap_or(&self.url)
    }

    /// A kubeconfig (YAML) for this server, through the virtual address when there is one.
    pub fn kubeconfig(&self) -> String {
        self.kubeconfig_for(self.client_url())
    }

    /// A kubeconfig that reaches this server at its own address, whoever holds the virtual one (the
    /// lab's own side channel: stand-ins reporting services, `kup-lab status`).
    pub fn direct_kubeconfig(&self) -> String {
        self.kubeconfig_for(&self.url)
    }

    /// Writes [`Handle::direct_kubeconfig`] (mode 0600).
    pub fn write_direct_kubeconfig(&self, path: &Path) -> Result<(), String> {
        write_private(path, &self.direct_kubeconfig())
    }

    fn kubeconfig_for(&self, server: &str) -> String {
        use base64::Engine;
        let mut cluster = format!("    server: {server}\n");
        if let Some(ca) = &self.ca_pem {
            let b64 = base64::engine::general_purpose::STANDARD.encode(ca.as_bytes());
            cluster.push_str(&format!("    certificate-authority-data: {b64}\n"));
        }
        let user = match &self.token {
            Some(t) => format!("    token: {t}\n"),
            None => "    username: admin\n".to_string(),
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n{cluster}  name: lab\ncontexts:\n- context:\n    cluster: lab\n    user: lab-admin\n  name: lab\ncurrent-context: lab\npreferences: {{}}\nusers:\n- name: lab-admin\n  user:\n{user}"
        )
    }

    /// Writes the kubeconfig (mode 0600).
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), String> {
        write_private(path, &self.kubeconfig())
    }

    /// Adds a fault rule at run time.
    pub fn inject(&self, f: FaultSpec) -> Result<(), String> {
        self.shared.faults().add(f)
    }

    /// Every recorded PDB violation.
    pub fn pdb_violations(&self) -> Vec<Value> {
        self.shared.store().violations().to_vec()
    }

    /// Runs a closure on the store (tests and tools).
    pub fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let r = f(&mut self.shared.store());
        self.shared.clock.notify_one();
        r
    }

    /// Stops serving and waits until the server is down.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
        }
        self.clock.abort();
        if let Some(t) = self.vip_task.take() {
            t.abort();
        }
    }

    /// Waits until the server stops (it runs until [`Handle::stop`] or a signal in the binary).
    pub async fn wait(mut self) {
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
        self.clock.abort();
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.clock.abort();
        if let Some(t) = self.vip_task.take() {
            t.abort();
        }
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Starts a server; it runs on the current tokio runtime until stopped.
pub async fn start(config: ServerConfig) -> Result<Handle, String> {
    let store_cfg = StoreConfig {
        time_factor: config.time_factor,
        node_grace: config.node_grace,
        pod_startup_seconds: config.pod_startup_seconds,
        seed: config.seed,
    };
    let store = Store::new(config.emulation, store_cfg, &config.cluster)?;
    let mut faults = Faults::default();
    for f in &config.faults {
        faults.add(f.clone())?;
    }
    let tcp = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = tcp.local_addr().map_err(|e| e.to_string())?;
    let token = match (&config.token, config.tls) {
        (Some(t), _) => Some(t.clone()),
        (None, true) => {
            let mut r = crate::util::Rng::new(config.seed);
            Some(format!("{:016x}{:016x}", r.next_u64(), r.next_u64()))
        }
        (None, false) => None,
    };
    let shared = Arc::new(Shared {
        store: Mutex::new(store),
        faults: Mutex::new(faults),
        token: token.clone(),
        emu: config.emulation,
        server_address: addr.to_string(),
        clock: Notify::new(),
        requests: AtomicU64::new(0),
    });
    let app = Router::new().fallback(dispatch).with_state(shared.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = rx.await;
    };
    let (url, ca_pem, server) = if config.tls {
        let pki = crate::tls::generate(&config.extra_sans)?;
        let acceptor = crate::tls::acceptor(&pki)?;
        let listener = crate::tls::TlsListener::new(tcp, acceptor).map_err(|e| e.to_string())?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
        });
        (format!("https://{addr}"), Some(pki.ca_pem), server)
    } else {
        let server = tokio::spawn(async move {
            let _ = axum::serve(tcp, app).with_graceful_shutdown(shutdown).await;
        });
        (format!("http://{addr}"), None, server)
    };
    let clock_shared = shared.clone();
    let clock = tokio::spawn(async move {
        loop {
            let next = clock_shared.store().tick(Instant::now());
            let wait = next.saturating_duration_since(Instant::now());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = clock_shared.clock.notified() => {}
            }
        }
    });
    let vip_task = config
        .vip
        .map(|vip| tokio::spawn(crate::vip::serve(shared.clone(), vip, addr)));
    let vip_url = config.vip.map(|vip| {
        let scheme = if config.tls { "https" } else { "http" };
        format!("{scheme}://{vip}")
    });
    Ok(Handle {
        addr,
        url,
        vip_url,
        vip_task,
        ca_pem,
        token,
        shared,
        shutdown: Some(tx),
        server: Some(server),
        clock,
    })
}

// ----- responses ---------------------------------------------------------------------------

fn bytes_response(code: u16, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn json_response(code: u16, v: &Value) -> Response {
    bytes_response(code, serde_json::to_vec(v).unwrap_or_default())
}

fn error_response(e: &ApiError) -> Response {
    let mut r = json_response(e.code, &e.to_status());
    if let Some(s) = e.retry_after {
        if let Ok(h) = HeaderValue::from_str(&s.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, h);
        }
    }
    r
}

fn with_type(mut obj: Value, kind: &str, api_version: &str) -> Value {
    if let Some(o) = obj.as_object_mut() {
        o.insert("kind".into(), json!(kind));
        o.insert("apiVersion".into(), json!(api_version));
    }
    obj
}

// ----- dispatch ----------------------------------------------------------------------------

struct Req {
    method: Method,
    path: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
}

async fn dispatch(
    State(app): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    app.requests.fetch_add(1, Ordering::Relaxed);

    let query = Query::<HashMap<String, String>>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let mut req = Req {
        method,
        path: uri.path().to_string(),
        query,
        headers,
        body,
    };
    let public = matches!(req.path.as_str(), "/version" | "/healthz" | "/livez" | "/readyz");
    if !public {
        if let Some(tok) = &app.token {
            let given = req
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::trim);
            if given != Some(tok.as_str()) {
                return error_response(&ApiError::unauthorized());
            }
        }
    }
    if let Some(rest) = req.path.strip_prefix("/_lab/") {
        let rest = rest.to_string();
        return match admin(&app, &req, &rest) {
            Ok(v) => json_response(200, &v),
            Err(e) => error_response(&e),
        };
    }
    let verdict = app.faults().check(req.method.as_str(), &req.path);
    if verdict.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(verdict.latency_ms)).await;
    }
    if let Some((code, msg, retry)) = verdict.fail {
        return error_response(&ApiError::injected(code, msg, retry));
    }
    if verdict.ignore_field_selector {
        req.query.remove("fieldSelector");
    }
    let resp = match route(&app, &req) {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    if req.method != Method::GET {
        app.clock.notify_one();
    }
    resp
}

fn admin(app: &Shared, req: &Req, rest: &str) -> Result<Value, ApiError> {
    let seg: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let body: Value = if req.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&req.body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    let m = &req.method;
    match seg.as_slice() {
        ["faults"] if *m == Method::GET => {
            let f = app.faults();
            Ok(json!({"rules": f.rules(), "injected": f.injected()}))
        }
        ["faults"] if *m == Method::DELETE => {
            app.faults().clear();
            Ok(json!({"rules": []}))
        }
        ["faults"] if *m == Method::POST => {
            let specs: Vec<FaultSpec> = if body.is_array() {
                serde_json::from_value(body)
            } else {
                serde_json::from_value(body).map(|f| vec![f])
            }
            .map_err(|e| ApiError::bad_request(format!("invalid fault: {e}")))?;
            let mut f = app.faults();
            for s in specs {
                f.add(s).map_err(ApiError::bad_request)?;
            }
            Ok(json!({"rules": f.rules()}))
        }
        ["pdb-violations"] => {
            let s = app.store();
            let v = s.violations();
            Ok(json!({"count": v.len(), "violations": v}))
        }
        ["stats"] => {
            let s = app.store();
            Ok(
                json!({"resourceVersion": s.resource_version(), "nodes": s.count(Kind::Node),
                "pods": s.count(Kind::Pod), "requests": app.requests.load(Ordering::Relaxed),
                "faultsInjected": app.faults().injected(), "emulation": s.emu.git_version(),
                "serverVersion": s.served_version()}),
            )
        }
        ["nodes", name, "heartbeat"] if *m == Method::POST => {
            app.store().heartbeat(name, KubeletMode::External)?;
            Ok(json!({"node": name}))
        }
        ["nodes", name, "kubelet"] if *m == Method::POST => {
            let running = body
                .get("running")
                .and_then(Value::as_bool)
                .ok_or_else(|| ApiError::bad_request("expected {\"running\": true|false}"))?;
            let node = app.store().set_kubelet_running(name, running)?;
            app.clock.notify_one();
            Ok(node)
        }
        ["control-plane"] if *m == Method::POST => {
            let node = body.get("node").and_then(Value::as_str).unwrap_or_default();
            let version = body.get("version").and_then(Value::as_str).unwrap_or_default();
            let pods = app.store().set_control_plane_version(node, version)?;
            Ok(json!({"node": node, "version": version, "pods": pods}))
        }
        ["nodes", name, "static-pods"] if *m == Method::POST => {
            let running = body
                .get("running")
                .and_then(Value::as_bool)
                .ok_or_else(|| ApiError::bad_request("expected {\"running\": true|false}"))?;
            let runtime = body.get("runtime").and_then(Value::as_str).unwrap_or("unknown");
            app.store().report_static_pods(name, runtime, running)
        }
        ["nodes", name, "static-pods-restart"] if *m == Method::POST => {
            let seconds = body
                .get("seconds")
                .and_then(Value::as_f64)
                .ok_or_else(|| ApiError::bad_request("expected {\"seconds\": N}"))?;
            let v = app.store().restart_static_pods(name, seconds)?;
            app.clock.notify_one();
            Ok(v)
        }
        ["nodes", name, "keepalived"] if *m == Method::POST => {
            let running = body
                .get("running")
                .and_then(Value::as_bool)
                .ok_or_else(|| ApiError::bad_request("expected {\"running\": true|false}"))?;
            let v = app.store().report_keepalived(name, running)?;
            app.clock.notify_one();
            Ok(v)
        }
        ["control-planes"] if *m == Method::GET => Ok(app.store().services_status()),
        ["pods", ns, name, "ready"] if *m == Method::POST => {
            let ready = body.get("ready").and_then(Value::as_bool).unwrap_or(true);
            app.store().set_pod_ready(ns, name, ready)
        }
        _ => Err(ApiError::path_not_found()),
    }
}

fn route(app: &Shared, req: &Req) -> Result<Response, ApiError> {
    let emu = app.emu;
    let seg: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let get_only = |v: Option<Value>| -> Result<Response, ApiError> {
        if req.method != Method::GET {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        v.map(|v| json_response(200, &v))
            .ok_or_else(ApiError::path_not_found)
    };
    match seg.as_slice() {
        ["version"] => {
            let v = app.store().served_version().to_string();
            get_only(Some(emu.version_doc(&v)))
        }
        ["healthz"] | ["livez"] | ["readyz"] => {
            let mut r = Response::new(Body::from("ok"));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            Ok(r)
        }
        ["openapi", "v2"] if emu.serves_openapi_v2() => openapi_v2(app, req, None),
        ["swagger.json"] | ["swagger-2.0.0.json"] if emu.serves_legacy_swagger() => {
            openapi_v2(app, req, Some(false))
        }
        ["swagger-2.0.0.pb-v1"] if emu.serves_legacy_swagger() => openapi_v2(app, req, Some(true)),
        ["openapi", "v3"] if emu.serves_openapi_v3() => {
            let v = app.store().served_version().to_string();
            get_only(Some(crate::openapi::v3_index(emu, &v)))
        }
        ["openapi", "v3", rest @ ..] if emu.serves_openapi_v3() => openapi_v3(app, req, &rest.join("/")),
        ["api"] => get_only(Some(emu.api_versions_doc(&app.server_address))),
        ["api", "v1"] => get_only(emu.resource_list_doc("", "v1")),
        ["apis"] => get_only(Some(emu.group_list_doc())),
        ["apis", g] => get_only(emu.group_single_doc(g)),
        ["apis", g, v] => get_only(emu.resource_list_doc(g, v)),
        ["api", "v1", rest @ ..] => resource(app, req, "", "v1", rest),
        ["apis", g, v, rest @ ..] => resource(app, req, g, v, rest),
        _ => Err(ApiError::path_not_found()),
    }
}

fn only_get(req: &Req) -> Result<(), ApiError> {
    if req.method != Method::GET {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    Ok(())
}

/// `/openapi/v2` (and the legacy `/swagger*` names): protobuf or JSON by `Accept`, 406 otherwise,
/// as kube-openapi negotiates; `format` fixes the encoding for the legacy names.
fn openapi_v2(app: &Shared, req: &Req, format: Option<bool>) -> Result<Response, ApiError> {
    only_get(req)?;
    let accept = req.headers.get(header::ACCEPT).and_then(|h| h.to_str().ok());
    let protobuf = match format.or_else(|| crate::openapi::v2_wants_protobuf(accept)) {
        Some(p) => p,
        None => {
            return Err(ApiError::not_acceptable(
                "only the following media types are accepted: application/json, application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
            ))
        }
    };
    let version = app.store().served_version().to_string();
    if !protobuf {
        return Ok(json_response(200, &crate::openapi::v2(app.emu, &version)));
    }
    let mut r = bytes_response(200, crate::openapi::v2_protobuf(app.emu, &version));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::openapi::V2_PROTOBUF_OLD),
    );
    Ok(r)
}

/// `/openapi/v3/<api/v1|apis/G/V>`: JSON; immutable caching when the `hash` is current.
fn openapi_v3(app: &Shared, req: &Req, path: &str) -> Result<Response, ApiError> {
    only_get(req)?;
    let version = app.store().served_version().to_string();
    let doc =
        crate::openapi::v3_group_version(app.emu, path, &version).ok_or_else(ApiError::path_not_found)?;
    let accept = req
        .headers
        .get(header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !accept.is_empty()
        && !["application/json", "*/*", "application/*"]
            .iter()
            .any(|m| accept.contains(m))
    {
        return Err(ApiError::not_acceptable(
            "only the following media types are accepted: application/json",
        ));
    }
    let hash = crate::openapi::hash(&doc);
    let mut r = json_response(200, &doc);
    let cache = if req.query.get("hash") == Some(&hash) {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{hash}\"")) {
        r.headers_mut().insert(header::ETAG, etag);
    }
    Ok(r)
}

/// The write being checked for unknown fields.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    Create,
    Update,
    Patch,
}

/// `?fieldValidation=`: unknown fields of the body refused (Strict) or reported as warnings
/// (Warn, the default when unset) from 1.25 (KEP-2885 beta; GA 1.27); ignored before, as servers
/// with the ServerSideFieldValidation gate off do. Returns the `Warning` headers to send.
fn field_validation(
    app: &Shared,
    req: &Req,
    kind: Kind,
    gv: &str,
    body: &Value,
    write: Write,
) -> Result<Vec<String>, ApiError> {
    if !app.emu.honours_field_validation() {
        return Ok(Vec::new());
    }
    let directive = req.query.get("fieldValidation").map(String::as_str).unwrap_or("");
    let directive = match directive {
        "" | "Warn" => "Warn",
        "Ignore" | "Strict" => directive,
        other => {
            let options = match write {
                Write::Create => "CreateOptions",
                Write::Update => "UpdateOptions",
                Write::Patch => "PatchOptions",
            };
            return Err(ApiError::invalid(
                &format!("{options}.meta.k8s.io"),
                "meta.k8s.io",
                "",
                "fieldValidation",
                "FieldValueNotSupported",
                &format!("Unsupported value: \"{other}\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""),
            ));
        }
    };
    // A JSON patch is a list of operations, not an object: nothing to check before applying it.
    if directive == "Ignore" || !body.is_object() {
        return Ok(Vec::new());
    }
    let (group, version) = gv.split_once('/').unwrap_or(("", gv));
    let unknown = crate::openapi::unknown_fields(app.emu, kind, group, version, body);
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    let each: Vec<String> = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect();
    if directive == "Warn" {
        return Ok(each);
    }
    // runtime.NewStrictDecodingError; create/update wrap it as the decoder does
    // (transformDecodeError: "<Kind> in version \"<v>\" cannot be handled as a <Kind>: ...").
    let strict = format!("strict decoding error: {}", each.join(", "));
    Err(ApiError::bad_request(match write {
        Write::Patch => strict,
        _ => format!(
            "{k} in version \"{version}\" cannot be handled as a {k}: {strict}",
            k = kind.kind()
        ),
    }))
}

/// Adds `Warning: 299 - "..."` headers (what kubectl prints as `Warning: ...`).
fn with_warnings(mut r: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(h) = HeaderValue::from_str(&format!("299 - \"{text}\"")) {
            r.headers_mut().append(header::WARNING, h);
        }
    }
    r
}

fn parse_body(req: &Req) -> Result<Value, ApiError> {
    let ct = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("application/json");
    if ct.contains("protobuf") {
        return Err(ApiError::unsupported_media_type(ct));
    }
    if req.body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}")))
}

fn resource(
    app: &Shared,
    req: &Req,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    let emu = app.emu;
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, res, tail @ ..] if *res != "status" && *res != "finalize" => (Some(*ns), {
            let mut v = vec![*res];
            v.extend_from_slice(tail);
            v
        }),
        _ => (None, rest.to_vec()),
    };
    let Some((res, tail)) = rest.split_first() else {
        return Err(ApiError::path_not_found());
    };
    let served = emu
        .resources(group, version)
        .ok_or_else(ApiError::path_not_found)?;
    let info = served
        .iter()
        .find(|r| r.name == *res)
        .ok_or_else(ApiError::path_not_found)?;
    let kind = Kind::from_resource(group, res).ok_or_else(ApiError::path_not_found)?;
    if ns.is_some() && !info.namespaced {
        return Err(ApiError::path_not_found());
    }
    let is_watch = req.query.get("watch").is_some_and(|w| w == "true" || w == "1");
    if is_watch {
        return Err(ApiError::method_not_allowed(
            "watch is not supported by the lab API server",
        ));
    }
    let ns_str = ns.unwrap_or_default();
    match tail {
        [] => match req.method {
            Method::GET => list(app, req, kind, &gv, ns),
            Method::POST => {
                if info.namespaced && ns.is_none() {
                    return Err(ApiError::method_not_allowed(
                        "the server does not allow this method on the requested resource",
                    ));
                }
                let body = parse_body(req)?;
                check_type(&body, kind, &gv)?;
                let warnings = field_validation(app, req, kind, &gv, &body, Write::Create)?;
                let obj = app.store().create(kind, ns_str, body)?;
                Ok(with_warnings(
                    json_response(201, &with_type(obj, kind.kind(), &gv)),
                    &warnings,
                ))
            }
            _ => Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )),
        },
        [name] => {
            if info.namespaced && ns.is_none() {
                return Err(ApiError::path_not_found());
            }
            object(app, req, kind, &gv, ns_str, name, None)
        }
        [name, sub] => {
            if info.namespaced && ns.is_none() {
                return Err(ApiError::path_not_found());
            }
            let full = format!("{res}/{sub}");
            if !served.iter().any(|r| r.name == full) {
                return Err(ApiError::path_not_found());
            }
            object(app, req, kind, &gv, ns_str, name, Some(sub))
        }
        _ => Err(ApiError::path_not_found()),
    }
}

fn check_type(body: &Value, kind: Kind, gv: &str) -> Result<(), ApiError> {
    if let Some(k) = body.get("kind").and_then(Value::as_str) {
        if k != kind.kind() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({gv})",
                body.get("apiVersion").and_then(Value::as_str).unwrap_or_default()
            )));
        }
    }
    Ok(())
}

fn list(app: &Shared, req: &Req, kind: Kind, gv: &str, ns: Option<&str>) -> Result<Response, ApiError> {
    let labels = match req.query.get("labelSelector") {
        Some(s) => LabelSelector::parse(s)
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
        None => LabelSelector::default(),
    };
    let fields = match req.query.get("fieldSelector") {
        Some(s) => FieldSelector::parse(s, kind.field_labels()).map_err(ApiError::bad_request)?,
        None => FieldSelector::default(),
    };
    let limit = req.query.get("limit").and_then(|l| l.parse::<usize>().ok());
    let cont = req.query.get("continue").map(String::as_str);
    let table = table::wanted(&req.headers, app.emu);
    let store = app.store();
    let (items, next) = store.list(kind, ns, &labels, &fields, limit, cont)?;
    let rv = store.resource_version().to_string();
    if let Some(table_gv) = table {
        let t = table::render(
            &store,
            kind,
            &items,
            table_gv,
            &rv,
            next.as_deref(),
            req.query.get("includeObject").map(String::as_str),
        );
        return Ok(json_response(200, &t));
    }
    let mut buf: Vec<u8> = Vec::with_capacity(256 + items.len() * 2048);
    let mut meta = json!({"resourceVersion": rv});
    if let Some(m) = meta.as_object_mut() {
        if let Some(c) = &next {
            m.insert("continue".into(), json!(c));
        }
        if app.emu.self_links() {
            m.insert("selfLink".into(), json!(req.path));
        }
    }
    buf.extend_from_slice(
        format!(
            "{{\"kind\":\"{}List\",\"apiVersion\":\"{gv}\",\"metadata\":",
            kind.kind()
        )
        .as_bytes(),
    );
    serde_json::to_writer(&mut buf, &meta).map_err(|e| ApiError::internal(e.to_string()))?;
    buf.extend_from_slice(b",\"items\":[");
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        if kind == Kind::Pdb {
            serde_json::to_writer(&mut buf, &store.pdb_with_status(it))
        } else {
            serde_json::to_writer(&mut buf, it)
        }
        .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    buf.extend_from_slice(b"]}");
    Ok(bytes_response(200, buf))
}

fn delete_options(req: &Req) -> Result<(Option<i64>, Preconditions), ApiError> {
    let body = parse_body(req)?;
    let mut grace = body.get("gracePeriodSeconds").and_then(Value::as_i64);
    if grace.is_none() {
        if let Some(g) = req.query.get("gracePeriodSeconds") {
            grace = Some(
                g.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?,
            );
        }
    }
    let text = |p: &str| body.pointer(p).and_then(Value::as_str).map(String::from);
    let pre = Preconditions {
        uid: text("/preconditions/uid"),
        resource_version: text("/preconditions/resourceVersion"),
    };
    Ok((grace, pre))
}

fn object(
    app: &Shared,
    req: &Req,
    kind: Kind,
    gv: &str,
    ns: &str,
    name: &str,
    sub: Option<&str>,
) -> Result<Response, ApiError> {
    let typed = |obj: Value| with_type(obj, kind.kind(), gv);
    match (sub, &req.method) {
        (None | Some("status"), &Method::GET) => {
            let store = app.store();
            let obj = store.get_or_404(kind, ns, name)?;
            let obj = if kind == Kind::Pdb {
                store.pdb_with_status(obj)
            } else {
                obj.clone()
            };
            if let Some(table_gv) = table::wanted(&req.headers, app.emu) {
                let rv = store.resource_version().to_string();
                let t = table::render(
                    &store,
                    kind,
                    &[&obj],
                    table_gv,
                    &rv,
                    None,
                    req.query.get("includeObject").map(String::as_str),
                );
                return Ok(json_response(200, &t));
            }
            Ok(json_response(200, &typed(obj)))
        }
        (None | Some("status"), &Method::PUT) => {
            let body = parse_body(req)?;
            check_type(&body, kind, gv)?;
            let warnings = field_validation(app, req, kind, gv, &body, Write::Update)?;
            let obj = app.store().update(kind, ns, name, body, sub.is_some())?;
            Ok(with_warnings(json_response(200, &typed(obj)), &warnings))
        }
        (None | Some("status"), &Method::PATCH) => {
            let ct = req
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            let pk = PatchKind::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
            let body = parse_body(req)?;
            let warnings = field_validation(app, req, kind, gv, &body, Write::Patch)?;
            let obj = app.store().patch(kind, ns, name, pk, &body, sub.is_some())?;
            let mut store_obj = typed(obj);
            if kind == Kind::Pdb {
                store_obj = typed(app.store().pdb_with_status(&store_obj));
            }
            Ok(with_warnings(json_response(200, &store_obj), &warnings))
        }
        (None, &Method::DELETE) => {
            let (grace, pre) = delete_options(req)?;
            let res = app.store().delete(kind, ns, name, grace, &pre)?;
            match res {
                Deleted::Terminating(obj) => Ok(json_response(200, &typed(obj))),
                Deleted::Gone(obj) if kind == Kind::Pod => Ok(json_response(200, &typed(obj))),
                Deleted::Gone(obj) => {
                    let uid = obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
                    let mut details = json!({"name": name, "kind": kind.resource(), "uid": uid});
                    if !kind.group().is_empty() {
                        if let Some(d) = details.as_object_mut() {
                            d.insert("group".into(), json!(kind.group()));
                        }
                    }
                    Ok(json_response(
                        200,
                        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Success", "details": details}),
                    ))
                }
            }
        }
        (Some("eviction"), &Method::POST) => {
            let body = parse_body(req)?;
            let v = app.store().evict(ns, name, &body)?;
            Ok(json_response(201, &v))
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}
