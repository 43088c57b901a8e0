//! Kubernetes release versions: `v1.9.2`, `1.30.2`, and the skew rules kubeadm enforces
//! (one minor version at a time).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// Parses `v1.9.2`, `1.9.2`, and tolerates a suffix (`v1.9.2-beta.0`, `v1.32.4-dispatcher`),
    /// which it drops.
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim();
        let bare = text.strip_prefix('v').unwrap_or(text);
        let core = bare.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let mut number = || {
            parts
                .next()
                .filter(|p| !p.is_empty() && p.len() <= 6)
                .and_then(|p| p.parse::<u32>().ok())
        };
        let version = Version {
            major: number()?,
            minor: number()?,
            patch: number()?,
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

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn parses_and_orders() {
        assert_eq!(v("1.9.2").to_string(), "v1.9.2");
        assert_eq!(v("v1.32.4-dispatcher"), v("1.32.4"));
        assert!(v("v1.10.0") > v("v1.9.11"));
        for bad in ["", "1.9", "v1.9.x", "1.9.2.3", "v.1.2", "1..2"] {
            assert!(Version::parse(bad).is_none(), "{bad}");
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
