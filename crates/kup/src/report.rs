//! Progress (a live host x step table on a terminal, plain lines when stderr is not one, or a
//! JSON event stream with `--json`) and the final report: per host, the kubelet versions before
//! and after, the steps, the changes, the time.

use crate::live::{Live, TICK};
use crate::runlog::{self, RunLog};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct StepEvent {
    pub host: String,
    pub step: String,
    pub module: String,
    pub status: &'static str,
    pub changed: bool,
    pub seconds: f64,
    pub msg: String,
    pub result: Value,
}

impl StepEvent {
    pub fn skipped(host: &str, step: &str, module: &str) -> StepEvent {
        StepEvent {
            host: host.into(),
            step: step.into(),
            module: module.into(),
            status: "done",
            changed: false,
            seconds: 0.0,
            msg: "already done (journal)".into(),
            result: Value::Null,
        }
    }

    pub fn ran(host: &str, step: &str, module: &str, result: &Value, seconds: f64) -> StepEvent {
        let failed = result["failed"].as_bool().unwrap_or(true);
        let changed = result["changed"].as_bool().unwrap_or(false);
        StepEvent {
            host: host.into(),
            step: step.into(),
            module: module.into(),
            status: if failed {
                "FAILED"
            } else if changed {
                "changed"
            } else {
                "ok"
            },
            changed,
            seconds,
            msg: result["msg"].as_str().unwrap_or("").to_string(),
            result: result.clone(),
        }
    }
}

#[derive(Default)]
struct HostSummary {
    steps: usize,
    changed: usize,
    seconds: f64,
    kubelet_before: Option<String>,
    kubelet_after: Option<String>,
    notes: Vec<String>,
}

pub struct Reporter {
    json: bool,
    /// Prints nothing (the procedure's unit tests).
    quiet: bool,
    started: Instant,
    hosts: Mutex<BTreeMap<String, HostSummary>>,
    live: Option<Arc<Mutex<Live>>>,
    /// The run log: every event, with each module's full result.
    log: Option<Arc<RunLog>>,
    /// `-v`: each step's message in full; `-vv`: also the module's result (redacted), on stderr.
    verbose: u8,
}

impl Reporter {
    /// `hosts` in inventory order: the rows of the live view, shown when stderr is a terminal.
    pub fn new(json: bool, hosts: &[String]) -> Reporter {
        let terminal = std::io::stderr().is_terminal()
            && std::env::var("TERM").is_ok_and(|t| !t.is_empty() && t != "dumb");
        let live = (!json && terminal).then(|| Arc::new(Mutex::new(Live::new(hosts))));
        if let Some(live) = &live {
            let live = Arc::clone(live);
            // Ticks the running step's elapsed time; ends when the view is frozen by `finish`.
            std::thread::spawn(move || loop {
                std::thread::sleep(TICK);
                let Ok(mut view) = live.lock() else { return };
                if !view.active {
                    return;
                }
                if view.ticking() {
                    view.draw(&mut std::io::stderr().lock(), &[], Instant::now());
                }
            });
        }
        Reporter {
            json,
            quiet: false,
            started: Instant::now(),
            hosts: Mutex::new(BTreeMap::new()),
            live,
            log: None,
            verbose: 0,
        }
    }

    /// Every event also goes to `log`.
    pub fn with_log(mut self, log: Option<Arc<RunLog>>) -> Reporter {
        self.log = log;
        self
    }

    pub fn with_verbosity(mut self, verbose: u8) -> Reporter {
        self.verbose = verbose;
        self
    }

    /// A reporter that keeps its tallies and prints nothing (kup status, the tests).
    pub fn silent() -> Reporter {
        Reporter {
            json: true,
            quiet: true,
            started: Instant::now(),
            hosts: Mutex::new(BTreeMap::new()),
            live: None,
            log: None,
            verbose: 0,
        }
    }

