//! Nodes: the runtime state the server keeps per node (heartbeats, addresses), the node lifecycle
//! controller (NotReady/Unknown after missed heartbeats, the unreachable taints, the pods' readiness
//! following their node's) and picking a node for a new pod.

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::{json, Value};

use super::object::{condition_status, condition_true, internal_ip, meta_str, set_condition, set_path};
use super::{Kind, Store};
use crate::cluster::KubeletMode;
use crate::error::ApiError;
use crate::util::now_str;

/// What the server keeps per node besides the Node object: heartbeats and the pod network.
#[derive(Debug, Clone)]
pub(super) struct NodeRuntime {
    /// Cached `node_schedulable` of the stored node (kept in step by `commit`).
    pub(super) schedulable: bool,
    mode: KubeletMode,
    last_heartbeat: Instant,
    index: usize,
    next_ip: u32,
}

impl Store {
    /// Starts keeping the runtime state of a stored node (`index`: its place in the cluster, which
    /// gives its pod network).
    pub(super) fn register_node(&mut self, node: &Value, mode: KubeletMode, index: usize) {
        self.nodes_rt.insert(
            meta_str(node, "name").to_string(),
            NodeRuntime {
                schedulable: Store::node_schedulable(node),
                mode,
                last_heartbeat: Instant::now(),
                index,
                next_ip: 0,
            },
        );
    }

    pub(super) fn node_schedulable(node: &Value) -> bool {
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
    pub(super) fn pick_node(&self, exclude: &str) -> Option<String> {
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

    pub(super) fn monitor_nodes(&mut self, now: Instant) {
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
        if self.emu.taints_unreachable_nodes() {
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
        for k in self.pods_on(&name) {
            if let Some(mut pod) = self.map(Kind::Pod).and_then(|m| m.get(&k)).cloned() {
                if condition_true(&pod, "Ready") {
                    self.set_pod_readiness(&mut pod, false);
                    self.commit(Kind::Pod, pod);
                }
            }
        }
    }

    /// After a node write: a Ready node drops the unreachable taint, its pods turn ready again,
    /// pending pods get scheduled.
    pub(super) fn after_node_write(&mut self, name: &str) {
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
            for k in self.pods_on(name) {
                if let Some(mut pod) = self.map(Kind::Pod).and_then(|m| m.get(&k)).cloned() {
                    let running = pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running");
                    // A control plane's static pods stay down while its runtime's containers are.
                    if self.static_pod_down(name, &k.1) {
                        continue;
                    }
                    if running && !condition_true(&pod, "Ready") {
                        self.set_pod_readiness(&mut pod, true);
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

    pub(super) fn node_ip(&self, node: &str) -> String {
        self.get(Kind::Node, "", node)
            .and_then(internal_ip)
            .unwrap_or_default()
            .to_string()
    }

    pub(super) fn alloc_pod_ip(&mut self, node: &str) -> String {
        match self.nodes_rt.get_mut(node) {
            Some(rt) => {
                rt.next_ip = rt.next_ip % 250 + 1;
                let i = rt.index;
                format!("10.{}.{}.{}", 244 + i / 256, i % 256, rt.next_ip + 1)
            }
            None => String::new(),
        }
    }
}
