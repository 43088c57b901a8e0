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
use crate::{round, CordonState, NodePatch, Session};

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
        // A server that ignores the field selector answers with every pod: keep this node's.
        .map(|l| {
            l.items
                .into_iter()
                .filter(|p| pods::on_node(p, &s.p.name))
                .collect()
        })
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
        s.patch_node(&NodePatch::cordon())
            .await
            .map_err(|f| cordon_values(f, false))?;
    }
    match evict_and_wait(s, sorted, cordoned_now).await {
        Ok(done) => {
            let removed = done.evicted.len() + done.deleted.len();
            let changed = cordoned_now || removed > 0;
            let mut msg = if removed == 0 {
                format!("node {name} is cordoned and has no pods to evict")
            } else {
                let mut how = Vec::new();
                if !done.evicted.is_empty() {
                    how.push(format!(
                        "{} pod(s) evicted ({})",
                        done.evicted.len(),
                        done.how.name()
                    ));
                }
                if !done.deleted.is_empty() {
                    how.push(format!("{} pod(s) deleted", done.deleted.len()));
                }
                format!(
                    "drained node {name}: {} in {:.1}s",
                    how.join(", "),
                    s.start.elapsed().as_secs_f64()
                )
            };
            if !done.skipped.is_empty() {
                msg.push_str(&format!(", {} skipped", done.skipped.len()));
            }
            if cordoned_now && removed == 0 {
                msg = format!("cordoned node {name}; it has no pods to evict");
            }
            let mut o = Outcome {
                changed,
                msg,
                warnings: done.warnings,
                ..Outcome::default()
            };
            o = o
                .with("evicted", done.evicted)
                .with("deleted", done.deleted)
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
                match s.patch_node(&NodePatch::uncordon()).await {
                    Ok(()) => {
                        f.msg
                            .push_str(" The node was uncordoned again (uncordon_on_failure).");
                        now_cordoned = false;
                    }
                    Err(e) => f = f.warn(format!("uncordon_on_failure: {}", e.msg)),
                }
            }
            // Failed, but maybe not before cordoning, evicting or uncordoning: say so.
            let removed_any = ["evicted", "deleted"].iter().any(|k| {
                f.values
                    .get(*k)
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
            });
            let changed = removed_any || now_cordoned != before.cordoned;
            Err(cordon_values(f, now_cordoned).with("changed", changed))
        }
    }
}

struct Done {
    how: Removal,
    evicted: Vec<String>,
    deleted: Vec<String>,
    skipped: Vec<Verdict>,
    warnings: Vec<String>,
}

/// What became of one pod.
enum Removed {
    /// Gone before its eviction, or replaced by a pod with a new UID under its name.
    Gone,
    /// The eviction was accepted: wait for this UID to go.
    Evicted(String),
    /// Deleted: wait for this UID to go. `instead`: why it was deleted although evictions were asked
    /// for (a warning).
    Deleted { uid: String, instead: Option<String> },
}

/// The PodDisruptionBudgets that cover a pod, for a message: ` by PodDisruptionBudget ns/x (...)`.
async fn budgets_note(s: &Session<'_>, gv: &str, pod: &Pod) -> String {
    match pods::budgets_for(&s.api.client, gv, pod).await {
        Ok(b) if b.is_empty() => " (no PodDisruptionBudget covers the pod: the server is throttling)".into(),
        Ok(b) => format!(
            " by {}",
            b.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        ),
        Err(e) => format!(
            " (its PodDisruptionBudgets cannot be read: {})",
            kube_kit::describe(&e)
        ),
    }
}

