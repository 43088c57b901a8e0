//! The seed of a simulated cluster: nodes, workloads (pods by kind), PodDisruptionBudgets.
//!
//! Loaded from YAML or JSON (`Cluster::from_file`), built in code (`Cluster::sample`), or generated
//! at scale for benchmarks (`Cluster::generate`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A node role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A control-plane node (`master` is accepted too): gets the static control-plane pods and the
    /// NoSchedule taint of the emulated release.
    #[serde(alias = "master")]
    ControlPlane,
    /// A worker.
    Worker,
}

/// Who reports a node's heartbeats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KubeletMode {
    /// The server keeps the node Ready by itself (until told that its kubelet stopped).
    #[default]
    Simulated,
    /// A stand-in kubelet posts node status; the node turns NotReady when it stops.
    External,
}

/// One node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSeed {
    /// Node name.
    pub name: String,
    /// Roles (default: worker).
    #[serde(default = "default_roles")]
    pub roles: Vec<Role>,
    /// `status.nodeInfo.kubeletVersion` (default: the cluster's version).
    #[serde(default)]
    pub kubelet_version: Option<String>,
    /// InternalIP (default: generated).
    #[serde(default)]
    pub address: Option<String>,
    /// Starts Ready (default true).
    #[serde(default = "yes")]
    pub ready: bool,
    /// Starts cordoned.
    #[serde(default)]
    pub unschedulable: bool,
    /// Heartbeats by the server or by an external stand-in kubelet.
    #[serde(default)]
    pub kubelet: KubeletMode,
    /// Extra labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_roles() -> Vec<Role> {
    vec![Role::Worker]
}

fn yes() -> bool {
    true
}

fn default_grace() -> i64 {
    30
}

fn default_ns() -> String {
    "default".to_string()
}

/// A ReplicaSet with its pods.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSetSeed {
    /// Name.
    pub name: String,
    /// Namespace.
    #[serde(default = "default_ns")]
    pub namespace: String,
    /// Replicas.
    pub replicas: u32,
    /// Pod labels (also the selector); default `app: <name>`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Nodes to place the pods on, round-robin (default: schedulable workers, round-robin).
    #[serde(default)]
    pub nodes: Vec<String>,
    /// `terminationGracePeriodSeconds`.
    #[serde(default = "default_grace")]
    pub termination_grace_period_seconds: i64,
    /// Pods mount an emptyDir volume.
    #[serde(default)]
    pub empty_dir: bool,
    /// Container image.
    #[serde(default)]
    pub image: Option<String>,
}

/// A DaemonSet: one pod on each matching node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSetSeed {
    /// Name.
    pub name: String,
    /// Namespace.
    #[serde(default = "default_ns")]
    pub namespace: String,
    /// Pod labels; default `app: <name>`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Only on nodes with one of these roles (default: all nodes).
    #[serde(default)]
    pub roles: Vec<Role>,
    /// `terminationGracePeriodSeconds`.
    #[serde(default = "default_grace")]
    pub termination_grace_period_seconds: i64,
    /// Pods mount an emptyDir volume.
    #[serde(default)]
    pub empty_dir: bool,
    /// Container image.
    #[serde(default)]
    pub image: Option<String>,
}

/// A Deployment whose pods the lab does not simulate (kube-system/coredns): its status says every
/// replica is ready, updated and available.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentSeed {
    /// Name.
    pub name: String,
    /// Namespace.
    #[serde(default = "default_ns")]
    pub namespace: String,
    /// Replicas.
    pub replicas: u32,
    /// Pod labels (also the selector); default `app: <name>`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The container's name (default: the Deployment's).
    #[serde(default)]
    pub container: Option<String>,
    /// Container image.
    pub image: String,
}

/// A bare pod (no controller).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSeed {
    /// Name.
    pub name: String,
    /// Namespace.
    #[serde(default = "default_ns")]
    pub namespace: String,
    /// Node.
    pub node: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `terminationGracePeriodSeconds`.
    #[serde(default = "default_grace")]
    pub termination_grace_period_seconds: i64,
    /// Mounts an emptyDir volume.
    #[serde(default)]
    pub empty_dir: bool,
    /// A mirror (static) pod: annotation `kubernetes.io/config.mirror`.
    #[serde(default)]
    pub mirror: bool,
}

/// An integer or a percentage (`"50%"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrPercent {
    /// An absolute count.
    Int(i64),
    /// `"25%"`.
    Str(String),
}

/// A PodDisruptionBudget.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PdbSeed {
    /// Name.
    pub name: String,
    /// Namespace.
    #[serde(default = "default_ns")]
    pub namespace: String,
    /// `matchLabels`.
    pub selector: BTreeMap<String, String>,
    /// `minAvailable`.
    #[serde(default)]
    pub min_available: Option<IntOrPercent>,
    /// `maxUnavailable`.
    #[serde(default)]
    pub max_unavailable: Option<IntOrPercent>,
}

