//! A kube client from the parameters every API module shares: `kubeconfig`, `context` and the
//! per-request timeout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use module_kit::Failure;
use tower::ServiceBuilder;

use crate::dns::StubResolver;

/// Where and how to reach the API server.
#[derive(Debug, Clone)]
pub struct Connection {
    /// An explicit kubeconfig; `None` means `$KUBECONFIG`, `~/.kube/config`, then
    /// `/etc/kubernetes/admin.conf`.
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig; `None` means its current context.
    pub context: Option<String>,
    /// How long one API request may take.
    pub request_timeout: Duration,
}

/// A connected client and what it was built from, for messages.
#[derive(Clone)]
pub struct Api {
    pub client: Client,
    /// The kubeconfig file(s) used.
    pub kubeconfig: String,
    /// The API server URL.
    pub server: String,
    pub request_timeout: Duration,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("server", &self.server).finish()
    }
}

/// The kubeconfig files to read, in kubectl's order of precedence.
pub fn kubeconfig_paths(explicit: Option<&Path>) -> Result<Vec<PathBuf>, Failure> {
    if let Some(path) = explicit {
        if !path.is_file() {
            return Err(Failure::param(
                "kubeconfig",
                format!("{} does not exist or is not a file", path.display()),
            ));
        }
        return Ok(vec![path.to_path_buf()]);
    }
    let mut tried = Vec::new();
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let found: Vec<PathBuf> = std::env::split_paths(&list).filter(|p| p.is_file()).collect();
        if !found.is_empty() {
            return Ok(found);
        }
        tried.push(format!("$KUBECONFIG ({})", list.to_string_lossy()));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        let path = Path::new(&home).join(".kube/config");
        if path.is_file() {
            return Ok(vec![path]);
        }
        tried.push(path.display().to_string());
    }
    let admin = PathBuf::from("/etc/kubernetes/admin.conf");
    if admin.is_file() {
        return Ok(vec![admin]);
    }
    tried.push(admin.display().to_string());
    Err(Failure::new(format!(
        "no kubeconfig found (tried {}); set the `kubeconfig` parameter",
        tried.join(", ")
    )))
}

/// Reads the kubeconfig and builds a client (no request is made yet).
pub async fn connect(conn: &Connection) -> Result<Api, Failure> {
    let paths = kubeconfig_paths(conn.kubeconfig.as_deref())?;
    let shown = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let mut merged: Option<Kubeconfig> = None;
    for path in &paths {
        let kc = Kubeconfig::read_from(path).map_err(|e| {
            Failure::new(format!(
                "cannot read kubeconfig {}: {}",
                path.display(),
                chain(&e)
            ))
        })?;
        merged = Some(match merged {
            None => kc,
            Some(m) => m.merge(kc).map_err(|e| {
                Failure::new(format!(
                    "cannot merge kubeconfig {}: {}",
                    path.display(),
                    chain(&e)
                ))
            })?,
        });
    }
    let kc = merged.ok_or_else(|| Failure::new("no kubeconfig found"))?;
    if let Some(ctx) = &conn.context {
        if !kc.contexts.iter().any(|c| &c.name == ctx) {
            let known: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
            return Err(Failure::param(
                "context",
                format!("no context {ctx:?} in {shown} (it has: {})", known.join(", ")),
            ));
        }
    }
    let options = KubeConfigOptions {
        context: conn.context.clone(),
        cluster: None,
        user: None,
    };
    let mut config = Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| Failure::new(format!("kubeconfig {shown}: {}", chain(&e))))?;
    config.connect_timeout = Some(conn.request_timeout);
    config.read_timeout = Some(conn.request_timeout);
    let server = config.cluster_url.to_string();
    let client = build(config, conn.request_timeout)
        .map_err(|e| Failure::new(format!("cannot set up a client for {server}: {}", chain(&e))))?;
    Ok(Api {
        client,
        kubeconfig: shown,
        server: server.trim_end_matches('/').to_string(),
        request_timeout: conn.request_timeout,
    })
}

/// kube's own client stack, but with a connector resolving names itself and a per-request timeout.
fn build(config: Config, timeout: Duration) -> Result<Client, kube::Error> {
    let mut http = HttpConnector::new_with_resolver(StubResolver::default());
    http.enforce_http(false);
    http.set_connect_timeout(Some(timeout));
    http.set_nodelay(true);
    let https = config.rustls_https_connector_with_connector(http)?;
    let hyper: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(https);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .timeout(timeout)
        .map_err(tower::BoxError::from)
        .service(hyper);
    Ok(Client::new(service, config.default_namespace))
}

/// An error and its sources, on one line.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