/// One pod's eviction (or deletion), retried while a PodDisruptionBudget or the server says
/// "later".
async fn remove_one(s: &Session<'_>, how: &Removal, pod: &Pod) -> Result<Removed, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let key = format!("{ns}/{pod_name}");
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let only = Some(uid.as_str()).filter(|u| !u.is_empty());
    let grace = s.p.grace();
    let started = Instant::now();
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
    let mut refusals = 0u32;
    loop {
        let res = match how {
            Removal::Evict(gv) => pods::evict(&s.api.client, gv, &ns, &pod_name, grace).await,
            Removal::Delete => pods::delete(&s.api.client, &ns, &pod_name, grace, only).await,
        };
        match res {
            Ok(()) => {
                if let Ok(mut w) = s.waiting.lock() {
                    w.refused.remove(&key);
                    w.retried.remove(&key);
                }
                return Ok(match how {
                    Removal::Evict(_) => Removed::Evicted(uid),
                    Removal::Delete => Removed::Deleted { uid, instead: None },
                });
            }
            Err(e) if kube_kit::status(&e) == Some(404) => {
                return match how {
                    Removal::Delete => Ok(Removed::Gone),
                    Removal::Evict(gv) => eviction_not_found(s, gv, &key, &uid).await,
                };
            }
            // The UID precondition failed: a new pod under the same name, ours is gone.
            Err(e) if *how == Removal::Delete && only.is_some() && kube_kit::status(&e) == Some(409) => {
                return Ok(Removed::Gone)
            }
            Err(e) if kube_kit::transient(&e) => {
                if kube_kit::status(&e) == Some(429) {
                    refusals += 1;
                    if let Removal::Evict(gv) = how {
                        if refusals == 1 && module_kit::progress::enabled() {
                            // Which budget refuses it: asked once per pod, for kup's progress text.
                            let budgets = pods::budgets_for(&s.api.client, gv, pod).await.ok();
                            if let Ok(mut w) = s.waiting.lock() {
                                w.refused.insert(key.clone(), budgets);
                            }
                        }
                    }
                } else if let Ok(mut w) = s.waiting.lock() {
                    // Not a budget: the server's own error, said as it is while it is retried.
                    w.retried.insert(key.clone(), kube_kit::describe(&e));
                }
                s.say();
                // Keep trying until the deadline: the last try is at the deadline, not a backoff
                // step before it.
                let now = Instant::now();
                if now >= s.deadline {
                    let why = match how {
                        Removal::Evict(gv) if kube_kit::status(&e) == Some(429) => format!(
                            "eviction still refused after {refusals} tries over {:.0}s{}",
                            started.elapsed().as_secs_f64(),
                            budgets_note(s, gv, pod).await
                        ),
                        _ => "gave up at the timeout".to_string(),
                    };
                    return Err(format!("{key}: {why}: {}", kube_kit::describe(&e)));
                }
                kube_kit::tokio::time::sleep(backoff.step().min(s.deadline - now)).await;
            }
            Err(e) => return Err(format!("{key}: {}", kube_kit::describe(&e))),
        }
    }
}

/// The eviction answered 404. That means "no such pod" — or a server that does not serve the
/// eviction subresource at all. Read the pod back: gone or replaced (new UID) is gone; the same pod
/// is deleted instead, as kubectl drain does without an eviction subresource, unless a
/// PodDisruptionBudget covers it (a deletion would bypass the budget): then this pod fails.
async fn eviction_not_found(s: &Session<'_>, gv: &str, key: &str, uid: &str) -> Result<Removed, String> {
    let (ns, name) = key.split_once('/').unwrap_or(("default", key));
    let api: Api<Pod> = Api::namespaced(s.api.client.clone(), ns);
    let now = kube_kit::retry(s.deadline, || api.get_opt(name))
        .await
        .map_err(|e| {
            format!(
                "{key}: its eviction answered 404 Not Found, and reading the pod back failed: {}",
                kube_kit::describe(&e)
            )
        })?;
    let pod = match now {
        Some(p) if p.metadata.uid.as_deref() == Some(uid) => p,
        _ => return Ok(Removed::Gone),
    };
    let unserved = format!(
        "{key}: its eviction ({gv}) answered 404 Not Found although the pod exists: the server does not \
         serve the eviction subresource"
    );
    if pod.metadata.deletion_timestamp.is_none() {
        let budgets = pods::budgets_for(&s.api.client, gv, &pod).await.map_err(|e| {
            format!(
                "{unserved}; it was not deleted instead, because the PodDisruptionBudgets that may cover it \
                 cannot be read: {}",
                kube_kit::describe(&e)
            )
        })?;
        if !budgets.is_empty() {
            let list: Vec<String> = budgets.iter().map(ToString::to_string).collect();
            return Err(format!(
                "{unserved}; it was not deleted instead, because {} covers it and a deletion would bypass \
                 the budget (disable_eviction=true deletes pods without evictions)",
                list.join(", ")
            ));
        }
    }
    let only = Some(uid).filter(|u| !u.is_empty());
    match kube_kit::retry(s.deadline, || {
        pods::delete(&s.api.client, ns, name, s.p.grace(), only)
    })
    .await
    {
        Ok(()) => Ok(Removed::Deleted {
            uid: uid.to_string(),
            instead: Some(format!(
                "{unserved}; deleted it instead (no PodDisruptionBudget covers it)"
            )),
        }),
        Err(e) if matches!(kube_kit::status(&e), Some(404 | 409)) => Ok(Removed::Gone),
        Err(e) => Err(format!(
            "{unserved}; deleting it instead failed: {}",
            kube_kit::describe(&e)
        )),
    }
}

