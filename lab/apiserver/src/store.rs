//! The object store and the simulated controllers (ReplicaSet, DaemonSet, kubelet mirror pods,
//! node lifecycle, graceful pod termination, PodDisruptionBudget accounting).
//!
//! Objects are kept as JSON. Pods are indexed by node and by label, so listing the pods of a node,
//! or the pods of a PodDisruptionBudget, never scans every pod.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::ops::Bound;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};

use crate::cluster::{Cluster, IntOrPercent, KubeletMode, Role};
use crate::emulation::Emulation;
use crate::error::ApiError;
use crate::patch::{self, PatchKind};
use crate::selector::{FieldSelector, LabelSelector};
use crate::util::{now_str, rfc3339, Rng};

/// The kinds of objects served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// v1 Node
    Node,
    /// v1 Pod
    Pod,
    /// v1 ConfigMap
    ConfigMap,
    /// v1 Namespace
    Namespace,
    /// policy PodDisruptionBudget
    Pdb,
    /// apps DaemonSet
    DaemonSet,
    /// apps ReplicaSet
    ReplicaSet,
    /// coordination.k8s.io Lease
    Lease,
}

impl Kind {
    /// Resource name (`pods`).
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Node => "nodes",
            Kind::Pod => "pods",
            Kind::ConfigMap => "configmaps",
            Kind::Namespace => "namespaces",
            Kind::Pdb => "poddisruptionbudgets",
            Kind::DaemonSet => "daemonsets",
            Kind::ReplicaSet => "replicasets",
            Kind::Lease => "leases",
        }
    }

    /// Kind name (`Pod`).
    pub fn kind(self) -> &'static str {
        match self {
            Kind::Node => "Node",
            Kind::Pod => "Pod",
            Kind::ConfigMap => "ConfigMap",
            Kind::Namespace => "Namespace",
            Kind::Pdb => "PodDisruptionBudget",
            Kind::DaemonSet => "DaemonSet",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::Lease => "Lease",
        }
    }

    /// The canonical group (for error messages).
    pub fn group(self) -> &'static str {
        match self {
            Kind::Pdb => "policy",
            Kind::DaemonSet | Kind::ReplicaSet => "apps",
            Kind::Lease => "coordination.k8s.io",
            _ => "",
        }
    }

    /// Namespaced?
    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::Node | Kind::Namespace)
    }

    /// From a URL's group and resource.
    pub fn from_resource(group: &str, resource: &str) -> Option<Kind> {
        Some(match (group, resource) {
            ("", "nodes") => Kind::Node,
            ("", "pods") => Kind::Pod,
            ("", "configmaps") => Kind::ConfigMap,
            ("", "namespaces") => Kind::Namespace,
            ("policy", "poddisruptionbudgets") => Kind::Pdb,
            ("apps" | "extensions", "daemonsets") => Kind::DaemonSet,
            ("apps" | "extensions", "replicasets") => Kind::ReplicaSet,
            ("coordination.k8s.io", "leases") => Kind::Lease,
            _ => return None,
        })
    }

    /// Field selectors the real server accepts for the kind.
    pub fn field_labels(self) -> &'static [&'static str] {
        match self {
            Kind::Pod => &[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ],
            Kind::Node => &["metadata.name", "spec.unschedulable"],
            Kind::Namespace => &["metadata.name", "status.phase"],
            _ => &["metadata.name", "metadata.namespace"],
        }
    }

    const ALL: [Kind; 8] = [
        Kind::Node,
        Kind::Pod,
        Kind::ConfigMap,
        Kind::Namespace,
        Kind::Pdb,
        Kind::DaemonSet,
        Kind::ReplicaSet,
        Kind::Lease,
    ];
}

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

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    RemovePod { key: Key, uid: String },
    PodStarted { key: Key, uid: String },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Instant,
    seq: u64,
    action: Action,
}

#[derive(Debug, Clone)]
struct NodeRuntime {
    /// Cached `node_schedulable` of the stored node (kept in step by `commit`).
    schedulable: bool,
    mode: KubeletMode,
    last_heartbeat: Instant,
    index: usize,
    next_ip: u32,
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
}

fn meta(o: &Value) -> Option<&Map<String, Value>> {
    o.get("metadata").and_then(Value::as_object)
}

fn meta_str<'a>(o: &'a Value, k: &str) -> &'a str {
    meta(o)
        .and_then(|m| m.get(k))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn labels_of(o: &Value) -> Option<&Map<String, Value>> {
    meta(o).and_then(|m| m.get("labels")).and_then(Value::as_object)
}

fn set_path(o: &mut Value, path: &[&str], v: Value) {
    let mut cur = o;
    for (i, seg) in path.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(m) = cur else { return };
        if i + 1 == path.len() {
            m.insert((*seg).to_string(), v);
            return;
        }
        cur = m.entry((*seg).to_string()).or_insert(Value::Object(Map::new()));
    }
}

fn controller_of(pod: &Value) -> Option<(&str, &str, &str)> {
    let refs = meta(pod)?.get("ownerReferences")?.as_array()?;
    refs.iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| {
            (
                r.get("kind").and_then(Value::as_str).unwrap_or_default(),
                r.get("name").and_then(Value::as_str).unwrap_or_default(),
                r.get("uid").and_then(Value::as_str).unwrap_or_default(),
            )
        })
}

fn is_mirror(pod: &Value) -> bool {
    meta(pod)
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get("kubernetes.io/config.mirror"))
        .is_some()
}

fn condition_true(o: &Value, ty: &str) -> bool {
    condition_status(o, ty) == Some("True")
}

fn condition_status<'a>(o: &'a Value, ty: &str) -> Option<&'a str> {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
}

fn set_condition(o: &mut Value, ty: &str, status: &str, reason: Option<&str>, message: Option<&str>) {
    let now = now_str();
    if o.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_none()
    {
        set_path(o, &["status", "conditions"], json!([]));
    }
    let Some(conds) = o.pointer_mut("/status/conditions").and_then(Value::as_array_mut) else {
        return;
    };
    let pos = conds
        .iter()
        .position(|c| c.get("type").and_then(Value::as_str) == Some(ty));
    let mut c = match pos {
        Some(i) => conds.get(i).cloned().unwrap_or_else(|| json!({})),
        None => json!({"type": ty}),
    };
    let changed = c.get("status").and_then(Value::as_str) != Some(status);
    if let Some(m) = c.as_object_mut() {
        m.insert("status".into(), json!(status));
        if changed || !m.contains_key("lastTransitionTime") {
            m.insert("lastTransitionTime".into(), json!(now));
        }
        match reason {
            Some(r) => {
                m.insert("reason".into(), json!(r));
            }
            None => {
                m.remove("reason");
            }
        }
        match message {
            Some(r) => {
                m.insert("message".into(), json!(r));
            }
            None => {
                m.remove("message");
            }
        }
        if m.contains_key("lastHeartbeatTime") {
            m.insert("lastHeartbeatTime".into(), json!(now));
        }
    }
    match pos {
        Some(i) => {
            if let Some(slot) = conds.get_mut(i) {
                *slot = c;
            }
        }
        None => conds.push(c),
    }
}

fn scaled(n: i64, p: &IntOrPercent, total: i64) -> Result<i64, String> {
    match p {
        IntOrPercent::Int(i) => Ok(*i),
        IntOrPercent::Str(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|x| x.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let _ = n;
            Ok((pct * total + 99) / 100)
        }
    }
}

fn int_or_percent(v: &Value) -> Option<IntOrPercent> {
    match v {
        Value::Number(n) => n.as_i64().map(IntOrPercent::Int),
        Value::String(s) => Some(
            s.parse::<i64>()
                .map(IntOrPercent::Int)
                .unwrap_or_else(|_| IntOrPercent::Str(s.clone())),
        ),
        _ => None,
    }
}

