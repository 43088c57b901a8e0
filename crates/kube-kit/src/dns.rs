//! Host name resolution for the API client without glibc's getaddrinfo (which a static binary
//! cannot use: it would dlopen the NSS modules). Reads `/etc/hosts` and `/etc/resolv.conf` through
//! hickory; IP literals never reach it (hyper-util parses them itself).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use hickory_resolver::config::{ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use hyper_util::client::legacy::connect::dns::Name;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A `tower::Service<Name>` for hyper-util's `HttpConnector`, backed by hickory. The resolver is
/// built on first use, so a cluster addressed by IP never reads the resolver configuration.
#[derive(Clone, Default)]
pub struct HickoryResolver {
    inner: Arc<OnceLock<TokioResolver>>,
}

impl std::fmt::Debug for HickoryResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad("HickoryResolver")
    }
}

fn build() -> TokioResolver {
    match TokioResolver::builder_tokio() {
        Ok(mut builder) => {
            builder.options_mut().use_hosts_file = hickory_resolver::config::ResolveHosts::Always;
            builder.build()
        }
        // No usable /etc/resolv.conf: /etc/hosts still answers, and so do the default servers.
        Err(_) => {
            let mut opts = ResolverOpts::default();
            opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Always;
            TokioResolver::builder_with_config(ResolverConfig::default(), TokioConnectionProvider::default())
                .with_options(opts)
                .build()
        }
    }
}

impl tower::Service<Name> for HickoryResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            let resolver = inner.get_or_init(build);
            let host = name.as_str().to_string();
            let found = resolver
                .lookup_ip(host.as_str())
                .await
                .map_err(|e| -> BoxError { format!("cannot resolve {host}: {e}").into() })?;
            let addrs: Vec<SocketAddr> = found.iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            if addrs.is_empty() {
                return Err(format!("cannot resolve {host}: no addresses").into());
            }
            Ok(addrs.into_iter())
        })
    }
}