    fn emit(&self, line: String) {
        if self.quiet {
            return;
        }
        if self.json {
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        } else if let Some(mut view) = self.live.as_ref().and_then(|l| l.lock().ok()) {
            view.draw(&mut std::io::stderr().lock(), &[line], Instant::now());
        } else {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }

    /// A step has started on `host` (shown in the live view only).
    pub fn running(&self, host: &str, step: &str) {
        if let Some(log) = &self.log {
            log.record("running", json!({"host": host, "step": step}));
        }
        if let Some(mut view) = self.live.as_ref().and_then(|l| l.lock().ok()) {
            view.running(host, step, Instant::now());
            view.draw(&mut std::io::stderr().lock(), &[], Instant::now());
        }
    }

    pub fn step(&self, e: StepEvent) {
        if let Some(log) = &self.log {
            log.record(
                "step",
                json!({"host": e.host, "step": e.step, "module": e.module, "status": e.status,
                       "changed": e.changed, "seconds": round(e.seconds), "msg": e.msg, "result": e.result}),
            );
        }
        if let Ok(mut hosts) = self.hosts.lock() {
            let h = hosts.entry(e.host.clone()).or_default();
            h.steps += 1;
            h.changed += usize::from(e.changed);
            h.seconds += e.seconds;
            let kubelet = e.result["packages"]
                .as_array()
                .and_then(|p| p.iter().find(|p| p["name"] == "kubelet"));
            if let Some(kubelet) = kubelet {
                let before = kubelet["before"].as_str().map(str::to_string);
                if h.kubelet_before.is_none() {
                    h.kubelet_before = before.clone();
                }
                // A check only tells what is installed now; the real step what is installed after.
                h.kubelet_after = if e.step == "packages" {
                    kubelet["after"].as_str().map(str::to_string)
                } else {
                    before
                };
            }
        }
        if let Some(mut view) = self.live.as_ref().and_then(|l| l.lock().ok()) {
            view.finished(&e.host, &e.step, e.status, e.seconds);
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        if self.json {
            self.emit(
                json!({"event": "step", "at": round(elapsed), "host": e.host, "step": e.step, "module": e.module,
                       "status": e.status, "changed": e.changed, "seconds": round(e.seconds), "msg": e.msg})
                .to_string(),
            );
        } else {
            self.emit(step_line(&e, elapsed, self.verbose));
        }
        if self.verbose >= 2 && !e.result.is_null() {
            let result = serde_json::to_string_pretty(&runlog::redact(e.result.clone())).unwrap_or_default();
            let text = format!("{} {} result:\n{result}", e.host, e.step);
            if self.json {
                // stdout is the event stream: the result goes beside it, on stderr.
                if !self.quiet {
                    let _ = writeln!(std::io::stderr().lock(), "{text}");
                }
            } else {
                self.emit(text);
            }
        }
    }

    pub fn note(&self, host: &str, text: &str) {
        if let Some(log) = &self.log {
            log.record("note", json!({"host": host, "msg": text}));
        }
        if let Ok(mut hosts) = self.hosts.lock() {
            hosts
                .entry(host.to_string())
                .or_default()
                .notes
                .push(text.to_string());
        }
        if self.json {
            self.emit(json!({"event": "note", "host": host, "msg": text}).to_string());
        } else {
            self.emit(format!(
                "{:>7.1}s  {host:<12} {text}",
                self.started.elapsed().as_secs_f64()
            ));
        }
    }

    pub fn phase(&self, name: &str) {
        if let Some(log) = &self.log {
            log.record("phase", json!({"name": name}));
        }
        if self.json {
            self.emit(json!({"event": "phase", "name": name}).to_string());
        } else {
            self.emit(format!("== {name}"));
        }
    }

    /// The final report (stdout), and the totals for the caller. The live view stays on screen
    /// as it last was, above the report.
    pub fn finish(&self, outcome: &str, target: Option<String>) -> (usize, usize) {
        if let Some(mut view) = self.live.as_ref().and_then(|l| l.lock().ok()) {
            view.draw(&mut std::io::stderr().lock(), &[], Instant::now());
            view.freeze();
        }
        let hosts = self.hosts.lock().map(|h| {
            h.iter()
                .map(|(k, v)| (k.clone(), summary_json(v)))
                .collect::<Vec<_>>()
        });
        let hosts = hosts.unwrap_or_default();
        let changed: usize = hosts
            .iter()
            .map(|(_, v)| v["changed"].as_u64().unwrap_or(0) as usize)
            .sum();
        let steps: usize = hosts
            .iter()
            .map(|(_, v)| v["steps"].as_u64().unwrap_or(0) as usize)
            .sum();
        let seconds = round(self.started.elapsed().as_secs_f64());
        if let Some(log) = &self.log {
            let map: serde_json::Map<String, Value> = hosts.iter().cloned().collect();
            log.record(
                "report",
                json!({"outcome": outcome, "target": target, "seconds": seconds, "steps": steps,
                       "changed": changed, "hosts": map}),
            );
        }
        if self.json {
            let map: serde_json::Map<String, Value> = hosts.into_iter().collect();
            self.emit(
                json!({"event": "report", "outcome": outcome, "target": target, "seconds": seconds,
                             "steps": steps, "changed": changed, "hosts": map})
                .to_string(),
            );
        } else {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "\n{outcome}: {steps} steps, {changed} changed, {seconds:.1} s"
            );
            let _ = writeln!(
                out,
                "{:<14} {:>5} {:>7} {:>8}  {:<12} {:<12} notes",
                "HOST", "STEPS", "CHANGED", "SECONDS", "KUBELET", "NOW"
            );
            for (name, v) in hosts {
                let _ = writeln!(
                    out,
                    "{name:<14} {:>5} {:>7} {:>8.1}  {:<12} {:<12} {}",
                    v["steps"].as_u64().unwrap_or(0),
                    v["changed"].as_u64().unwrap_or(0),
                    v["seconds"].as_f64().unwrap_or(0.0),
                    v["kubelet_before"].as_str().unwrap_or("-"),
                    v["kubelet_after"].as_str().unwrap_or("-"),
                    v["notes"]
                        .as_array()
                        .map(|n| n.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "))
                        .unwrap_or_default()
                );
            }
        }
        (steps, changed)
    }
}

/// A step's progress line: its message cut to one line of 150 characters, or (`-v`) in full.
fn step_line(e: &StepEvent, elapsed: f64, verbose: u8) -> String {
    let msg: String = if verbose >= 1 {
        e.msg.clone()
    } else {
        e.msg.lines().next().unwrap_or("").chars().take(150).collect()
    };
    format!(
        "{elapsed:>7.1}s  {:<12} {:<24} {:<8} {:>6.1}s  {msg}",
        e.host, e.step, e.status, e.seconds
    )
}

fn summary_json(h: &HostSummary) -> Value {
    json!({"steps": h.steps, "changed": h.changed, "seconds": round(h.seconds),
           "kubelet_before": h.kubelet_before, "kubelet_after": h.kubelet_after, "notes": h.notes})
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn verbose_lines_keep_the_whole_message() {
        let long = format!("first line {}\nsecond line: the reason", "x".repeat(200));
        let e = StepEvent::ran(
            "cp1",
            "packages",
            "package_pin",
            &json!({"failed": true, "msg": long}),
            1.0,
        );
        let short = step_line(&e, 2.0, 0);
        assert!(!short.contains('\n') && !short.contains("second line"), "{short}");
        assert!(short.ends_with(&"x".repeat(139)), "cut at 150: {short}");
        let full = step_line(&e, 2.0, 1);
        assert!(full.ends_with(&long), "{full}");
        assert!(full.contains("FAILED"));
    }

    #[test]
    fn every_event_reaches_the_log_with_the_full_result() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(RunLog::open(&dir.path().join("run.log"), false).unwrap());
        let reporter = Reporter::silent().with_log(Some(Arc::clone(&log)));
        reporter.phase("preflight");
        reporter.running("cp1", "packages");
        let result = json!({"failed": true, "changed": false, "msg": "apt-get failed", "rc": 100,
                            "stdout": "Reading package lists...", "stderr": "E: Unable to locate package kubelet"});
        reporter.step(StepEvent::ran("cp1", "packages", "package_pin", &result, 3.0));
        reporter.note("cp1", "a note");
        reporter.finish("stopped", Some("v1.9.2".into()));
        let text = std::fs::read_to_string(log.path()).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
        assert_eq!(events, ["phase", "running", "step", "note", "report"]);
        assert_eq!(lines[2]["result"], result, "the module's whole result");
        assert_eq!(lines[2]["status"], "FAILED");
        assert_eq!(lines[4]["hosts"]["cp1"]["steps"], 1);
    }
}
