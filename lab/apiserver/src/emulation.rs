//! Which kube-apiserver release is emulated, and what that release serves (discovery documents).

use serde_json::{json, Value};

/// An emulated Kubernetes release (`major` is always 1).
///
/// [`Emulation::V1_9`] and [`Emulation::V1_30`] are the two releases the lab is tested against;
/// other minors in 1.9..=1.33 are accepted and follow the same thresholds (which API groups exist,
/// which kubeadm-config format is stored), but are not checked against real clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Emulation {
    /// Minor version (9 for 1.9).
    pub minor: u32,
    /// Patch version reported by `/version` unless the seed overrides it.
    pub patch: u32,
}

impl Emulation {
    /// Kubernetes 1.9: evictions in policy/v1beta1, DaemonSets/ReplicaSets also under
    /// extensions/v1beta1 and apps/v1beta2, kubeadm-config `MasterConfiguration` with `nodeName`.
    pub const V1_9: Emulation = Emulation { minor: 9, patch: 11 };
    /// A modern release: policy/v1 and apps/v1 only, kubeadm-config `ClusterConfiguration`.
    pub const V1_30: Emulation = Emulation { minor: 30, patch: 14 };

    /// Parses `1.9`, `v1.9`, `1.30`, `v1.30.2` (a given patch is kept).
    pub fn parse(s: &str) -> Result<Emulation, String> {
        let t = s.trim().trim_start_matches('v');
        let mut parts = t.split('.');
        let major = parts.next().unwrap_or_default();
        let minor = parts.next().unwrap_or_default();
        if major != "1" {
            return Err(format!("unsupported emulated version {s:?}: expected 1.MINOR"));
        }
        let minor: u32 = minor
            .parse()
            .map_err(|_| format!("unsupported emulated version {s:?}: bad minor"))?;
        if !(9..=33).contains(&minor) {
            return Err(format!(
                "unsupported emulated version {s:?}: minors 9..=33 are emulated"
            ));
        }
        let patch = match parts.next() {
            Some(p) => p
                .parse()
                .map_err(|_| format!("unsupported emulated version {s:?}: bad patch"))?,
            None => match minor {
                9 => Emulation::V1_9.patch,
                30 => Emulation::V1_30.patch,
                _ => 0,
            },
        };
        Ok(Emulation { minor, patch })
    }

    /// `v1.9.11`.
    pub fn git_version(&self) -> String {
        format!("v1.{}.{}", self.minor, self.patch)
    }

