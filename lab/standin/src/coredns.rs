//! CoreDNS, the DNS addon kubeadm deploys (Deployment kube-system/coredns) from 1.11, and the version
//! each kubeadm release deploys and upgrades to.

/// The CoreDNS version kubeadm `1.minor` deploys: `CoreDNSVersion` in
/// cmd/kubeadm/app/constants/constants.go of each release branch (1.11-1.24 as tabled in
/// coredns/deployment kubernetes/CoreDNS-k8s_version.md; 1.31-1.33 per coredns/deployment#303 and
/// #306, read from kubernetes build/dependencies.yaml). Before 1.11 kubeadm deployed kube-dns,
/// which the lab does not simulate.
pub fn version(minor: u32) -> Option<&'static str> {
    Some(match minor {
        ..=10 => return None,
        11 => "1.1.3",
        12 => "1.2.2",
        13 => "1.2.6",
        14 | 15 => "1.3.1",
        16 => "1.6.2",
        17 => "1.6.5",
        18 => "1.6.7",
        19 | 20 => "1.7.0",
        21 => "v1.8.0",
        22 => "v1.8.4",
        23 | 24 => "v1.8.6",
        25 | 26 => "v1.9.3",
        27 | 28 => "v1.10.1",
        29 | 30 => "v1.11.1",
        31 | 32 => "v1.11.3",
        33 => "v1.12.0",
        34 => "v1.12.1",
        _ => "v1.13.1",
    })
}

/// The image kubeadm `1.minor` deploys CoreDNS with from `registry`: `coredns:1.x.y` up to 1.20,
/// `coredns/coredns:v1.x.y` from 1.21 (constants.go `CoreDNSImageName`, k/k#96429, CHANGELOG-1.21).
pub fn image(registry: &str, minor: u32) -> Option<String> {
    let version = version(minor)?;
    Some(if minor >= 21 {
        format!("{registry}/coredns/coredns:{version}")
    } else {
        format!("{registry}/coredns:{version}")
    })
}

/// The registry of a CoreDNS image (`registry.k8s.io` of `registry.k8s.io/coredns/coredns:v1.12.0`).
pub fn registry_of(image: &str) -> Option<&str> {
    image
        .find("/coredns")
        .map(|at| &image[..at])
        .filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_images_per_release() {
        assert_eq!(version(10), None);
        assert_eq!(
            image("k8s.gcr.io", 20).as_deref(),
            Some("k8s.gcr.io/coredns:1.7.0")
        );
        assert_eq!(
            image("k8s.gcr.io", 21).as_deref(),
            Some("k8s.gcr.io/coredns/coredns:v1.8.0")
        );
        assert_eq!(version(27), version(28), "1.27 -> 1.28 keeps CoreDNS");
        assert_ne!(version(33), version(34), "1.33 -> 1.34 moves CoreDNS");
        assert_eq!(
            registry_of("registry.k8s.io/coredns/coredns:v1.12.0"),
            Some("registry.k8s.io")
        );
        assert_eq!(registry_of("k8s.gcr.io/coredns:1.7.0"), Some("k8s.gcr.io"));
        assert_eq!(registry_of("coredns:1.7.0"), None);
    }
}
