//! API errors for humans: the HTTP status and the API server's own message.

use std::time::Duration;

use crate::client::chain;

/// The HTTP status of an API error (`None` for transport errors).
pub fn status(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Whether retrying may help: 5xx (but 501), 429, timeouts, connection failures.
pub fn transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(s) => s.code == 429 || (s.code >= 500 && s.code != 501),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// `HTTP 409 Conflict: Operation cannot be fulfilled ...`, or the transport error.
pub fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(s) => {
            let reason = if s.reason.is_empty() {
                String::new()
            } else {
                format!(" {}", s.reason)
            };
            let message = if s.message.is_empty() {
                "(no message)".to_string()
            } else {
                s.message.clone()
            };
            // The causes say which PodDisruptionBudget refused an eviction, which field was invalid.
            let causes: Vec<String> = s
                .details
                .as_ref()
                .map(|d| {
                    d.causes
                        .iter()
                        .map(|c| c.message.clone())
                        .filter(|m| !m.is_empty() && !message.contains(m.as_str()))
                        .collect()
                })
                .unwrap_or_default();
            if causes.is_empty() {
                format!("HTTP {}{reason}: {message}", s.code)
            } else {
                format!("HTTP {}{reason}: {message} ({})", s.code, causes.join("; "))
            }
        }
        kube::Error::Service(e) if e.is::<tower::timeout::error::Elapsed>() => {
            "the request timed out".to_string()
        }
        other => format!("cannot talk to the API server: {}", chain(other)),
    }
}

/// Exponential backoff from `start`, doubling up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(start: Duration, max: Duration) -> Backoff {
        Backoff { next: start, max }
    }

    /// The next delay.
    pub fn step(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(self.max);
        now
    }
}
