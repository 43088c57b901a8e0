//! Kubernetes release versions: `v1.9.2`, `1.30.2`, pre-releases (`v1.10.0-beta.1`), and the skew
//! rules kubeadm enforces (one minor version at a time).
//!
//! [`Version::parse`] is strict, for versions a person or a playbook gives: `v?MAJOR.MINOR.PATCH`
//! with an optional `-alpha.N`, `-beta.N` or `-rc.N`, and nothing else (`v1.9.2-y --force` is refused,
//! never cut to `v1.9.2`). [`Version::parse_reported`] also reads what clusters and binaries report
//! (`v1.32.4-dispatcher`, `v1.30.2+k3s1`: the release it is built from), and is never for input.

use std::cmp::Ordering;
use std::fmt;

/// The stage of a pre-release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Alpha,
    Beta,
    Rc,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Alpha => "alpha",
            Stage::Beta => "beta",
            Stage::Rc => "rc",
        }
    }
}

/// A pre-release: `-alpha.0`, `-beta.1`, `-rc.2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pre {
    pub stage: Stage,
    pub number: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// A pre-release comes before the release of the same number.
    pub pre: Option<Pre>,
}

/// A decimal number of at most 6 digits, without a leading zero (but `0` itself).
fn number(text: &str) -> Option<u32> {
    let ok = !text.is_empty()
        && text.len() <= 6
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    ok.then(|| text.parse().ok()).flatten()
}

impl Version {
    /// A release `v1.9.2`, `1.9.2`, or a pre-release `v1.10.0-beta.1` (`alpha`, `beta`, `rc`), and
    /// nothing else: any other suffix is refused. Whitespace around it is ignored.
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim();
        let bare = text.strip_prefix('v').unwrap_or(text);
        let (core, pre) = match bare.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (bare, None),
        };
        let mut version = Self::core(core)?;
        if let Some(pre) = pre {
            let (stage, n) = pre.split_once('.')?;
            let stage = [Stage::Alpha, Stage::Beta, Stage::Rc]
                .into_iter()
                .find(|s| s.name() == stage)?;
            version.pre = Some(Pre {
                stage,
                number: number(n)?,
            });
        }
        Some(version)
    }

    /// A version as a cluster or a binary reports it (an API server's `gitVersion`, `kubeadm version`,
    /// an image tag): what [`Version::parse`] reads, or else `MAJOR.MINOR.PATCH` followed by a vendor's
    /// `-...` or `+...` suffix, read as the release it is built from. Never for input.
    pub fn parse_reported(text: &str) -> Option<Version> {
        Self::parse(text).or_else(|| {
            let text = text.trim();
            let bare = text.strip_prefix('v').unwrap_or(text);
            let (core, suffix) = bare.split_at(bare.find(['-', '+'])?);
            (suffix.len() > 1).then(|| Self::core(core)).flatten()
        })
    }

    fn core(text: &str) -> Option<Version> {
        let mut parts = text.split('.');
        let mut next = || parts.next().and_then(number);
        let version = Version {
            major: next()?,
            minor: next()?,
            patch: next()?,
            pre: None,
        };
        parts.next().is_none().then_some(version)
    }

    /// The minor release this version belongs to, as `(major, minor)`.
    pub fn minor_release(self) -> (u32, u32) {
        (self.major, self.minor)
    }

    /// Whether going from `self` to `target` stays within one minor version (same or next minor).
    pub fn can_upgrade_to(self, target: Version) -> bool {
        target >= self && target.major == self.major && target.minor <= self.minor + 1
    }

    /// The minor releases to pass through to reach `target`, one at a time (exclusive of `self`'s).
    pub fn path_to(self, target: Version) -> Vec<String> {
        if target.major != self.major || target.minor <= self.minor {
            return vec![target.to_string()];
        }
        (self.minor + 1..=target.minor)
            .map(|m| format!("v{}.{m}", self.major))
            .collect()
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre, other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(&b),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)?;
        match self.pre {
            Some(pre) => write!(f, "-{}.{}", pre.stage.name(), pre.number),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn parses_and_orders() {
        assert_eq!(v("1.9.2").to_string(), "v1.9.2");
        assert_eq!(v(" v1.9.2\n").to_string(), "v1.9.2");
        assert!(v("v1.10.0") > v("v1.9.11"));
        for bad in [
            "",
            "1.9",
            "v1.9.x",
            "1.9.2.3",
            "v.1.2",
            "1..2",
            "v01.9.2",
            "1.9.1234567",
            "vv1.9.2",
        ] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_suffix_is_refused_never_cut() {
        for bad in [
            "v1.9.2-y --force",
            "v1.9.2-$(id)",
            "v1.9.2 --force",
            "v1.9.2-",
            "v1.9.2+build",
            "v1.32.4-dispatcher",
            "v1.10.0-beta",
            "v1.10.0-beta.",
            "v1.10.0-beta.1.2",
            "v1.10.0-gamma.1",
            "v1.10.0-beta.01",
            "v1.9.2\0",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn pre_releases_are_kept_and_come_first() {
        let beta = v("v1.10.0-beta.1");
        assert_eq!(beta.to_string(), "v1.10.0-beta.1");
        assert_ne!(beta, v("v1.10.0"));
        assert!(beta < v("v1.10.0"));
        assert!(beta > v("v1.9.11"));
        assert!(v("1.10.0-alpha.3") < v("1.10.0-beta.0"));
        assert!(v("1.10.0-beta.2") < v("1.10.0-rc.0"));
        assert!(v("1.10.0-rc.1") < v("1.10.0-rc.2"));
        assert!(v("1.9.2").can_upgrade_to(beta));
        assert!(!v("v1.10.0").can_upgrade_to(beta));
    }

    #[test]
    fn reported_versions_are_read_as_their_release() {
        let r = |s| Version::parse_reported(s);
        assert_eq!(r("v1.32.4-dispatcher"), Some(v("1.32.4")));
        assert_eq!(r("v1.30.2+k3s1"), Some(v("1.30.2")));
        assert_eq!(r("v1.10.0-beta.1"), Some(v("1.10.0-beta.1")));
        assert_eq!(r("v1.9.2"), Some(v("1.9.2")));
        for bad in ["v1.9.2-", "1.9", "v1.9.x-y", "garbage"] {
            assert_eq!(r(bad), None, "{bad}");
        }
    }

    #[test]
    fn one_minor_at_a_time() {
        assert!(v("1.8.3").can_upgrade_to(v("1.9.2")));
        assert!(v("1.9.2").can_upgrade_to(v("1.9.3")));
        assert!(v("1.9.2").can_upgrade_to(v("1.9.2")));
        assert!(!v("1.8.3").can_upgrade_to(v("1.10.0")));
        assert!(!v("1.9.2").can_upgrade_to(v("1.8.3")));
        assert_eq!(v("1.8.3").path_to(v("1.10.13")), vec!["v1.9", "v1.10"]);
    }
}