/// Health accounting of one PodDisruptionBudget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdbHealth {
    /// Matching pods that are Running, Ready and not terminating.
    pub current_healthy: i64,
    /// The minimum that must stay healthy.
    pub desired_healthy: i64,
    /// Pods expected (controllers' scale).
    pub expected_pods: i64,
    /// How many may be disrupted now.
    pub disruptions_allowed: i64,
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
        };
        s.seed(cluster)?;
        Ok(s)
    }

    // ----- basic storage -------------------------------------------------------------------

    fn map(&self, kind: Kind) -> Option<&BTreeMap<Key, Value>> {
        self.objs.get(&kind)
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The version `/version` reports.
    pub fn served_version(&self) -> &str {
        &self.served_version
    }

    /// One object.
    pub fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<&Value> {
        self.map(kind)?.get(&(ns.to_string(), name.to_string()))
    }

    /// One object or a 404.
    pub fn get_or_404(&self, kind: Kind, ns: &str, name: &str) -> Result<&Value, ApiError> {
        self.get(kind, ns, name)
            .ok_or_else(|| ApiError::not_found(kind.resource(), kind.group(), name))
    }

    /// Number of objects of a kind.
    pub fn count(&self, kind: Kind) -> usize {
        self.map(kind).map(BTreeMap::len).unwrap_or(0)
    }

    fn index_pod(&mut self, key: &Key, pod: &Value, add: bool) {
        let node = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if add {
            self.by_node.entry(node).or_default().insert(key.clone());
        } else if let Some(set) = self.by_node.get_mut(&node) {
            set.remove(key);
        }
        if let Some(labels) = labels_of(pod) {
            for (k, v) in labels {
                let ik = (
                    key.0.clone(),
                    k.clone(),
                    v.as_str().unwrap_or_default().to_string(),
                );
                if add {
                    self.by_label.entry(ik).or_default().insert(key.clone());
                } else if let Some(set) = self.by_label.get_mut(&ik) {
                    set.remove(key);
                    if set.is_empty() {
                        self.by_label.remove(&ik);
                    }
                }
            }
        }
    }

    /// Stores an object with a new resourceVersion; returns the stored copy.
    fn commit(&mut self, kind: Kind, mut obj: Value) -> Value {
        self.rv += 1;
        let ns = meta_str(&obj, "namespace").to_string();
        let name = meta_str(&obj, "name").to_string();
        let self_link = self.emu.self_links().then(|| self.self_link(kind, &ns, &name));
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), json!(self.rv.to_string()));
            if let Some(l) = self_link {
                m.insert("selfLink".into(), json!(l));
            }
        }
        let key = (ns, name);
        if kind == Kind::Pod {
            if let Some(old) = self.map(Kind::Pod).and_then(|m| m.get(&key)).cloned() {
                self.index_pod(&key, &old, false);
            }
            self.index_pod(&key, &obj, true);
        }
        if kind == Kind::Node {
            let sched = Store::node_schedulable(&obj);
            if let Some(rt) = self.nodes_rt.get_mut(&key.1) {
                rt.schedulable = sched;
            }
        }
        if let Some(m) = self.objs.get_mut(&kind) {
            m.insert(key, obj.clone());
        }
        obj
    }

    fn remove(&mut self, kind: Kind, key: &Key) -> Option<Value> {
        let old = self.objs.get_mut(&kind)?.remove(key)?;
        self.rv += 1;
        if kind == Kind::Pod {
            self.index_pod(key, &old, false);
        }
        Some(old)
    }

    fn self_link(&self, kind: Kind, ns: &str, name: &str) -> String {
        let prefix = match kind.group() {
            "" => "/api/v1".to_string(),
            g => format!(
                "/apis/{g}/{}",
                self.emu.group_versions(g).first().copied().unwrap_or("v1")
            ),
        };
        if kind.namespaced() {
            format!("{prefix}/namespaces/{ns}/{}/{name}", kind.resource())
        } else {
            format!("{prefix}/{}/{name}", kind.resource())
        }
    }

    fn new_meta(&mut self, ns: &str, name: &str, labels: Value) -> Value {
        let mut m = json!({
            "name": name,
            "uid": self.rng.uid(),
            "creationTimestamp": now_str(),
        });
        if let Some(o) = m.as_object_mut() {
            if !ns.is_empty() {
                o.insert("namespace".into(), json!(ns));
            }
            if labels.as_object().is_some_and(|l| !l.is_empty()) {
                o.insert("labels".into(), labels);
            }
        }
        m
    }

    // ----- listing -------------------------------------------------------------------------

    /// Lists objects (sorted by namespace and name), optionally within a namespace, filtered by
    /// selectors, with `limit`/`continue` chunking. Returns the items and the continue token.
    pub fn list(
        &self,
        kind: Kind,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        cont: Option<&str>,
    ) -> Result<(Vec<&Value>, Option<String>), ApiError> {
        let Some(map) = self.map(kind) else {
            return Ok((Vec::new(), None));
        };
        let after: Option<Key> = match cont {
            Some(c) if !c.is_empty() => Some(decode_continue(c)?),
            _ => None,
        };
        let lower = match &after {
            Some(k) => Bound::Excluded(k.clone()),
            None => match ns {
                Some(n) => Bound::Included((n.to_string(), String::new())),
                None => Bound::Unbounded,
            },
        };
        let limit = limit.filter(|l| *l > 0);
        // Index: pods of one node, or of one label within a namespace.
        let index: Option<&BTreeSet<Key>> = if kind == Kind::Pod {
            if let Some(node) = fields.equality("spec.nodeName") {
                Some(self.by_node.get(node).unwrap_or(&EMPTY))
            } else if let (Some(n), Some((lk, lv))) = (ns, labels.first_equality()) {
                Some(
                    self.by_label
                        .get(&(n.to_string(), lk.to_string(), lv.to_string()))
                        .unwrap_or(&EMPTY),
                )
            } else {
                None
            }
        } else {
            None
        };
        let candidates: Box<dyn Iterator<Item = (&Key, &Value)> + '_> = match index {
            Some(set) => Box::new(
                set.range((lower, Bound::Unbounded))
                    .filter_map(move |k| map.get_key_value(k)),
            ),
            None => Box::new(
                map.range((lower, Bound::Unbounded))
                    .take_while(move |(k, _)| ns.is_none_or(|n| k.0 == n)),
            ),
        };
        let mut out: Vec<&Value> = Vec::new();
        let mut next = None;
        for (k, v) in candidates {
            if ns.is_some_and(|n| k.0 != n) || !labels.matches(labels_of(v)) || !fields.matches(v) {
                continue;
            }
            if limit.is_some_and(|l| out.len() >= l) {
                next = Some(encode_continue(out.last().copied()));
                break;
            }
            out.push(v);
        }
        Ok((out, next))
    }

    // ----- PodDisruptionBudgets ------------------------------------------------------------

    fn pods_selected(&self, ns: &str, sel: &LabelSelector) -> Vec<&Value> {
        let Some(pods) = self.map(Kind::Pod) else {
            return Vec::new();
        };
        if sel.is_empty() {
            if self.emu.minor < 21 {
                return Vec::new();
            }
            return pods
                .range((ns.to_string(), String::new())..)
                .take_while(|(k, _)| k.0 == ns)
                .map(|(_, v)| v)
                .collect();
        }
        match sel.first_equality() {
            Some((k, v)) => self
                .by_label
                .get(&(ns.to_string(), k.to_string(), v.to_string()))
                .map(|set| {
                    set.iter()
                        .filter_map(|key| pods.get(key))
                        .filter(|p| sel.matches(labels_of(p)))
                        .collect()
                })
                .unwrap_or_default(),
            None => pods
                .range((ns.to_string(), String::new())..)
                .take_while(|(k, _)| k.0 == ns)
                .map(|(_, v)| v)
                .filter(|p| sel.matches(labels_of(p)))
                .collect(),
        }
    }

    /// Whether a pod counts as healthy for disruption budgets.
    pub fn pod_healthy(pod: &Value) -> bool {
        meta(pod).is_some_and(|m| !m.contains_key("deletionTimestamp"))
            && pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
            && condition_true(pod, "Ready")
    }

    /// Computes a PDB's status from the pods it selects.
    pub fn pdb_health(&self, pdb: &Value) -> Result<PdbHealth, String> {
        let ns = meta_str(pdb, "namespace");
        let sel = LabelSelector::from_object(pdb.pointer("/spec/selector").unwrap_or(&Value::Null))?;
        let pods = self.pods_selected(ns, &sel);
        let healthy = pods.iter().filter(|p| Store::pod_healthy(p)).count() as i64;
        let min = pdb.pointer("/spec/minAvailable").and_then(int_or_percent);
        let max = pdb.pointer("/spec/maxUnavailable").and_then(int_or_percent);
        let (expected, desired) = match (min, max) {
            (Some(IntOrPercent::Int(n)), _) => (pods.len() as i64, n),
            (Some(p), _) => {
                let e = self.expected_scale(ns, &pods);
                (e, scaled(0, &p, e)?)
            }
            (None, Some(p)) => {
                let e = self.expected_scale(ns, &pods);
                (e, (e - scaled(0, &p, e)?).max(0))
            }
            (None, None) => (pods.len() as i64, if self.emu.minor < 21 { 1 } else { 0 }),
        };
        Ok(PdbHealth {
            current_healthy: healthy,
            desired_healthy: desired,
            expected_pods: expected,
            disruptions_allowed: (healthy - desired).max(0),
        })
    }

    fn expected_scale(&self, ns: &str, pods: &[&Value]) -> i64 {
        let mut seen = BTreeSet::new();
        let mut total = 0i64;
        for p in pods {
            match controller_of(p) {
                Some(("ReplicaSet", name, _)) => {
                    if seen.insert(name.to_string()) {
                        total += self
                            .get(Kind::ReplicaSet, ns, name)
                            .and_then(|rs| rs.pointer("/spec/replicas"))
                            .and_then(Value::as_i64)
                            .unwrap_or(1);
                    }
                }
                _ => total += 1,
            }
        }
        total
    }

    /// A PDB with its status filled in.
    pub fn pdb_with_status(&self, pdb: &Value) -> Value {
        let mut out = pdb.clone();
        if let Ok(h) = self.pdb_health(pdb) {
            let gen = meta(pdb)
                .and_then(|m| m.get("generation"))
                .cloned()
                .unwrap_or(json!(1));
            let mut status = json!({
                "observedGeneration": gen,
                "disruptionsAllowed": h.disruptions_allowed,
                "currentHealthy": h.current_healthy,
                "desiredHealthy": h.desired_healthy,
                "expectedPods": h.expected_pods,
            });
            if self.emu.minor >= 21 {
                if let Some(o) = status.as_object_mut() {
                    let ok = h.disruptions_allowed > 0;
                    o.insert(
                        "conditions".into(),
                        json!([{"type": "DisruptionAllowed", "status": if ok {"True"} else {"False"},
                            "reason": if ok {"SufficientPods"} else {"InsufficientPods"}, "message": "",
                            "observedGeneration": gen, "lastTransitionTime": now_str()}]),
                    );
                }
            } else if let Some(o) = status.as_object_mut() {
                o.insert("disruptedPods".into(), json!(null));
            }
            if let Some(o) = out.as_object_mut() {
                o.insert("status".into(), status);
            }
        }
        out
    }

    fn pdbs_for_pod(&self, pod: &Value) -> Vec<Value> {
        let ns = meta_str(pod, "namespace");
        let Some(pdbs) = self.map(Kind::Pdb) else {
            return Vec::new();
        };
        pdbs.range((ns.to_string(), String::new())..)
            .take_while(|(k, _)| k.0 == ns)
            .filter(|(_, pdb)| {
                LabelSelector::from_object(pdb.pointer("/spec/selector").unwrap_or(&Value::Null))
                    .map(|s| {
                        if s.is_empty() {
                            self.emu.minor >= 21
                        } else {
                            s.matches(labels_of(pod))
                        }
                    })
                    .unwrap_or(false)
            })
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Records a violation when disrupting `pod` takes one of its PDBs below its minimum.
    fn record_disruption(&mut self, pod: &Value, via: &str) {
        if !Store::pod_healthy(pod) {
            return;
        }
        for pdb in self.pdbs_for_pod(pod) {
            if let Ok(h) = self.pdb_health(&pdb) {
                if h.current_healthy - 1 < h.desired_healthy {
                    self.violations.push(json!({
                        "time": now_str(),
                        "via": via,
                        "pod": format!("{}/{}", meta_str(pod, "namespace"), meta_str(pod, "name")),
                        "pdb": format!("{}/{}", meta_str(&pdb, "namespace"), meta_str(&pdb, "name")),
                        "healthyBefore": h.current_healthy,
                        "desiredHealthy": h.desired_healthy,
                    }));
                }
            }
        }
    }

    /// Every recorded PDB violation.
    pub fn violations(&self) -> &[Value] {
        &self.violations
    }

    // ----- timers --------------------------------------------------------------------------

    fn sim(&self, seconds: f64) -> Duration {
        Duration::from_secs_f64((seconds * self.cfg.time_factor).max(0.0))
    }

    fn schedule(&mut self, after: Duration, action: Action) {
        self.seq += 1;
        self.timers.push(Reverse(Timer {
            at: Instant::now() + after,
            seq: self.seq,
            action,
        }));
    }

    /// Runs due timers and the node monitor; returns when to call again.
    pub fn tick(&mut self, now: Instant) -> Instant {
        while let Some(Reverse(t)) = self.timers.peek() {
            if t.at > now {
                break;
            }
            let Some(Reverse(t)) = self.timers.pop() else {
                break;
            };
            self.run(t.action);
        }
        self.monitor_nodes(now);
        let monitor_period =
            (self.cfg.node_grace / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
        let next_monitor = now + monitor_period;
        match self.timers.peek() {
            Some(Reverse(t)) if t.at < next_monitor => t.at,
            _ => next_monitor,
        }
    }

    fn run(&mut self, action: Action) {
        match action {
            Action::RemovePod { key, uid } => {
                let same = self
                    .map(Kind::Pod)
                    .and_then(|m| m.get(&key))
                    .is_some_and(|p| meta_str(p, "uid") == uid);
                if same {
                    if let Some(old) = self.remove(Kind::Pod, &key) {
                        self.after_pod_gone(&old);
                    }
                }
            }
            Action::PodStarted { key, uid } => {
                let Some(mut pod) = self.map(Kind::Pod).and_then(|m| m.get(&key)).cloned() else {
                    return;
                };
                if meta_str(&pod, "uid") != uid
                    || meta(&pod).is_some_and(|m| m.contains_key("deletionTimestamp"))
                {
                    return;
                }
                let node = pod
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let node_ready = self
                    .get(Kind::Node, "", &node)
                    .is_some_and(|n| condition_true(n, "Ready"));
                if !node_ready {
                    return;
                }
                self.set_pod_running(&mut pod);
                self.commit(Kind::Pod, pod);
            }
        }
    }

    // ----- nodes ---------------------------------------------------------------------------

    fn node_schedulable(node: &Value) -> bool {
        let cordoned = node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true);
        let tainted = node
            .pointer("/spec/taints")
            .and_then(Value::as_array)
            .is_some_and(|ts| {
                ts.iter().any(|t| {
                    matches!(
                        t.get("effect").and_then(Value::as_str),
                        Some("NoSchedule" | "NoExecute")
                    )
                })
            });
        !cordoned && !tainted && condition_true(node, "Ready")
    }

    /// The schedulable node with the fewest pods (ties: the first by name), `exclude` aside.
    fn pick_node(&self, exclude: &str) -> Option<String> {
        self.nodes_rt
            .iter()
            .filter(|(name, rt)| rt.schedulable && name.as_str() != exclude)
            .min_by_key(|(name, _)| {
                (
                    self.by_node.get(name.as_str()).map(BTreeSet::len).unwrap_or(0),
                    name.as_str(),
                )
            })
            .map(|(name, _)| name.clone())
    }

    fn monitor_nodes(&mut self, now: Instant) {
        let grace = self.cfg.node_grace;
        let stale: Vec<String> = self
            .nodes_rt
            .iter()
            .filter(|(_, rt)| {
                rt.mode == KubeletMode::External && now.duration_since(rt.last_heartbeat) > grace
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in stale {
            let Some(node) = self.get(Kind::Node, "", &name).cloned() else {
                continue;
            };
            if condition_status(&node, "Ready") == Some("Unknown") {
                continue;
            }
            self.mark_node_unreachable(node);
        }
    }

    fn mark_node_unreachable(&mut self, mut node: Value) {
        let name = meta_str(&node, "name").to_string();
        let msg = "Kubelet stopped posting node status.";
        let types: Vec<String> = node
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get("type").and_then(Value::as_str).map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for t in types {
            set_condition(&mut node, &t, "Unknown", Some("NodeStatusUnknown"), Some(msg));
        }
        if self.emu.minor >= 13 {
            let mut taints = node
                .pointer("/spec/taints")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for effect in ["NoSchedule", "NoExecute"] {
                if !taints.iter().any(|t| {
                    t.get("key").and_then(Value::as_str) == Some("node.kubernetes.io/unreachable")
                        && t.get("effect").and_then(Value::as_str) == Some(effect)
                }) {
                    let mut t = json!({"key": "node.kubernetes.io/unreachable", "effect": effect});
                    if effect == "NoExecute" {
                        if let Some(o) = t.as_object_mut() {
                            o.insert("timeAdded".into(), json!(now_str()));
                        }
                    }
                    taints.push(t);
                }
            }
            set_path(&mut node, &["spec", "taints"], Value::Array(taints));
        }
        self.commit(Kind::Node, node);
        // The node lifecycle controller marks the node's pods not ready.
        let keys: Vec<Key> = self
            .by_node
            .get(&name)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for k in keys {
            if let Some(mut pod) = self.map(Kind::Pod).and_then(|m| m.get(&k)).cloned() {
                if condition_true(&pod, "Ready") {
                    set_condition(&mut pod, "Ready", "False", None, None);
                    if self.emu.minor >= 11 {
                        set_condition(&mut pod, "ContainersReady", "False", None, None);
                    }
                    self.commit(Kind::Pod, pod);
                }
            }
        }
    }

    /// After a node write: a Ready node drops the unreachable taint, its pods turn ready again,
    /// pending pods get scheduled.
    fn after_node_write(&mut self, name: &str) {
        let Some(mut node) = self.get(Kind::Node, "", name).cloned() else {
            return;
        };
        if condition_true(&node, "Ready") {
            let taints = node.pointer("/spec/taints").and_then(Value::as_array).cloned();
            if let Some(ts) = taints {
                let kept: Vec<Value> = ts
                    .iter()
                    .filter(|t| {
                        t.get("key").and_then(Value::as_str) != Some("node.kubernetes.io/unreachable")
                    })
                    .cloned()
                    .collect();
                if kept.len() != ts.len() {
                    set_path(&mut node, &["spec", "taints"], Value::Array(kept));
                    self.commit(Kind::Node, node);
                }
            }
            let keys: Vec<Key> = self
                .by_node
                .get(name)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            for k in keys {
                if let Some(mut pod) = self.map(Kind::Pod).and_then(|m| m.get(&k)).cloned() {
                    let running = pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running");
                    if running && !condition_true(&pod, "Ready") {
                        set_condition(&mut pod, "Ready", "True", None, None);
                        if self.emu.minor >= 11 {
                            set_condition(&mut pod, "ContainersReady", "True", None, None);
                        }
                        self.commit(Kind::Pod, pod);
                    }
                }
            }
        }
        self.schedule_pending();
    }

    /// Refreshes a node's heartbeat (a stand-in kubelet posted status).
    pub fn heartbeat(&mut self, name: &str, mode: KubeletMode) -> Result<(), ApiError> {
        let rt = self
            .nodes_rt
            .get_mut(name)
            .ok_or_else(|| ApiError::not_found("nodes", "", name))?;
        rt.mode = mode;
        rt.last_heartbeat = Instant::now();
        Ok(())
    }

    /// Simulates a kubelet: `running = false` stops heartbeats (the node turns NotReady after the
    /// grace); `running = true` makes the server keep the node Ready itself.
    pub fn set_kubelet_running(&mut self, name: &str, running: bool) -> Result<Value, ApiError> {
        self.heartbeat(name, KubeletMode::External)?;
        if running {
            self.heartbeat(name, KubeletMode::Simulated)?;
            let mut node = self.get_or_404(Kind::Node, "", name)?.clone();
            set_condition(
                &mut node,
                "Ready",
                "True",
                Some("KubeletReady"),
                Some("kubelet is posting ready status"),
            );
            for t in ["MemoryPressure", "DiskPressure", "PIDPressure", "OutOfDisk"] {
                if condition_status(&node, t).is_some() {
                    set_condition(&mut node, t, "False", Some("KubeletHasSufficientMemory"), None);
                }
            }
            self.commit(Kind::Node, node);
            self.after_node_write(name);
        }
        Ok(self.get_or_404(Kind::Node, "", name)?.clone())
    }

    // ----- pods ----------------------------------------------------------------------------

    fn node_ip(&self, node: &str) -> String {
        self.get(Kind::Node, "", node)
            .and_then(|n| n.pointer("/status/addresses"))
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|x| x.get("type").and_then(Value::as_str) == Some("InternalIP"))
                    .and_then(|x| x.get("address"))
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .unwrap_or_default()
    }

    fn alloc_pod_ip(&mut self, node: &str) -> String {
        match self.nodes_rt.get_mut(node) {
            Some(rt) => {
                rt.next_ip = rt.next_ip % 250 + 1;
                let i = rt.index;
                format!("10.{}.{}.{}", 244 + i / 256, i % 256, rt.next_ip + 1)
            }
            None => String::new(),
        }
    }

    fn set_pod_running(&mut self, pod: &mut Value) {
        let node = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let host_network = pod.pointer("/spec/hostNetwork").and_then(Value::as_bool) == Some(true);
        let host_ip = self.node_ip(&node);
        let pod_ip = if host_network {
            host_ip.clone()
        } else {
            self.alloc_pod_ip(&node)
        };
        let now = now_str();
        let containers: Vec<Value> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let statuses: Vec<Value> = containers
            .iter()
            .map(|c| {
                let name = c.get("name").cloned().unwrap_or(json!("main"));
                let image = c.get("image").cloned().unwrap_or(json!(""));
                let cid = format!(
                    "docker://{:016x}{:016x}",
                    self.rng.next_u64(),
                    self.rng.next_u64()
                );
                json!({"name": name, "state": {"running": {"startedAt": now}}, "lastState": {},
                    "ready": true, "restartCount": 0, "image": image,
                    "imageID": format!("docker-pullable://{}", image.as_str().unwrap_or_default()),
                    "containerID": cid})
            })
            .collect();
        let mut conds = vec![
            json!({"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}),
            json!({"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}),
        ];
        if self.emu.minor >= 11 {
            conds.push(json!({"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
        }
        conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
        let mut status = json!({
            "phase": "Running",
            "conditions": conds,
            "hostIP": host_ip,
            "podIP": pod_ip,
            "startTime": now,
            "containerStatuses": statuses,
            "qosClass": "BestEffort",
        });
        if self.emu.minor >= 16 {
            if let Some(o) = status.as_object_mut() {
                o.insert("podIPs".into(), json!([{"ip": pod_ip}]));
            }
        }
        set_path(pod, &["status"], status);
    }

    fn set_pod_pending(&self, pod: &mut Value, scheduled: bool) {
        let now = now_str();
        let status = if scheduled {
            let host_ip = self.node_ip(
                pod.pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            );
            json!({"phase": "Pending", "hostIP": host_ip, "startTime": now, "qosClass": "BestEffort",
                "conditions": [
                    {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
                    {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastProbeTime": null, "lastTransitionTime": now},
                    {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}]})
        } else {
            json!({"phase": "Pending", "qosClass": "BestEffort", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/0 nodes are available: no node is schedulable.", "lastProbeTime": null, "lastTransitionTime": now}]})
        };
        set_path(pod, &["status"], status);
    }

    /// Builds a pod from a template (`{metadata: {labels}, spec}`).
    fn pod_from_template(
        &mut self,
        ns: &str,
        name: &str,
        template: &Value,
        owner: Option<Value>,
        node: Option<&str>,
    ) -> Value {
        let labels = template.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
        let mut m = self.new_meta(ns, name, labels);
        if let Some(o) = m.as_object_mut() {
            if let Some(ann) = template.pointer("/metadata/annotations") {
                o.insert("annotations".into(), ann.clone());
            }
            if let Some(owner) = owner {
                let owner_name = owner.get("name").and_then(Value::as_str).unwrap_or_default();
                o.insert("generateName".into(), json!(format!("{owner_name}-")));
                o.insert("ownerReferences".into(), json!([owner]));
            }
        }
        let mut spec = template.get("spec").cloned().unwrap_or(json!({}));
        if let (Some(n), Some(o)) = (node, spec.as_object_mut()) {
            o.insert("nodeName".into(), json!(n));
        }
        let mut pod = json!({"metadata": m, "spec": spec});
        self.set_pod_pending(&mut pod, node.is_some());
        pod
    }

    /// Creates a pod that starts Pending and becomes Running/Ready after the start-up delay
    /// (or at once with `immediate`).
    fn launch_pod(&mut self, mut pod: Value, immediate: bool) -> Value {
        let scheduled = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if scheduled && immediate {
            self.set_pod_running(&mut pod);
        }
        let stored = self.commit(Kind::Pod, pod);
        if scheduled && !immediate {
            let key = (
                meta_str(&stored, "namespace").to_string(),
                meta_str(&stored, "name").to_string(),
            );
            let uid = meta_str(&stored, "uid").to_string();
            let after = self.sim(self.cfg.pod_startup_seconds);
            self.schedule(after, Action::PodStarted { key, uid });
        }
        stored
    }

    fn owner_ref(&self, kind: Kind, obj: &Value) -> Value {
        let api_version = match kind {
            Kind::ReplicaSet | Kind::DaemonSet => {
                if self.emu.minor < 10 {
                    "extensions/v1beta1"
                } else {
                    "apps/v1"
                }
            }
            _ => "v1",
        };
        json!({"apiVersion": api_version, "kind": kind.kind(), "name": meta_str(obj, "name"),
            "uid": meta_str(obj, "uid"), "controller": true, "blockOwnerDeletion": true})
    }

    fn unique_pod_name(&mut self, ns: &str, base: &str) -> String {
        loop {
            let name = format!("{base}-{}", self.rng.suffix(5));
            if self.get(Kind::Pod, ns, &name).is_none() {
                return name;
            }
        }
    }

    /// The ReplicaSet controller: creates or deletes pods until the active ones match the scale.
    fn reconcile_rs(&mut self, ns: &str, name: &str, exclude_node: &str) {
        let Some(rs) = self.get(Kind::ReplicaSet, ns, name).cloned() else {
            return;
        };
        let want = rs.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
        let uid = meta_str(&rs, "uid").to_string();
        let sel = LabelSelector::from_object(rs.pointer("/spec/selector").unwrap_or(&Value::Null))
            .unwrap_or_default();
        let active: Vec<Key> = self
            .pods_selected(ns, &sel)
            .into_iter()
            .filter(|p| controller_of(p).is_some_and(|(_, _, u)| u == uid))
            .filter(|p| meta(p).is_some_and(|m| !m.contains_key("deletionTimestamp")))
            .map(|p| {
                (
                    meta_str(p, "namespace").to_string(),
                    meta_str(p, "name").to_string(),
                )
            })
            .collect();
        let have = active.len() as i64;
        if have < want {
            let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
            let owner = self.owner_ref(Kind::ReplicaSet, &rs);
            for _ in have..want {
                let pod_name = self.unique_pod_name(ns, name);
                let node = self.pick_node(exclude_node);
                let pod =
                    self.pod_from_template(ns, &pod_name, &template, Some(owner.clone()), node.as_deref());
                self.launch_pod(pod, false);
            }
        } else if have > want {
            for key in active.iter().rev().take((have - want) as usize) {
                let _ = self.delete_pod(&key.0, &key.1, None, "replicaset-controller");
            }
        }
    }

    fn schedule_pending(&mut self) {
        let pending: Vec<Key> = self
            .by_node
            .get("")
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for key in pending {
            let Some(node) = self.pick_node("") else { return };
            let Some(mut pod) = self.map(Kind::Pod).and_then(|m| m.get(&key)).cloned() else {
                continue;
            };
            if meta(&pod).is_some_and(|m| m.contains_key("deletionTimestamp")) {
                continue;
            }
            set_path(&mut pod, &["spec", "nodeName"], json!(node));
            self.set_pod_pending(&mut pod, true);
            self.launch_pod(pod, false);
        }
    }

    /// After a pod is gone: the DaemonSet controller and the kubelet (mirror pods) put theirs back.
    fn after_pod_gone(&mut self, old: &Value) {
        let ns = meta_str(old, "namespace").to_string();
        let name = meta_str(old, "name").to_string();
        let node = old
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let node_obj = self.get(Kind::Node, "", &node).cloned();
        if let Some(("DaemonSet", ds_name, uid)) = controller_of(old) {
            let (ds_name, uid) = (ds_name.to_string(), uid.to_string());
            if let (Some(ds), Some(_)) = (
                self.get(Kind::DaemonSet, &ns, &ds_name).cloned(),
                node_obj.as_ref(),
            ) {
                if meta_str(&ds, "uid") == uid {
                    let template = ds.pointer("/spec/template").cloned().unwrap_or(json!({}));
                    let owner = self.owner_ref(Kind::DaemonSet, &ds);
                    let pod_name = self.unique_pod_name(&ns, &ds_name);
                    let pod = self.pod_from_template(&ns, &pod_name, &template, Some(owner), Some(&node));
                    self.launch_pod(pod, false);
                }
            }
        } else if is_mirror(old) && node_obj.as_ref().is_some_and(|n| condition_true(n, "Ready")) {
            let mut pod = old.clone();
            if let Some(m) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
                m.insert("uid".into(), json!(self.rng.uid()));
                m.insert("creationTimestamp".into(), json!(now_str()));
                m.remove("deletionTimestamp");
                m.remove("deletionGracePeriodSeconds");
            }
            if self.get(Kind::Pod, &ns, &name).is_none() {
                self.launch_pod(pod, true);
            }
        }
    }

    /// Deletes a pod: graceful (the pod gets `deletionTimestamp` and disappears after its grace
    /// period, scaled by the time factor) or immediate (grace 0, or not running on a node).
    pub fn delete_pod(
        &mut self,
        ns: &str,
        name: &str,
        grace: Option<i64>,
        via: &str,
    ) -> Result<Deleted, ApiError> {
        let pod = self.get_or_404(Kind::Pod, ns, name)?.clone();
        let key = (ns.to_string(), name.to_string());
        let spec_grace = pod
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30);
        let grace = grace.unwrap_or(spec_grace).max(0);
        let terminating = meta(&pod).is_some_and(|m| m.contains_key("deletionTimestamp"));
        let phase = pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let on_node = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let immediate = grace == 0 || !on_node || phase == "Succeeded" || phase == "Failed";
        if terminating {
            let current = meta(&pod)
                .and_then(|m| m.get("deletionGracePeriodSeconds"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if !immediate && grace >= current {
                return Ok(Deleted::Terminating(pod));
            }
        } else {
            self.record_disruption(&pod, via);
        }
        if immediate {
            let old = self.remove(Kind::Pod, &key).unwrap_or(pod);
            if !terminating {
                self.replace_owned(&old);
            }
            self.after_pod_gone(&old);
            return Ok(Deleted::Gone(old));
        }
        let mut p = pod;
        let when = SystemTime::now() + Duration::from_secs(grace as u64);
        if let Some(m) = p.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("deletionTimestamp".into(), json!(rfc3339(when)));
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
        }
        let stored = self.commit(Kind::Pod, p);
        let uid = meta_str(&stored, "uid").to_string();
        let after = self.sim(grace as f64);
        self.schedule(after, Action::RemovePod { key, uid });
        if !terminating {
            self.replace_owned(&stored);
        }
        Ok(Deleted::Terminating(stored))
    }

    fn replace_owned(&mut self, pod: &Value) {
        if let Some(("ReplicaSet", rs, _)) = controller_of(pod) {
            let ns = meta_str(pod, "namespace").to_string();
            let node = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let rs = rs.to_string();
            self.reconcile_rs(&ns, &rs, &node);
        }
    }

    /// The `pods/eviction` subresource.
    pub fn evict(&mut self, ns: &str, name: &str, body: &Value) -> Result<Value, ApiError> {
        let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        if !self.emu.accepts_eviction_version(api_version) {
            return Err(ApiError::bad_request(format!(
                "no kind \"Eviction\" is registered for version \"{api_version}\" in scheme \"k8s.io/kubernetes/pkg/api/legacyscheme/scheme.go:30\""
            )));
        }
        if let Some(k) = body.get("kind").and_then(Value::as_str) {
            if k != "Eviction" {
                return Err(ApiError::bad_request(format!(
                    "expected kind Eviction, got {k:?}"
                )));
            }
        }
        let body_name = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(
                "name in URL does not match name in Eviction object",
            ));
        }
        let grace = body
            .pointer("/deleteOptions/gracePeriodSeconds")
            .and_then(Value::as_i64);
        let pod = self.get_or_404(Kind::Pod, ns, name)?.clone();
        let success =
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
        if meta(&pod).is_some_and(|m| m.contains_key("deletionTimestamp")) {
            return Ok(success);
        }
        let phase = pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let ignore_pdb = self.emu.minor >= 13 && matches!(phase, "Succeeded" | "Failed" | "Pending");
        if !ignore_pdb {
            let pdbs = self.pdbs_for_pod(&pod);
            if pdbs.len() > 1 {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
            if let Some(pdb) = pdbs.first() {
                let h = self.pdb_health(pdb).map_err(ApiError::internal)?;
                let healthy = Store::pod_healthy(&pod);
                let blocked = if healthy || self.emu.minor < 26 {
                    h.disruptions_allowed <= 0
                } else {
                    h.current_healthy < h.desired_healthy
                };
                if blocked {
                    let mut e = ApiError::too_many_requests(
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        None,
                    );
                    let cause = if self.emu.minor >= 16 {
                        json!({"reason": "DisruptionBudget", "message": format!(
                            "The disruption budget {} needs {} healthy pods and has {} currently",
                            meta_str(pdb, "name"), h.desired_healthy, h.current_healthy)})
                    } else {
                        json!({"reason": "DisruptionBudget", "message": format!(
                            "The disruption budget {} is still being processed by the server.", meta_str(pdb, "name"))})
                    };
                    e.details = Some(json!({"causes": [cause]}));
                    if self.emu.minor < 16 {
                        e.details = Some(json!({}));
                    }
                    return Err(e);
                }
            }
        }
        self.delete_pod(ns, name, grace, "eviction")?;
        Ok(success)
    }

    // ----- generic writes ------------------------------------------------------------------

    fn check_namespace(&self, kind: Kind, ns: &str) -> Result<(), ApiError> {
        if kind.namespaced() && self.get(Kind::Namespace, "", ns).is_none() {
            return Err(ApiError::not_found("namespaces", "", ns));
        }
        Ok(())
    }

    /// POST: creates an object.
    pub fn create(&mut self, kind: Kind, ns: &str, mut body: Value) -> Result<Value, ApiError> {
        self.check_namespace(kind, ns)?;
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let mut name = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            if let Some(g) = body.pointer("/metadata/generateName").and_then(Value::as_str) {
                name = format!("{g}{}", self.rng.suffix(5));
            }
        }
        if name.is_empty() {
            return Err(ApiError::invalid(
                kind.kind(),
                kind.group(),
                "",
                "metadata.name",
                "FieldValueRequired",
                "Required value: name or generateName is required",
            ));
        }
        if !valid_name(&name) {
            return Err(ApiError::invalid(kind.kind(), kind.group(), &name, "metadata.name", "FieldValueInvalid",
                &format!("Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")));
        }
        let body_ns = body
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind.namespaced() && !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if self.get(kind, ns, &name).is_some() {
            return Err(ApiError::already_exists(kind.resource(), kind.group(), &name));
        }
        if kind == Kind::Lease {
            validate_lease_spec(&name, &body)?;
        }
        let labels = body.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
        let fresh = self.new_meta(if kind.namespaced() { ns } else { "" }, &name, labels);
        if let Some(o) = body.as_object_mut() {
            o.remove("kind");
            o.remove("apiVersion");
            let m = o.entry("metadata").or_insert(json!({}));
            if let (Some(m), Some(f)) = (m.as_object_mut(), fresh.as_object()) {
                m.remove("resourceVersion");
                for (k, v) in f {
                    m.insert(k.clone(), v.clone());
                }
                m.insert("generation".into(), json!(1));
            }
        }
        match kind {
            Kind::Pod => {
                let node = body
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .map(String::from);
                let node = node.or_else(|| self.pick_node(""));
                if let Some(n) = &node {
                    set_path(&mut body, &["spec", "nodeName"], json!(n));
                }
                self.set_pod_pending(&mut body, node.is_some());
                Ok(self.launch_pod(body, false))
            }
            Kind::Node => {
                let stored = self.commit(Kind::Node, body);
                let index = self.nodes_rt.len();
                let schedulable = Store::node_schedulable(&stored);
                self.nodes_rt.insert(
                    name.clone(),
                    NodeRuntime {
                        schedulable,
                        mode: KubeletMode::External,
                        last_heartbeat: Instant::now(),
                        index,
                        next_ip: 0,
                    },
                );
                self.after_node_write(&name);
                self.reconcile_daemonsets_on(&name);
                Ok(stored)
            }
            Kind::Namespace => {
                set_path(&mut body, &["status"], json!({"phase": "Active"}));
                set_path(&mut body, &["spec"], json!({"finalizers": ["kubernetes"]}));
                Ok(self.commit(kind, body))
            }
            Kind::ReplicaSet => {
                let stored = self.commit(kind, body);
                self.reconcile_rs(ns, &name, "");
                Ok(stored)
            }
            _ => Ok(self.commit(kind, body)),
        }
    }

    fn reconcile_daemonsets_on(&mut self, node: &str) {
        let dss: Vec<Value> = self
            .map(Kind::DaemonSet)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let Some(node_obj) = self.get(Kind::Node, "", node).cloned() else {
            return;
        };
        for ds in dss {
            let uid = meta_str(&ds, "uid");
            let ns = meta_str(&ds, "namespace").to_string();
            let ds_name = meta_str(&ds, "name").to_string();
            let has = self.by_node.get(node).is_some_and(|set| {
                set.iter().any(|k| {
                    self.map(Kind::Pod)
                        .and_then(|m| m.get(k))
                        .and_then(controller_of)
                        .is_some_and(|(_, _, u)| u == uid)
                })
            });
            let selector_ok = ds
                .pointer("/spec/template/spec/nodeSelector")
                .and_then(Value::as_object)
                .is_none_or(|sel| {
                    sel.iter()
                        .all(|(k, v)| labels_of(&node_obj).and_then(|l| l.get(k)) == Some(v))
                });
            if !has && selector_ok {
                let template = ds.pointer("/spec/template").cloned().unwrap_or(json!({}));
                let owner = self.owner_ref(Kind::DaemonSet, &ds);
                let pod_name = self.unique_pod_name(&ns, &ds_name);
                let pod = self.pod_from_template(&ns, &pod_name, &template, Some(owner), Some(node));
                self.launch_pod(pod, false);
            }
        }
    }

    /// PUT (main resource or `status` subresource).
    pub fn update(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        body: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let old = self.get_or_404(kind, ns, name)?.clone();
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let body_name = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(rv) = body.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
            if !rv.is_empty() && rv != meta_str(&old, "resourceVersion") {
                return Err(ApiError::conflict(kind.resource(), kind.group(), name));
            }
        }
        self.write_back(kind, ns, name, old, body, status_only)
    }

    /// PATCH (main resource or `status` subresource).
    pub fn patch(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        pk: PatchKind,
        patch_body: &Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let old = self.get_or_404(kind, ns, name)?.clone();
        if pk != PatchKind::Json && !patch_body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        if let Some(rv) = patch_body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            if rv != meta_str(&old, "resourceVersion") {
                return Err(ApiError::conflict(kind.resource(), kind.group(), name));
            }
        }
        let mut new = old.clone();
        patch::apply(pk, &mut new, patch_body).map_err(|e| {
            ApiError::invalid(kind.kind(), kind.group(), name, "patch", "FieldValueInvalid", &e)
        })?;
        self.write_back(kind, ns, name, old, new, status_only)
    }

    fn write_back(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        old: Value,
        mut new: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        if let Some(o) = new.as_object_mut() {
            o.remove("kind");
            o.remove("apiVersion");
        }
        if status_only {
            let mut merged = old.clone();
            set_path(
                &mut merged,
                &["status"],
                new.get("status").cloned().unwrap_or(json!({})),
            );
            new = merged;
        } else if matches!(
            kind,
            Kind::Node | Kind::Pod | Kind::DaemonSet | Kind::ReplicaSet | Kind::Pdb | Kind::Namespace
        ) {
            // The main resource ignores status changes.
            match old.get("status") {
                Some(s) => set_path(&mut new, &["status"], s.clone()),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        // Server-owned metadata.
        let spec_changed = old.get("spec") != new.get("spec");
        if let (Some(nm), Some(om)) = (new.get_mut("metadata").and_then(Value::as_object_mut), meta(&old)) {
            for k in [
                "uid",
                "creationTimestamp",
                "namespace",
                "name",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "ownerReferences",
            ] {
                if let Some(v) = om.get(k) {
                    if k != "ownerReferences" || !nm.contains_key(k) {
                        nm.insert(k.to_string(), v.clone());
                    }
                } else if k != "ownerReferences" {
                    nm.remove(k);
                }
            }
            let gen = om.get("generation").and_then(Value::as_i64).unwrap_or(1);
            nm.insert(
                "generation".into(),
                json!(if spec_changed { gen + 1 } else { gen }),
            );
        } else {
            return Err(ApiError::bad_request("metadata is required"));
        }
        if kind == Kind::ConfigMap {
            if let Some(data) = new.get("data").and_then(Value::as_object) {
                if let Some((k, _)) = data.iter().find(|(_, v)| !v.is_string()) {
                    return Err(ApiError::bad_request(format!(
                        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal non-string into Go struct field ConfigMap.data of type string (key {k:?})"
                    )));
                }
            }
        }
        if kind == Kind::Lease {
            validate_lease_spec(name, &new)?;
        }
        if kind == Kind::Node {
            if let Some(u) = new.pointer("/spec/unschedulable") {
                if !u.is_boolean() {
                    return Err(ApiError::bad_request("json: cannot unmarshal into Go struct field NodeSpec.spec.unschedulable of type bool"));
                }
            }
        }
        if kind == Kind::Pod && old.pointer("/spec/nodeName") != new.pointer("/spec/nodeName") && !status_only
        {
            return Err(ApiError::invalid("Pod", "", name, "spec", "FieldValueForbidden",
                "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds` or `spec.tolerations` (only additions to existing tolerations)"));
        }
        if new == old {
            return Ok(old);
        }
        let stored = self.commit(kind, new);
        match kind {
            Kind::Node => {
                if status_only {
                    let _ = self.heartbeat(name, KubeletMode::External);
                }
                self.after_node_write(name);
            }
            Kind::ReplicaSet => self.reconcile_rs(ns, name, ""),
            _ => {}
        }
        Ok(stored)
    }

    /// DELETE (immediate for all but pods), if the preconditions hold.
    pub fn delete(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        grace: Option<i64>,
        pre: &Preconditions,
    ) -> Result<Deleted, ApiError> {
        let obj = self.get_or_404(kind, ns, name)?.clone();
        let failed = |what: &str, want: &str, have: &str| {
            let mut e = ApiError::conflict(kind.resource(), kind.group(), name);
            e.message = format!(
                "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}",
                crate::error::qualified(kind.resource(), kind.group()));
            e
        };
        if let Some(uid) = &pre.uid {
            if uid != meta_str(&obj, "uid") {
                return Err(failed("UID", uid, meta_str(&obj, "uid")));
            }
        }
        // preconditions.resourceVersion exists since 1.14 (kubernetes/kubernetes#74040); older
        // servers dropped the unknown field and deleted unconditionally.
        if let Some(rv) = pre.resource_version.as_ref().filter(|_| self.emu.minor >= 14) {
            if rv != meta_str(&obj, "resourceVersion") {
                return Err(failed("ResourceVersion", rv, meta_str(&obj, "resourceVersion")));
            }
        }
        if kind == Kind::Pod {
            return self.delete_pod(ns, name, grace, "delete");
        }
        let key = (ns.to_string(), name.to_string());
        let old = self.remove(kind, &key).unwrap_or(obj);
        if kind == Kind::Node {
            self.nodes_rt.remove(name);
            let pods: Vec<Key> = self
                .by_node
                .get(name)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            for k in pods {
                if let Some(p) = self.remove(Kind::Pod, &k) {
                    self.replace_owned(&p);
                }
            }
        }
        Ok(Deleted::Gone(old))
    }

    // ----- the control plane (for the stand-in kubeadm) ------------------------------------

    /// Sets the version of the control-plane static pods on a node (their image tags); when the
    /// node is the primary control-plane node, `/version` reports it from then on.
    pub fn set_control_plane_version(&mut self, node: &str, version: &str) -> Result<Vec<String>, ApiError> {
        self.get_or_404(Kind::Node, "", node)?;
        if !version.starts_with('v') || version.split('.').count() != 3 {
            return Err(ApiError::bad_request(format!(
                "version {version:?} must look like v1.10.13"
            )));
        }
        let mut changed = Vec::new();
        for comp in ["kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
            let pod_name = format!("{comp}-{node}");
            let Some(mut pod) = self.get(Kind::Pod, "kube-system", &pod_name).cloned() else {
                continue;
            };
            let image = self.image(comp, version);
            if let Some(cs) = pod.pointer_mut("/spec/containers").and_then(Value::as_array_mut) {
                for c in cs {
                    if let Some(o) = c.as_object_mut() {
                        o.insert("image".into(), json!(image));
                    }
                }
            }
            if let Some(cs) = pod
                .pointer_mut("/status/containerStatuses")
                .and_then(Value::as_array_mut)
            {
                for c in cs {
                    if let Some(o) = c.as_object_mut() {
                        o.insert("image".into(), json!(image));
                        o.insert("imageID".into(), json!(format!("docker-pullable://{image}")));
                    }
                }
            }
            if let Some(m) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
                m.insert("uid".into(), json!(self.rng.uid()));
            }
            self.commit(Kind::Pod, pod);
            changed.push(pod_name);
        }
        if self.primary_master.as_deref() == Some(node) {
            self.served_version = version.to_string();
        }
        Ok(changed)
    }

    fn image(&self, component: &str, version: &str) -> String {
        let m = self.emu.minor;
        if m <= 11 {
            format!("gcr.io/google_containers/{component}-amd64:{version}")
        } else if m <= 24 {
            format!("k8s.gcr.io/{component}:{version}")
        } else {
            format!("registry.k8s.io/{component}:{version}")
        }
    }

    /// Sets a pod's readiness by hand (a probe starting or stopping to pass).
    pub fn set_pod_ready(&mut self, ns: &str, name: &str, ready: bool) -> Result<Value, ApiError> {
        let mut pod = self.get_or_404(Kind::Pod, ns, name)?.clone();
        let s = if ready { "True" } else { "False" };
        set_condition(&mut pod, "Ready", s, None, None);
        if self.emu.minor >= 11 {
            set_condition(&mut pod, "ContainersReady", s, None, None);
        }
        Ok(self.commit(Kind::Pod, pod))
    }

    // ----- seeding -------------------------------------------------------------------------

    fn seed(&mut self, c: &Cluster) -> Result<(), String> {
        let mut namespaces: BTreeSet<String> = ["default", "kube-system", "kube-public"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if self.emu.minor >= 14 {
            namespaces.insert("kube-node-lease".into());
        }
        for ns in c
            .replica_sets
            .iter()
            .map(|r| &r.namespace)
            .chain(c.daemon_sets.iter().map(|d| &d.namespace))
            .chain(c.pods.iter().map(|p| &p.namespace))
            .chain(c.pdbs.iter().map(|p| &p.namespace))
            .chain(c.config_maps.keys())
        {
            namespaces.insert(ns.clone());
        }
        for ns in &namespaces {
            self.create(Kind::Namespace, "", json!({"metadata": {"name": ns}}))
                .map_err(|e| e.message)?;
        }
        let mut seen = BTreeSet::new();
        for (i, n) in c.nodes.iter().enumerate() {
            if !seen.insert(n.name.clone()) {
                return Err(format!("node {:?} is listed twice", n.name));
            }
            let node = self.node_object(i, n);
            let node = self.commit(Kind::Node, node);
            let schedulable = Store::node_schedulable(&node);
            self.nodes_rt.insert(
                n.name.clone(),
                NodeRuntime {
                    schedulable,
                    mode: n.kubelet,
                    last_heartbeat: Instant::now(),
                    index: i,
                    next_ip: 0,
                },
            );
            if self.primary_master.is_none() && n.roles.contains(&Role::ControlPlane) {
                self.primary_master = Some(n.name.clone());
            }
        }
        if c.static_pods {
            let version = self.served_version.clone();
            for n in c.nodes.iter().filter(|n| n.roles.contains(&Role::ControlPlane)) {
                for comp in [
                    "etcd",
                    "kube-apiserver",
                    "kube-controller-manager",
                    "kube-scheduler",
                ] {
                    let image = if comp == "etcd" {
                        if self.emu.minor <= 11 {
                            "gcr.io/google_containers/etcd-amd64:3.1.11".to_string()
                        } else if self.emu.minor <= 24 {
                            "k8s.gcr.io/etcd:3.4.13-0".to_string()
                        } else {
                            "registry.k8s.io/etcd:3.5.12-0".to_string()
                        }
                    } else {
                        self.image(comp, &version)
                    };
                    let hash = format!(
                        "{:032x}",
                        (self.rng.next_u64() as u128) << 64 | self.rng.next_u64() as u128
                    );
                    let template = json!({
                        "metadata": {
                            "labels": {"component": comp, "tier": "control-plane"},
                            "annotations": {"kubernetes.io/config.hash": hash, "kubernetes.io/config.mirror": hash,
                                "kubernetes.io/config.seen": now_str(), "kubernetes.io/config.source": "file"}
                        },
                        "spec": {"containers": [{"name": comp, "image": image, "command": [comp]}],
                            "hostNetwork": true, "priorityClassName": "system-node-critical",
                            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                            "tolerations": [{"operator": "Exists", "effect": "NoExecute"}]}
                    });
                    let owner = (self.emu.minor >= 19).then(|| {
                        let node = self.get(Kind::Node, "", &n.name).cloned().unwrap_or(Value::Null);
                        json!({"apiVersion": "v1", "kind": "Node", "name": n.name, "uid": meta_str(&node, "uid"), "controller": true})
                    });
                    let mut pod = self.pod_from_template(
                        "kube-system",
                        &format!("{comp}-{}", n.name),
                        &template,
                        owner,
                        Some(&n.name),
                    );
                    if let Some(m) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("generateName");
                    }
                    self.launch_pod(pod, true);
                }
            }
        }
        for ds in &c.daemon_sets {
            let labels = if ds.labels.is_empty() {
                json!({"app": ds.name})
            } else {
                json!(ds.labels)
            };
            let mut spec = self.pod_spec(
                ds.image.as_deref().unwrap_or("busybox:1.28"),
                ds.termination_grace_period_seconds,
                ds.empty_dir,
            );
            if let Some(o) = spec.as_object_mut() {
                o.insert("tolerations".into(), json!([
                    {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
                    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
                    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]));
                if ds.roles.len() == 1 {
                    let key = if ds.roles.contains(&Role::ControlPlane) {
                        self.role_label()
                    } else {
                        "node-role.kubernetes.io/worker"
                    };
                    o.insert("nodeSelector".into(), json!({key: ""}));
                }
            }
            let m = self.new_meta(&ds.namespace, &ds.name, labels.clone());
            let obj = json!({"metadata": m, "spec": {"selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": spec},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}},
                "status": {"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0}});
            self.commit(Kind::DaemonSet, obj);
            for n in &c.nodes {
                if ds.roles.is_empty() || n.roles.iter().any(|r| ds.roles.contains(r)) {
                    self.reconcile_ds_seed(&ds.namespace, &ds.name, &n.name);
                }
            }
        }
        let workers: Vec<String> = c
            .nodes
            .iter()
            .filter(|n| !n.roles.contains(&Role::ControlPlane) && !n.unschedulable && n.ready)
            .map(|n| n.name.clone())
            .collect();
        let mut rr = 0usize;
        for rs in &c.replica_sets {
            let labels = if rs.labels.is_empty() {
                json!({"app": rs.name})
            } else {
                json!(rs.labels)
            };
            let spec = self.pod_spec(
                rs.image.as_deref().unwrap_or("nginx:1.13"),
                rs.termination_grace_period_seconds,
                rs.empty_dir,
            );
            let m = self.new_meta(&rs.namespace, &rs.name, labels.clone());
            let obj = json!({"metadata": m, "spec": {"replicas": rs.replicas, "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": spec}},
                "status": {"replicas": rs.replicas, "fullyLabeledReplicas": rs.replicas, "readyReplicas": rs.replicas,
                    "availableReplicas": rs.replicas, "observedGeneration": 1}});
            let obj = self.commit(Kind::ReplicaSet, obj);
            let template = obj.pointer("/spec/template").cloned().unwrap_or(json!({}));
            let owner = self.owner_ref(Kind::ReplicaSet, &obj);
            for i in 0..rs.replicas as usize {
                let node = if rs.nodes.is_empty() {
                    let n = workers.get(rr % workers.len().max(1)).cloned();
                    rr += 1;
                    n
                } else {
                    rs.nodes.get(i % rs.nodes.len()).cloned()
                };
                if let Some(n) = &node {
                    if self.get(Kind::Node, "", n).is_none() {
                        return Err(format!("replicaSet {:?} names unknown node {n:?}", rs.name));
                    }
                }
                let name = self.unique_pod_name(&rs.namespace, &rs.name);
                let pod = self.pod_from_template(
                    &rs.namespace,
                    &name,
                    &template,
                    Some(owner.clone()),
                    node.as_deref(),
                );
                self.launch_pod(pod, true);
            }
        }
        for p in &c.pods {
            if self.get(Kind::Node, "", &p.node).is_none() {
                return Err(format!("pod {:?} names unknown node {:?}", p.name, p.node));
            }
            let mut template = json!({"metadata": {"labels": p.labels},
                "spec": self.pod_spec("busybox:1.28", p.termination_grace_period_seconds, p.empty_dir)});
            if p.mirror {
                let hash = format!("{:016x}", self.rng.next_u64());
                set_path(
                    &mut template,
                    &["metadata", "annotations"],
                    json!({"kubernetes.io/config.mirror": hash,
                    "kubernetes.io/config.hash": hash, "kubernetes.io/config.source": "file"}),
                );
            }
            let pod = self.pod_from_template(&p.namespace, &p.name, &template, None, Some(&p.node));
            if let Some(m) = pod.get("metadata").and_then(Value::as_object) {
                if m.contains_key("generateName") {
                    continue;
                }
            }
            self.launch_pod(pod, true);
        }
        for p in &c.pdbs {
            let m = self.new_meta(&p.namespace, &p.name, json!({}));
            let mut spec = json!({"selector": {"matchLabels": p.selector}});
            if let Some(o) = spec.as_object_mut() {
                if let Some(v) = &p.min_available {
                    o.insert("minAvailable".into(), json!(v));
                }
                if let Some(v) = &p.max_unavailable {
                    o.insert("maxUnavailable".into(), json!(v));
                }
            }
            let mut obj = json!({"metadata": m, "spec": spec});
            set_path(&mut obj, &["metadata", "generation"], json!(1));
            self.commit(Kind::Pdb, obj);
        }
        let kc = self.kubeadm_config(c);
        let m = self.new_meta("kube-system", "kubeadm-config", json!({}));
        self.commit(Kind::ConfigMap, json!({"metadata": m, "data": kc}));
        for (ns, cms) in &c.config_maps {
            for (name, data) in cms {
                let m = self.new_meta(ns, name, json!({}));
                self.commit(Kind::ConfigMap, json!({"metadata": m, "data": data}));
            }
        }
        Ok(())
    }

    fn reconcile_ds_seed(&mut self, ns: &str, ds: &str, node: &str) {
        let Some(obj) = self.get(Kind::DaemonSet, ns, ds).cloned() else {
            return;
        };
        let template = obj.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let owner = self.owner_ref(Kind::DaemonSet, &obj);
        let name = self.unique_pod_name(ns, ds);
        let pod = self.pod_from_template(ns, &name, &template, Some(owner), Some(node));
        self.launch_pod(pod, true);
    }

    fn role_label(&self) -> &'static str {
        if self.emu.minor >= 24 {
            "node-role.kubernetes.io/control-plane"
        } else {
            "node-role.kubernetes.io/master"
        }
    }

    fn pod_spec(&self, image: &str, grace: i64, empty_dir: bool) -> Value {
        let mut c = json!({"name": "main", "image": image, "imagePullPolicy": "IfNotPresent", "resources": {},
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"});
        let mut spec = json!({"containers": [], "restartPolicy": "Always", "terminationGracePeriodSeconds": grace,
            "dnsPolicy": "ClusterFirst", "serviceAccountName": "default", "serviceAccount": "default",
            "securityContext": {}, "schedulerName": "default-scheduler"});
        if empty_dir {
            set_path(
                &mut c,
                &["volumeMounts"],
                json!([{"name": "scratch", "mountPath": "/scratch"}]),
            );
            set_path(
                &mut spec,
                &["volumes"],
                json!([{"name": "scratch", "emptyDir": {}}]),
            );
        }
        set_path(&mut spec, &["containers"], json!([c]));
        spec
    }

    fn node_object(&mut self, i: usize, n: &crate::cluster::NodeSeed) -> Value {
        let emu = self.emu;
        let kubelet = n
            .kubelet_version
            .clone()
            .unwrap_or_else(|| self.served_version.clone());
        let address = n
            .address
            .clone()
            .unwrap_or_else(|| format!("10.88.{}.{}", i / 250, i % 250 + 10));
        let mut labels = json!({"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
            "kubernetes.io/hostname": n.name});
        let control = n.roles.contains(&Role::ControlPlane);
        if let Some(l) = labels.as_object_mut() {
            if emu.minor >= 14 {
                l.insert("kubernetes.io/arch".into(), json!("amd64"));
                l.insert("kubernetes.io/os".into(), json!("linux"));
            }
            if control {
                if emu.minor < 24 {
                    l.insert("node-role.kubernetes.io/master".into(), json!(""));
                }
                if emu.minor >= 20 {
                    l.insert("node-role.kubernetes.io/control-plane".into(), json!(""));
                }
                if emu.minor >= 20 {
                    l.insert(
                        "node.kubernetes.io/exclude-from-external-load-balancers".into(),
                        json!(""),
                    );
                }
            }
            for (k, v) in &n.labels {
                l.insert(k.clone(), json!(v));
            }
        }
        let mut m = self.new_meta("", &n.name, labels);
        set_path(
            &mut m,
            &["annotations"],
            json!({"node.alpha.kubernetes.io/ttl": "0",
            "volumes.kubernetes.io/controller-managed-attach-detach": "true"}),
        );
        let mut spec = json!({"podCIDR": format!("10.{}.{}.0/24", 244 + i / 256, i % 256)});
        if let Some(o) = spec.as_object_mut() {
            if emu.minor < 16 {
                o.insert("externalID".into(), json!(n.name));
            }
            if emu.minor >= 16 {
                o.insert(
                    "podCIDRs".into(),
                    json!([format!("10.{}.{}.0/24", 244 + i / 256, i % 256)]),
                );
            }
            if control {
                o.insert(
                    "taints".into(),
                    json!([{"key": self.role_label(), "effect": "NoSchedule"}]),
                );
            }
            if n.unschedulable {
                o.insert("unschedulable".into(), json!(true));
            }
        }
        let now = now_str();
        let cond = |t: &str, s: &str, r: &str, msg: &str| {
            json!({"type": t, "status": s, "lastHeartbeatTime": now,
            "lastTransitionTime": now, "reason": r, "message": msg})
        };
        let mut conds = Vec::new();
        if emu.minor <= 11 {
            conds.push(cond(
                "OutOfDisk",
                "False",
                "KubeletHasSufficientDisk",
                "kubelet has sufficient disk space available",
            ));
        }
        conds.push(cond(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ));
        conds.push(cond(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ));
        if emu.minor >= 14 {
            conds.push(cond(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ));
        }
        conds.push(if n.ready {
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status")
        } else {
            cond("Ready", "False", "KubeletNotReady", "container runtime is down")
        });
        let (os_image, runtime, kernel) = if emu.minor <= 15 {
            ("Debian GNU/Linux 9 (stretch)", "docker://17.3.2", "4.9.0-8-amd64")
        } else {
            (
                "Debian GNU/Linux 12 (bookworm)",
                "containerd://1.7.13",
                "6.1.0-18-amd64",
            )
        };
        let machine = format!("{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64());
        let boot = self.rng.uid();
        let status = json!({
            "capacity": {"cpu": "2", "memory": "4030940Ki", "pods": "110", "ephemeral-storage": "20509308Ki", "hugepages-2Mi": "0"},
            "allocatable": {"cpu": "2", "memory": "3928540Ki", "pods": "110", "ephemeral-storage": "18901337672", "hugepages-2Mi": "0"},
            "conditions": conds,
            "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": n.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": machine, "systemUUID": machine.to_uppercase(), "bootID": boot,
                "kernelVersion": kernel, "osImage": os_image, "containerRuntimeVersion": runtime,
                "kubeletVersion": kubelet, "kubeProxyVersion": kubelet, "operatingSystem": "linux", "architecture": "amd64"},
        });
        json!({"metadata": m, "spec": spec, "status": status})
    }

    fn kubeadm_config(&self, c: &Cluster) -> Value {
        let version = &self.served_version;
        let primary = self.primary_master.clone().unwrap_or_default();
        let addr = self.node_ip(&primary);
        let m = self.emu.minor;
        let endpoint = &self.cluster_endpoint;
        let _ = c;
        if m <= 10 {
            let yaml = format!(
                "api:
  advertiseAddress: {addr}
  bindPort: 6443
  controlPlaneEndpoint: {endpoint}
authorizationModes:
- Node
- RBAC
certificatesDir: /etc/kubernetes/pki
cloudProvider: \"\"
etcd:
  caFile: \"\"
  certFile: \"\"
  dataDir: /var/lib/etcd
  endpoints: null
  image: \"\"
  keyFile: \"\"
imageRepository: gcr.io/google_containers
kubeProxy:
  config:
    bindAddress: 0.0.0.0
    clientConnection:
      kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
    clusterCIDR: 10.244.0.0/16
    mode: \"\"
kubeletConfiguration: {{}}
kubernetesVersion: {version}
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
nodeName: {primary}
privilegedPods: false
token: \"\"
tokenTTL: 24h0m0s
unifiedControlPlaneImage: \"\"
"
            );
            return json!({"MasterConfiguration": yaml});
        }
        if m == 11 {
            let yaml = format!(
                "api:
  advertiseAddress: {addr}
  bindPort: 6443
  controlPlaneEndpoint: {endpoint}
apiVersion: kubeadm.k8s.io/v1alpha2
certificatesDir: /etc/kubernetes/pki
clusterName: kubernetes
etcd:
  local:
    dataDir: /var/lib/etcd
    image: \"\"
imageRepository: k8s.gcr.io
kind: MasterConfiguration
kubernetesVersion: {version}
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
nodeRegistration:
  criSocket: /var/run/dockershim.sock
  name: {primary}
  taints:
  - effect: NoSchedule
    key: node-role.kubernetes.io/master
unifiedControlPlaneImage: \"\"
"
            );
            return json!({"MasterConfiguration": yaml});
        }
        let api = match m {
            12 => "v1alpha3",
            13..=14 => "v1beta1",
            15..=21 => "v1beta2",
            22..=30 => "v1beta3",
            _ => "v1beta4",
        };
        let repo = if m <= 24 { "k8s.gcr.io" } else { "registry.k8s.io" };
        let api_server = if m >= 31 {
            "apiServer:\n  extraArgs:\n  - name: authorization-mode\n    value: Node,RBAC\n".to_string()
        } else {
            "apiServer:\n  extraArgs:\n    authorization-mode: Node,RBAC\n  timeoutForControlPlane: 4m0s\n"
                .to_string()
        };
        let dns = if m <= 21 {
            "dns:\n  type: CoreDNS\n"
        } else {
            "dns: {}\n"
        };
        let cfg = format!(
            "{api_server}apiVersion: kubeadm.k8s.io/{api}
certificatesDir: /etc/kubernetes/pki
clusterName: kubernetes
controlPlaneEndpoint: {endpoint}
controllerManager: {{}}
{dns}etcd:
  local:
    dataDir: /var/lib/etcd
imageRepository: {repo}
kind: ClusterConfiguration
kubernetesVersion: {version}
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
scheduler: {{}}
"
        );
        if m < 22 {
            let mut status = "apiEndpoints:\n".to_string();
            if let Some(nodes) = self.map(Kind::Node) {
                for (k, n) in nodes {
                    if labels_of(n).is_some_and(|l| {
                        l.contains_key("node-role.kubernetes.io/master")
                            || l.contains_key("node-role.kubernetes.io/control-plane")
                    }) {
                        status.push_str(&format!(
                            "  {}:\n    advertiseAddress: {}\n    bindPort: 6443\n",
                            k.1,
                            self.node_ip(&k.1)
                        ));
                    }
                }
            }
            status.push_str(&format!(
                "apiVersion: kubeadm.k8s.io/{api}\nkind: ClusterStatus\n"
            ));
            return json!({"ClusterConfiguration": cfg, "ClusterStatus": status});
        }
        json!({"ClusterConfiguration": cfg})
    }
}

static EMPTY: BTreeSet<Key> = BTreeSet::new();

/// ValidateLeaseSpec (kubernetes/pkg/apis/coordination/validation/validation.go): a positive
/// duration and a non-negative transition count, when given.
fn validate_lease_spec(name: &str, lease: &Value) -> Result<(), ApiError> {
    let rules = [
        ("leaseDurationSeconds", 1, "must be greater than 0"),
        ("leaseTransitions", 0, "must be greater than or equal to 0"),
    ];
    for (field, min, msg) in rules {
        let Some(v) = lease.pointer(&format!("/spec/{field}")).filter(|v| !v.is_null()) else {
            continue;
        };
        let Some(n) = v.as_i64().filter(|n| i32::try_from(*n).is_ok()) else {
            return Err(ApiError::bad_request(format!(
                "Lease in version \"v1\" cannot be handled as a Lease: json: cannot unmarshal {v} into Go struct field LeaseSpec.spec.{field} of type int32"
            )));
        };
        if n < min {
            let mut e = ApiError::invalid(
                "Lease",
                "coordination.k8s.io",
                name,
                &format!("spec.{field}"),
                "FieldValueInvalid",
                &format!("Invalid value: {n}: {msg}"),
            );
            e.message = format!(
                "Lease.coordination.k8s.io \"{name}\" is invalid: spec.{field}: Invalid value: {n}: {msg}"
            );
            return Err(e);
        }
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

fn encode_continue(last: Option<&Value>) -> String {
    use base64::Engine;
    let (ns, name) = last
        .map(|v| (meta_str(v, "namespace"), meta_str(v, "name")))
        .unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{ns}\u{0}{name}"))
}

fn decode_continue(c: &str) -> Result<Key, ApiError> {
    use base64::Engine;
    let bad = || ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    let s = String::from_utf8(raw).map_err(|_| bad())?;
    let (ns, name) = s.split_once('\u{0}').ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}
