//! The packages that must move with kubelet/kubeadm: what the target packages declare they need
//! (`Depends:` of `apt-cache show`, `dnf repoquery --requires`) among the Kubernetes repository's
//! own packages (kubernetes-cni, cri-tools). A held one never moves by itself: apt answers "held
//! broken packages" (kubernetes/kubernetes issue #57334), so it is pinned with them at the lowest
//! version the repository offers that satisfies every requirement (the one published with them).

use crate::version;
use std::cmp::Ordering;

/// The Kubernetes repository's packages that kubelet and kubeadm depend on.
pub const COMPANIONS: &[&str] = &["kubernetes-cni", "cri-tools"];

/// One requirement: `name op version`, declared by `by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub name: String,
    pub op: String,
    pub version: String,
    pub by: String,
}

impl Need {
    pub fn shown(&self) -> String {
        format!("{} needs {} ({} {})", self.by, self.name, self.op, self.version)
    }
}

/// The companion requirements of a deb `Depends:` field (the first alternative of each).
pub fn from_deb_depends(show: &str, by: &str) -> Vec<Need> {
    let Some(line) = show.lines().find_map(|l| l.strip_prefix("Depends:")) else {
        return Vec::new();
    };
    line.split(',')
        .filter_map(|item| item.split('|').next())
        .filter_map(|dep| {
            let dep = dep.trim();
            let (name, rest) = dep.split_once(' ').unwrap_or((dep, ""));
            let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
            let (op, v) = inner.trim().split_once(' ')?;
            companion(name, op, v, by)
        })
        .collect()
}

/// The companion requirements of `dnf repoquery --requires` lines (`kubernetes-cni >= 0.6.0`).
pub fn from_rpm_requires(lines: &str, by: &str) -> Vec<Need> {
    lines
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            match words.as_slice() {
                [name, op, v] => companion(name, op, v, by),
                _ => None,
            }
        })
        .collect()
}

fn companion(name: &str, op: &str, v: &str, by: &str) -> Option<Need> {
    COMPANIONS.contains(&name).then(|| Need {
        name: name.to_string(),
        op: op.to_string(),
        version: v.to_string(),
        by: by.to_string(),
    })
}

/// Whether package version `have` meets `op version`. A requirement without a revision compares
/// the upstream version only, as dpkg and rpm do (`0.5.1-00` meets `= 0.5.1`).
pub fn satisfies(have: &str, op: &str, wanted: &str) -> bool {
    let have = if wanted.contains('-') {
        have
    } else {
        have.rsplit_once('-').map_or(have, |(upstream, _)| upstream)
    };
    let order = version::compare(have, wanted);
    match op {
        ">=" => order != Ordering::Less,
        "<=" => order != Ordering::Greater,
        ">>" | ">" => order == Ordering::Greater,
        "<<" | "<" => order == Ordering::Less,
        "=" | "==" => order == Ordering::Equal,
        _ => false,
    }
}

/// What to do with one companion.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    /// The installed version meets every requirement.
    Keep,
    /// Move it to this version, with the others.
    Move(String),
    /// Nothing the repositories offer meets them all.
    Impossible(String),
}

pub fn choose(needs: &[&Need], installed: Option<&str>, offered: &[String]) -> Choice {
    let meets = |v: &str| needs.iter().all(|n| satisfies(v, &n.op, &n.version));
    if installed.is_some_and(meets) {
        return Choice::Keep;
    }
    let mut fitting: Vec<&String> = offered.iter().filter(|v| meets(v)).collect();
    fitting.sort_by(|a, b| version::compare(a, b));
    match fitting.first() {
        Some(v) => Choice::Move(v.to_string()),
        None => Choice::Impossible(format!(
            "{}; the repositories offer {}",
            needs.iter().map(|n| n.shown()).collect::<Vec<_>>().join(", "),
            if offered.is_empty() {
                "none".to_string()
            } else {
                offered.join(", ")
            }
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn requirements_are_read_from_the_package_metadata() {
        let show = "Package: kubelet\nVersion: 1.9.2-00\nDepends: iptables (>= 1.4.21), kubernetes-cni (>= 0.6.0), socat\n";
        assert_eq!(
            from_deb_depends(show, "kubelet 1.9.2-00"),
            [Need {
                name: "kubernetes-cni".into(),
                op: ">=".into(),
                version: "0.6.0".into(),
                by: "kubelet 1.9.2-00".into()
            }]
        );
        let rpm = "cri-tools >= 1.30.0\nkubelet >= 1.19.0\n/bin/sh\n";
        let needs = from_rpm_requires(rpm, "kubeadm 1.31.9");
        assert_eq!(needs.len(), 1);
        assert_eq!(needs[0].name, "cri-tools");
    }

    #[test]
    fn a_companion_moves_to_the_lowest_version_that_meets_every_requirement() {
        let need = |op: &str, v: &str| Need {
            name: "kubernetes-cni".into(),
            op: op.into(),
            version: v.into(),
            by: "kubelet".into(),
        };
        let offered: Vec<String> = ["0.5.1-00", "0.6.0-00", "0.7.5-00", "1.2.0-00"]
            .map(String::from)
            .to_vec();
        let at_least = need(">=", "0.6.0");
        assert_eq!(
            choose(&[&at_least], Some("0.5.1-00"), &offered),
            Choice::Move("0.6.0-00".into())
        );
        assert_eq!(choose(&[&at_least], Some("0.7.5-00"), &offered), Choice::Keep);
        let exactly = need("=", "0.5.1");
        assert_eq!(
            choose(&[&exactly], Some("0.6.0-00"), &offered),
            Choice::Move("0.5.1-00".into())
        );
        assert!(matches!(
            choose(&[&exactly, &at_least], None, &offered),
            Choice::Impossible(_)
        ));
        assert!(satisfies("1.30.0-150500.1.1", ">=", "1.30.0"));
        assert!(!satisfies("1.29.0-1.1", ">=", "1.30.0"));
    }
}
