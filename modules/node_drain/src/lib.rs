//! `node_drain`: the runbook's `kubectl cordon`, `kubectl drain --delete-local-data
//! --ignore-daemonsets` and `kubectl uncordon`, as one idempotent module.
//!
//! Drain follows kubectl's semantics: the node's pods go through filters in order (mirror pods are
//! skipped; DaemonSet pods, recognised in extensions/v1beta1, apps/v1beta2 and apps/v1, need
//! `ignore_daemonsets`; finished pods are always removable; emptyDir pods need
//! `delete_emptydir_data`; pods without a controller need `force`). Every blocking pod is reported
//! before anything is done — the node is not even cordoned then. Pods are evicted concurrently
//! through the eviction subresource whose group/version the server advertises (DELETE when it has
//! none, or with `disable_eviction`); a refusal by a PodDisruptionBudget (429) is retried with
//! backoff until `timeout`, then named with the budget. A 404 from an eviction is checked: the pod is
//! read back, and the same pod still there (a server that does not serve evictions) is deleted
//! instead unless a PodDisruptionBudget covers it. Then each pod must be gone, or replaced by one
//! with a new UID. Pods listed by `spec.nodeName` are checked on this side too (a server may ignore
//! the field selector). A failure says what was done before it (`changed`, `evicted`, `deleted`)
//! and which pods are still on the node (`still_pending`).
//!
//! A cordon made by this module carries the annotation [`CORDON_ANNOTATION`]; a node found cordoned
//! without it was cordoned by someone else, and `uncordon` leaves that cordon in place.
//!
//! Run by kup (`kup module --progress`), a drain says while it waits which pods are still on the
//! node and which PodDisruptionBudget refuses their eviction ([`progress`]).

mod drain;
mod filter;
mod progress;

use std::time::{Duration, Instant};

use kube_kit::k8s_openapi::api::core::v1::Node;
use kube_kit::kube::api::{Api, Patch, PatchParams};
use kube_kit::{Connection, NodeName};
use module_kit::plan::{decide, Decision};
use module_kit::{de, Applied, Change, Context, Failure, Module, Outcome, Plan};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Marks a cordon this module made (so an uncordon may lift it).
pub const CORDON_ANNOTATION: &str = "kubeadm-ha-upgrade/cordoned";

pub struct NodeDrain;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Cordon,
    Drain,
    Uncordon,
}

#[derive(Debug, Clone, Deserialize, Serialize, module_kit::Params)]
pub struct Params {
    pub name: NodeName,
    #[serde(default = "default_state")]
    pub state: State,
    #[serde(default, deserialize_with = "de::boolean")]
    pub ignore_daemonsets: bool,
    #[serde(default, alias = "delete_local_data", deserialize_with = "de::boolean")]
    pub delete_emptydir_data: bool,
    #[serde(default, deserialize_with = "de::boolean")]
    pub force: bool,
    /// Seconds each pod gets to terminate (default: its own terminationGracePeriodSeconds).
    #[serde(
        default,
        deserialize_with = "de::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    pub grace_period: Option<i64>,
    /// Seconds the whole drain may take; then it fails (1 s to 7 days).
    #[serde(default = "default_timeout", deserialize_with = "de::seconds")]
    pub timeout: u64,
    /// Only pods matching this label selector are drained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<String>,
    #[serde(default, deserialize_with = "de::boolean")]
    pub disable_eviction: bool,
    /// Pods deleted longer ago than this many seconds are skipped (0: never; at most 7 days).
    #[serde(default, deserialize_with = "de::seconds_or_zero")]
    pub skip_wait_for_delete_timeout: u64,
    /// Evictions in flight at once.
    #[serde(default = "default_concurrency", deserialize_with = "de::int")]
    pub concurrency: u32,
    #[serde(default, deserialize_with = "de::boolean")]
    pub uncordon_on_failure: bool,
    /// `kubeconfig`, `context`, `request_timeout`.
    #[serde(flatten)]
    pub connection: Connection,
}

fn default_state() -> State {
    State::Drain
}
fn default_timeout() -> u64 {
    600
}
fn default_concurrency() -> u32 {
    50
}

