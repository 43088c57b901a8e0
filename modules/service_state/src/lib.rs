//! `service_state`: the runbook's "systemctl stop keepalived kubelet docker" and, after the packages,
//! "systemctl start `echo keepalived kubelet docker | tac`" — which never reversed anything, since
//! `tac` reverses lines, not words. Here `started` really starts in reverse order: docker, kubelet,
//! keepalived.
//!
//! Only units not already in the wanted state are touched. A unit that fails to start (or crashes
//! right after) fails the module with its `systemctl status` and last journal lines.

mod systemd;

use module_kit::command::Command;
use module_kit::{
    de, shown, Applied, Change, Context, Failure, Module, Outcome, Plan, PlannedModule, Seconds,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use systemd::{systemctl, Systemctl, UnitState};

pub struct ServiceState;

#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Wanted {
    Stopped,
    Started,
    Restarted,
}

#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Missing {
    Ignore,
    Fail,
}

#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Reload {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Deserialize, Serialize, module_kit::Params)]
pub struct Params {
    pub units: Vec<String>,
    pub state: Wanted,
    #[serde(default = "ignore")]
    pub missing: Missing,
    #[serde(default = "auto")]
    pub daemon_reload: Reload,
    #[serde(
        default,
        deserialize_with = "opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub enabled: Option<bool>,
    #[serde(default = "default_wait")]
    pub wait_timeout: Seconds,
    #[serde(default = "default_settle")]
    pub settle: Seconds<0>,
}

impl Params {
    /// `units` brought to `state`, everything else at its default (for callers such as kup).
    pub fn new(units: Vec<String>, state: Wanted) -> Params {
        Params {
            units,
            state,
            missing: ignore(),
            daemon_reload: auto(),
            enabled: None,
            wait_timeout: default_wait(),
            settle: default_settle(),
        }
    }
}

fn ignore() -> Missing {
    Missing::Ignore
}
fn auto() -> Reload {
    Reload::Auto
}
fn default_wait() -> Seconds {
    Seconds::of(90)
}
fn default_settle() -> Seconds<0> {
    Seconds::of(2)
}
fn opt_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    de::boolean(d).map(Some)
}

/// What will be done to one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    None,
    Stop,
    Start,
    Restart,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Stop => "stop",
            Action::Start => "start",
            Action::Restart => "restart",
        }
    }
}

/// One systemctl call of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// daemon-reload, enable, disable or stop.
    Run(Command),
    /// The start of `unit`: its restart count is read first, and it is watched afterwards to stay
    /// up (`settle`).
    Start { unit: String, command: Command },
}

impl Step {
    pub fn command(&self) -> &Command {
        match self {
            Step::Run(command) | Step::Start { command, .. } => command,
        }
    }
}

/// The units' state before the run.
pub struct Observed {
    /// The units as systemd knows them (`docker` -> `docker.service`), in the order given.
    units: Vec<String>,
    before: Vec<UnitState>,
    /// Why unit state was read with systemctl instead of over the bus.
    bus_warning: Option<String>,
    systemctl: Systemctl,
}

impl Module for ServiceState {
    const NAME: &'static str = "service_state";
    const DOCS: &'static str = include_str!("../service_state.yml");
    type Params = Params;

    fn validate(p: &Params) -> Result<(), Failure> {
        validate(p).map(|_| ())
    }

    fn run(p: Params, ctx: &Context) -> Result<Outcome, Failure> {
        module_kit::plan::drive::<Self>(p, ctx)
    }
}

impl PlannedModule for ServiceState {
    type Observed = Observed;
    type Action = Step;

    fn observe(p: &Params, _ctx: &Context) -> Result<Observed, Failure> {
        let units = validate(p)?;
        let systemctl = Systemctl::new(p.wait_timeout.duration());
        let before = systemctl.show_brief(&units, p.enabled.is_some())?;
        let bus_warning = systemctl.bus_error.borrow_mut().take();
        Ok(Observed {
            units,
            before,
            bus_warning,
            systemctl,
        })
    }

