//! What a release serves: its API groups and versions, resources, and the discovery documents
//! (`/version`, `/api`, `/apis`, `/apis/G`, `/apis/G/V`, `/api/v1`).

use serde_json::{json, Value};

use super::Emulation;

impl Emulation {
    /// The group versions served for a group, preferred first.
    pub fn group_versions(&self, group: &str) -> Vec<&'static str> {
        let served = |versions: &[(&'static str, bool)]| {
            versions.iter().filter(|(_, on)| *on).map(|(v, _)| *v).collect()
        };
        match group {
            "apps" => served(&[("v1", true), ("v1beta2", self.serves_apps_v1beta2())]),
            "extensions" => served(&[("v1beta1", self.serves_extensions_v1beta1())]),
            "coordination.k8s.io" => served(&[
                ("v1", self.serves_leases_v1()),
                ("v1beta1", self.serves_leases_v1beta1()),
            ]),
            "policy" => served(&[
                ("v1", self.serves_policy_v1()),
                ("v1beta1", self.serves_policy_v1beta1()),
            ]),
            _ => Vec::new(),
        }
    }

    /// The API groups served, in the order the real server lists them (coordination after policy,
    /// as `kubectl api-versions` shows).
    pub fn groups(&self) -> Vec<&'static str> {
        ["extensions", "apps", "policy", "coordination.k8s.io"]
            .into_iter()
            .filter(|g| !self.group_versions(g).is_empty())
            .collect()
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
                ResourceInfo::new("deployments", "Deployment", true, &["deploy"]),
                ResourceInfo::sub("deployments/status", "Deployment", true),
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
        json!({
            "major": "1",
            "minor": self.minor.to_string(),
            "gitVersion": git_version,
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2019-01-01T00:00:00Z",
            "goVersion": self.go_version(),
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
        let singular = if emu.discovery_singular_names() && !self.name.contains('/') {
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
            if ["pods", "daemonsets", "replicasets", "deployments"].contains(&self.name) {
                o.insert("categories".into(), json!(["all"]));
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(minor: u32) -> Emulation {
        Emulation { minor, patch: 0 }
    }

    #[test]
    fn discovery_per_release() {
        assert_eq!(release(11).groups(), vec!["extensions", "apps", "policy"]);
        assert_eq!(
            release(12).groups(),
            vec!["extensions", "apps", "policy", "coordination.k8s.io"]
        );
        assert_eq!(
            release(16).groups(),
            vec!["apps", "policy", "coordination.k8s.io"]
        );
        assert_eq!(
            release(14).group_versions("coordination.k8s.io"),
            vec!["v1", "v1beta1"]
        );
        assert_eq!(release(22).group_versions("coordination.k8s.io"), vec!["v1"]);
        assert_eq!(release(21).group_versions("policy"), vec!["v1", "v1beta1"]);
        assert_eq!(release(21).eviction_group_version(), "policy/v1beta1");
        assert!(!release(21).accepts_eviction_version("policy/v1"));
        assert!(release(22).accepts_eviction_version("policy/v1"));
        assert!(release(30).accepts_eviction_version("policy/v1beta1"));
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
