//! etcd's v3 API through its gRPC gateway: JSON over HTTPS on the client port (etcd 3.4 serves it
//! at `/v3/...` by default), so no gRPC stack is linked. Older releases served the same gateway
//! under `/v3beta` (3.3) and `/v3alpha` (3.1, 3.2): the status request tries `/v3` first and falls
//! back on a 404, and the snapshot uses the prefix that answered.
//!
//! - `POST /v3/maintenance/status` `{}`: the member's version and database size.
//! - `POST /v3/maintenance/snapshot` `{}`: the snapshot stream, one JSON object a line
//!   (`{"result":{"blob":"<base64>","remaining_bytes":"..."}}`), the database in chunks and then a
//!   last message holding the sha256 of everything sent; or `{"error":{...}}` when the server fails.
//!
//! TLS is rustls, verified against the given CA alone (the system's roots are not trusted), with
//! the client certificate and key given: etcd with `--client-cert-auth` (kubeadm's) requires one.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stub_resolver::StubResolver;

/// A certificate or key file is a few kilobytes.
const PEM_LIMIT: u64 = 1 << 20;
/// One line of the snapshot stream: etcd sends 32 KiB chunks (44 KiB in base64).
const LINE_LIMIT: u64 = 16 << 20;
/// A status answer is small.
const STATUS_LIMIT: u64 = 1 << 20;
/// Where etcd's gateway is, newest release first.
const PREFIXES: [&str; 3] = ["/v3", "/v3beta", "/v3alpha"];

pub struct Gateway {
    client: reqwest::blocking::Client,
    base: String,
    /// The gateway's prefix that answered the status request.
    prefix: std::cell::Cell<&'static str>,
    /// The files, for hints about TLS failures.
    cacert: String,
    cert: String,
}

/// Names resolve through the workspace's stub resolver (`/etc/hosts`, then resolv.conf's
/// nameservers), never glibc's getaddrinfo: a static binary must not dlopen NSS modules.
struct Resolver(StubResolver);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let lookup = self.0.lookup(name.as_str());
        Box::pin(async move {
            let found: reqwest::dns::Addrs = Box::new(lookup.await?.into_iter());
            Ok(found)
        })
    }
}

/// What `maintenance/status` says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default, alias = "db_size", rename = "dbSize", deserialize_with = "number")]
    pub db_size: Option<u64>,
    #[serde(default)]
    pub header: Header,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Header {
    #[serde(default, deserialize_with = "number")]
    pub revision: Option<u64>,
    #[serde(default, alias = "memberId", deserialize_with = "number")]
    pub member_id: Option<u64>,
}

/// The gateway writes 64-bit integers as strings (proto3 JSON); accept both.
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    })
}

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    result: Option<Chunk>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    blob: Option<String>,
}

/// An error and its causes, once each: reqwest's "error sending request" says little alone.
fn chain(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !msg.contains(&text) {
            msg = format!("{msg}: {text}");
        }
        source = cause.source();
    }
    msg
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(PEM_LIMIT)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))?;
    Ok(bytes)
}

/// The message of an `{"error": ...}` object (gRPC status as the gateway words it).
fn error_text(error: &Value) -> String {
    let message = error["message"].as_str().unwrap_or("");
    let code = &error["grpc_code"];
    let code = if code.is_null() { &error["code"] } else { code };
    let text = if message.is_empty() {
        error.to_string()
    } else {
        message.to_string()
    };
    let text = module_kit::shown(&text);
    if code.is_null() {
        text
    } else {
        format!("{text} (gRPC code {code})")
    }
}