    /// The group/version of the Eviction subresource (`policy/v1beta1` before 1.22).
    pub fn eviction_group_version(&self) -> &'static str {
        if self.minor >= 22 {
            "policy/v1"
        } else {
            "policy/v1beta1"
        }
    }

    /// Whether the Eviction body may use the given apiVersion.
    pub fn accepts_eviction_version(&self, api_version: &str) -> bool {
        match api_version {
            // Still accepted as the body of pods/eviction after policy/v1beta1 stopped being
            // served (1.25), which is what lets old kubectl drain modern clusters.
            "policy/v1beta1" => true,
            "policy/v1" => self.minor >= 22,
            // The real server defaults a missing apiVersion to the URL's group/version.
            "" => true,
            _ => false,
        }
    }

    /// Whether objects carry `metadata.selfLink` (removed in 1.20).
    pub fn self_links(&self) -> bool {
        self.minor < 20
    }

    /// The group versions served for a group, preferred first.
    pub fn group_versions(&self, group: &str) -> Vec<&'static str> {
        let m = self.minor;
        match group {
            "apps" => {
                let mut v = vec!["v1"];
                if m <= 15 {
                    v.push("v1beta2");
                }
                v
            }
            "extensions" if m <= 15 => vec!["v1beta1"],
            "coordination.k8s.io" => {
                let mut v = Vec::new();
                // Lease: coordination.k8s.io/v1 since 1.14 (kubernetes/kubernetes#72239, CHANGELOG-1.14).
                if m >= 14 {
                    v.push("v1");
                }
                // v1beta1 since 1.12 (kubernetes/kubernetes#64246), gone in 1.22
                // (kubernetes.io/docs/reference/using-api/deprecation-guide/#lease-v122).
                if (12..=21).contains(&m) {
                    v.push("v1beta1");
                }
                v
            }
            "policy" => {
                let mut v = Vec::new();
                if m >= 21 {
                    v.push("v1");
                }
                if m <= 24 {
                    v.push("v1beta1");
                }
                v
            }
            _ => Vec::new(),
        }
    }

    /// The API groups served, in the order the real server lists them.
    pub fn groups(&self) -> Vec<&'static str> {
        let mut g = Vec::new();
        if self.minor <= 15 {
            g.push("extensions");
        }
        g.push("apps");
        g.push("policy");
        // Listed after policy, as the real server orders its groups (kubectl api-versions).
        if self.minor >= 12 {
            g.push("coordination.k8s.io");
        }
        g
    }

    /// Which resources `group/version` serves; `None` when the group version does not exist.
    pub fn resources(&self, group: &str, version: &str) -> Option<Vec<ResourceInfo>> {
        if group.is_empty() {
            return (version == "v1").then(|| self.core_resources());
        }
        if !self.group_versions(group).contains(&version) {
            return None;
        }
        Some(match group {
            "apps" | "extensions" => vec![
                ResourceInfo::new("daemonsets", "DaemonSet", true, &["ds"]),
                ResourceInfo::sub("daemonsets/status", "DaemonSet", true),
                ResourceInfo::new("replicasets", "ReplicaSet", true, &["rs"]),
                ResourceInfo::sub("replicasets/status", "ReplicaSet", true),
            ],
            "policy" => vec![
                ResourceInfo::new("poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"]),
                ResourceInfo::sub("poddisruptionbudgets/status", "PodDisruptionBudget", true),
            ],
            // Namespaced, no short name, no subresource
            // (kubernetes.io/docs/reference/kubernetes-api/cluster-resources/lease-v1/).
            "coordination.k8s.io" => vec![ResourceInfo::new("leases", "Lease", true, &[])],
            _ => return None,
        })
    }

    fn core_resources(&self) -> Vec<ResourceInfo> {
        let (eg, ev) = self
            .eviction_group_version()
            .split_once('/')
            .unwrap_or(("policy", "v1beta1"));
        let mut eviction = ResourceInfo::sub("pods/eviction", "Eviction", true);
        eviction.group = Some(eg);
        eviction.version = Some(ev);
        eviction.verbs = &["create"];
        vec![
            ResourceInfo::new("configmaps", "ConfigMap", true, &["cm"]),
            ResourceInfo::new("namespaces", "Namespace", false, &["ns"]),
            ResourceInfo::new("nodes", "Node", false, &["no"]),
            ResourceInfo::sub("nodes/status", "Node", false),
            ResourceInfo::new("pods", "Pod", true, &["po"]),
            eviction,
            ResourceInfo::sub("pods/status", "Pod", true),
        ]
    }

    /// `/version`.
    pub fn version_doc(&self, git_version: &str) -> Value {
        let go = if self.minor <= 9 {
            "go1.9.3"
        } else if self.minor >= 30 {
            "go1.22.12"
        } else {
            "go1.15.15"
        };
        json!({
            "major": "1",
            "minor": self.minor.to_string(),
            "gitVersion": git_version,
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2019-01-01T00:00:00Z",
            "goVersion": go,
            "compiler": "gc",
            "platform": "linux/amd64",
        })
    }

    /// `/api`.
    pub fn api_versions_doc(&self, server_address: &str) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
        })
    }

    fn group_doc(&self, group: &str) -> Value {
        let versions: Vec<Value> = self
            .group_versions(group)
            .iter()
            .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
            .collect();
        let preferred = versions.first().cloned().unwrap_or(Value::Null);
        json!({"name": group, "versions": versions, "preferredVersion": preferred})
    }

    /// `/apis`.
    pub fn group_list_doc(&self) -> Value {
        let groups: Vec<Value> = self.groups().iter().map(|g| self.group_doc(g)).collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `/apis/<group>`.
    pub fn group_single_doc(&self, group: &str) -> Option<Value> {
        if !self.groups().contains(&group) {
            return None;
        }
        let mut doc = self.group_doc(group);
        if let Some(o) = doc.as_object_mut() {
            o.insert("kind".into(), json!("APIGroup"));
            o.insert("apiVersion".into(), json!("v1"));
        }
        Some(doc)
    }

    /// `/api/v1` or `/apis/<group>/<version>`.
    pub fn resource_list_doc(&self, group: &str, version: &str) -> Option<Value> {
        let resources = self.resources(group, version)?;
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        let list: Vec<Value> = resources.iter().map(|r| r.to_json(self)).collect();
        Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}))
    }
}

