//! `state: drain`: list and sort, report blockers, cordon, evict concurrently, wait.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use kube_kit::k8s_openapi::api::core::v1::Pod;
use kube_kit::kube::api::{Api, ListParams};
use kube_kit::pods::{self, Removal};
use kube_kit::Backoff;
use module_kit::{Failure, Outcome};
use serde_json::{json, Value};

use crate::filter::{self, Sorted, Verdict};
use crate::{round, CordonState, Session};

/// How often the node's pods are listed while waiting for them to go.
const POLL: Duration = Duration::from_millis(200);

async fn list_pods(s: &Session<'_>, selector: Option<&str>) -> Result<Vec<Pod>, Failure> {
    let pods: Api<Pod> = Api::all(s.api.client.clone());
    let mut lp = ListParams::default().fields(&format!("spec.nodeName={}", s.p.name));
    if let Some(sel) = selector {
        lp = lp.labels(sel);
    }
    kube_kit::retry(s.deadline, || pods.list(&lp))
        .await
        .map(|l| l.items)
        .map_err(|e| kube_kit::api_failure(format!("cannot list the pods of node {}", s.p.name), &e))
}

fn verdicts(v: &[Verdict]) -> Vec<Value> {
    v.iter().map(Verdict::json).collect()
}

fn blocked(s: &Session<'_>, sorted: &Sorted, cordoned_note: &str) -> Failure {
    let list: Vec<String> = sorted
        .blocking
        .iter()
        .map(|v| format!("{}: {}", v.pod, v.reason))
        .collect();
    Failure::new(format!(
        "cannot drain node {}: {} pod(s) would block it, so no pod was evicted{cordoned_note}. {}",
        s.p.name,
        sorted.blocking.len(),
        list.join("; ")
    ))
    .with("blocking", verdicts(&sorted.blocking))
    .with("skipped_pods", verdicts(&sorted.skipped))
    .with("evicted", Vec::<String>::new())
    .with("deleted", Vec::<String>::new())
    .with("still_pending", Vec::<String>::new())
}

pub async fn drain(s: &Session<'_>, before: CordonState) -> Result<Outcome, Failure> {
    let name = &s.p.name;
    let selector = s.p.pod_selector.as_deref();
    let sorted = filter::sort(list_pods(s, selector).await?, s.p);
    let cordon_values = |f: Failure, now: bool| {
        f.with("cordoned", now)
            .with("was_cordoned", before.cordoned)
            .with("admin_cordon", before.admin())
    };
    if !sorted.blocking.is_empty() {
        let note = if before.cordoned {
            ""
        } else {
            " and the node was not cordoned"
        };
        return Err(cordon_values(blocked(s, &sorted, note), before.cordoned));
    }
    let keys: Vec<String> = sorted.remove.iter().map(pods::key).collect();
    let diff_before = json!({"unschedulable": before.cordoned, "pods": keys.clone()});
    let diff_after = json!({"unschedulable": true, "pods": Vec::<String>::new()});

    if s.check {
        let changed = !before.cordoned || !keys.is_empty();
        let cordon = if before.cordoned { "" } else { "cordon it and " };
        let msg = if changed {
            format!("would {cordon}evict {} pod(s) from node {name}", keys.len())
        } else {
            format!("node {name} is cordoned and has no pods to evict")
        };
        let mut o = Outcome {
            changed,
            msg,
            warnings: sorted.warnings.clone(),
            ..Outcome::default()
        };
        o = o
            .with("would_evict", &keys)
            .with("evicted", Vec::<String>::new())
            .with("deleted", Vec::<String>::new())
            .with("skipped_pods", verdicts(&sorted.skipped))
            .with("still_pending", Vec::<String>::new())
            .with("cordoned", true)
            .with("was_cordoned", before.cordoned)
            .with("admin_cordon", before.admin())
            .with_diff(diff_before, diff_after);
        return Ok(o);
    }

    let cordoned_now = !before.cordoned;
    if cordoned_now {
        s.set_cordon().await.map_err(|f| cordon_values(f, false))?;
    }
    match evict_and_wait(s, sorted, cordoned_now).await {
        Ok(done) => {
            let changed = cordoned_now || !done.removed.is_empty();
            let mut msg = if done.removed.is_empty() {
                format!("node {name} is cordoned and has no pods to evict")
            } else {
                format!(
                    "drained node {name}: {} pod(s) {} in {:.1}s",
                    done.removed.len(),
                    match &done.how {
                        Removal::Evict(gv) => format!("evicted ({gv})"),
                        Removal::Delete => "deleted".to_string(),
                    },
                    s.start.elapsed().as_secs_f64()
                )
            };
            if !done.skipped.is_empty() {
                msg.push_str(&format!(", {} skipped", done.skipped.len()));
            }
            if cordoned_now && done.removed.is_empty() {
                msg = format!("cordoned node {name}; it has no pods to evict");
            }
            let (evicted, deleted) = match done.how {
                Removal::Evict(_) => (done.removed, Vec::new()),
                Removal::Delete => (Vec::new(), done.removed),
            };
            let mut o = Outcome {
                changed,
                msg,
                warnings: done.warnings,
                ..Outcome::default()
            };
            o = o
                .with("evicted", evicted)
                .with("deleted", deleted)
                .with("skipped_pods", verdicts(&done.skipped))
                .with("still_pending", Vec::<String>::new())
                .with("eviction_api", done.how.name())
                .with("cordoned", true)
                .with("was_cordoned", before.cordoned)
                .with("admin_cordon", before.admin())
                .with_diff(diff_before, diff_after);
            Ok(o)
        }
        Err(mut f) => {
            let mut now_cordoned = true;
            if s.p.uncordon_on_failure && (cordoned_now || before.ours) {
                match s.clear_cordon().await {
                    Ok(()) => {
                        f.msg
                            .push_str(" The node was uncordoned again (uncordon_on_failure).");
                        now_cordoned = false;
                    }
                    Err(e) => f = f.warn(format!("uncordon_on_failure: {}", e.msg)),
                }
            }
            Err(cordon_values(f, now_cordoned))
        }
    }
}

