//! A small API client built from a kubeconfig: server, CA data, bearer token.

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

#[derive(Deserialize)]
struct KubeConfig {
    clusters: Vec<ClusterEntry>,
    users: Vec<UserEntry>,
}

#[derive(Deserialize)]
struct ClusterEntry {
    cluster: Cluster,
}

#[derive(Deserialize)]
struct UserEntry {
    user: User,
}

#[derive(Deserialize)]
struct Cluster {
    server: String,
    #[serde(rename = "certificate-authority-data")]
    ca_data: Option<String>,
}

#[derive(Deserialize)]
struct User {
    token: Option<String>,
}

pub struct Api {
    client: reqwest::blocking::Client,
    server: String,
    token: Option<String>,
}

impl Api {
    pub fn from_kubeconfig(path: &str) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let config: KubeConfig = serde_norway::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
        let cluster = config
            .clusters
            .into_iter()
            .next()
            .ok_or(format!("{path}: no cluster"))?
            .cluster;
        let token = config.users.into_iter().next().and_then(|u| u.user.token);
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3));
        if let Some(ca) = &cluster.ca_data {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(ca.trim())
                .map_err(|e| format!("{path}: certificate-authority-data: {e}"))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| format!("{path}: CA: {e}"))?;
            builder = builder.tls_built_in_root_certs(false).add_root_certificate(cert);
        }
        let client = builder.build().map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Api {
            client,
            server: cluster.server.trim_end_matches('/').to_string(),
            token,
        })
    }

    pub fn get(&self, path: &str) -> Result<Value, String> {
        self.send(reqwest::Method::GET, path, None, "application/json")
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        self.send(reqwest::Method::POST, path, Some(body), "application/json")
    }

    pub fn put(&self, path: &str, body: &Value) -> Result<Value, String> {
        self.send(reqwest::Method::PUT, path, Some(body), "application/json")
    }

    pub fn merge_patch(&self, path: &str, body: &Value) -> Result<Value, String> {
        self.send(
            reqwest::Method::PATCH,
            path,
            Some(body),
            "application/merge-patch+json",
        )
    }

    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        kind: &str,
    ) -> Result<Value, String> {
        let url = format!("{}{path}", self.server);
        let mut request = self
            .client
            .request(method.clone(), &url)
            .header("Content-Type", kind);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().map_err(|e| format!("{method} {url}: {e}"))?;
        let status = response.status();
        let value: Value = response.json().unwrap_or(Value::Null);
        if status.is_success() {
            Ok(value)
        } else {
            let message = value["message"].as_str().unwrap_or("").to_string();
            Err(format!("{method} {url}: HTTP {status}: {message}"))
        }
    }
}
