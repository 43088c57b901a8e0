//! PodDisruptionBudgets and evictions: the status the disruption controller would compute, the
//! `pods/eviction` subresource that honours it, and the record of deletions that broke a budget.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::cluster::IntOrPercent;
use crate::error::ApiError;
use crate::selector::LabelSelector;
use crate::util::now_str;

use super::object::{condition_true, controller_of, is_terminating, labels_of, meta, meta_str};
use super::{Kind, Store};

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

impl Store {
    pub(super) fn pods_selected(&self, ns: &str, sel: &LabelSelector) -> Vec<&Value> {
        let Some(pods) = self.map(Kind::Pod) else {
            return Vec::new();
        };
        if sel.is_empty() {
            if !self.emu.pdb_empty_selector_selects_all() {
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
        !is_terminating(pod)
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
            (None, None) => {
                let desired = if self.emu.pdb_defaults_min_available_one() {
                    1
                } else {
                    0
                };
                (pods.len() as i64, desired)
            }
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
            if self.emu.pdb_status_conditions() {
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
                            self.emu.pdb_empty_selector_selects_all()
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
    pub(super) fn record_disruption(&mut self, pod: &Value, via: &str) {
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
        if is_terminating(&pod) {
            return Ok(success);
        }
        let phase = pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let ignore_pdb = self.emu.eviction_ignores_pdb_of_idle_pods()
            && matches!(phase, "Succeeded" | "Failed" | "Pending");
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
                let blocked = if healthy || !self.emu.eviction_if_healthy_budget() {
                    h.disruptions_allowed <= 0
                } else {
                    h.current_healthy < h.desired_healthy
                };
                if blocked {
                    let mut e = ApiError::too_many_requests(
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        None,
                    );
                    e.details = Some(if self.emu.eviction_budget_cause() {
                        json!({"causes": [{"reason": "DisruptionBudget", "message": format!(
                            "The disruption budget {} needs {} healthy pods and has {} currently",
                            meta_str(pdb, "name"), h.desired_healthy, h.current_healthy)}]})
                    } else {
                        json!({})
                    });
                    return Err(e);
                }
            }
        }
        self.delete_pod(ns, name, grace, "eviction")?;
        Ok(success)
    }
}
