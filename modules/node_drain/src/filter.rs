//! kubectl drain's pod filters (shared with cluster_survey in kube-kit), applied to a node's pods.

use kube_kit::k8s_openapi::api::core::v1::Pod;
use kube_kit::k8s_openapi::jiff::Timestamp;
use kube_kit::pods::{self, Decision, DrainFilters};
use serde_json::{json, Value};

use crate::Params;

/// One pod and why it is not removed.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub pod: String,
    pub reason: String,
}

impl Verdict {
    pub fn json(&self) -> Value {
        json!({"pod": self.pod, "reason": self.reason})
    }
}

/// The node's pods, sorted by what a drain does with them.
#[derive(Debug, Default)]
pub struct Sorted {
    pub remove: Vec<Pod>,
    pub skipped: Vec<Verdict>,
    pub blocking: Vec<Verdict>,
    pub warnings: Vec<String>,
}

pub fn check_selector(sel: &str) -> Result<(), String> {
    let t = sel.trim();
    if t.is_empty() {
        return Err("must not be empty (leave it out to drain every pod)".into());
    }
    if t.contains(char::is_control) {
        return Err(format!(
            "{} is not a label selector: it contains a control character",
            module_kit::shown(sel)
        ));
    }
    let opens = t.matches('(').count();
    if opens != t.matches(')').count() {
        return Err(format!(
            "{} is not a label selector: unbalanced parentheses",
            module_kit::shown(sel)
        ));
    }
    Ok(())
}

/// Seconds since the pod was deleted, if it was.
fn deleted_for(pod: &Pod, now: Timestamp) -> Option<i64> {
    let when = pod.metadata.deletion_timestamp.as_ref()?;
    Some(now.as_second() - when.0.as_second())
}

/// Applies the filters in kubectl's order.
pub fn sort(pods_on_node: Vec<Pod>, p: &Params) -> Sorted {
    let now = Timestamp::now();
    let mut out = Sorted::default();
    let mut forced = Vec::new();
    let mut local = Vec::new();
    let filters = DrainFilters {
        ignore_daemonsets: p.ignore_daemonsets,
        delete_emptydir_data: p.delete_emptydir_data,
        force: p.force,
    };
    for pod in pods_on_node {
        let key = pods::key(&pod);
        let skip = |reason: String| Verdict {
            pod: key.clone(),
            reason,
        };
        if p.skip_wait_for_delete_timeout > 0 {
            if let Some(age) = deleted_for(&pod, now) {
                if age > p.skip_wait_for_delete_timeout as i64 {
                    out.skipped.push(skip(format!(
                        "deleted {age}s ago, more than skip_wait_for_delete_timeout ({}s)",
                        p.skip_wait_for_delete_timeout
                    )));
                    continue;
                }
            }
        }
        match pods::drain_decision(&pod, &filters) {
            Decision::Skip(reason) => out.skipped.push(skip(reason)),
            Decision::Block(reason) => out.blocking.push(skip(reason)),
            Decision::Remove {
                local_data,
                forced: bare,
            } => {
                if local_data {
                    local.push(key.clone());
                }
                if bare {
                    forced.push(key.clone());
                }
                out.remove.push(pod);
            }
        }
    }
    if !local.is_empty() {
        out.warnings
            .push(format!("deleting pods with emptyDir data: {}", local.join(", ")));
    }
    if !forced.is_empty() {
        out.warnings.push(format!(
            "deleting pods not managed by a controller (they will not come back): {}",
            forced.join(", ")
        ));
    }
    out
}
