//! kubectl drain's pod filters, in order, and what each decides.

use kube_kit::k8s_openapi::api::core::v1::Pod;
use kube_kit::k8s_openapi::jiff::Timestamp;
use kube_kit::pods;
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
    let opens = t.matches('(').count();
    if opens != t.matches(')').count() {
        return Err(format!("{sel:?} is not a label selector: unbalanced parentheses"));
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
        if pods::is_mirror(&pod) {
            out.skipped.push(skip(
                "mirror pod of a static pod (the kubelet runs it from a manifest)".into(),
            ));
            continue;
        }
        if let Some(ds) = pods::daemonset_owner(&pod) {
            let what = format!("managed by DaemonSet {} ({})", ds.name, ds.api_version);
            if p.ignore_daemonsets {
                out.skipped.push(skip(what));
            } else {
                out.blocking.push(skip(format!(
                    "{what}: the DaemonSet would put it right back; set ignore_daemonsets"
                )));
            }
            continue;
        }
        if pods::is_finished(&pod) {
            out.remove.push(pod);
            continue;
        }
        let dirs = pods::empty_dirs(&pod);
        if !dirs.is_empty() {
            if !p.delete_emptydir_data {
                out.blocking.push(skip(format!(
                    "uses emptyDir volume(s) {} whose data would be lost; set delete_emptydir_data",
                    dirs.join(", ")
                )));
                continue;
            }
            local.push(key.clone());
        }
        if pods::controller(&pod).is_none() {
            if !p.force {
                out.blocking.push(skip(
                    "not managed by a controller (ReplicaSet, Job, StatefulSet...): nothing would recreate it; \
                     set force"
                        .into(),
                ));
                continue;
            }
            forced.push(key.clone());
        }
        out.remove.push(pod);
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
