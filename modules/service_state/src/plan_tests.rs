//! The plan from an observed state: the exact systemctl calls, the message in both tenses, the
//! diff. No systemd is asked anything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use module_kit::plan::Tense;
use std::time::Duration;

fn params(args: Value) -> Params {
    module_kit::intake::<ServiceState>(args).map(|(p, _)| p).unwrap()
}

/// A unit as systemd reports it: `active`, `inactive` or `not-found` (no such unit).
fn unit(name: &str, state: &str, file_state: &str) -> UnitState {
    let missing = state == "not-found";
    UnitState {
        name: name.into(),
        load_state: if missing { "not-found" } else { "loaded" }.into(),
        active_state: if missing { "inactive" } else { state }.into(),
        unit_file_state: file_state.into(),
        ..UnitState::default()
    }
}

fn observed(before: Vec<UnitState>) -> Observed {
    Observed {
        units: before.iter().map(|u| u.name.clone()).collect(),
        before,
        bus_warning: None,
        systemctl: Systemctl::with_bus(None, Duration::from_secs(90)),
    }
}

fn plan(args: Value, before: Vec<UnitState>) -> Plan<Step> {
    ServiceState::plan(&params(args), &observed(before)).unwrap()
}

fn argvs(plan: &Plan<Step>) -> Vec<String> {
    plan.actions.iter().map(|s| s.command().to_string()).collect()
}

#[test]
fn stops_in_the_order_given_after_a_daemon_reload() {
    let mut kubelet = unit("kubelet.service", "active", "enabled");
    kubelet.need_daemon_reload = true;
    let plan = plan(
        json!({"units": ["keepalived", "kubelet", "docker"], "state": "stopped", "wait_timeout": 30}),
        vec![
            unit("keepalived.service", "active", "enabled"),
            kubelet,
            unit("docker.service", "activating", "enabled"),
        ],
    );
    assert!(plan.changed());
    assert_eq!(
        argvs(&plan),
        [
            "systemctl daemon-reload",
            "systemctl stop -- keepalived.service",
            "systemctl stop -- kubelet.service",
            "systemctl stop -- docker.service",
        ]
    );
    assert!(plan.actions.iter().all(|s| matches!(s, Step::Run(_))));
    assert!(plan
        .actions
        .iter()
        .all(|s| s.command().get_timeout() == Duration::from_secs(30)));
    assert_eq!(
        plan.msg(Tense::Would),
        "would daemon-reload, would stop keepalived.service, would stop kubelet.service, \
         would stop docker.service"
    );
    assert_eq!(
        plan.msg(Tense::Done),
        "daemon-reloaded, stopped keepalived.service, stopped kubelet.service, stopped docker.service"
    );
    let diff = plan.diff.clone().unwrap();
    assert_eq!(
        diff.before,
        json!({"keepalived.service": "active", "kubelet.service": "active", "docker.service": "activating"})
    );
    assert_eq!(
        diff.after,
        json!({"keepalived.service": "inactive", "kubelet.service": "inactive", "docker.service": "inactive"})
    );
    // Until applied, nothing was reloaded and every unit is as it was.
    assert_eq!(plan.values["daemon_reloaded"], false);
    assert_eq!(
        plan.values["units"][1],
        json!({"name": "kubelet.service", "before": "active", "after": "active", "action": "stop"})
    );
}