/// One entry of an APIResourceList.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    /// `pods`, `pods/eviction`.
    pub name: &'static str,
    /// `Pod`.
    pub kind: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names (`po`).
    pub short_names: &'static [&'static str],
    /// Verbs.
    pub verbs: &'static [&'static str],
    /// Group of a subresource served from another group (evictions).
    pub group: Option<&'static str>,
    /// Version of a subresource served from another group.
    pub version: Option<&'static str>,
}

const MAIN_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceInfo {
    fn new(
        name: &'static str,
        kind: &'static str,
        namespaced: bool,
        short_names: &'static [&'static str],
    ) -> Self {
        ResourceInfo {
            name,
            kind,
            namespaced,
            short_names,
            verbs: MAIN_VERBS,
            group: None,
            version: None,
        }
    }

    fn sub(name: &'static str, kind: &'static str, namespaced: bool) -> Self {
        ResourceInfo {
            name,
            kind,
            namespaced,
            short_names: &[],
            verbs: &["get", "patch", "update"],
            group: None,
            version: None,
        }
    }

    fn to_json(&self, emu: &Emulation) -> Value {
        let singular = if emu.minor >= 27 && !self.name.contains('/') {
            self.kind.to_ascii_lowercase()
        } else {
            String::new()
        };
        let mut v = json!({
            "name": self.name,
            "singularName": singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": self.verbs,
        });
        if let Some(o) = v.as_object_mut() {
            if let (Some(g), Some(ver)) = (self.group, self.version) {
                o.insert("group".into(), json!(g));
                o.insert("version".into(), json!(ver));
            }
            if !self.short_names.is_empty() {
                o.insert("shortNames".into(), json!(self.short_names));
            }
            if self.name == "pods" || self.name == "daemonsets" || self.name == "replicasets" {
                o.insert("categories".into(), json!(["all"]));
            }
        }
        v
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_versions() {
        assert_eq!(Emulation::parse("1.9"), Ok(Emulation::V1_9));
        assert_eq!(Emulation::parse("v1.30"), Ok(Emulation::V1_30));
        assert_eq!(Emulation::parse("1.30.2"), Ok(Emulation { minor: 30, patch: 2 }));
        assert!(Emulation::parse("2.0").is_err());
        assert!(Emulation::parse("1.8").is_err());
    }

    #[test]
    fn groups_per_release() {
        let old = Emulation::V1_9;
        assert_eq!(old.group_versions("policy"), vec!["v1beta1"]);
        assert_eq!(old.group_versions("apps"), vec!["v1", "v1beta2"]);
        assert!(old.resources("extensions", "v1beta1").is_some());
        let new = Emulation::V1_30;
        assert_eq!(new.group_versions("policy"), vec!["v1"]);
        assert!(new.resources("extensions", "v1beta1").is_none());
        assert_eq!(new.eviction_group_version(), "policy/v1");
    }
}
