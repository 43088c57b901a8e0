//! Several minors in one command: the hops from the cluster's lowest version to the target, one
//! minor at a time (kubeadm upgrades one minor at a time, "Skipping MINOR versions when upgrading is
//! unsupported": kubernetes.io "Upgrading kubeadm clusters"), each intermediate minor at the patch
//! the operator names (`--via`) or its release channel's (`stable-1.X`).

use kube_version::Version;

/// One hop of a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hop {
    /// A release, as given.
    Exact(Version),
    /// A channel the release server resolves (`stable-1.34`).
    Channel(String),
}

impl std::fmt::Display for Hop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hop::Exact(v) => write!(f, "{v}"),
            Hop::Channel(c) => f.write_str(c),
        }
    }
}

/// The hops from `floor` (the lowest version the cluster runs: its API server or any node's
/// kubelet) to `target`: every minor in between once, then the target. A target below the floor,
/// another major, or a `--via` beyond the way are refused before anything changes; a `--via` the
/// cluster has passed already (the same command run again) is a hop made.
pub fn plan(floor: Version, target: Version, via: &[Version]) -> Result<Vec<Hop>, String> {
    if target.major != floor.major {
        return Err(format!(
            "the target {target} is another major version than the cluster's {floor}"
        ));
    }
    if (target.minor, target.patch) < (floor.minor, floor.patch) {
        return Err(format!(
            "the target {target} is below the cluster's lowest version {floor}: kup does not downgrade"
        ));
    }
    let mut seen = Vec::new();
    for v in via {
        // A minor the cluster already runs: a hop an earlier run of the same command made.
        if v.major == floor.major && v.minor <= floor.minor && v.minor < target.minor {
            continue;
        }
        if v.major != target.major || v.minor >= target.minor {
            return Err(format!(
                "--via {v} is not a minor between the cluster's {floor} and the target {target}"
            ));
        }
        if seen.contains(&v.minor) {
            return Err(format!("--via names two releases of 1.{}", v.minor));
        }
        seen.push(v.minor);
    }
    let mut hops: Vec<Hop> = (floor.minor + 1..target.minor)
        .map(|minor| match via.iter().find(|v| v.minor == minor) {
            Some(v) => Hop::Exact(*v),
            None => Hop::Channel(format!("stable-{}.{minor}", floor.major)),
        })
        .collect();
    hops.push(Hop::Exact(target));
    Ok(hops)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn one_hop_per_minor_never_skipping_one() {
        assert_eq!(
            plan(v("v1.33.1"), v("v1.35.1"), &[]).unwrap(),
            [Hop::Channel("stable-1.34".into()), Hop::Exact(v("v1.35.1"))]
        );
        assert_eq!(
            plan(v("v1.31.0"), v("v1.34.2"), &[v("v1.33.4")]).unwrap(),
            [
                Hop::Channel("stable-1.32".into()),
                Hop::Exact(v("v1.33.4")),
                Hop::Exact(v("v1.34.2"))
            ]
        );
        // A patch or one minor: the target alone.
        assert_eq!(
            plan(v("v1.35.0"), v("v1.35.1"), &[]).unwrap(),
            [Hop::Exact(v("v1.35.1"))]
        );
        assert_eq!(
            plan(v("v1.34.2"), v("v1.35.1"), &[]).unwrap(),
            [Hop::Exact(v("v1.35.1"))]
        );
        assert_eq!(
            plan(v("v1.35.1"), v("v1.35.1"), &[]).unwrap(),
            [Hop::Exact(v("v1.35.1"))]
        );
    }

    #[test]
    fn what_cannot_work_is_refused_before_anything_changes() {
        let below = plan(v("v1.34.2"), v("v1.33.1"), &[]).unwrap_err();
        assert!(below.contains("does not downgrade"), "{below}");
        let outside = plan(v("v1.33.1"), v("v1.35.1"), &[v("v1.35.0")]).unwrap_err();
        assert!(outside.contains("--via v1.35.0"), "{outside}");
        let twice = plan(v("v1.31.1"), v("v1.35.1"), &[v("v1.33.1"), v("v1.33.2")]).unwrap_err();
        assert!(twice.contains("two releases of 1.33"), "{twice}");
    }

    #[test]
    fn a_via_the_cluster_has_passed_is_a_hop_an_earlier_run_made() {
        // The same command again, after its first hop (or all of them): nothing refused.
        assert_eq!(
            plan(v("v1.12.9"), v("v1.13.12"), &[v("v1.12.9")]).unwrap(),
            [Hop::Exact(v("v1.13.12"))]
        );
        assert_eq!(
            plan(v("v1.13.12"), v("v1.13.12"), &[v("v1.12.9")]).unwrap(),
            [Hop::Exact(v("v1.13.12"))]
        );
    }
}
