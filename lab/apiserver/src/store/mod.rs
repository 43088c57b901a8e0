//! The object store and the simulated controllers (ReplicaSet, DaemonSet, kubelet mirror pods,
//! node lifecycle, graceful pod termination, PodDisruptionBudget accounting).
//!
//! Objects are kept as JSON. Pods are indexed by node and by label, so listing the pods of a node,
//! or the pods of a PodDisruptionBudget, never scans every pod.
//!
//! - `objects`: storage, resourceVersions, list with selectors and `limit`/`continue`;
//! - `writes`: create, update, patch, delete (the generic verbs); `leases`: Lease validation;
//! - `nodes`: node runtime state, heartbeats, the node lifecycle controller, scheduling;
//! - `pods`: pod life (pending, running, graceful deletion), mirror pods, readiness;
//! - `controllers`: the ReplicaSet and DaemonSet controllers;
//! - `disruption`: PodDisruptionBudget status and the eviction subresource;
//! - `timers`: delayed actions (pod start-up, end of a grace period);
//! - `control_plane`: the control plane's version (for the stand-in kubeadm);
//! - `services`: the nodes' container runtimes and keepalived, and what they mean for the control
//!   plane (availability, interruptions, the virtual address);
//! - `seed`, `kubeadm_config`: the initial cluster.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::time::Duration;

use serde_json::Value;

use crate::cluster::Cluster;
use crate::emulation::Emulation;
use crate::util::Rng;

mod control_plane;
mod controllers;
mod disruption;
mod kind;
mod kubeadm_config;
mod leases;
mod nodes;
pub(crate) mod object;
mod objects;
mod pods;
mod seed;
mod services;
mod timers;
mod writes;

pub use disruption::PdbHealth;
pub use kind::Kind;

use nodes::NodeRuntime;
use services::Services;
use timers::Timer;

/// `(namespace, name)`; the namespace is empty for cluster-scoped kinds.
pub type Key = (String, String);

/// Runtime knobs of the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Real seconds per simulated second of grace periods and pod start-up.
    pub time_factor: f64,
    /// Missed-heartbeat grace after which an externally reported node turns NotReady.
    pub node_grace: Duration,
    /// Simulated seconds a new pod takes to become Ready.
    pub pod_startup_seconds: f64,
    /// Seed of the name/UID generator (random when `None`).
    pub seed: Option<u64>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            time_factor: 1.0,
            node_grace: Duration::from_secs(40),
            pod_startup_seconds: 2.0,
            seed: None,
        }
    }
}

/// What a delete did.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// Graceful deletion started: the object, now with `deletionTimestamp`.
    Terminating(Value),
    /// The object is gone.
    Gone(Value),
}

/// `DeleteOptions.preconditions`: the delete happens only if the object still has this UID and
/// resourceVersion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

/// The state of the simulated cluster.
#[derive(Debug)]
pub struct Store {
    /// The emulated release.
    pub emu: Emulation,
    cfg: StoreConfig,
    rv: u64,
    objs: HashMap<Kind, BTreeMap<Key, Value>>,
    by_node: HashMap<String, BTreeSet<Key>>,
    by_label: HashMap<(String, String, String), BTreeSet<Key>>,
    nodes_rt: HashMap<String, NodeRuntime>,
    timers: BinaryHeap<Reverse<Timer>>,
    seq: u64,
    rng: Rng,
    violations: Vec<Value>,
    served_version: String,
    primary_master: Option<String>,
    cluster_endpoint: String,
    /// The external etcd kubeadm-config names (None: local etcd).
    external_etcd: Option<crate::cluster::ExternalEtcdSeed>,
    /// The 1.11 HA guide's stacked etcd kubeadm-config names (None: no extraArgs).
    stacked_etcd: Option<crate::cluster::StackedEtcdSeed>,
    services: Services,
}

impl Store {
    /// Builds the store from a seed.
    pub fn new(emu: Emulation, cfg: StoreConfig, cluster: &Cluster) -> Result<Store, String> {
        let served_version = cluster
            .kubernetes_version
            .clone()
            .unwrap_or_else(|| emu.git_version());
        let mut s = Store {
            emu,
            rng: Rng::new(cfg.seed),
            cfg,
            rv: 1000,
            objs: Kind::ALL.iter().map(|k| (*k, BTreeMap::new())).collect(),
            by_node: HashMap::new(),
            by_label: HashMap::new(),
            nodes_rt: HashMap::new(),
            timers: BinaryHeap::new(),
            seq: 0,
            violations: Vec::new(),
            served_version,
            primary_master: None,
            cluster_endpoint: cluster
                .control_plane_endpoint
                .clone()
                .unwrap_or_else(|| "lab-api:6443".to_string()),
            external_etcd: cluster.external_etcd.clone(),
            stacked_etcd: cluster.stacked_etcd.clone(),
            services: Services::new(
                cluster
                    .nodes
                    .iter()
                    .filter(|n| n.roles.contains(&crate::cluster::Role::ControlPlane))
                    .map(|n| n.name.clone())
                    .collect(),
            ),
        };
        s.seed(cluster)?;
        Ok(s)
    }
}