    fn plan(p: &Params, seen: &Observed) -> Result<Plan<Step>, Failure> {
        let before = &seen.before;
        let missing: Vec<&str> = before
            .iter()
            .filter(|u| !u.exists())
            .map(|u| u.name.as_str())
            .collect();
        if p.missing == Missing::Fail && !missing.is_empty() {
            return Err(Failure::new(format!("no such unit: {}", missing.join(", "))));
        }
        let present: Vec<&UnitState> = before.iter().filter(|u| u.exists()).collect();
        let reload = match p.daemon_reload {
            Reload::Always => true,
            Reload::Never => false,
            Reload::Auto => present.iter().any(|u| u.need_daemon_reload),
        };
        let action_of = |u: &UnitState| match p.state {
            Wanted::Stopped if u.is_running() => Action::Stop,
            Wanted::Started if !u.is_running() => Action::Start,
            Wanted::Restarted => Action::Restart,
            _ => Action::None,
        };
        let actions: Vec<(&UnitState, Action)> = present.iter().map(|u| (*u, action_of(u))).collect();
        let enable_changes: Vec<(&UnitState, bool)> = match p.enabled {
            Some(wanted) => present
                .iter()
                .filter(|u| u.can_toggle_enable() && u.is_enabled() != wanted)
                .map(|u| (*u, wanted))
                .collect(),
            None => Vec::new(),
        };

        let timeout = p.wait_timeout.duration();
        let mut plan = Plan::new("");
        if reload {
            plan = plan
                .change(Change::new("daemon-reload", "daemon-reloaded", ""))
                .action(Step::Run(systemctl(&["daemon-reload"], timeout)));
        }
        for (unit, enable) in &enable_changes {
            let (verb, done) = if *enable {
                ("enable", "enabled")
            } else {
                ("disable", "disabled")
            };
            plan = plan
                .change(Change::new(verb, done, &unit.name))
                .action(Step::Run(systemctl(&[verb, "--", &unit.name], timeout)));
        }
        // Stops in the order given...
        for (unit, action) in &actions {
            if *action == Action::Stop || (*action == Action::Restart && unit.is_running()) {
                plan = plan
                    .change(Change::new("stop", "stopped", &unit.name))
                    .action(Step::Run(systemctl(&["stop", "--", &unit.name], timeout)));
            }
        }
        // ...starts in reverse, then all are watched together to stay up.
        for (unit, action) in actions.iter().rev() {
            if matches!(action, Action::Start | Action::Restart) {
                plan = plan
                    .change(Change::new("start", "started", &unit.name))
                    .action(Step::Start {
                        unit: unit.name.clone(),
                        command: systemctl(&["start", "--", &unit.name], timeout),
                    });
            }
        }
        if !plan.changed() {
            let names: Vec<&str> = present.iter().map(|u| u.name.as_str()).collect();
            plan.lead = format!("{} already {}", names.join(", "), wanted_word(p.state));
        }
        if !missing.is_empty() {
            plan = plan.tail(format!(" (not present, ignored: {})", missing.join(", ")));
        }

        let action_for = |u: &UnitState| actions.iter().find(|(x, _)| x.name == u.name).map(|(_, a)| *a);
        // Before the run, and as it leaves them when nothing is applied: `apply` reads `after` back.
        let report: Vec<Value> = before
            .iter()
            .map(|u| {
                json!({
                    "name": u.name,
                    "before": u.active_state,
                    "after": u.active_state,
                    "action": action_for(u).map_or("missing", Action::name),
                })
            })
            .collect();
        let diff_before: Map<String, Value> = before
            .iter()
            .map(|u| (u.name.clone(), json!(u.active_state)))
            .collect();
        let diff_after: Map<String, Value> = before
            .iter()
            .map(|u| {
                let wanted = match action_for(u) {
                    Some(Action::Stop) => "inactive",
                    Some(Action::Start | Action::Restart) => "active",
                    _ => u.active_state.as_str(),
                };
                (u.name.clone(), json!(wanted))
            })
            .collect();
        if let Some(why) = &seen.bus_warning {
            plan = plan.warn(why);
        }
        Ok(plan
            .with("units", report)
            .with("daemon_reloaded", false)
            .with("missing", missing)
            .with_diff(Value::Object(diff_before), Value::Object(diff_after)))
    }

    fn apply(p: &Params, seen: Observed, plan: &Plan<Step>) -> Result<Applied, Failure> {
        let systemctl = &seen.systemctl;
        let mut started = Vec::new();
        for step in &plan.actions {
            match step {
                Step::Run(command) => systemctl.run(command)?,
                Step::Start { unit, command } => {
                    started.push((unit.clone(), systemctl.start(unit, command)?));
                }
            }
        }
        systemctl.settle(&started, p.settle.duration())?;
        let after = systemctl.show_brief(&seen.units, false)?;
        let mut report = plan.values.get("units").cloned().unwrap_or_default();
        for unit in report.as_array_mut().into_iter().flatten() {
            let now = after.iter().find(|a| unit["name"] == a.name.as_str());
            unit["after"] = json!(now.map(|a| &a.active_state));
        }
        let reloaded = plan.changes.iter().any(|c| c.verb == "daemon-reload");
        let applied = Applied::default()
            .with("units", report)
            .with("daemon_reloaded", reloaded);
        Ok(match systemctl.bus_error.borrow_mut().take() {
            Some(why) => applied.warn(why),
            None => applied,
        })
    }
}

fn wanted_word(state: Wanted) -> &'static str {
    match state {
        Wanted::Stopped => "stopped",
        Wanted::Started => "running",
        Wanted::Restarted => "restarted",
    }
}

/// Unit names as systemd knows them (`docker` -> `docker.service`), checked to be names and nothing else.
fn validate(p: &Params) -> Result<Vec<String>, Failure> {
    if p.units.is_empty() {
        return Err(Failure::param("units", "must list at least one unit"));
    }
    let mut units: Vec<String> = Vec::new();
    for unit in &p.units {
        let ok = !unit.is_empty()
            && !unit.starts_with('-')
            && unit.len() <= 256
            && unit
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ":_.@-\\".contains(c));
        if !ok {
            return Err(Failure::param(
                "units",
                format!("{} is not a unit name", shown(unit)),
            ));
        }
        let full = if unit.contains('.') {
            unit.clone()
        } else {
            format!("{unit}.service")
        };
        if units.contains(&full) {
            return Err(Failure::param(
                "units",
                format!("{} is listed twice", shown(unit)),
            ));
        }
        units.push(full);
    }
    Ok(units)
}

#[cfg(test)]
mod plan_tests;
