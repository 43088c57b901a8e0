//! Unit state, read over D-Bus (`systemctl show` as the fallback), and the few verbs we need,
//! done with systemctl: built as values by [`systemctl`], run by [`Systemctl::run`] and
//! [`Systemctl::start`].

use module_kit::command::Command;
use module_kit::Failure;
use std::cell::RefCell;
use std::time::{Duration, Instant};
use systemd_bus::{Bus, Value};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitState {
    pub name: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    pub unit_file_state: String,
    pub need_daemon_reload: bool,
    pub restarts: u64,
}

impl UnitState {
    pub fn exists(&self) -> bool {
        self.load_state != "not-found"
    }

    /// Running or on its way there (a stop is still needed; a start is not).
    pub fn is_running(&self) -> bool {
        matches!(self.active_state.as_str(), "active" | "activating" | "reloading")
    }

    pub fn is_enabled(&self) -> bool {
        self.unit_file_state.starts_with("enabled")
    }

    /// Static, masked, generated or transient units cannot be enabled or disabled.
    pub fn can_toggle_enable(&self) -> bool {
        matches!(
            self.unit_file_state.as_str(),
            "enabled" | "disabled" | "enabled-runtime"
        )
    }
}

/// `systemctl ARGS` with a timeout: the commands a plan runs, as values.
pub fn systemctl(args: &[&str], timeout: Duration) -> Command {
    Command::new("systemctl").args(args).timeout(timeout)
}

pub struct Systemctl {
    pub timeout: Duration,
    /// One connection for all reads of a run; `None` once the bus proved unusable.
    bus: RefCell<Option<Bus>>,
    /// Why reads went through systemctl instead, when the bus was tried and failed.
    pub bus_error: RefCell<Option<String>>,
}

/// Set to `systemctl` to read unit state with `systemctl show` (the fallback) instead of the bus.
pub const BACKEND_ENV: &str = "KUP_SYSTEMD_BACKEND";

const PROPERTIES: &str = "Id,LoadState,ActiveState,SubState,UnitFileState,NeedDaemonReload,NRestarts";

impl Systemctl {
    pub fn new(timeout: Duration) -> Self {
        let bus = match std::env::var(BACKEND_ENV).as_deref() {
            Ok("systemctl") => None,
            // No bus and no private socket (systemd is not PID 1?): systemctl will say what is wrong.
            _ => Bus::connect_systemd(timeout.min(Duration::from_secs(5))).ok(),
        };
        Self::with_bus(bus, timeout)
    }

    /// Reads over `bus`, or with systemctl when there is none.
    pub fn with_bus(bus: Option<Bus>, timeout: Duration) -> Self {
        Systemctl {
            timeout,
            bus: RefCell::new(bus),
            bus_error: RefCell::new(None),
        }
    }

    /// The full state of every unit, in the order given.
    pub fn show(&self, units: &[String]) -> Result<Vec<UnitState>, Failure> {
        self.read(units, &FULL)
    }

    /// What deciding needs (existence, activity, pending daemon-reload, and enablement when
    /// asked): on the bus, fewer reads make the common no-op run faster.
    pub fn show_brief(&self, units: &[String], enablement: bool) -> Result<Vec<UnitState>, Failure> {
        self.read(
            units,
            if enablement {
                &BRIEF_WITH_ENABLEMENT
            } else {
                &BRIEF
            },
        )
    }

    fn read(&self, units: &[String], properties: &[&str]) -> Result<Vec<UnitState>, Failure> {
        let mut slot = self.bus.borrow_mut();
        if let Some(bus) = slot.as_mut() {
            match read_units(bus, units, properties) {
                Ok(states) => return Ok(states),
                Err(e) => {
                    *self.bus_error.borrow_mut() =
                        Some(format!("{e}; read unit state with systemctl instead"));
                    *slot = None;
                }
            }
        }
        drop(slot);
        self.show_with_systemctl(units)
    }

    fn show_with_systemctl(&self, units: &[String]) -> Result<Vec<UnitState>, Failure> {
        let out = Command::new("systemctl")
            .args(["show", "--no-pager", "-p", PROPERTIES, "--"])
            .args(units)
            .timeout(self.timeout)
            .run_checked()?;
        let blocks: Vec<&str> = out
            .stdout
            .split("\n\n")
            .filter(|b| !b.trim().is_empty())
            .collect();
        if blocks.len() != units.len() {
            return Err(Failure::new(format!(
                "systemctl show returned {} units for {} asked: {}",
                blocks.len(),
                units.len(),
                out.stdout.trim()
            )));
        }
        Ok(units
            .iter()
            .zip(blocks)
            .map(|(name, block)| parse(name, block))
            .collect())
    }

    /// Runs a systemctl verb (daemon-reload, enable, disable, stop); a non-zero exit fails.
    pub fn run(&self, command: &Command) -> Result<(), Failure> {
        command.run_checked().map(|_| ()).map_err(Failure::from)
    }

    /// Runs `command`, the start of `unit`; returns the unit's restart count before, for
    /// [`Systemctl::settle`]. A failure carries the unit's status and journal.
    pub fn start(&self, unit: &str, command: &Command) -> Result<u64, Failure> {
        let units = [unit.to_string()];
        let restarts_before = self.show(&units)?.first().map(|u| u.restarts).unwrap_or(0);
        self.run(command).map_err(|f| self.explain(unit, f))?;
        Ok(restarts_before)
    }

