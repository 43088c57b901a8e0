//! The controllers: ReplicaSet (keeps its scale, replaces evicted or deleted pods elsewhere),
//! DaemonSet (one pod per matching node), the kubelet's mirror pods, and the scheduler's pass over
//! pending pods.

use serde_json::{json, Value};

use super::object::{
    condition_true, controller_of, is_mirror, is_terminating, key_of, labels_of, meta_str, node_of, set_path,
};
use super::{Key, Kind, Store};
use crate::selector::LabelSelector;
use crate::util::now_str;

impl Store {
    /// Creates and starts a pod of a ReplicaSet or DaemonSet from its template, on `node`
    /// (unscheduled when `None`); `immediate`: Running and Ready at once (the seed).
    pub(super) fn launch_owned_pod(
        &mut self,
        kind: Kind,
        owner: &Value,
        node: Option<&str>,
        immediate: bool,
    ) -> Value {
        let (ns, base) = key_of(owner);
        let template = owner.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let owner_ref = self.owner_ref(kind, owner);
        let name = self.unique_pod_name(&ns, &base);
        let pod = self.pod_from_template(&ns, &name, &template, Some(owner_ref), node);
        self.launch_pod(pod, immediate)
    }

    pub(super) fn owner_ref(&self, kind: Kind, obj: &Value) -> Value {
        let api_version = match kind {
            Kind::ReplicaSet | Kind::DaemonSet => {
                if self.emu.controllers_own_as_apps_v1() {
                    "apps/v1"
                } else {
                    "extensions/v1beta1"
                }
            }
            _ => "v1",
        };
        json!({"apiVersion": api_version, "kind": kind.kind(), "name": meta_str(obj, "name"),
            "uid": meta_str(obj, "uid"), "controller": true, "blockOwnerDeletion": true})
    }

    pub(super) fn unique_pod_name(&mut self, ns: &str, base: &str) -> String {
        loop {
            let name = format!("{base}-{}", self.rng.suffix(5));
            if self.get(Kind::Pod, ns, &name).is_none() {
                return name;
            }
        }
    }

    /// The ReplicaSet controller: creates or deletes pods until the active ones match the scale.
    pub(super) fn reconcile_rs(&mut self, ns: &str, name: &str, exclude_node: &str) {
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
            .filter(|p| !is_terminating(p))
            .map(key_of)
            .collect();
        let have = active.len() as i64;
        if have < want {
            for _ in have..want {
                let node = self.pick_node(exclude_node);
                self.launch_owned_pod(Kind::ReplicaSet, &rs, node.as_deref(), false);
            }
        } else if have > want {
            for key in active.iter().rev().take((have - want) as usize) {
                let _ = self.delete_pod(&key.0, &key.1, None, "replicaset-controller");
            }
        }
    }

    pub(super) fn schedule_pending(&mut self) {
        for key in self.pods_on("") {
            let Some(node) = self.pick_node("") else { return };
            let Some(mut pod) = self.map(Kind::Pod).and_then(|m| m.get(&key)).cloned() else {
                continue;
            };
            if is_terminating(&pod) {
                continue;
            }
            set_path(&mut pod, &["spec", "nodeName"], json!(node));
            self.set_pod_pending(&mut pod, true);
            self.launch_pod(pod, false);
        }
    }

    /// After a pod is gone: the DaemonSet controller and the kubelet (mirror pods) put theirs back.
    pub(super) fn after_pod_gone(&mut self, old: &Value) {
        let ns = meta_str(old, "namespace").to_string();
        let name = meta_str(old, "name").to_string();
        let node = node_of(old).to_string();
        let node_obj = self.get(Kind::Node, "", &node).cloned();
        if let Some(("DaemonSet", ds_name, uid)) = controller_of(old) {
            let (ds_name, uid) = (ds_name.to_string(), uid.to_string());
            if let (Some(ds), Some(_)) = (
                self.get(Kind::DaemonSet, &ns, &ds_name).cloned(),
                node_obj.as_ref(),
            ) {
                if meta_str(&ds, "uid") == uid {
                    self.launch_owned_pod(Kind::DaemonSet, &ds, Some(&node), false);
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

    pub(super) fn replace_owned(&mut self, pod: &Value) {
        if let Some(("ReplicaSet", rs, _)) = controller_of(pod) {
            let ns = meta_str(pod, "namespace").to_string();
            let node = node_of(pod).to_string();
            let rs = rs.to_string();
            self.reconcile_rs(&ns, &rs, &node);
        }
    }

    pub(super) fn reconcile_daemonsets_on(&mut self, node: &str) {
        let dss: Vec<Value> = self
            .map(Kind::DaemonSet)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let Some(node_obj) = self.get(Kind::Node, "", node).cloned() else {
            return;
        };
        for ds in dss {
            let uid = meta_str(&ds, "uid");
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
                self.launch_owned_pod(Kind::DaemonSet, &ds, Some(node), false);
            }
        }
    }
}