impl Params {
    /// `state` of node `name`, everything else at its default (for callers such as kup).
    pub fn new(name: NodeName, state: State) -> Params {
        Params {
            name,
            state,
            ignore_daemonsets: false,
            delete_emptydir_data: false,
            force: false,
            grace_period: None,
            timeout: default_timeout(),
            pod_selector: None,
            disable_eviction: false,
            skip_wait_for_delete_timeout: 0,
            concurrency: default_concurrency(),
            uncordon_on_failure: false,
            connection: Connection::default(),
        }
    }

    fn validate(&self) -> Result<(), Failure> {
        if self.concurrency == 0 {
            return Err(Failure::param("concurrency", "must be at least 1"));
        }
        if let Some(g) = self.grace_period {
            if g < -1 {
                return Err(Failure::param(
                    "grace_period",
                    format!("must be -1 (the pod's own) or more, got {g}"),
                ));
            }
        }
        if let Some(sel) = &self.pod_selector {
            filter::check_selector(sel).map_err(|e| Failure::param("pod_selector", e))?;
        }
        Ok(())
    }

    /// The grace period to request (`None`: the pod's own).
    fn grace(&self) -> Option<i64> {
        self.grace_period.filter(|g| *g >= 0)
    }
}

impl Module for NodeDrain {
    const NAME: &'static str = "node_drain";
    const DOCS: &'static str = include_str!("../node_drain.yml");
    type Params = Params;

    fn validate(p: &Params) -> Result<(), Failure> {
        p.validate()
    }

    fn run(p: Params, ctx: &Context) -> Result<Outcome, Failure> {
        let check = ctx.check_mode;
        kube_kit::block_on(async move {
            let start = Instant::now();
            let api = kube_kit::connect(&p.connection).await?;
            let deadline = start + Duration::from_secs(p.timeout);
            let nodes: Api<Node> = Api::all(api.client.clone());
            let node = kube_kit::retry(deadline, || nodes.get(&p.name))
                .await
                .map_err(|e| {
                    if kube_kit::status(&e) == Some(404) {
                        Failure::new(format!("node {} not found on {}", p.name, api.server))
                    } else {
                        kube_kit::api_failure(format!("cannot read node {}", p.name), &e)
                    }
                })?;
            let cordon = CordonState::of(&node);
            let session = Session {
                p: &p,
                api: &api,
                nodes: &nodes,
                check,
                start,
                deadline,
                waiting: Default::default(),
            };
            let out = match p.state {
                State::Cordon => session.carry_out(plan_cordon(&p.name, cordon), ctx).await,
                State::Uncordon => {
                    let plan = plan_uncordon(&p.name, p.force, cordon);
                    session.carry_out(plan, ctx).await
                }
                State::Drain => drain::drain(&session, cordon).await,
            };
            out.map(|o| o.with("duration", round(start.elapsed())))
                .map_err(|f| f.with("duration", round(start.elapsed())))
        })?
    }
}

/// What the node's cordon looks like before this run.
#[derive(Debug, Clone, Copy)]
pub struct CordonState {
    /// `spec.unschedulable`.
    pub cordoned: bool,
    /// The cordon was made by this module (our annotation is on the node).
    pub ours: bool,
    /// Our annotation is on the node.
    pub marked: bool,
}

impl CordonState {
    fn of(node: &Node) -> CordonState {
        let cordoned = node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
        let marked = node
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.get(CORDON_ANNOTATION).map(String::as_str) == Some("true"));
        CordonState {
            cordoned,
            ours: cordoned && marked,
            marked,
        }
    }

    /// Cordoned, by someone else.
    pub fn admin(&self) -> bool {
        self.cordoned && !self.ours
    }
}

/// A merge patch of the node, as a value: what a cordon, an uncordon or the removal of a stale mark
/// sends.
#[derive(Debug, Clone, PartialEq)]
pub struct NodePatch {
    /// What it does, for a failure: `cannot cordon node w1`.
    pub what: &'static str,
    /// The JSON merge patch (`null` removes a field).
    pub patch: Value,
}

impl NodePatch {
    /// Cordons, marking the cordon as ours.
    pub fn cordon() -> NodePatch {
        NodePatch {
            what: "cordon",
            patch: json!({"spec": {"unschedulable": true}, "metadata": {"annotations": {CORDON_ANNOTATION: "true"}}}),
        }
    }

    /// Lifts the cordon and our mark.
    pub fn uncordon() -> NodePatch {
        NodePatch {
            what: "uncordon",
            patch: json!({"spec": {"unschedulable": null}, "metadata": {"annotations": {CORDON_ANNOTATION: null}}}),
        }
    }