    /// Watches started units together for `settle`: each must stay active without restarting.
    pub fn settle(&self, started: &[(String, u64)], settle: Duration) -> Result<(), Failure> {
        if started.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = started.iter().map(|(u, _)| u.clone()).collect();
        let deadline = Instant::now() + settle;
        loop {
            let now = self.show(&names)?;
            for (unit, (_, restarts_before)) in now.iter().zip(started) {
                let crashed = (unit.active_state != "activating" && unit.active_state != "active")
                    || unit.sub_state == "auto-restart"
                    || unit.restarts > *restarts_before;
                if crashed {
                    let state = format!(
                        "{} ({}), {} restarts",
                        unit.active_state, unit.sub_state, unit.restarts
                    );
                    let msg = format!("{} did not stay up after starting: {state}", unit.name);
                    return Err(self.explain(&unit.name, Failure::new(msg)));
                }
            }
            if Instant::now() >= deadline {
                return match now.iter().find(|u| u.active_state != "active") {
                    None => Ok(()),
                    Some(u) => Err(self.explain(
                        &u.name,
                        Failure::new(format!(
                            "{} is still starting after {} s",
                            u.name,
                            settle.as_secs()
                        )),
                    )),
                };
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Adds `systemctl status` and the last journal lines of the unit to a failure.
    fn explain(&self, unit: &str, failure: Failure) -> Failure {
        let status = output_or_nothing(
            "systemctl",
            &["status", "--no-pager", "-l", "-n", "0", "--", unit],
        );
        let journal = output_or_nothing("journalctl", &["--no-pager", "-o", "cat", "-n", "20", "-u", unit]);
        // The unit's own last words, not systemd's lines about it ("kubelet.service: Failed ...").
        let systemd_line = |l: &str| {
            l.starts_with(&format!("{unit}:"))
                || [
                    "Started ",
                    "Starting ",
                    "Stopped ",
                    "Stopping ",
                    "Failed to start ",
                ]
                .iter()
                .any(|p| l.starts_with(p))
        };
        let last = journal
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty() && !systemd_line(l))
            .or_else(|| journal.lines().rev().map(str::trim).find(|l| !l.is_empty()))
            .unwrap_or("")
            .to_string();
        let msg = if last.is_empty() {
            failure.msg.clone()
        } else {
            format!("{}; last log line: {last}", failure.msg)
        };
        let mut failure = failure.with("status", status).with("journal", journal);
        failure.msg = msg;
        failure
    }
}

/// What a diagnostic command printed, or nothing if it could not be run.
fn output_or_nothing(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .timeout(Duration::from_secs(15))
        .run()
        .map(|o| o.stdout)
        .unwrap_or_default()
}

const FULL: [&str; 6] = [
    "LoadState",
    "ActiveState",
    "NeedDaemonReload",
    "UnitFileState",
    "SubState",
    "NRestarts",
];
const BRIEF: [&str; 3] = ["LoadState", "ActiveState", "NeedDaemonReload"];
const BRIEF_WITH_ENABLEMENT: [&str; 4] = ["LoadState", "ActiveState", "NeedDaemonReload", "UnitFileState"];

/// The named properties of every unit, read over the bus in one round trip; those not asked
/// for keep their empty defaults.
fn read_units(
    bus: &mut Bus,
    units: &[String],
    properties: &[&str],
) -> Result<Vec<UnitState>, systemd_bus::Error> {
    // Only services count restarts; other unit types have no such interface.
    let interface = |p: &str| match p {
        "NRestarts" => "org.freedesktop.systemd1.Service",
        _ => "org.freedesktop.systemd1.Unit",
    };
    let asked: Vec<(&str, &str)> = properties.iter().map(|p| (interface(p), *p)).collect();
    let names: Vec<&str> = units.iter().map(String::as_str).collect();
    let all = bus.unit_properties(&names, &asked)?;
    let mut states = Vec::new();
    for (name, values) in units.iter().zip(all) {
        let mut state = UnitState {
            name: name.clone(),
            ..UnitState::default()
        };
        for (property, value) in properties.iter().zip(values) {
            let value = match (value, *property) {
                (Ok(v), _) => v,
                (Err(systemd_bus::Error::Call { .. }), "NRestarts") => continue,
                (Err(e), _) => return Err(e),
            };
            match *property {
                "LoadState" => state.load_state = value.to_string(),
                "ActiveState" => state.active_state = value.to_string(),
                "SubState" => state.sub_state = value.to_string(),
                "UnitFileState" => state.unit_file_state = value.to_string(),
                "NeedDaemonReload" => state.need_daemon_reload = value == Value::Bool(true),
                _ => {
                    if let Value::Unsigned(n) = value {
                        state.restarts = n;
                    }
                }
            }
        }
        states.push(state);
    }
    Ok(states)
}

fn parse(name: &str, block: &str) -> UnitState {
    let get = |key: &str| {
        block
            .lines()
            .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
            .unwrap_or("")
            .to_string()
    };
    UnitState {
        name: name.to_string(),
        load_state: get("LoadState"),
        active_state: get("ActiveState"),
        sub_state: get("SubState"),
        unit_file_state: get("UnitFileState"),
        need_daemon_reload: get("NeedDaemonReload") == "yes",
        restarts: get("NRestarts").parse().unwrap_or(0),
    }
}