struct Done {
    how: Removal,
    removed: Vec<String>,
    skipped: Vec<Verdict>,
    warnings: Vec<String>,
}

/// One pod's eviction (or deletion), retried while a PodDisruptionBudget or the server says
/// "later". `Ok(Some(uid))`: wait for that UID to go; `Ok(None)`: already gone.
async fn remove_one(s: &Session<'_>, how: &Removal, pod: &Pod) -> Result<Option<String>, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let key = format!("{ns}/{pod_name}");
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let grace = s.p.grace();
    let started = Instant::now();
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
    let mut refusals = 0u32;
    loop {
        let res = match how {
            Removal::Evict(gv) => pods::evict(&s.api.client, gv, &ns, &pod_name, grace).await,
            Removal::Delete => pods::delete(&s.api.client, &ns, &pod_name, grace).await,
        };
        match res {
            Ok(()) => return Ok(Some(uid)),
            Err(e) if kube_kit::status(&e) == Some(404) => return Ok(None),
            Err(e) if kube_kit::transient(&e) => {
                if kube_kit::status(&e) == Some(429) {
                    refusals += 1;
                }
                let delay = backoff.step();
                if Instant::now() + delay >= s.deadline {
                    let why = if kube_kit::status(&e) == Some(429) {
                        format!(
                            "eviction still refused after {refusals} tries over {:.0}s (a PodDisruptionBudget \
                             allows no disruption now)",
                            started.elapsed().as_secs_f64()
                        )
                    } else {
                        "gave up at the timeout".to_string()
                    };
                    return Err(format!("{key}: {why}: {}", kube_kit::describe(&e)));
                }
                kube_kit::tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(format!("{key}: {}", kube_kit::describe(&e))),
        }
    }
}

async fn evict_and_wait(s: &Session<'_>, first: Sorted, cordoned_now: bool) -> Result<Done, Failure> {
    let name = &s.p.name;
    // A pod may have been scheduled between the first look and the cordon: look again.
    let sorted = if cordoned_now {
        let again = filter::sort(list_pods(s, s.p.pod_selector.as_deref()).await?, s.p);
        if !again.blocking.is_empty() {
            return Err(blocked(s, &again, " (the node was cordoned)"));
        }
        again
    } else {
        first
    };
    let how = if s.p.disable_eviction {
        Removal::Delete
    } else {
        kube_kit::retry(s.deadline, || pods::eviction_api(&s.api.client))
            .await
            .map_err(|e| kube_kit::api_failure("cannot discover the eviction API (GET /api/v1)", &e))?
    };
    let concurrency = usize::try_from(s.p.concurrency).unwrap_or(1).max(1);
    let results: Vec<(String, Result<Option<String>, String>)> = stream::iter(sorted.remove.iter())
        .map(|pod| {
            let how = &how;
            async move { (pods::key(pod), remove_one(s, how, pod).await) }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut removed = Vec::new();
    let mut waiting: BTreeMap<String, String> = BTreeMap::new();
    let mut errors = Vec::new();
    for (key, r) in results {
        match r {
            Ok(Some(uid)) => {
                removed.push(key.clone());
                waiting.insert(key, uid);
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    removed.sort();
    if !errors.is_empty() {
        errors.sort();
        return Err(Failure::new(format!(
            "draining node {name}: {} pod(s) could not be evicted: {}",
            errors.len(),
            errors.join("; ")
        ))
        .with("evicted", &removed)
        .with("still_pending", waiting.keys().collect::<Vec<_>>())
        .with("skipped_pods", verdicts(&sorted.skipped))
        .with("eviction_api", how.name()));
    }
    wait_gone(s, &mut waiting).await.map_err(|f| {
        f.with("evicted", &removed)
            .with("skipped_pods", verdicts(&sorted.skipped))
            .with("eviction_api", how.name())
    })?;
    Ok(Done {
        how,
        removed,
        skipped: sorted.skipped,
        warnings: sorted.warnings,
    })
}

/// Waits until each pod is gone or replaced by one with a new UID.
async fn wait_gone(s: &Session<'_>, waiting: &mut BTreeMap<String, String>) -> Result<(), Failure> {
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let mut last_error: Option<String>;
    let pods_api: Api<Pod> = Api::all(s.api.client.clone());
    let lp = ListParams::default().fields(&format!("spec.nodeName={}", s.p.name));
    while !waiting.is_empty() {
        match pods_api.list(&lp).await {
            Ok(list) => {
                last_error = None;
                let now = kube_kit::k8s_openapi::jiff::Timestamp::now();
                let present: BTreeMap<String, &Pod> = list.items.iter().map(|p| (pods::key(p), p)).collect();
                last.clear();
                waiting.retain(|key, uid| match present.get(key) {
                    Some(p) if p.metadata.uid.as_deref() == Some(uid.as_str()) => {
                        let skip = s.p.skip_wait_for_delete_timeout;
                        let overdue = skip > 0
                            && p.metadata
                                .deletion_timestamp
                                .as_ref()
                                .is_some_and(|t| now.as_second() - t.0.as_second() > skip as i64);
                        if !overdue {
                            let phase = p
                                .status
                                .as_ref()
                                .and_then(|st| st.phase.clone())
                                .unwrap_or_default();
                            let terminating = if p.metadata.deletion_timestamp.is_some() {
                                ", terminating"
                            } else {
                                ""
                            };
                            last.insert(key.clone(), format!("{phase}{terminating}"));
                        }
                        !overdue
                    }
                    _ => false,
                });
            }
            Err(e) if kube_kit::transient(&e) => last_error = Some(kube_kit::describe(&e)),
            Err(e) => {
                return Err(
                    kube_kit::api_failure(format!("cannot list the pods of node {}", s.p.name), &e)
                        .with("still_pending", waiting.keys().collect::<Vec<_>>()),
                )
            }
        }
        if waiting.is_empty() {
            break;
        }
        if Instant::now() + POLL >= s.deadline {
            let pending: Vec<String> = waiting
                .keys()
                .map(|k| match last.get(k) {
                    Some(state) => format!("{k} ({state})"),
                    None => k.clone(),
                })
                .collect();
            let extra = last_error
                .map(|e| format!("; the last look failed: {e}"))
                .unwrap_or_default();
            return Err(Failure::new(format!(
                "draining node {}: timed out after {}s waiting for {} pod(s) to terminate: {}{extra}",
                s.p.name,
                round(s.start.elapsed()),
                waiting.len(),
                pending.join(", ")
            ))
            .with("still_pending", waiting.keys().collect::<Vec<_>>()));
        }
        kube_kit::tokio::time::sleep(POLL).await;
    }
    Ok(())
}
