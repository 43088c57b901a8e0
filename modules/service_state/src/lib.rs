//! `service_state`: the runbook's "systemctl stop keepalived kubelet docker" and, after the packages,
//! "systemctl start `echo keepalived kubelet docker | tac`" — which never reversed anything, since
//! `tac` reverses lines, not words. Here `started` really starts in reverse order: docker, kubelet,
//! keepalived.
//!
//! Only units not already in the wanted state are touched. A unit that fails to start (or crashes
//! right after) fails the module with its `systemctl status` and last journal lines.

mod systemd;

use module_kit::{de, shown, Context, Failure, Module, Outcome, Seconds};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use systemd::{Systemctl, UnitState};

pub struct ServiceState;

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Wanted {
    Stopped,
    Started,
    Restarted,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Missing {
    Ignore,
    Fail,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Reload {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Deserialize, module_kit::Params)]
pub struct Params {
    units: Vec<String>,
    state: Wanted,
    #[serde(default = "ignore")]
    missing: Missing,
    #[serde(default = "auto")]
    daemon_reload: Reload,
    #[serde(default, deserialize_with = "opt_bool")]
    enabled: Option<bool>,
    #[serde(default = "default_wait")]
    wait_timeout: Seconds,
    #[serde(default = "default_settle")]
    settle: Seconds<0>,
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

impl Module for ServiceState {
    const NAME: &'static str = "service_state";
    const DOCS: &'static str = include_str!("../service_state.yml");
    type Params = Params;

    fn validate(p: &Params) -> Result<(), Failure> {
        validate(p).map(|_| ())
    }

    fn run(p: Params, ctx: &Context) -> Result<Outcome, Failure> {
        let units = validate(&p)?;
        let systemctl = Systemctl::new(p.wait_timeout.duration());
        let before = systemctl.show_brief(&units, p.enabled.is_some())?;
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
        let actions: Vec<(&UnitState, Action)> = present
            .iter()
            .map(|u| {
                let action = match p.state {
                    Wanted::Stopped if u.is_running() => Action::Stop,
                    Wanted::Started if !u.is_running() => Action::Start,
                    Wanted::Restarted => Action::Restart,
                    _ => Action::None,
                };
                (*u, action)
            })
            .collect();
        let enable_changes: Vec<(&UnitState, bool)> = match p.enabled {
            Some(wanted) => present
                .iter()
                .filter(|u| u.can_toggle_enable() && u.is_enabled() != wanted)
                .map(|u| (*u, wanted))
                .collect(),
            None => Vec::new(),
        };
        let changed = reload || actions.iter().any(|(_, a)| *a != Action::None) || !enable_changes.is_empty();

        if changed && !ctx.check_mode {
            if reload {
                systemctl.daemon_reload()?;
            }
            for (unit, wanted) in &enable_changes {
                systemctl.set_enabled(&unit.name, *wanted)?;
            }
            // Stops in the order given...
            for (unit, action) in &actions {
                if matches!(action, Action::Stop) || (matches!(action, Action::Restart) && unit.is_running())
                {
                    systemctl.stop(&unit.name)?;
                }
            }
            // ...starts in reverse, then all are watched together to stay up.
            let mut started = Vec::new();
            for (unit, action) in actions.iter().rev() {
                if matches!(action, Action::Start | Action::Restart) {
                    started.push((unit.name.clone(), systemctl.start(&unit.name)?));
                }
            }
            systemctl.settle(&started, p.settle.duration())?;
        }

        let after = if changed && !ctx.check_mode {
            systemctl.show_brief(&units, false)?
        } else {
            before.clone()
        };
        let report: Vec<Value> = before
            .iter()
            .map(|b| {
                let action = actions.iter().find(|(u, _)| u.name == b.name).map(|(_, a)| *a);
                let a = after.iter().find(|u| u.name == b.name);
                json!({
                    "name": b.name,
                    "before": b.active_state,
                    "after": a.map(|u| u.active_state.clone()),
                    "action": match action {
                        None => "missing",
                        Some(Action::None) => "none",
                        Some(Action::Stop) => "stop",
                        Some(Action::Start) => "start",
                        Some(Action::Restart) => "restart",
                    },
                })
            })
            .collect();
        let wanted_state = |u: &UnitState, action: Option<Action>| -> String {
            match action {
                Some(Action::Stop) => "inactive".into(),
                Some(Action::Start | Action::Restart) => "active".into(),
                _ => u.active_state.clone(),
            }
        };
        let diff_before: Map<String, Value> = before
            .iter()
            .map(|u| (u.name.clone(), json!(u.active_state)))
            .collect();
        let diff_after: Map<String, Value> = before
            .iter()
            .map(|u| {
                let action = actions.iter().find(|(x, _)| x.name == u.name).map(|(_, a)| *a);
                (u.name.clone(), json!(wanted_state(u, action)))
            })
            .collect();
        // In the order they are (or would be) done: stops in list order, then starts in reverse.
        let stops = actions
            .iter()
            .filter(|(u, a)| *a == Action::Stop || (*a == Action::Restart && u.is_running()));
        let starts = actions
            .iter()
            .rev()
            .filter(|(_, a)| matches!(a, Action::Start | Action::Restart));
        let touched: Vec<String> = stops
            .map(|(u, _)| format!("stop {}", u.name))
            .chain(starts.map(|(u, _)| format!("start {}", u.name)))
            .collect();
        let verb = if ctx.check_mode { "would " } else { "" };
        let mut msg = if touched.is_empty() && !reload && enable_changes.is_empty() {
            format!(
                "{} already {}",
                present
                    .iter()
                    .map(|u| u.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                wanted_word(p.state)
            )
        } else {
            let mut parts = Vec::new();
            if reload {
                parts.push(format!("{verb}daemon-reload"));
            }
            parts.extend(
                enable_changes
                    .iter()
                    .map(|(u, e)| format!("{verb}{} {}", if *e { "enable" } else { "disable" }, u.name)),
            );
            parts.extend(touched.iter().map(|t| format!("{verb}{t}")));
            parts.join(", ")
        };
        if !missing.is_empty() {
            msg.push_str(&format!(" (not present, ignored: {})", missing.join(", ")));
        }
        let outcome = if changed {
            Outcome::changed(msg)
        } else {
            Outcome::unchanged(msg)
        };
        let outcome = match systemctl.bus_error.borrow_mut().take() {
            Some(why) => outcome.warn(why),
            None => outcome,
        };
        Ok(outcome
            .with("units", report)
            .with("daemon_reloaded", reload && !ctx.check_mode)
            .with("missing", missing)
            .with_diff(Value::Object(diff_before), Value::Object(diff_after)))
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
