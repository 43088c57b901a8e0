//! The API client's name resolution: the workspace's one stub resolver ([`stub_resolver`]:
//! `/etc/hosts`, then resolv.conf's nameservers, never glibc's getaddrinfo and its NSS modules) as
//! the `tower::Service<Name>` hyper-util's `HttpConnector` takes. IP literals never reach it
//! (hyper-util parses them itself).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;
use stub_resolver::{BoxError, StubResolver};

/// [`StubResolver`] for hyper-util's `HttpConnector`.
#[derive(Clone, Debug, Default)]
pub(crate) struct HyperResolver(pub(crate) StubResolver);

impl tower::Service<Name> for HyperResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let lookup = self.0.lookup(name.as_str());
        Box::pin(async move { Ok(lookup.await?.into_iter()) })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::str::FromStr;
    use tower::ServiceExt;

    #[test]
    fn the_connector_gets_the_stub_resolvers_answer() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hosts"), "10.9.9.9 api.lab.test\n").unwrap();
        let resolver = HyperResolver(StubResolver::with_files(
            dir.path().join("hosts"),
            dir.path().join("resolv.conf"),
        ));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let found: Vec<SocketAddr> = rt
            .block_on(resolver.oneshot(Name::from_str("api.lab.test").unwrap()))
            .unwrap()
            .collect();
        assert_eq!(found, ["10.9.9.9:0".parse::<SocketAddr>().unwrap()]);
    }
}
