//! Pods: their status as they go from Pending to Running (and Ready), readiness set by hand or
//! following the node, and deletion (graceful, with the grace period on simulated time, or at once).

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::object::{is_terminating, key_of, meta, meta_str, node_of, set_condition, set_path};
use super::timers::Action;
use super::{Deleted, Kind, Store};
use crate::error::ApiError;
use crate::util::{now_str, rfc3339};

impl Store {
    pub(super) fn set_pod_running(&mut self, pod: &mut Value) {
        let node = node_of(pod).to_string();
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
        if self.emu.pod_containers_ready_condition() {
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
        if self.emu.dual_stack_fields() {
            if let Some(o) = status.as_object_mut() {
                o.insert("podIPs".into(), json!([{"ip": pod_ip}]));
            }
        }
        set_path(pod, &["status"], status);
    }

    pub(super) fn set_pod_pending(&self, pod: &mut Value, scheduled: bool) {
        let now = now_str();
        let status = if scheduled {
            let host_ip = self.node_ip(node_of(pod));
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
    pub(super) fn pod_from_template(
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
    pub(super) fn launch_pod(&mut self, mut pod: Value, immediate: bool) -> Value {
        let scheduled = !node_of(&pod).is_empty();
        if scheduled && immediate {
            self.set_pod_running(&mut pod);
        }
        let stored = self.commit(Kind::Pod, pod);
        if scheduled && !immediate {
            let key = key_of(&stored);
            let uid = meta_str(&stored, "uid").to_string();
            let after = self.sim(self.cfg.pod_startup_seconds);
            self.schedule(after, Action::PodStarted { key, uid });
        }
        stored
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
        let terminating = is_terminating(&pod);
        let phase = pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let on_node = !node_of(&pod).is_empty();
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

    /// Sets a pod's readiness by hand (a probe starting or stopping to pass).
    pub fn set_pod_ready(&mut self, ns: &str, name: &str, ready: bool) -> Result<Value, ApiError> {
        let mut pod = self.get_or_404(Kind::Pod, ns, name)?.clone();
        self.set_pod_readiness(&mut pod, ready);
        Ok(self.commit(Kind::Pod, pod))
    }

    /// Sets the readiness conditions of a pod (`Ready`, and `ContainersReady` where it exists).
    pub(super) fn set_pod_readiness(&self, pod: &mut Value, ready: bool) {
        let s = if ready { "True" } else { "False" };
        set_condition(pod, "Ready", s, None, None);
        if self.emu.pod_containers_ready_condition() {
            set_condition(pod, "ContainersReady", s, None, None);
        }
    }
}