/// An external etcd as kubeadm was given it (`kubeadm init --config`): its members' client URLs and
/// the client certificate the API server presents. kubeadm-config's `etcd:` names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExternalEtcdSeed {
    /// `https://HOST:2379`, one per member.
    pub endpoints: Vec<String>,
    /// The CA certificate etcd's serving certificates are verified against.
    pub ca_file: String,
    /// The client certificate.
    pub cert_file: String,
    /// Its key.
    pub key_file: String,
}

/// A stacked (local) etcd as kubeadm 1.11's HA guide set it up ("Stacked control plane nodes"):
/// kubeadm-config keeps its `etcd.local.extraArgs` (1.11 and 1.12; see store/kubeadm_config.rs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StackedEtcdSeed {
    /// The control planes whose members form it, in the order they joined (the first is the one
    /// `kubeadm init` made); their addresses are their nodes' InternalIPs.
    pub members: Vec<String>,
}

/// A whole cluster.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    /// The control plane's version (default: the emulated release's); `/version` reports it.
    #[serde(default)]
    pub kubernetes_version: Option<String>,
    /// `controlPlaneEndpoint` written into kubeadm-config (default `lab-api:6443`).
    #[serde(default)]
    pub control_plane_endpoint: Option<String>,
    /// The cluster's external etcd, written into kubeadm-config (default: kubeadm's local etcd).
    #[serde(default)]
    pub external_etcd: Option<ExternalEtcdSeed>,
    /// The cluster's stacked etcd as the 1.11 HA guide set it up (default: kubeadm's local etcd
    /// without extraArgs).
    #[serde(default)]
    pub stacked_etcd: Option<StackedEtcdSeed>,
    /// Extra annotations per node name (e.g. kubeadm's cri-socket annotation).
    #[serde(default)]
    pub node_annotations: BTreeMap<String, BTreeMap<String, String>>,
    /// Nodes; the first control-plane node is the primary master.
    pub nodes: Vec<NodeSeed>,
    /// ReplicaSets.
    #[serde(default)]
    pub replica_sets: Vec<ReplicaSetSeed>,
    /// DaemonSets.
    #[serde(default)]
    pub daemon_sets: Vec<DaemonSetSeed>,
    /// Deployments (their pods not simulated).
    #[serde(default)]
    pub deployments: Vec<DeploymentSeed>,
    /// Bare and mirror pods.
    #[serde(default)]
    pub pods: Vec<PodSeed>,
    /// PodDisruptionBudgets.
    #[serde(default)]
    pub pdbs: Vec<PdbSeed>,
    /// Put the kubeadm static pods (etcd, apiserver, controller-manager, scheduler) on every
    /// control-plane node (default true).
    #[serde(default = "yes")]
    pub static_pods: bool,
    /// Extra ConfigMaps: namespace -> name -> data.
    #[serde(default)]
    pub config_maps: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>,
}