impl Gateway {
    /// A client of `endpoint` (`https://HOST:PORT`) trusting `cacert` alone, presenting `cert`/`key`.
    pub fn new(
        endpoint: &str,
        cacert: &Path,
        cert: &Path,
        key: &Path,
        timeout: Duration,
    ) -> Result<Self, String> {
        let ca_pem = read_pem(cacert, "CA certificate")?;
        let cas = reqwest::Certificate::from_pem_bundle(&ca_pem).map_err(|e| {
            format!(
                "the CA certificate {} is not PEM: {}",
                cacert.display(),
                chain(&e)
            )
        })?;
        if cas.is_empty() {
            return Err(format!(
                "the CA certificate {} holds no certificate",
                cacert.display()
            ));
        }
        let mut identity = read_pem(key, "client key")?;
        identity.push(b'\n');
        identity.extend(read_pem(cert, "client certificate")?);
        let identity = reqwest::Identity::from_pem(&identity).map_err(|e| {
            format!(
                "the client certificate {} and key {} are not a PEM certificate and private key: {}",
                cert.display(),
                key.display(),
                chain(&e)
            )
        })?;
        let mut builder = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .https_only(true)
            .identity(identity)
            .dns_resolver(Arc::new(Resolver(StubResolver::default())))
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "kubeadm-ha-upgrade/",
                env!("CARGO_PKG_VERSION"),
                " etcd_snapshot"
            ));
        for ca in cas {
            builder = builder.add_root_certificate(ca);
        }
        let client = builder.build().map_err(|e| {
            format!(
                "cannot set up the HTTPS client with the client certificate {} and key {}: {}",
                cert.display(),
                key.display(),
                chain(&e)
            )
        })?;
        Ok(Gateway {
            client,
            base: endpoint.trim_end_matches('/').to_string(),
            prefix: std::cell::Cell::new(PREFIXES[0]),
            cacert: cacert.display().to_string(),
            cert: cert.display().to_string(),
        })
    }

    /// What a TLS failure most likely means, from rustls's words.
    fn hint(&self, error: &str) -> String {
        if error.contains("UnknownIssuer") || error.contains("BadSignature") {
            format!(
                " (etcd's serving certificate is not signed by the CA of cacert {})",
                self.cacert
            )
        } else if error.contains("NotValidForName") {
            " (etcd's serving certificate does not name the endpoint's host: use a name or address it holds)"
                .into()
        } else if error.contains("BadCertificate")
            || error.contains("CertificateRequired")
            || error.contains("UnknownCA")
        {
            format!(
                " (etcd refused the client certificate {}: it must be signed by the CA etcd trusts for clients)",
                self.cert
            )
        } else if error.contains("Expired") {
            " (a certificate has expired: kubeadm certs check-expiration)".into()
        } else {
            String::new()
        }
    }

    /// Sends `{}` to `path` under the endpoint: the URL and the response, whatever its status.
    fn send(&self, path: &str) -> Result<(String, reqwest::blocking::Response), String> {
        let url = format!("{}{path}", self.base);
        let response = self
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .map_err(|e| {
                let error = chain(&e);
                format!("cannot reach etcd at {url}: {error}{}", self.hint(&error))
            })?;
        Ok((url, response))
    }

    /// `response` if it is a success, else what etcd said.
    fn checked(
        url: &str,
        response: reqwest::blocking::Response,
    ) -> Result<reqwest::blocking::Response, String> {
        let status = response.status();
        if !status.is_success() {
            let mut body = String::new();
            let _ = response.take(STATUS_LIMIT).read_to_string(&mut body);
            let said = serde_json::from_str::<Value>(&body)
                .ok()
                .map(|v| error_text(&v))
                .unwrap_or_else(|| module_kit::shown(body.trim()));
            return Err(format!("etcd at {url} answered {status}: {said}"));
        }
        Ok(response)
    }

    /// The member's status, from the first gateway prefix etcd serves.
    pub fn status(&self) -> Result<Status, String> {
        let mut answered = None;
        for prefix in PREFIXES {
            let (url, response) = self.send(&format!("{prefix}/maintenance/status"))?;
            if response.status() == reqwest::StatusCode::NOT_FOUND && prefix != PREFIXES[PREFIXES.len() - 1] {
                continue;
            }
            self.prefix.set(prefix);
            answered = Some(Self::checked(&url, response)?);
            break;
        }
        let Some(response) = answered else {
            return Err("etcd serves no v3 gateway".into());
        };
        let mut body = Vec::new();
        response
            .take(STATUS_LIMIT)
            .read_to_end(&mut body)
            .map_err(|e| format!("cannot read etcd's status: {}", chain(&e)))?;
        let value: Value = serde_json::from_slice(&body).map_err(|e| {
            format!(
                "etcd's status is not JSON ({e}): {}",
                module_kit::shown(&String::from_utf8_lossy(&body))
            )
        })?;
        if let Some(error) = value.get("error") {
            return Err(format!("etcd's status failed: {}", error_text(error)));
        }
        serde_json::from_value(value).map_err(|e| format!("etcd's status is not as expected: {e}"))
    }

    /// Streams the snapshot into `out`, every message's blob in order (the database, then its
    /// sha256), until the server ends the stream or `deadline` passes; the bytes written.
    pub fn snapshot(&self, out: &mut dyn Write, deadline: Instant) -> Result<u64, String> {
        use base64::Engine as _;
        let (url, response) = self.send(&format!("{}/maintenance/snapshot", self.prefix.get()))?;
        let response = Self::checked(&url, response)?;
        let mut reader = BufReader::with_capacity(1 << 20, response);
        let (mut written, mut messages) = (0u64, 0u64);
        let mut line = Vec::new();
        let mut blob = Vec::new();
        loop {
            if Instant::now() > deadline {
                return Err(format!(
                    "the snapshot took longer than the timeout ({written} bytes received)"
                ));
            }
            line.clear();
            let n = (&mut reader)
                .take(LINE_LIMIT)
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("the snapshot stream broke after {written} bytes: {}", chain(&e)))?;
            if n == 0 {
                break;
            }
            if n as u64 == LINE_LIMIT && line.last() != Some(&b'\n') {
                return Err(format!(
                    "etcd sent a snapshot message longer than {LINE_LIMIT} bytes"
                ));
            }
            let text = line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            let parsed: Line = serde_json::from_slice(text).map_err(|e| {
                format!("etcd's snapshot stream is not JSON lines after {written} bytes: {e}")
            })?;
            if let Some(error) = parsed.error {
                return Err(format!(
                    "etcd ended the snapshot with an error after {written} bytes: {}",
                    error_text(&error)
                ));
            }
            let Some(encoded) = parsed.result.and_then(|c| c.blob) else {
                continue;
            };
            blob.clear();
            base64::engine::general_purpose::STANDARD
                .decode_vec(encoded.as_bytes(), &mut blob)
                .map_err(|e| format!("etcd's snapshot stream holds a blob that is not base64: {e}"))?;
            out.write_all(&blob)
                .map_err(|e| format!("cannot write the snapshot: {e}"))?;
            written += blob.len() as u64;
            messages += 1;
        }
        if messages < 2 {
            return Err(format!(
                "etcd's snapshot stream ended after {messages} message(s) ({written} bytes): \
                 expected the database and then its sha256"
            ));
        }
        Ok(written)
    }
}