    /// Removes our mark only.
    pub fn unmark() -> NodePatch {
        NodePatch {
            what: "unmark",
            patch: json!({"metadata": {"annotations": {CORDON_ANNOTATION: null}}}),
        }
    }
}

fn cordon_values(plan: Plan<NodePatch>, before: CordonState, now: bool) -> Plan<NodePatch> {
    plan.with("cordoned", now)
        .with("was_cordoned", before.cordoned)
        .with("admin_cordon", before.admin())
        .with_diff(
            json!({"unschedulable": before.cordoned}),
            json!({"unschedulable": now}),
        )
}

/// `state: cordon` of node `name`, found as `before`: no I/O.
pub fn plan_cordon(name: &str, before: CordonState) -> Plan<NodePatch> {
    if before.cordoned {
        let whose = if before.ours {
            "by this module"
        } else {
            "by someone else (an uncordon by this module will keep that cordon)"
        };
        let plan = Plan::new(format!("node {name} is already cordoned {whose}"));
        return cordon_values(plan, before, true);
    }
    let plan = Plan::new("")
        .change(Change::new("cordon", "cordoned", format!("node {name}")))
        .action(NodePatch::cordon());
    cordon_values(plan, before, true)
}

/// `state: uncordon` of node `name`, found as `before`: an admin's cordon stays unless `force`.
/// No I/O.
pub fn plan_uncordon(name: &str, force: bool, before: CordonState) -> Plan<NodePatch> {
    if before.admin() && !force {
        let plan = Plan::new(format!(
            "node {name} stays cordoned: it was cordoned by someone else, not by this module \
             (force=true lifts it anyway)"
        ));
        return cordon_values(plan, before, true);
    }
    if before.cordoned {
        let mut plan = Plan::new("")
            .change(Change::new("uncordon", "uncordoned", format!("node {name}")))
            .action(NodePatch::uncordon());
        if before.admin() {
            plan = plan.warn(format!(
                "node {name} was cordoned by someone else, not by this module; force=true lifted that cordon"
            ));
        }
        return cordon_values(plan, before, false);
    }
    if before.marked {
        // Schedulable, but our mark lingers (someone uncordoned by hand): remove it, so that a
        // later cordon by someone else is not mistaken for ours.
        let plan = Plan::new(format!("node {name} is schedulable already; "))
            .change(Change::new(
                "remove",
                "removed",
                format!("the stale {CORDON_ANNOTATION} annotation"),
            ))
            .action(NodePatch::unmark());
        return cordon_values(plan, before, false);
    }
    cordon_values(
        Plan::new(format!("node {name} is schedulable already")),
        before,
        false,
    )
}

/// One run: parameters, client, mode, clock.
pub struct Session<'a> {
    pub p: &'a Params,
    pub api: &'a kube_kit::Api,
    pub nodes: &'a Api<Node>,
    pub check: bool,
    pub start: Instant,
    pub deadline: Instant,
    /// What a drain waits for, said while it waits.
    pub waiting: std::sync::Mutex<progress::Waiting>,
}

impl Session<'_> {
    /// Says what the drain waits for now (throttled; only for kup).
    pub fn say(&self) {
        progress::report(&self.waiting, &self.p.name, self.deadline);
    }

    /// Sends a patch of the node.
    pub async fn patch_node(&self, patch: &NodePatch) -> Result<(), Failure> {
        let params = PatchParams::default();
        let merge = Patch::Merge(&patch.patch);
        kube_kit::retry(self.deadline, || self.nodes.patch(&self.p.name, &params, &merge))
            .await
            .map(|_| ())
            .map_err(|e| kube_kit::api_failure(format!("cannot {} node {}", patch.what, self.p.name), &e))
    }

    /// Carries out a cordon or uncordon plan, unless module-kit says it is only reported.
    async fn carry_out(&self, plan: Plan<NodePatch>, ctx: &Context) -> Result<Outcome, Failure> {
        match decide(plan, ctx) {
            Decision::Report(outcome) => Ok(outcome),
            Decision::Apply(plan) => {
                for patch in &plan.actions {
                    self.patch_node(patch).await?;
                }
                Ok(plan.applied(Applied::default()))
            }
        }
    }
}

pub(crate) fn round(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}

#[cfg(test)]
mod plan_tests;
