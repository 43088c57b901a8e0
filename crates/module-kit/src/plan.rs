//! A module's plan as a value: what a run changes, the diff, and the actions that make the change
//! (commands, patches), computed without I/O from what the run observed.
//!
//! [`drive`] runs a [`PlannedModule`]: `observe`, then `plan`, then `apply`. It alone decides
//! whether `apply` runs (never in check mode, never when nothing changes) and how the message is
//! worded: each [`Change`] is said once by the module, as a verb in two forms, and worded here for
//! the tense ("would cordon node w1" in check mode, "cordoned node w1" once applied). A module that
//! drives itself (an async one, inside its runtime) gets the same from [`decide`] and
//! [`Plan::applied`].

use crate::result::insert_value;
use crate::{Context, Diff, Failure, Outcome, PlannedModule};
use serde_json::{Map, Value};

/// How the changes of a plan are worded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tense {
    /// Not done (check mode): "would install kubelet=1.9.2-00 with apt".
    Would,
    /// Done: "installed kubelet=1.9.2-00 with apt".
    Done,
}

/// One change a plan makes, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The verb as it follows "would": `install`.
    pub verb: String,
    /// The verb once it is done: `installed`.
    pub done: String,
    /// What the verb applies to: `kubelet=1.9.2-00 with apt` (may be empty).
    pub what: String,
}

impl Change {
    pub fn new(verb: &str, done: &str, what: impl Into<String>) -> Self {
        Change {
            verb: verb.to_string(),
            done: done.to_string(),
            what: what.into(),
        }
    }

    pub fn worded(&self, tense: Tense) -> String {
        let verb = match tense {
            Tense::Would => format!("would {}", self.verb),
            Tense::Done => self.done.clone(),
        };
        if self.what.is_empty() {
            verb
        } else {
            format!("{verb} {}", self.what)
        }
    }
}

/// What a run changes, as a value: the words, the actions, the diff and the return values.
///
/// The message is `lead`, the changes worded for the tense and joined with ", ", then `tail`. A
/// plan with no changes changes nothing (`changed` is false) and says `lead` and `tail` only.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<A> {
    /// Said first, or alone when nothing changes: `node w1 is schedulable already`.
    pub lead: String,
    /// What the run changes, in the order it does it.
    pub changes: Vec<Change>,
    /// Said last: ` (not present, ignored: keepalived.service)`.
    pub tail: String,
    /// What `apply` carries out, in order: the commands it runs, the patches it sends.
    pub actions: Vec<A>,
    /// Before and after, shown in diff mode whether or not the plan is applied.
    pub diff: Option<Diff>,
    pub warnings: Vec<String>,
    /// The module's return values; `apply` may replace some with what it read back.
    pub values: Map<String, Value>,
}

impl<A> Default for Plan<A> {
    fn default() -> Self {
        Plan {
            lead: String::new(),
            changes: Vec::new(),
            tail: String::new(),
            actions: Vec::new(),
            diff: None,
            warnings: Vec::new(),
            values: Map::new(),
        }
    }
}

impl<A> Plan<A> {
    /// A plan that says `lead` and changes nothing, until changes are added.
    pub fn new(lead: impl Into<String>) -> Self {
        Plan {
            lead: lead.into(),
            ..Plan::default()
        }
    }

    pub fn changed(&self) -> bool {
        !self.changes.is_empty()
    }

    pub fn change(mut self, change: Change) -> Self {
        self.changes.push(change);
        self
    }

    pub fn action(mut self, action: A) -> Self {
        self.actions.push(action);
        self
    }

    pub fn tail(mut self, tail: impl Into<String>) -> Self {
        self.tail = tail.into();
        self
    }

    /// Adds a return value. Values that cannot be represented become `null`.
    pub fn with(mut self, key: &str, value: impl serde::Serialize) -> Self {
        insert_value(&mut self.values, key, value);
        self
    }

    pub fn with_diff(mut self, before: Value, after: Value) -> Self {
        self.diff = Some(Diff { before, after });
        self
    }

    pub fn warn(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }

    /// The message, worded for `tense`.
    pub fn msg(&self, tense: Tense) -> String {
        let changes: Vec<String> = self.changes.iter().map(|c| c.worded(tense)).collect();
        format!("{}{}{}", self.lead, changes.join(", "), self.tail)
    }

    /// The outcome of the plan not applied (check mode, or nothing to change).
    pub fn unapplied(self) -> Outcome {
        self.outcome(Tense::Would)
    }