/// Which of `pods` (same UID) are on the node now: one look, for a failure's `still_pending`.
async fn still_on_node(s: &Session<'_>, pods: &[Pod]) -> Result<Vec<String>, String> {
    let api: Api<Pod> = Api::all(s.api.client.clone());
    let lp = ListParams::default().fields(&format!("spec.nodeName={}", s.p.name));
    // The drain's deadline may have passed already: give this look a few seconds of its own.
    let until = s.deadline.max(Instant::now() + Duration::from_secs(3));
    let list = kube_kit::retry(until, || api.list(&lp))
        .await
        .map_err(|e| kube_kit::describe(&e))?;
    let present: BTreeMap<String, Option<String>> = list
        .items
        .iter()
        .filter(|p| pods::on_node(p, &s.p.name))
        .map(|p| (pods::key(p), p.metadata.uid.clone()))
        .collect();
    let mut still: Vec<String> = pods
        .iter()
        .filter(|p| {
            present
                .get(&pods::key(p))
                .is_some_and(|uid| *uid == p.metadata.uid)
        })
        .map(pods::key)
        .collect();
    still.sort();
    Ok(still)
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
    if let Ok(mut w) = s.waiting.lock() {
        w.pending = sorted.remove.iter().map(pods::key).collect();
    }
    s.say();
    let concurrency = usize::try_from(s.p.concurrency).unwrap_or(1).max(1);
    let results: Vec<(String, Result<Removed, String>)> = stream::iter(sorted.remove.iter())
        .map(|pod| {
            let how = &how;
            async move { (pods::key(pod), remove_one(s, how, pod).await) }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut evicted = Vec::new();
    let mut deleted = Vec::new();
    let mut warnings = sorted.warnings.clone();
    let mut waiting: BTreeMap<String, String> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut gone = Vec::new();
    for (key, r) in results {
        match r {
            Ok(Removed::Evicted(uid)) => {
                evicted.push(key.clone());
                waiting.insert(key, uid);
            }
            Ok(Removed::Deleted { uid, instead }) => {
                deleted.push(key.clone());
                waiting.insert(key, uid);
                warnings.extend(instead);
            }
            Ok(Removed::Gone) => gone.push(key),
            Err(e) => errors.push(e),
        }
    }
    evicted.sort();
    deleted.sort();
    if !errors.is_empty() {
        errors.sort();
        // As kubectl drain does, let the accepted evictions finish first (until the deadline): the
        // report then says what the node is left with, not what was in flight. Whatever has not
        // gone by then is in `still_pending`, from a look at the node (not from what was asked).
        let _unsettled = wait_gone(s, &mut waiting).await;
        let (still, note) = match still_on_node(s, &sorted.remove).await {
            Ok(still) => (still, String::new()),
            Err(e) => {
                // Every pod not known to be gone may still be there.
                let mut unknown: Vec<String> = sorted
                    .remove
                    .iter()
                    .map(pods::key)
                    .filter(|k| !gone.contains(k))
                    .collect();
                unknown.sort();
                (unknown, format!(" (the pods left could not be listed: {e})"))
            }
        };
        let mut msg = format!(
            "draining node {name}: {} pod(s) could not be evicted: {}",
            errors.len(),
            errors.join("; ")
        );
        let mut sentence = |text: String| {
            if !msg.ends_with('.') {
                msg.push('.');
            }
            msg.push(' ');
            msg.push_str(&text);
        };
        if !evicted.is_empty() {
            sentence(format!("Evicted: {}", evicted.join(", ")));
        }
        if !deleted.is_empty() {
            sentence(format!("Deleted: {}", deleted.join(", ")));
        }
        let left = if still.is_empty() {
            "none".to_string()
        } else {
            still.join(", ")
        };
        sentence(format!("Still on the node: {left}{note}."));
        let mut f = Failure::new(msg)
            .with("evicted", &evicted)
            .with("deleted", &deleted)
            .with("still_pending", still)
            .with("skipped_pods", verdicts(&sorted.skipped))
            .with("eviction_api", how.name());
        f.warnings = warnings;
        return Err(f);
    }
    wait_gone(s, &mut waiting).await.map_err(|mut f| {
        f.warnings.extend(warnings.iter().cloned());
        f.with("evicted", &evicted)
            .with("deleted", &deleted)
            .with("skipped_pods", verdicts(&sorted.skipped))
            .with("eviction_api", how.name())
    })?;
    Ok(Done {
        how,
        evicted,
        deleted,
        skipped: sorted.skipped,
        warnings,
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
                let present: BTreeMap<String, &Pod> = list
                    .items
                    .iter()
                    .filter(|p| pods::on_node(p, &s.p.name))
                    .map(|p| (pods::key(p), p))
                    .collect();
                last.clear();
                let before: Vec<String> = waiting.keys().cloned().collect();
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
                // The pods gone since the last look; pods whose eviction failed stay said.
                if let Ok(mut w) = s.waiting.lock() {
                    for key in before.iter().filter(|k| !waiting.contains_key(*k)) {
                        w.pending.remove(key);
                    }
                }
                s.say();
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
        let now = Instant::now();
        if now >= s.deadline {
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
        kube_kit::tokio::time::sleep(POLL.min(s.deadline - now)).await;
    }
    Ok(())
}
