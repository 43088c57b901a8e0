//! Fault injection: failures, latency, 429s and ignored field selectors for requests matching a
//! method and a path.

use serde::{Deserialize, Serialize};

/// One fault rule. A request matches when the method (if given) is equal and the path starts
/// with `path_prefix` and contains `path_contains` (when given). A matching request is delayed by
/// `latency_ms` and, with `status`, fails with that code and a real `Status` body. `count` limits
/// how many requests the rule affects (none: all of them). With `ignore_field_selector`, a matching
/// list answers as if no `fieldSelector` had been given (a server that does not honour it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// HTTP method (`GET`, `POST`, ...).
    #[serde(default)]
    pub method: Option<String>,
    /// Path prefix (`/api/v1/nodes`).
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// A substring of the path (`/eviction`).
    #[serde(default)]
    pub path_contains: Option<String>,
    /// Failure code: 429, 500, 503, 504, 409.
    #[serde(default)]
    pub status: Option<u16>,
    /// Added latency in milliseconds.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// How many matching requests are affected (default: all).
    #[serde(default)]
    pub count: Option<u32>,
    /// `Retry-After` seconds on the failure.
    #[serde(default)]
    pub retry_after_seconds: Option<u32>,
    /// Status message.
    #[serde(default)]
    pub message: Option<String>,
    /// Lists ignore their `fieldSelector` (and return every object).
    #[serde(default)]
    pub ignore_field_selector: bool,
}

impl FaultSpec {
    /// The next `n` evictions get 429 TooManyRequests.
    pub fn evictions_429(n: u32) -> FaultSpec {
        FaultSpec {
            method: Some("POST".into()),
            path_contains: Some("/eviction".into()),
            status: Some(429),
            count: Some(n),
            ..FaultSpec::default()
        }
    }

    /// The next `n` requests with `method` under `prefix` fail with `status`.
    pub fn fail(method: &str, prefix: &str, status: u16, n: u32) -> FaultSpec {
        FaultSpec {
            method: Some(method.to_ascii_uppercase()),
            path_prefix: Some(prefix.into()),
            status: Some(status),
            count: Some(n),
            ..FaultSpec::default()
        }
    }

    /// Lists matching `prefix` ignore their field selector (all of them: no count).
    pub fn ignore_field_selector(prefix: &str) -> FaultSpec {
        FaultSpec {
            method: Some("GET".into()),
            path_prefix: Some(prefix.into()),
            ignore_field_selector: true,
            ..FaultSpec::default()
        }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path_prefix.as_deref().is_none_or(|p| path.starts_with(p))
            && self.path_contains.as_deref().is_none_or(|p| path.contains(p))
    }

    /// Validates a rule.
    pub fn validate(&self) -> Result<(), String> {
        if self.status.is_none() && self.latency_ms.is_none() && !self.ignore_field_selector {
            return Err("a fault needs a status, a latency_ms or ignore_field_selector".into());
        }
        if let Some(s) = self.status {
            if !(400..=599).contains(&s) {
                return Err(format!("fault status {s} is not an HTTP error code"));
            }
        }
        Ok(())
    }
}

/// The outcome for one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Total added latency (ms).
    pub latency_ms: u64,
    /// Failure: code, message, Retry-After.
    pub fail: Option<(u16, Option<String>, Option<u32>)>,
    /// Answer as if the request had no `fieldSelector`.
    pub ignore_field_selector: bool,
}

/// The active rules.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<FaultSpec>,
    injected: u64,
}

impl Faults {
    /// Adds a rule.
    pub fn add(&mut self, f: FaultSpec) -> Result<(), String> {
        f.validate()?;
        self.rules.push(f);
        Ok(())
    }

    /// Removes every rule.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// The rules still active.
    pub fn rules(&self) -> &[FaultSpec] {
        &self.rules
    }

    /// How many failures were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected
    }

    /// Decides for one request, consuming counts.
    pub fn check(&mut self, method: &str, path: &str) -> Verdict {
        let mut v = Verdict::default();
        if self.rules.is_empty() {
            return v;
        }
        for r in self.rules.iter_mut() {
            if !r.matches(method, path) {
                continue;
            }
            if r.count == Some(0) {
                continue;
            }
            if r.status.is_some() && v.fail.is_some() {
                continue;
            }
            if let Some(c) = r.count.as_mut() {
                *c -= 1;
            }
            v.latency_ms += r.latency_ms.unwrap_or(0);
            v.ignore_field_selector |= r.ignore_field_selector;
            if let Some(s) = r.status {
                v.fail = Some((s, r.message.clone(), r.retry_after_seconds));
                self.injected += 1;
            }
        }
        self.rules.retain(|r| r.count != Some(0));
        v
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_down() {
        let mut f = Faults::default();
        f.add(FaultSpec::evictions_429(2)).unwrap();
        let p = "/api/v1/namespaces/default/pods/x/eviction";
        assert_eq!(f.check("GET", p).fail, None);
        assert_eq!(f.check("POST", p).fail.map(|x| x.0), Some(429));
        assert_eq!(f.check("POST", p).fail.map(|x| x.0), Some(429));
        assert_eq!(f.check("POST", p).fail, None);
        assert!(f.rules().is_empty());
        assert!(f.add(FaultSpec::default()).is_err());
    }

    #[test]
    fn field_selectors_can_be_ignored() {
        let mut f = Faults::default();
        f.add(FaultSpec::ignore_field_selector("/api/v1/pods")).unwrap();
        let v = f.check("GET", "/api/v1/pods");
        assert!(v.ignore_field_selector && v.fail.is_none());
        assert!(f.check("GET", "/api/v1/pods").ignore_field_selector);
        assert!(!f.check("GET", "/api/v1/nodes").ignore_field_selector);
    }
}