#[test]
fn starts_in_reverse_and_ignores_a_missing_unit() {
    let plan = plan(
        json!({"units": ["keepalived", "kubelet", "docker"], "state": "started"}),
        vec![
            unit("keepalived.service", "not-found", ""),
            unit("kubelet.service", "inactive", "enabled"),
            unit("docker.service", "failed", "enabled"),
        ],
    );
    assert_eq!(
        plan.actions,
        [
            Step::Start {
                unit: "docker.service".into(),
                command: systemctl(&["start", "--", "docker.service"], Duration::from_secs(90)),
            },
            Step::Start {
                unit: "kubelet.service".into(),
                command: systemctl(&["start", "--", "kubelet.service"], Duration::from_secs(90)),
            },
        ]
    );
    assert_eq!(
        plan.actions[0].command().argv(),
        ["systemctl", "start", "--", "docker.service"]
    );
    assert_eq!(
        plan.msg(Tense::Done),
        "started docker.service, started kubelet.service (not present, ignored: keepalived.service)"
    );
    assert_eq!(plan.values["missing"], json!(["keepalived.service"]));
    assert_eq!(plan.values["units"][0]["action"], "missing");
    assert_eq!(plan.diff.unwrap().after["docker.service"], "active");
}

#[test]
fn restart_with_enablement_disables_stops_then_starts_in_reverse() {
    let plan = plan(
        json!({"units": ["kubelet", "docker", "dbus.socket"], "state": "restarted", "enabled": false,
               "daemon_reload": "never"}),
        vec![
            unit("kubelet.service", "active", "enabled"),
            unit("docker.service", "inactive", "enabled"),
            unit("dbus.socket", "active", "static"),
        ],
    );
    assert_eq!(
        argvs(&plan),
        [
            "systemctl disable -- kubelet.service",
            "systemctl disable -- docker.service",
            "systemctl stop -- kubelet.service",
            "systemctl stop -- dbus.socket",
            "systemctl start -- dbus.socket",
            "systemctl start -- docker.service",
            "systemctl start -- kubelet.service",
        ]
    );
    assert_eq!(
        plan.msg(Tense::Would),
        "would disable kubelet.service, would disable docker.service, would stop kubelet.service, \
         would stop dbus.socket, would start dbus.socket, would start docker.service, \
         would start kubelet.service"
    );
}

#[test]
fn nothing_to_do_says_so_and_runs_nothing() {
    for (state, word, active) in [
        ("stopped", "stopped", "inactive"),
        ("started", "running", "active"),
    ] {
        let plan = plan(
            json!({"units": ["kubelet", "docker"], "state": state, "daemon_reload": "auto"}),
            vec![
                unit("kubelet.service", active, "enabled"),
                unit("docker.service", active, "enabled"),
            ],
        );
        assert!(!plan.changed());
        assert!(plan.actions.is_empty());
        let msg = format!("kubelet.service, docker.service already {word}");
        assert_eq!(plan.msg(Tense::Would), msg);
        assert_eq!(plan.msg(Tense::Done), msg);
        let diff = plan.diff.unwrap();
        assert_eq!(diff.before, diff.after);
    }
    // `daemon_reload: always` reloads even then.
    let plan = plan(
        json!({"units": ["kubelet"], "state": "started", "daemon_reload": "always"}),
        vec![unit("kubelet.service", "active", "enabled")],
    );
    assert_eq!(argvs(&plan), ["systemctl daemon-reload"]);
    assert_eq!(plan.msg(Tense::Would), "would daemon-reload");
}

#[test]
fn a_missing_unit_fails_when_asked_and_a_bus_failure_warns() {
    let args = json!({"units": ["keepalived", "kubelet"], "state": "stopped", "missing": "fail"});
    let before = vec![
        unit("keepalived.service", "not-found", ""),
        unit("kubelet.service", "active", "enabled"),
    ];
    let err = ServiceState::plan(&params(args), &observed(before.clone())).unwrap_err();
    assert_eq!(err.msg, "no such unit: keepalived.service");

    let mut seen = observed(before);
    seen.bus_warning = Some("systemd bus: refused; read unit state with systemctl instead".into());
    let plan = ServiceState::plan(
        &params(json!({"units": ["keepalived", "kubelet"], "state": "stopped"})),
        &seen,
    )
    .unwrap();
    assert_eq!(
        plan.warnings,
        ["systemd bus: refused; read unit state with systemctl instead"]
    );
}
