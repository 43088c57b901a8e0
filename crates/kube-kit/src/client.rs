//! A kube client from the parameters every API module shares ([`Connection`]: `kubeconfig`,
//! `context` and the per-request timeout).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};
use module_kit::Failure;
use tower::ServiceBuilder;

use crate::dns::HyperResolver;
use crate::params::Connection;

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
pub async fn connect<const T: u64>(conn: &Connection<T>) -> Result<Api, Failure> {
    let paths = kubeconfig_paths(conn.kubeconfig.as_deref())?;
    let request_timeout = conn.request_timeout.duration();
    let shown = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let mut merged: Option<Kubeconfig> = None;
    for path in &paths {
        let kc = read_kubeconfig(path)?;
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
        if !kc.contexts.iter().any(|c| c.name == ctx.as_str()) {
            let known: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
            return Err(Failure::param(
                "context",
                format!("no context {ctx:?} in {shown} (it has: {})", known.join(", ")),
            ));
        }
    }
    let options = KubeConfigOptions {
        context: conn.context.clone().map(String::from),
        cluster: None,
        user: None,
    };
    let mut config = Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| Failure::new(format!("kubeconfig {shown}: {}", chain(&e))))?;
    config.connect_timeout = Some(request_timeout);
    config.read_timeout = Some(request_timeout);
    let server = config.cluster_url.to_string();
    let client = build(config, request_timeout)
        .map_err(|e| Failure::new(format!("cannot set up a client for {server}: {}", chain(&e))))?;
    Ok(Api {
        client,
        kubeconfig: shown,
        server: server.trim_end_matches('/').to_string(),
        request_timeout,
    })
}

/// Reads one kubeconfig file, and refuses one whose credentials could not go into an HTTP header.
/// No message quotes the file: a YAML error says where (line, column), not what is there, since the
/// line may hold a token.
fn read_kubeconfig(path: &Path) -> Result<Kubeconfig, Failure> {
    let kc = Kubeconfig::read_from(path).map_err(|e| {
        Failure::new(format!(
            "cannot read kubeconfig {}: {}",
            path.display(),
            kubeconfig_error(&e)
        ))
    })?;
    if let Some(field) = credential_with_control_character(&kc) {
        return Err(Failure::new(format!(
            "kubeconfig {}: {field} contains a control character (a line break, NUL, ...); fix the \
             kubeconfig (credentials go into HTTP headers as they are)",
            path.display()
        )));
    }
    Ok(kc)
}

/// What went wrong reading a kubeconfig, without any of its content.
fn kubeconfig_error(err: &KubeconfigError) -> String {
    match err {
        KubeconfigError::Parse(yaml) => match yaml.location() {
            Some(at) => format!(
                "not a valid kubeconfig (YAML error at line {}, column {})",
                at.line(),
                at.column()
            ),
            None => "not a valid kubeconfig (YAML error)".to_string(),
        },
        KubeconfigError::ReadConfig(io, _) => io.to_string(),
        // Reading a file gives only the two above; say no more than the kind of the others.
        _ => "not a usable kubeconfig".to_string(),
    }
}

/// The first field under `users[*].user` (exec plugins and extensions aside) holding a control
/// character, as `users[0].user.token`: such a value makes the HTTP client panic when it builds the
/// Authorization (or impersonation) header from it.
fn credential_with_control_character(kc: &Kubeconfig) -> Option<String> {
    fn find(value: &serde_json::Value, at: String) -> Option<String> {
        match value {
            serde_json::Value::String(s) => s.chars().any(char::is_control).then_some(at),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| find(v, format!("{at}[{i}]"))),
            serde_json::Value::Object(map) => map
                .iter()
                .find_map(|(k, v)| find(v, format!("{at}.{}", k.escape_debug()))),
            _ => None,
        }
    }
    kc.auth_infos.iter().enumerate().find_map(|(i, named)| {
        let user = serde_json::to_value(named.auth_info.as_ref()?).ok()?;
        let fields = user.as_object()?;
        fields
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "exec" | "extensions"))
            .find_map(|(k, v)| find(v, format!("users[{i}].user.{k}")))
    })
}

/// kube's own client stack, but with a connector resolving names itself and a per-request timeout.
fn build(config: Config, timeout: Duration) -> Result<Client, kube::Error> {
    let mut http = HttpConnector::new_with_resolver(HyperResolver::default());
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const SECRET: &str = "s3cr3t-t0ken-value";

    fn kubeconfig(user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n\
             users:\n- name: ok\n  user:\n    token: fine\n- name: u\n  user:\n{user}\ncontexts:\n- name: x\n  context:\n\
             \x20   cluster: c\n    user: u\ncurrent-context: x\n"
        )
    }

    fn connect_with(text: &str) -> Result<Api, Failure> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, text).unwrap();
        let conn = Connection::<5> {
            kubeconfig: Some(module_kit::FilePath::new(path.to_str().unwrap()).unwrap()),
            ..Connection::default()
        };
        crate::block_on(connect(&conn)).unwrap()
    }

    #[test]
    fn a_good_kubeconfig_gives_a_client() {
        let api = connect_with(&kubeconfig(&format!("    token: {SECRET}"))).unwrap();
        assert_eq!(api.server, "https://127.0.0.1:6443");
    }

    #[test]
    fn a_control_character_in_a_credential_is_refused_by_field_never_by_value() {
        for (user, field) in [
            (
                format!("    token: \"{SECRET}\\r\\nX-Injected: 1\""),
                "users[1].user.token",
            ),
            (format!("    token: \"{SECRET}\\u0000\""), "users[1].user.token"),
            (
                format!("    username: admin\n    password: \"{SECRET}\\n\""),
                "users[1].user.password",
            ),
            (
                format!("    token: {SECRET}\n    as: \"bob\\r\""),
                "users[1].user.as",
            ),
            (
                format!("    token: {SECRET}\n    as-groups: [ok, \"bad\\t\"]"),
                "users[1].user.as-groups[1]",
            ),
        ] {
            let err = connect_with(&kubeconfig(&user)).err().unwrap();
            assert!(
                err.msg.contains(&format!("{field} contains a control character")),
                "{user}: {}",
                err.msg
            );
            assert!(!err.msg.contains(SECRET), "{}", err.msg);
        }
    }

    #[test]
    fn a_yaml_error_says_where_not_what() {
        for user in [
            format!("    token: {SECRET}: oops"),
            format!("    token: \"{SECRET}"),
            format!("    token: [{SECRET}\n"),
            format!("\ttoken: {SECRET}"),
        ] {
            let err = connect_with(&kubeconfig(&user)).err().unwrap();
            assert!(err.msg.contains("cannot read kubeconfig /"), "{}", err.msg);
            assert!(err.msg.contains("line "), "{}", err.msg);
            assert!(!err.msg.contains(SECRET), "{user}: {}", err.msg);
            assert!(!err.msg.contains("s3cr3t"), "{}", err.msg);
        }
    }
}
