//! What a drain is waiting for, said while it waits (`module_kit::progress`, for kup): the pods
//! still on the node, the evictions a PodDisruptionBudget refuses (429 TooManyRequests) and by
//! which budget, as far as it is known.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Instant;

use kube_kit::pods::Budget;
use module_kit::progress::{self, Progress};

/// Pods named in a progress text; the others are counted.
const NAMED: usize = 3;

/// A drain's wait as it stands.
#[derive(Debug, Default)]
pub struct Waiting {
    /// Pods (`namespace/name`) not known to be gone.
    pub pending: BTreeSet<String>,
    /// Pods whose eviction was refused with 429, not accepted since: the budgets covering each
    /// (`None`: not known, the budgets could not be read).
    pub refused: BTreeMap<String, Option<Vec<Budget>>>,
    /// Pods whose eviction failed otherwise and is retried: the last error.
    pub retried: BTreeMap<String, String>,
}

impl Waiting {
    /// The text for node `node`.
    pub fn text(&self, node: &str) -> String {
        let pending: Vec<&str> = self.pending.iter().map(String::as_str).collect();
        let mut text = format!(
            "drain {node}: {} pod(s) still on the node: {}",
            pending.len(),
            named(&pending)
        );
        if pending.is_empty() {
            text = format!("drain {node}: no pod left to wait for");
        }
        // The refused pods, grouped by what covers them.
        let mut by_budget: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (pod, budgets) in &self.refused {
            let by = match budgets {
                Some(b) if b.is_empty() => {
                    " though no PodDisruptionBudget covers it (the server is throttling)".into()
                }
                Some(b) => format!(
                    " by {}",
                    b.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                ),
                None => " (its PodDisruptionBudgets could not be read)".into(),
            };
            by_budget.entry(by).or_default().push(pod);
        }
        for (by, pods) in by_budget {
            text.push_str(&format!(
                "; eviction of {} refused (429 TooManyRequests){by}",
                named(&pods)
            ));
        }
        let mut by_error: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (pod, error) in &self.retried {
            by_error.entry(error).or_default().push(pod);
        }
        for (error, pods) in by_error {
            text.push_str(&format!("; eviction of {} retried: {error}", named(&pods)));
        }
        text
    }
}

/// `a, b, c (+2 more)`.
fn named(items: &[&str]) -> String {
    let mut out = items.iter().take(NAMED).copied().collect::<Vec<_>>().join(", ");
    if items.len() > NAMED {
        out.push_str(&format!(" (+{} more)", items.len() - NAMED));
    }
    out
}

/// Says where the wait is (throttled by module-kit; nothing unless kup asked for progress).
pub fn report(waiting: &Mutex<Waiting>, node: &str, deadline: Instant) {
    if !progress::enabled() {
        return;
    }
    let Ok(waiting) = waiting.lock() else {
        return;
    };
    progress::report(&Progress::new(waiting.text(node)).until(deadline).node(node));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kube_kit::k8s_openapi::api::core::v1::Pod;

    fn pod(ns: &str, name: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": ns, "name": name, "uid": format!("uid-{name}"), "labels": {"app": "web"}},
            "spec": {"nodeName": "w1", "containers": [{"name": "c"}]}
        }))
        .unwrap()
    }

    fn budget(key: &str, allowed: i64) -> Budget {
        Budget {
            key: key.into(),
            disruptions_allowed: Some(allowed),
            current_healthy: Some(4),
            desired_healthy: Some(4),
        }
    }

    #[test]
    fn the_pods_left_and_the_budget_that_refuses_them() {
        let pods = [
            pod("default", "web-0"),
            pod("default", "web-1"),
            pod("kube-system", "dns-1"),
            pod("default", "db-0"),
            pod("default", "db-1"),
        ];
        let mut w = Waiting {
            pending: pods.iter().map(kube_kit::pods::key).collect(),
            ..Waiting::default()
        };
        assert_eq!(
            w.text("w1"),
            "drain w1: 5 pod(s) still on the node: default/db-0, default/db-1, default/web-0 (+2 more)"
        );
        w.refused
            .insert("default/web-0".into(), Some(vec![budget("default/web", 0)]));
        w.refused
            .insert("default/web-1".into(), Some(vec![budget("default/web", 0)]));
        w.refused.insert("default/db-0".into(), None);
        w.refused.insert("kube-system/dns-1".into(), Some(vec![]));
        assert_eq!(
            w.text("w1"),
            "drain w1: 5 pod(s) still on the node: default/db-0, default/db-1, default/web-0 (+2 more); \
             eviction of default/db-0 refused (429 TooManyRequests) (its PodDisruptionBudgets could not be \
             read); eviction of default/web-0, default/web-1 refused (429 TooManyRequests) by \
             PodDisruptionBudget default/web (allows 0 disruption(s): 4 healthy pod(s), 4 needed); eviction \
             of kube-system/dns-1 refused (429 TooManyRequests) though no PodDisruptionBudget covers it \
             (the server is throttling)"
        );
        // A server error retried says what it is.
        let mut w = Waiting {
            pending: ["default/web-0".to_string()].into(),
            ..Waiting::default()
        };
        w.retried.insert(
            "default/web-0".into(),
            "HTTP 500 InternalError: This pod has more than one PodDisruptionBudget".into(),
        );
        assert_eq!(
            w.text("w1"),
            "drain w1: 1 pod(s) still on the node: default/web-0; eviction of default/web-0 retried: HTTP 500 \
             InternalError: This pod has more than one PodDisruptionBudget"
        );
        let w = Waiting::default();
        assert_eq!(w.text("w1"), "drain w1: no pod left to wait for");
    }
}
