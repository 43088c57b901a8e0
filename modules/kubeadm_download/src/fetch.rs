//! HTTP(S) with retries: small text files (channels, checksums) and streamed downloads.

use crate::checksum::{Checksum, Hasher};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;
use stub_resolver::StubResolver;

/// Text files this small at most: channel and checksum files are a line.
const TEXT_LIMIT: u64 = 64 * 1024;

#[derive(Debug)]
pub enum FetchError {
    /// The server says the file does not exist (404/410).
    NotFound(String),
    /// Gave up: the last error, after `attempts` tries.
    Failed {
        url: String,
        attempts: u32,
        error: String,
    },
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::NotFound(url) => write!(f, "GET {url}: HTTP 404 Not Found"),
            FetchError::Failed {
                url,
                attempts: 1,
                error,
            } => write!(f, "GET {url}: {error}"),
            FetchError::Failed { url, attempts, error } => {
                write!(f, "GET {url}: {error} (gave up after {attempts} attempts)")
            }
        }
    }
}

/// One attempt's failure, and whether another attempt might succeed.
struct AttemptError {
    message: String,
    retryable: bool,
    not_found: bool,
}

impl AttemptError {
    fn from_reqwest(err: reqwest::Error) -> Self {
        let retryable = err.is_timeout() || err.is_connect() || err.is_body() || err.is_request();
        let mut message = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(inner) = source {
            message = format!("{message}: {inner}");
            source = inner.source();
        }
        AttemptError {
            message,
            retryable,
            not_found: false,
        }
    }

    fn io(context: &str, err: std::io::Error) -> Self {
        // Our own disk failing will not be cured by trying again.
        AttemptError {
            message: format!("{context}: {err}"),
            retryable: false,
            not_found: false,
        }
    }
}

pub struct Http {
    client: reqwest::blocking::Client,
    retries: u32,
    /// The blocking client times each read, not the whole body: the download loop enforces this.
    timeout: Duration,
}

/// Names resolve through the workspace's stub resolver (`/etc/hosts`, then resolv.conf's
/// nameservers), never glibc's getaddrinfo: a static binary must not dlopen NSS modules. The
/// blocking client runs reqwest's async client on a runtime thread of its own, so the lookup runs
/// on that runtime's blocking pool.
#[derive(Debug)]
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

impl Http {
    pub fn new(timeout: Duration, retries: u32) -> Result<Self, String> {
        Self::with_resolver(timeout, retries, StubResolver::default())
    }

    fn with_resolver(timeout: Duration, retries: u32, resolver: StubResolver) -> Result<Self, String> {
        let client = reqwest::blocking::Client::builder()
            .dns_resolver(Arc::new(Resolver(resolver)))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(15)))
            .redirect(reqwest::redirect::Policy::limited(10))
            .user_agent(concat!(
                "kubeadm-ha-upgrade/",
                env!("CARGO_PKG_VERSION"),
                " kubeadm_download"
            ))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Http {
            client,
            retries,
            timeout,
        })
    }

    /// A small text file, trimmed.
    pub fn text(&self, url: &str) -> Result<String, FetchError> {
        self.with_retries(url, |response| {
            let mut body = String::new();
            response
                .take(TEXT_LIMIT)
                .read_to_string(&mut body)
                .map_err(|e| AttemptError {
                    message: e.to_string(),
                    retryable: true,
                    not_found: false,
                })?;
            Ok(body.trim().to_string())
        })
    }

    /// Streams `url` into `out` (rewound and truncated before each attempt), digesting it as it goes.
    /// Returns the digest and the byte count.
    pub fn download(
        &self,
        url: &str,
        out: &mut std::fs::File,
        algo: crate::checksum::Algo,
    ) -> Result<(Checksum, u64), FetchError> {
        self.with_retries(url, |mut response| {
            use std::io::Seek;
            out.set_len(0)
                .map_err(|e| AttemptError::io("truncating the temporary file", e))?;
            out.rewind()
                .map_err(|e| AttemptError::io("rewinding the temporary file", e))?;
            let promised = response.content_length();
            let mut hasher = Hasher::new(algo);
            let mut received = 0u64;
            let started = std::time::Instant::now();
            let mut buf = vec![0u8; 128 * 1024];
            loop {
                let n = response.read(&mut buf).map_err(|e| AttemptError {
                    message: match promised {
                        Some(total) => format!("truncated download: got {received} of {total} bytes ({e})"),
                        None => format!("download interrupted after {received} bytes ({e})"),
                    },
                    retryable: true,
                    not_found: false,
                })?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])
                    .map_err(|e| AttemptError::io("writing the temporary file", e))?;
                received += n as u64;
                if started.elapsed() > self.timeout {
                    return Err(AttemptError {
                        message: format!(
                            "timed out after {}s with {received} bytes received",
                            self.timeout.as_secs()
                        ),
                        retryable: true,
                        not_found: false,
                    });
                }
            }
            if let Some(promised) = promised.filter(|p| *p != received) {
                return Err(AttemptError {
                    message: format!("truncated download: got {received} of {promised} bytes"),
                    retryable: true,
                    not_found: false,
                });
            }
            Ok((hasher.finish(), received))
        })
    }

    fn with_retries<T>(
        &self,
        url: &str,
        mut consume: impl FnMut(reqwest::blocking::Response) -> Result<T, AttemptError>,
    ) -> Result<T, FetchError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match self.client.get(url).send() {
                Ok(response) => match classify_status(response.status()) {
                    None => consume(response),
                    Some(err) => Err(err),
                },
                Err(err) => Err(AttemptError::from_reqwest(err)),
            };
            match result {
                Ok(value) => return Ok(value),
                Err(err) if err.not_found => return Err(FetchError::NotFound(url.to_string())),
                Err(err) if err.retryable && attempt <= self.retries => {
                    std::thread::sleep(backoff(attempt));
                }
                Err(err) => {
                    return Err(FetchError::Failed {
                        url: url.to_string(),
                        attempts: attempt,
                        error: err.message,
                    })
                }
            }
        }
    }
}

fn classify_status(status: reqwest::StatusCode) -> Option<AttemptError> {
    if status.is_success() {
        return None;
    }
    let message = format!("HTTP {status}");
    let not_found = status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE;
    let retryable = status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT;
    Some(AttemptError {
        message,
        retryable,
        not_found,
    })
}

/// 1 s, 2 s, 4 s, then 8 s between attempts.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << (attempt - 1).min(3))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn names_resolve_through_the_stub_resolver() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("stable.txt"), "v1.9.2\n").unwrap();
        let server = lab_release::ReleaseServer::start(root.path()).unwrap();
        // A name only this hosts file knows (.test never resolves in public DNS), no nameserver.
        let files = tempfile::tempdir().unwrap();
        std::fs::write(files.path().join("hosts"), "127.0.0.1 release.kup.test\n").unwrap();
        let resolver = StubResolver::with_files(files.path().join("hosts"), files.path().join("resolv.conf"));
        let http = Http::with_resolver(Duration::from_secs(10), 0, resolver).unwrap();
        let url = format!("http://release.kup.test:{}/stable.txt", server.addr().port());
        assert_eq!(http.text(&url).unwrap(), "v1.9.2");
        // The resolver's own message comes through reqwest's error chain.
        let bad = format!(
            "http://{}.test:{}/stable.txt",
            "x".repeat(64),
            server.addr().port()
        );
        let err = http.text(&bad).unwrap_err().to_string();
        assert!(
            err.contains("cannot resolve xxxx") && err.contains("is not a valid host name"),
            "{err}"
        );
    }
}
