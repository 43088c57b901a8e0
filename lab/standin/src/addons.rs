//! kubeadm's addon phase during upgrades: kube-proxy (its DaemonSet's image) and CoreDNS.
//!
//! Before 1.28, `kubeadm upgrade apply` upgrades the addons at once, on the first control plane.
//! From 1.28, kubeadm upgrades them only once every control plane runs the new version, so on an HA
//! cluster `apply` skips them and the last control plane's `kubeadm upgrade node` upgrades them
//! (kubernetes/kubernetes PR #116570, CHANGELOG-1.28; cmd/kubeadm/app/phases/upgrade/postupgrade.go
//! `UnupgradedControlPlaneInstances`, which compares the kube-apiserver mirror pods' images).

use crate::kubeadm::Cluster;
use crate::say;
use kube_version::Version;
use serde_json::Value;

/// Where kubeadm finds the CoreDNS Deployment (cmd/kubeadm/app/constants CoreDNSDeploymentName),
/// per the API groups a release serves.
const COREDNS_PATHS: &[&str] = &[
    "/apis/apps/v1/namespaces/kube-system/deployments/coredns",
    "/apis/extensions/v1beta1/namespaces/kube-system/deployments/coredns",
];

const KUBE_PROXY_PATHS: &[&str] = &[
    "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy",
    "/apis/extensions/v1beta1/namespaces/kube-system/daemonsets/kube-proxy",
];

/// Whether kubeadm `own` waits for every control plane before upgrading the addons.
fn waits_for_every_control_plane(own: Version) -> bool {
    own.minor >= 28
}

/// The nodes whose kube-apiserver mirror pod does not run `target` (from a pod list).
fn unupgraded(pods: &Value, target: Version) -> Vec<String> {
    let mut nodes: Vec<String> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|pod| {
            let images = pod["spec"]["containers"].as_array().into_iter().flatten();
            !images.filter_map(|c| c["image"].as_str()).any(|image| {
                image
                    .rsplit_once(':')
                    .is_some_and(|(_, tag)| tag == target.to_string())
            })
        })
        .filter_map(|pod| pod["spec"]["nodeName"].as_str().map(str::to_string))
        .collect();
    nodes.sort();
    nodes
}

/// The addon phase of `kubeadm upgrade apply` (`first`) or of `kubeadm upgrade node` on a control
/// plane, run by kubeadm `own` upgrading to `target`.
pub fn upgrade(cluster: &Cluster, own: Version, target: Version, first: bool) -> Result<(), String> {
    if waits_for_every_control_plane(own) {
        let pods = cluster
            .api()
            .get("/api/v1/namespaces/kube-system/pods?labelSelector=component%3Dkube-apiserver")?;
        let left = unupgraded(&pods, target);
        if !left.is_empty() {
            say(&format!(
                "[upgrade/addons] skip upgrade addons because control plane instances [{}] have not been upgraded",
                left.join(" ")
            ));
            return Ok(());
        }
    } else if !first {
        // Before 1.28 only `upgrade apply` has an addon phase.
        return Ok(());
    }
    set_coredns_image(cluster, target)?;
    say("[addons] Applied essential addon: CoreDNS");
    set_kube_proxy_image(cluster, target)?;
    say("[addons] Applied essential addon: kube-proxy");
    Ok(())
}

/// The CoreDNS Deployment's image, set to the one kubeadm `target` deploys (the registry kept):
/// cmd/kubeadm/app/phases/addons/dns/dns.go, `EnsureDNSAddon` with constants.go `CoreDNSVersion`.
fn set_coredns_image(cluster: &Cluster, target: Version) -> Result<(), String> {
    let api = cluster.api();
    let Some((path, mut deploy)) = COREDNS_PATHS
        .iter()
        .find_map(|path| api.get(path).ok().map(|d| (*path, d)))
    else {
        say("[addons] no CoreDNS Deployment in kube-system: nothing to upgrade");
        return Ok(());
    };
    if let Some(containers) = deploy
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
    {
        for c in containers {
            let image = c["image"].as_str().unwrap_or_default().to_string();
            let registry = lab_standin::coredns::registry_of(&image).unwrap_or("registry.k8s.io");
            if let Some(new) = lab_standin::coredns::image(registry, target.minor) {
                c["image"] = Value::String(new);
            }
        }
    }
    api.put(path, &deploy).map(|_| ())
}

/// The kube-proxy DaemonSet's image, retagged to `target` (the repository kept).
fn set_kube_proxy_image(cluster: &Cluster, target: Version) -> Result<(), String> {
    let api = cluster.api();
    let Some((path, mut ds)) = KUBE_PROXY_PATHS
        .iter()
        .find_map(|path| api.get(path).ok().map(|ds| (*path, ds)))
    else {
        say("[addons] no kube-proxy DaemonSet in kube-system: nothing to upgrade");
        return Ok(());
    };
    if let Some(containers) = ds
        .pointer_mut("/spec/template/spec/containers")
        .and_then(Value::as_array_mut)
    {
        for c in containers {
            let image = c["image"].as_str().unwrap_or_default().to_string();
            let repo = image.rsplit_once(':').map(|(r, _)| r).unwrap_or(&image);
            c["image"] = Value::String(format!("{repo}:{target}"));
        }
    }
    api.put(path, &ds).map(|_| ())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_control_planes_not_at_the_target_hold_the_addons_back_from_1_28() {
        let v = |s| Version::parse(s).unwrap();
        let pod = |node: &str, tag: &str| {
            json!({"spec": {"nodeName": node,
                "containers": [{"image": format!("registry.k8s.io/kube-apiserver:{tag}")}]}})
        };
        let pods = json!({"items": [pod("cp1", "v1.30.2"), pod("cp3", "v1.29.6"), pod("cp2", "v1.29.6")]});
        assert_eq!(unupgraded(&pods, v("v1.30.2")), vec!["cp2", "cp3"]);
        assert!(unupgraded(&pods, v("v1.29.6")) == vec!["cp1"]);
        assert!(unupgraded(&json!({"items": []}), v("v1.30.2")).is_empty());
        assert!(!waits_for_every_control_plane(v("v1.27.16")));
        assert!(waits_for_every_control_plane(v("v1.28.0")));
    }
}
