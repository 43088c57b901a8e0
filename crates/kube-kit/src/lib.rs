//! Kubernetes API access shared by the API modules (and `upgrade_preflight`'s API checks): their
//! common parameters declared once ([`Connection`], flattened into each one's `Params`, and
//! [`NodeName`]), a client from them, API errors with their HTTP status and the server's message, a
//! small runtime so a synchronous `Module::run` can call async kube code, eviction discovery, and
//! kubectl drain's pod filters.
//!
//! Modules that do not talk to the API must not depend on this crate (it links kube and tokio).

mod client;
mod dns;
mod error;
mod params;
pub mod pods;

pub use client::{chain, connect, kubeconfig_paths, Api};
pub use error::{describe, status, transient, Backoff};
pub use k8s_openapi;
pub use kube;
pub use params::{is_dns1123_label, is_dns1123_subdomain, Connection, NodeName};
pub use tokio;

use module_kit::Failure;
use std::future::Future;
use std::time::{Duration, Instant};

/// Runs a future to completion on a fresh current-thread runtime (I/O and timers enabled).
pub fn block_on<F: Future>(future: F) -> Result<F::Output, Failure> {
    // Exactly one TLS provider (ring); an error only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start the async runtime: {e}")))?;
    Ok(rt.block_on(future))
}

/// Calls `f` until it succeeds, fails for good, or `deadline` is near; transient failures
/// (5xx, 429, timeouts, connection errors) are retried with backoff from 100 ms to 2 s.
pub async fn retry<T, F, Fut>(deadline: Instant, mut f: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        match f().await {
            Err(e) if transient(&e) => {
                let delay = backoff.step();
                if Instant::now() + delay >= deadline {
                    return Err(e);
                }
                tokio::time::sleep(delay).await;
            }
            other => return other,
        }
    }
}

/// A `Failure` for an API error: what was being done, the HTTP status and the server's message.
pub fn api_failure(what: impl std::fmt::Display, err: &kube::Error) -> Failure {
    let mut failure = Failure::new(format!("{what}: {}", describe(err)));
    if let Some(code) = status(err) {
        failure = failure.with("status", code);
    }
    failure
}

/// The ConfigMap `name` kubeadm keeps its configuration in (`kube-system/kubeadm-config`), through
/// `cms`, transient failures retried until `deadline`. `shown` names it in errors; its absence says
/// this may not be a kubeadm cluster at all.
pub async fn get_kubeadm_config(
    cms: &kube::Api<k8s_openapi::api::core::v1::ConfigMap>,
    name: &str,
    shown: &str,
    server: &str,
    deadline: Instant,
) -> Result<k8s_openapi::api::core::v1::ConfigMap, Failure> {
    retry(deadline, || cms.get(name)).await.map_err(|e| {
        if status(&e) == Some(404) {
            Failure::new(format!(
                "{shown} not found on {server}: is this a kubeadm cluster?"
            ))
        } else {
            api_failure(format!("cannot read {shown} on {server}"), &e)
        }
    })
}
