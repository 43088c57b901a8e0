//! What to download: a release version or a channel to resolve, and the architecture.

use std::fmt;

/// `version` as given: an exact release, or a channel file to resolve (`stable`, `latest-1.9`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSpec {
    Exact(String),
    Channel(String),
}

impl VersionSpec {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(v) = normalize_version(text) {
            return Ok(VersionSpec::Exact(v));
        }
        let channel_ok = ["stable", "latest"].iter().any(|prefix| {
            text == *prefix
                || text
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|minor| {
                        let parts: Vec<&str> = minor.split('.').collect();
                        (1..=2).contains(&parts.len())
                            && parts
                                .iter()
                                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                    })
        });
        if channel_ok {
            Ok(VersionSpec::Channel(text.to_string()))
        } else {
            Err(format!(
                "expected a release (v1.9.2 or 1.9.2, or a pre-release such as v1.10.0-beta.1) or a channel \
                 (stable, latest, stable-1.9, latest-1.9), got {}",
                module_kit::shown(text)
            ))
        }
    }
}

impl fmt::Display for VersionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionSpec::Exact(v) | VersionSpec::Channel(v) => f.write_str(v),
        }
    }
}

/// `1.9.2` / `v1.9.2` / `v1.10.0-beta.1` -> `v1.9.2` ...; anything else -> None. The same grammar as
/// kube-version's strict `Version::parse`: a pre-release is `-alpha.N`, `-beta.N` or `-rc.N`, and any
/// other suffix is refused (it becomes part of a URL path).
pub fn normalize_version(text: &str) -> Option<String> {
    let bare = text.strip_prefix('v').unwrap_or(text);
    let (core, pre) = match bare.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (bare, None),
    };
    let number = |p: &str| {
        !p.is_empty()
            && p.len() <= 6
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p == "0" || !p.starts_with('0'))
    };
    let numbers: Vec<&str> = core.split('.').collect();
    if numbers.len() != 3 || !numbers.iter().all(|p| number(p)) {
        return None;
    }
    if let Some(pre) = pre {
        let (stage, n) = pre.split_once('.')?;
        if !["alpha", "beta", "rc"].contains(&stage) || !number(n) {
            return None;
        }
    }
    Some(format!("v{bare}"))
}

/// A Kubernetes release architecture, as dl.k8s.io names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arch(&'static str);

impl Arch {
    pub const ALL: [&'static str; 5] = ["amd64", "arm", "arm64", "ppc64le", "s390x"];

    pub fn parse(text: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .find(|a| **a == text.trim())
            .map(|a| Arch(a))
            .ok_or_else(|| {
                format!(
                    "expected one of {}, got {}",
                    Self::ALL.join(", "),
                    module_kit::shown(text)
                )
            })
    }

    /// The architecture this module runs on.
    pub fn host() -> Result<Self, String> {
        let name = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            other => {
                return Err(format!(
                    "no Kubernetes release exists for this host's architecture {other}; set `arch`"
                ))
            }
        };
        Ok(Arch(name))
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_channels() {
        assert_eq!(
            VersionSpec::parse("1.9.2"),
            Ok(VersionSpec::Exact("v1.9.2".into()))
        );
        assert_eq!(
            VersionSpec::parse("v1.30.2"),
            Ok(VersionSpec::Exact("v1.30.2".into()))
        );
        assert_eq!(
            VersionSpec::parse("v1.10.0-beta.1"),
            Ok(VersionSpec::Exact("v1.10.0-beta.1".into()))
        );
        assert_eq!(
            VersionSpec::parse("stable"),
            Ok(VersionSpec::Channel("stable".into()))
        );
        assert_eq!(
            VersionSpec::parse("latest-1.9"),
            Ok(VersionSpec::Channel("latest-1.9".into()))
        );
        assert_eq!(
            VersionSpec::parse("stable-1"),
            Ok(VersionSpec::Channel("stable-1".into()))
        );
        for bad in [
            "",
            "1.9",
            "v1.9.x",
            "stable-",
            "stable-1.9.2",
            "stabl",
            "../v1.9.2",
            "1.9.2/../x",
            "v1.9.2-",
            "v1.9.2-y",
            "v1.9.2-dirty.1",
            "v1.10.0-beta",
            "v1.9.2-$(id)",
        ] {
            assert!(VersionSpec::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn arches() {
        assert_eq!(Arch::parse("arm64").unwrap().to_string(), "arm64");
        assert!(Arch::parse("x86_64").unwrap_err().contains("amd64"));
        assert!(Arch::host().is_ok());
    }
}
