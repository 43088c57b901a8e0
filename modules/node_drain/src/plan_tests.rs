//! Cordon and uncordon plans from the node's cordon: the exact patch, the message in both tenses,
//! the diff. No API server is asked anything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use module_kit::plan::Tense;

/// The node's cordon: `spec.unschedulable`, and whether our annotation is on it.
const fn found(cordoned: bool, marked: bool) -> CordonState {
    CordonState {
        cordoned,
        ours: cordoned && marked,
        marked,
    }
}

const SCHEDULABLE: CordonState = found(false, false);
const OURS: CordonState = found(true, true);
const ADMINS: CordonState = found(true, false);
const STALE_MARK: CordonState = found(false, true);

fn patches(plan: &Plan<NodePatch>) -> Vec<Value> {
    plan.actions.iter().map(|p| p.patch.clone()).collect()
}

fn diff(plan: &Plan<NodePatch>) -> (Value, Value) {
    let d = plan.diff.clone().unwrap();
    (d.before, d.after)
}

#[test]
fn cordon_patches_unschedulable_and_marks_it_ours() {
    let plan = plan_cordon("worker-1", SCHEDULABLE);
    assert!(plan.changed());
    assert_eq!(
        patches(&plan),
        [json!({"spec": {"unschedulable": true},
                "metadata": {"annotations": {"kubeadm-ha-upgrade/cordoned": "true"}}})]
    );
    assert_eq!(plan.actions[0].what, "cordon");
    assert_eq!(plan.msg(Tense::Would), "would cordon node worker-1");
    assert_eq!(plan.msg(Tense::Done), "cordoned node worker-1");
    assert_eq!(
        diff(&plan),
        (json!({"unschedulable": false}), json!({"unschedulable": true}))
    );
    assert_eq!(plan.values["cordoned"], true);
    assert_eq!(plan.values["was_cordoned"], false);
    assert_eq!(plan.values["admin_cordon"], false);
}

#[test]
fn a_cordoned_node_is_left_as_it_is() {
    let plan = plan_cordon("worker-1", OURS);
    assert!(!plan.changed() && plan.actions.is_empty());
    assert_eq!(
        plan.msg(Tense::Done),
        "node worker-1 is already cordoned by this module"
    );
    let plan = plan_cordon("worker-1", ADMINS);
    assert!(!plan.changed() && plan.actions.is_empty());
    assert_eq!(
        plan.msg(Tense::Would),
        "node worker-1 is already cordoned by someone else (an uncordon by this module will keep that cordon)"
    );
    assert_eq!(plan.values["admin_cordon"], true);
    assert_eq!(
        diff(&plan),
        (json!({"unschedulable": true}), json!({"unschedulable": true}))
    );
}

#[test]
fn uncordon_lifts_our_cordon_and_our_mark() {
    let plan = plan_uncordon("worker-1", false, OURS);
    assert_eq!(
        patches(&plan),
        [json!({"spec": {"unschedulable": null},
                "metadata": {"annotations": {"kubeadm-ha-upgrade/cordoned": null}}})]
    );
    assert_eq!(plan.msg(Tense::Would), "would uncordon node worker-1");
    assert_eq!(plan.msg(Tense::Done), "uncordoned node worker-1");
    assert!(plan.warnings.is_empty());
    assert_eq!(
        diff(&plan),
        (json!({"unschedulable": true}), json!({"unschedulable": false}))
    );
    assert_eq!(plan.values["cordoned"], false);
}

#[test]
fn an_admins_cordon_stays_unless_forced() {
    let plan = plan_uncordon("worker-2", false, ADMINS);
    assert!(!plan.changed() && plan.actions.is_empty());
    assert_eq!(
        plan.msg(Tense::Done),
        "node worker-2 stays cordoned: it was cordoned by someone else, not by this module \
         (force=true lifts it anyway)"
    );
    assert_eq!(plan.values["cordoned"], true);

    let forced = plan_uncordon("worker-2", true, ADMINS);
    assert_eq!(patches(&forced), [NodePatch::uncordon().patch]);
    assert_eq!(forced.msg(Tense::Done), "uncordoned node worker-2");
    assert_eq!(
        forced.warnings,
        ["node worker-2 was cordoned by someone else, not by this module; force=true lifted that cordon"]
    );
}

#[test]
fn a_stale_mark_is_removed_and_a_schedulable_node_left_alone() {
    let plan = plan_uncordon("worker-1", false, STALE_MARK);
    assert_eq!(
        patches(&plan),
        [json!({"metadata": {"annotations": {"kubeadm-ha-upgrade/cordoned": null}}})]
    );
    assert_eq!(plan.actions[0].what, "unmark");
    assert_eq!(
        plan.msg(Tense::Would),
        "node worker-1 is schedulable already; would remove the stale kubeadm-ha-upgrade/cordoned annotation"
    );
    assert_eq!(
        plan.msg(Tense::Done),
        "node worker-1 is schedulable already; removed the stale kubeadm-ha-upgrade/cordoned annotation"
    );
    assert_eq!(
        diff(&plan),
        (json!({"unschedulable": false}), json!({"unschedulable": false}))
    );

    let plan = plan_uncordon("worker-1", true, SCHEDULABLE);
    assert!(!plan.changed() && plan.actions.is_empty());
    assert_eq!(plan.msg(Tense::Would), "node worker-1 is schedulable already");
}