impl Cluster {
    /// Reads YAML (or JSON, which is YAML) from a file.
    pub fn from_file(path: &Path) -> Result<Cluster, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read cluster file {}: {e}", path.display()))?;
        Cluster::from_yaml(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses YAML or JSON.
    pub fn from_yaml(text: &str) -> Result<Cluster, String> {
        serde_norway::from_str(text).map_err(|e| format!("invalid cluster description: {e}"))
    }

    /// The seed of node `name`, to change before a server starts with it.
    pub fn node_mut(&mut self, name: &str) -> Option<&mut NodeSeed> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    /// The seed of the bare or mirror pod `name`, to change before a server starts with it.
    pub fn pod_mut(&mut self, name: &str) -> Option<&mut PodSeed> {
        self.pods.iter_mut().find(|p| p.name == name)
    }

    /// A small HA cluster: 3 control-plane nodes and 3 workers (all at `kubelet_version`, or the
    /// emulated version when `None`), kube-proxy as a DaemonSet, a 3-replica `web` ReplicaSet with
    /// a PDB `minAvailable: 2`, a bare pod and an emptyDir pod on worker-1.
    pub fn sample(kubelet_version: Option<&str>) -> Cluster {
        let node = |name: &str, role: Role| NodeSeed {
            name: name.to_string(),
            roles: vec![role],
            kubelet_version: kubelet_version.map(String::from),
            address: None,
            ready: true,
            unschedulable: false,
            kubelet: KubeletMode::Simulated,
            labels: BTreeMap::new(),
        };
        let labels = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        Cluster {
            kubernetes_version: None,
            control_plane_endpoint: None,
            external_etcd: None,
            stacked_etcd: None,
            node_annotations: BTreeMap::new(),
            nodes: vec![
                node("master-1", Role::ControlPlane),
                node("master-2", Role::ControlPlane),
                node("master-3", Role::ControlPlane),
                node("worker-1", Role::Worker),
                node("worker-2", Role::Worker),
                node("worker-3", Role::Worker),
            ],
            replica_sets: vec![ReplicaSetSeed {
                name: "web-7d4b9c".to_string(),
                namespace: "default".to_string(),
                replicas: 3,
                labels: labels("app", "web"),
                nodes: vec![],
                termination_grace_period_seconds: 30,
                empty_dir: false,
                image: None,
            }],
            daemon_sets: vec![DaemonSetSeed {
                name: "kube-proxy".to_string(),
                namespace: "kube-system".to_string(),
                labels: labels("k8s-app", "kube-proxy"),
                roles: vec![],
                termination_grace_period_seconds: 30,
                empty_dir: false,
                image: None,
            }],
            deployments: vec![],
            pods: vec![
                PodSeed {
                    name: "toolbox".to_string(),
                    namespace: "default".to_string(),
                    node: "worker-1".to_string(),
                    labels: labels("run", "toolbox"),
                    termination_grace_period_seconds: 30,
                    empty_dir: false,
                    mirror: false,
                },
                PodSeed {
                    name: "cache".to_string(),
                    namespace: "default".to_string(),
                    node: "worker-1".to_string(),
                    labels: labels("run", "cache"),
                    termination_grace_period_seconds: 30,
                    empty_dir: true,
                    mirror: false,
                },
            ],
            pdbs: vec![PdbSeed {
                name: "web".to_string(),
                namespace: "default".to_string(),
                selector: labels("app", "web"),
                min_available: Some(IntOrPercent::Int(2)),
                max_unavailable: None,
            }],
            static_pods: true,
            config_maps: BTreeMap::new(),
        }
    }

    /// A large cluster for benchmarks: `nodes` nodes (3 control-plane, the rest workers), a
    /// kube-proxy DaemonSet (one pod per node) and ReplicaSets of 20 replicas spread over 10
    /// namespaces until about `pods` pods exist, each ReplicaSet with a PDB `maxUnavailable: 1`.
    pub fn generate(nodes: usize, pods: usize) -> Cluster {
        let mut c = Cluster {
            static_pods: true,
            ..Cluster::default()
        };
        let masters = 3.min(nodes);
        for i in 0..nodes {
            let (name, role) = if i < masters {
                (format!("master-{}", i + 1), Role::ControlPlane)
            } else {
                (format!("node-{:05}", i - masters + 1), Role::Worker)
            };
            c.nodes.push(NodeSeed {
                name,
                roles: vec![role],
                kubelet_version: None,
                address: None,
                ready: true,
                unschedulable: false,
                kubelet: KubeletMode::Simulated,
                labels: BTreeMap::new(),
            });
        }
        c.daemon_sets.push(DaemonSetSeed {
            name: "kube-proxy".to_string(),
            namespace: "kube-system".to_string(),
            labels: BTreeMap::from([("k8s-app".to_string(), "kube-proxy".to_string())]),
            roles: vec![],
            termination_grace_period_seconds: 30,
            empty_dir: false,
            image: None,
        });
        let static_count = masters * 4;
        let mut remaining = pods.saturating_sub(nodes + static_count);
        let mut i = 0;
        while remaining > 0 {
            let replicas = remaining.min(20);
            let name = format!("app-{i:05}");
            let namespace = format!("team-{:02}", i % 10);
            let labels = BTreeMap::from([("app".to_string(), name.clone())]);
            c.replica_sets.push(ReplicaSetSeed {
                name: format!("{name}-5f6d7c"),
                namespace: namespace.clone(),
                replicas: replicas as u32,
                labels: labels.clone(),
                nodes: vec![],
                termination_grace_period_seconds: 30,
                empty_dir: i % 7 == 0,
                image: None,
            });
            c.pdbs.push(PdbSeed {
                name,
                namespace,
                selector: labels,
                min_available: None,
                max_unavailable: Some(IntOrPercent::Int(1)),
            });
            remaining -= replicas;
            i += 1;
        }
        c
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_yaml() {
        let c = Cluster::from_yaml(
            "nodes:\n- name: m1\n  roles: [master]\n  kubeletVersion: v1.9.2\n- name: w1\nreplicaSets:\n- name: web\n  replicas: 2\npdbs:\n- name: web\n  selector: {app: web}\n  minAvailable: \"50%\"\n",
        )
        .unwrap();
        assert_eq!(c.nodes[0].roles, vec![Role::ControlPlane]);
        assert_eq!(c.nodes[1].roles, vec![Role::Worker]);
        assert_eq!(c.pdbs[0].min_available, Some(IntOrPercent::Str("50%".into())));
        assert!(c.static_pods);
        assert!(Cluster::from_yaml("nodes: []\nbogus: 1\n").is_err());
    }

    #[test]
    fn generates_sizes() {
        let c = Cluster::generate(2000, 60_000);
        assert_eq!(c.nodes.len(), 2000);
        let rs: u32 = c.replica_sets.iter().map(|r| r.replicas).sum();
        assert_eq!(rs as usize + 2000 + 12, 60_000);
    }
}