    /// The outcome of the plan once `apply` carried it out.
    pub fn applied(self, applied: Applied) -> Outcome {
        let mut outcome = self.outcome(Tense::Done);
        outcome.values.extend(applied.values);
        outcome.warnings.extend(applied.warnings);
        outcome
    }

    fn outcome(self, tense: Tense) -> Outcome {
        Outcome {
            changed: self.changed(),
            msg: self.msg(tense),
            diff: self.diff,
            warnings: self.warnings,
            values: self.values,
        }
    }
}

/// What `apply` learnt that the plan could not know: return values read back after the change
/// (they replace the plan's of the same name), warnings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    pub values: Map<String, Value>,
    pub warnings: Vec<String>,
}

impl Applied {
    /// Adds (or replaces) a return value. Values that cannot be represented become `null`.
    pub fn with(mut self, key: &str, value: impl serde::Serialize) -> Self {
        insert_value(&mut self.values, key, value);
        self
    }

    pub fn warn(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }
}

/// Whether a plan is carried out: see [`decide`].
#[derive(Debug)]
pub enum Decision<A> {
    /// Check mode, or nothing to change: this is the outcome.
    Report(Outcome),
    /// Carry out the plan, then report [`Plan::applied`].
    Apply(Plan<A>),
}

/// The one place that decides whether a plan is applied: never in check mode, never when it
/// changes nothing.
pub fn decide<A>(plan: Plan<A>, ctx: &Context) -> Decision<A> {
    if ctx.check_mode || !plan.changed() {
        Decision::Report(plan.unapplied())
    } else {
        Decision::Apply(plan)
    }
}

/// Runs a [`PlannedModule`]: observe, plan, and apply when [`decide`] says so. What its
/// `Module::run` calls.
pub fn drive<M: PlannedModule>(params: M::Params, ctx: &Context) -> Result<Outcome, Failure> {
    let observed = M::observe(&params, ctx)?;
    let plan = M::plan(&params, &observed)?;
    if ctx.check_mode && plan.changed() {
        M::rehearse(&params, &observed, &plan)?;
    }
    match decide(plan, ctx) {
        Decision::Report(outcome) => Ok(outcome),
        Decision::Apply(plan) => {
            let applied = M::apply(&params, observed, &plan)?;
            Ok(plan.applied(applied))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::Module;
    use serde_json::json;
    use std::cell::RefCell;

    thread_local! {
        /// What each run of the test module did, in order.
        static CALLS: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
    }

    fn calls() -> Vec<&'static str> {
        CALLS.with(|c| c.borrow_mut().drain(..).collect())
    }

    fn called(what: &'static str) {
        CALLS.with(|c| c.borrow_mut().push(what));
    }

    /// Cordons a node that is `cordoned` or not, the way node_drain words it.
    struct Cordon;

    #[derive(serde::Deserialize, crate::Params)]
    struct Params {
        cordoned: bool,
        #[serde(default)]
        fail: bool,
        #[serde(default)]
        refused: bool,
    }

    impl Module for Cordon {
        const NAME: &'static str = "cordon";
        type Params = Params;
        fn run(p: Params, ctx: &Context) -> Result<Outcome, Failure> {
            drive::<Self>(p, ctx)
        }
    }

    impl PlannedModule for Cordon {
        type Observed = bool;
        type Action = &'static str;

        fn observe(p: &Params, _ctx: &Context) -> Result<bool, Failure> {
            called("observe");
            Ok(p.cordoned)
        }

        fn plan(_p: &Params, cordoned: &bool) -> Result<Plan<&'static str>, Failure> {
            called("plan");
            let diff = |now: bool| json!({ "unschedulable": now });
            let plan = Plan::new("")
                .with("was_cordoned", cordoned)
                .with("read_back", false)
                .with_diff(diff(*cordoned), diff(true));
            Ok(if *cordoned {
                Plan {
                    lead: "node w1 is already cordoned".into(),
                    ..plan
                }
            } else {
                plan.change(Change::new("cordon", "cordoned", "node w1"))
                    .change(Change::new("daemon-reload", "daemon-reloaded", ""))
                    .action("PATCH unschedulable=true")
                    .tail(" (as asked)")
            })
        }

        fn rehearse(p: &Params, _cordoned: &bool, _plan: &Plan<&'static str>) -> Result<(), Failure> {
            called("rehearse");
            if p.refused {
                return Err(Failure::new("the rehearsal was refused"));
            }
            Ok(())
        }

        fn apply(p: &Params, _cordoned: bool, plan: &Plan<&'static str>) -> Result<Applied, Failure> {
            called("apply");
            assert_eq!(plan.actions, ["PATCH unschedulable=true"]);
            if p.fail {
                return Err(Failure::new("the API server said no"));
            }
            Ok(Applied::default().with("read_back", true).warn("slow"))
        }
    }

    /// The steps called when the plan was only made, and when it was also applied.
    const PLANNED: &[&str] = &["observe", "plan"];
    const REHEARSED: &[&str] = &["observe", "plan", "rehearse"];
    const APPLIED: &[&str] = &["observe", "plan", "apply"];

    /// Runs the module with `args` and checks which of its steps were called.
    fn run_cordon(args: Value, steps: &[&str]) -> Value {
        let r = crate::run_value::<Cordon>(args);
        assert_eq!(calls(), steps);
        r
    }

    #[test]
    fn check_mode_never_applies_and_says_would() {
        let r = run_cordon(
            json!({"cordoned": false, "_ansible_check_mode": true, "_ansible_diff": true}),
            REHEARSED,
        );
        assert_eq!(r["changed"], true);
        assert_eq!(r["failed"], false);
        assert_eq!(r["msg"], "would cordon node w1, would daemon-reload (as asked)");
        assert_eq!(r["read_back"], false);
        assert_eq!(r["diff"]["after"], json!({"unschedulable": true}));
        assert!(r.get("warnings").is_none(), "{r}");
        // Even a module that would fail in apply is not asked to.
        let r =
            crate::run_value::<Cordon>(json!({"cordoned": false, "fail": true, "_ansible_check_mode": true}));
        assert_eq!((r["failed"].clone(), calls()), (json!(false), REHEARSED.to_vec()));
    }

    #[test]
    fn a_refused_rehearsal_fails_the_check_and_nothing_unchanged_is_rehearsed() {
        let r = run_cordon(
            json!({"cordoned": false, "refused": true, "_ansible_check_mode": true}),
            REHEARSED,
        );
        assert_eq!(r["failed"], true);
        assert_eq!(r["msg"], "the rehearsal was refused");
        let r = run_cordon(
            json!({"cordoned": true, "refused": true, "_ansible_check_mode": true}),
            PLANNED,
        );
        assert_eq!(r["failed"], false);
        // Outside check mode the run itself is the truth: no rehearsal first.
        let r = run_cordon(json!({"cordoned": false, "refused": true}), APPLIED);
        assert_eq!(r["failed"], false);
    }

    #[test]
    fn applying_says_what_was_done_with_what_apply_read_back() {
        let r = run_cordon(json!({"cordoned": false, "_ansible_diff": true}), APPLIED);
        assert_eq!(r["changed"], true);
        assert_eq!(r["msg"], "cordoned node w1, daemon-reloaded (as asked)");
        assert_eq!(r["read_back"], true);
        assert_eq!(r["was_cordoned"], false);
        assert_eq!(r["warnings"], json!(["slow"]));
        assert_eq!(r["diff"]["before"], json!({"unschedulable": false}));
    }

    #[test]
    fn nothing_to_change_is_never_applied() {
        let r = run_cordon(json!({"cordoned": true, "fail": true}), PLANNED);
        assert_eq!(r["changed"], false);
        assert_eq!(r["failed"], false);
        assert_eq!(r["msg"], "node w1 is already cordoned");
    }

    #[test]
    fn a_failed_apply_is_the_failure() {
        let r = run_cordon(json!({"cordoned": false, "fail": true}), APPLIED);
        assert_eq!(r["failed"], true);
        assert_eq!(r["msg"], "the API server said no");
    }

    #[test]
    fn decide_reports_in_check_mode_and_without_changes() {
        let check = Context {
            check_mode: true,
            ..Context::default()
        };
        let plan = Plan::<()>::new("").change(Change::new("hold", "held", "the packages"));
        match decide(plan.clone(), &check) {
            Decision::Report(o) => assert_eq!((o.changed, o.msg.as_str()), (true, "would hold the packages")),
            Decision::Apply(_) => panic!("check mode applied"),
        }
        match decide(plan.clone(), &Context::default()) {
            Decision::Apply(p) => assert_eq!(p.applied(Applied::default()).msg, "held the packages"),
            Decision::Report(o) => panic!("not applied: {o:?}"),
        }
        let idle = Plan::<()>::new("kubelet already at the wanted versions");
        assert!(!idle.changed());
        assert!(matches!(decide(idle, &Context::default()), Decision::Report(o) if !o.changed));
    }
}
