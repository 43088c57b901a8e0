//! Progress (a live host x step table on a terminal, plain lines when stderr is not one, or a
//! JSON event stream with `--json`, see [`crate::events`]) and the final report: per host, the
//! kubelet versions before and after (this run's, else the journal's for a host an earlier run did,
//! else the cluster's), the steps, the changes, the time; each node's out-of-service window and the
//! run's critical path ([`Timeline`]), from the step-start and step events alone. While a step
//! runs, its module's progress lines (why a drain or a readiness wait still waits) reach the view,
//! the stream and the log through [`progress`].

use crate::live::{Live, TICK};
use crate::runlog::{self, RunLog};
use crate::{events, journal};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

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

/// What one host's steps said of its kubelet package, and what the cluster said of its node.
#[derive(Default)]
struct HostSummary {
    steps: usize,
    /// Steps an earlier run had done (the journal's).
    earlier: usize,
    changed: usize,
    seconds: f64,
    /// The kubelet package: installed when this run first looked, installed by this run's
    /// `packages` step, installed at the latest look, and what a check would install.
    kubelet_first: Option<String>,
    kubelet_installed: Option<String>,
    kubelet_now: Option<String>,
    kubelet_planned: Option<String>,
    /// The node's kubelet as the API server reported it: at the run's survey, and at its last
    /// readiness check.
    live_before: Option<String>,
    live_after: Option<String>,
    notes: Vec<String>,
}

/// Where a version in the report comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// This run's steps.
    Run,
    /// The journal: an earlier run's steps.
    Journal,
    /// The API server (a node's kubeletVersion).
    Cluster,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Run => "run",
            Source::Journal => "journal",
            Source::Cluster => "cluster",
        }
    }
}

/// A host's kubelet before and after, and where each was found.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeletRow {
    pub before: Option<(String, Source)>,
    pub after: Option<(String, Source)>,
}

impl HostSummary {
    /// `plan`: after is what the check would install; else what this run installed, else what an
    /// earlier run did (the journal), else what is installed now, else what the cluster says.
    fn kubelet(&self, plan: bool, journal: Option<&journal::Kubelet>) -> KubeletRow {
        let run = |v: &Option<String>| v.clone().map(|v| (v, Source::Run));
        let earlier = |v: Option<&String>| v.cloned().map(|v| (v, Source::Journal));
        let cluster = |v: &Option<String>| v.clone().map(|v| (v, Source::Cluster));
        if plan {
            return KubeletRow {
                before: run(&self.kubelet_first).or_else(|| cluster(&self.live_before)),
                after: run(&self.kubelet_planned),
            };
        }
        let before = earlier(journal.and_then(|j| j.before.as_ref()))
            .or_else(|| run(&self.kubelet_first))
            // A node an earlier run upgraded is at the target already when this run surveys it.
            .or_else(|| (self.earlier == 0).then(|| cluster(&self.live_before)).flatten());
        let after = run(&self.kubelet_installed)
            .or_else(|| earlier(journal.and_then(|j| j.after.as_ref())))
            .or_else(|| run(&self.kubelet_now))
            .or_else(|| cluster(&self.live_after));
        KubeletRow { before, after }
    }
}

/// The steps whose time is a wait kup cannot avoid: drains, kubeadm, package transactions, services
/// coming back, Ready. Their time, overlaps counted once, is the run's critical path. A repository
/// switch that changed something counts too: its index refresh is the `apt-get update` / `dnf
/// makecache` of upstream's package step (kubernetes.io "Upgrading kubeadm clusters"); one that
/// found the repository switched already is kup's own round trip.
pub const CRITICAL_STEPS: &[&str] = &[
    "drain",
    "kubeadm-apply",
    "kubeadm-node",
    "kubeadm-package",
    "packages",
    "start-services",
    "restart-kubelet",
    "node-ready",
    "control-plane-ready",
];

/// The steps that take a node out of service, and those that put it back (a rolled-back worker's
/// uncordon too).
const TAKE_OUT: &[&str] = &["cordon", "drain"];
const PUT_BACK: &[&str] = &["uncordon", "rollback-uncordon"];

/// When steps ran, in seconds since kup started, as the step-start and step events tell it: each
/// node's out-of-service window (its take-out step's start to the end of its uncordon) and the
/// intervals of the [`CRITICAL_STEPS`].
#[derive(Debug, Default)]
pub struct Timeline {
    /// (host, step) -> when its step-start came.
    started: BTreeMap<(String, String), f64>,
    /// Host -> the take-out step and when it began, while the node is out of service.
    out_since: BTreeMap<String, (String, f64)>,
    /// Host -> seconds out of service in windows that closed (a run of several minors takes a node
    /// out once per minor).
    out_total: BTreeMap<String, f64>,
    /// The critical steps' (start, end).
    waits: Vec<(f64, f64)>,
}

/// A node's time out of service this run.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Seconds out of service: its windows' total; an open one counts up to the time asked.
    pub seconds: f64,
    /// Still out of service: the take-out step and when it began.
    pub open: Option<(String, f64)>,
}

impl Timeline {
    /// A step began on `host` at `at`.
    pub fn started(&mut self, host: &str, step: &str, at: f64) {
        self.started.insert((host.to_string(), step.to_string()), at);
        if TAKE_OUT.contains(&step) {
            self.out_since
                .entry(host.to_string())
                .or_insert_with(|| (step.to_string(), at));
        }
    }

    /// A step ended on `host` at `at` after `seconds`, with kup's `status` (`done`: the journal
    /// had it, nothing ran this run).
    pub fn ended(&mut self, host: &str, step: &str, status: &str, seconds: f64, at: f64) {
        let begun = self.started.remove(&(host.to_string(), step.to_string()));
        if status == "done" {
            return;
        }
        let from = begun.unwrap_or(at - seconds).max(0.0).min(at);
        if CRITICAL_STEPS.contains(&step) || (step == "package-repo" && status == "changed") {
            self.waits.push((from, at));
        }
        if TAKE_OUT.contains(&step) {
            // A take-out step without its step-start: its start is its end less its time.
            self.out_since
                .entry(host.to_string())
                .or_insert_with(|| (step.to_string(), from));
        }
        if PUT_BACK.contains(&step) && status != "FAILED" {
            if let Some((_, since)) = self.out_since.remove(host) {
                *self.out_total.entry(host.to_string()).or_default() += at - since;
            }
        }
    }

    /// `host`'s time out of service this run as of `now`; None when this run never took it out.
    pub fn out_of_service(&self, host: &str, now: f64) -> Option<Window> {
        let closed = self.out_total.get(host).copied();
        let open = self.out_since.get(host).cloned();
        if closed.is_none() && open.is_none() {
            return None;
        }
        let seconds = closed.unwrap_or(0.0) + open.as_ref().map_or(0.0, |(_, since)| (now - since).max(0.0));
        Some(Window { seconds, open })
    }

    /// The critical path: the union of the critical steps' intervals (steps of hosts that ran at the
    /// same time count once).
    pub fn critical_path(&self) -> f64 {
        union_length(&self.waits)
    }
}

/// The length of the union of `intervals` (start, end): overlapping ones merged.
pub fn union_length(intervals: &[(f64, f64)]) -> f64 {
    let mut sorted: Vec<(f64, f64)> = intervals.iter().copied().filter(|(a, b)| b > a).collect();
    sorted.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut total = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for (start, end) in sorted {
        current = match current {
            Some((a, b)) if start <= b => Some((a, b.max(end))),
            Some((a, b)) => {
                total += b - a;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    total + current.map_or(0.0, |(a, b)| b - a)
}

pub struct Reporter {
    json: bool,
    /// Prints nothing (the procedure's unit tests).
    quiet: bool,
    /// `kup plan`: the report shows the kubelet now and what the plan would install.
    plan: bool,
    started: Instant,
    /// Hosts in inventory order (the report's rows).
    order: Vec<String>,
    /// Node name -> host, to place what the cluster says of a node.
    nodes: BTreeMap<String, String>,
    hosts: Mutex<BTreeMap<String, HostSummary>>,
    /// When the steps ran: out-of-service windows and the critical path.
    timeline: Mutex<Timeline>,
    /// The journal's kubelet versions: what an earlier run recorded (read once), and the journal's
    /// own record, where this run's go.
    earlier: Mutex<BTreeMap<String, journal::Kubelet>>,
    versions: Mutex<Option<journal::Versions>>,
    live: Option<Arc<Mutex<Live>>>,
    /// The run log: every event, with each module's full result.
    log: Option<Arc<RunLog>>,
    /// `-v`: each step's message in full; `-vv`: also the module's result (redacted), on stderr.
    verbose: u8,
    /// Where modules' progress lines go (shared with [`progress`] while this reporter lives).
    route: Arc<Route>,
}

/// Plain (non-terminal) output prints a host's progress at most this often.
pub const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(12);

/// What the modules' progress lines need of the reporter: they come from the transport's reader
/// threads (through [`progress`]), which do not hold the reporter.
struct Route {
    json: bool,
    quiet: bool,
    started: Instant,
    live: Option<Arc<Mutex<Live>>>,
    log: Mutex<Option<Arc<RunLog>>>,
    captured: Option<Arc<Mutex<Vec<String>>>>,
    /// Node name -> host.
    nodes: Mutex<BTreeMap<String, String>>,
    /// Host -> its step running now.
    running: Mutex<BTreeMap<String, String>>,
    /// Host -> when plain output last printed its progress.
    printed: Mutex<BTreeMap<String, Instant>>,
}

/// The reporter of this kup's run, for [`progress`]: the one `Reporter::new` made last (a process
/// runs one plan or upgrade); gone with it.
static ROUTE: Mutex<Option<Weak<Route>>> = Mutex::new(None);

/// A module's progress line (`module_kit::progress`) from the transport's sink: `place` is the
/// host the module runs on (`""`: this machine). Shown on the row of the host whose step it serves
/// (the line's node, else `place`), in the `--json` stream and the run log; dropped when no step of
/// those hosts is running (a late line of a step that ended).
pub fn progress(place: &str, module: &str, line: &Value) {
    let route = ROUTE.lock().ok().and_then(|r| r.as_ref().and_then(Weak::upgrade));
    if let Some(route) = route {
        route.progress(place, module, line);
    }
}

impl Route {
    fn new(json: bool, quiet: bool, started: Instant, live: Option<Arc<Mutex<Live>>>) -> Route {
        Route {
            json,
            quiet,
            started,
            live,
            log: Mutex::new(None),
            captured: None,
            nodes: Mutex::new(BTreeMap::new()),
            running: Mutex::new(BTreeMap::new()),
            printed: Mutex::new(BTreeMap::new()),
        }
    }

    fn emit(&self, line: String) {
        if self.quiet {
            return;
        }
        if let Some(captured) = &self.captured {
            if let Ok(mut c) = captured.lock() {
                c.push(line);
            }
        } else if self.json {
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        } else if let Some(mut view) = self.live.as_ref().and_then(|l| l.lock().ok()) {
            // On a terminal, a long line is wrapped between words, its continuation indented.
            let width = terminal_width(std::io::stderr()).unwrap_or(0);
            view.width = width;
            let lines = wrap(&line, width, CONTINUATION);
            view.draw(&mut std::io::stderr().lock(), &lines, Instant::now());
        } else {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }

    /// The host and step a progress line serves: the line's node's host, else `place`, whichever
    /// has a step running.
    fn serves(&self, place: &str, line: &Value) -> Option<(String, String)> {
        let by_node = line["node"]
            .as_str()
            .and_then(|n| self.nodes.lock().ok().and_then(|m| m.get(n).cloned()));
        let running = self.running.lock().ok()?;
        by_node
            .into_iter()
            .chain((!place.is_empty()).then(|| place.to_string()))
            .find_map(|host| running.get(&host).map(|step| (host, step.clone())))
    }

    fn progress(&self, place: &str, module: &str, line: &Value) {
        let Some((host, step)) = self.serves(place, line) else {
            return;
        };
        let text = runlog::redact_text(line["text"].as_str().unwrap_or_default());
        let left = line["left_s"].as_u64();
        let node = line["node"].as_str();
        let now = Instant::now();
        let at = self.started.elapsed().as_secs_f64();
        let fields = json!({"host": host, "step": step, "module": module, "text": text,
                            "left_s": left, "node": node});
        if let Some(log) = self.log.lock().ok().and_then(|l| l.clone()) {
            log.record("progress", fields.clone());
        }
        if self.json {
            let mut e = events::event("progress", fields);
            if let Some(obj) = e.as_object_mut() {
                obj.insert("at".into(), json!(round(at)));
            }
            self.emit(e.to_string());
        } else if let Some(mut view) = self.live.as_ref().and_then(|l| l.lock().ok()) {
            view.progress(&host, &text, left.map(Duration::from_secs), now);
            view.width = terminal_width(std::io::stderr()).unwrap_or(0);
            view.draw(&mut std::io::stderr().lock(), &[], now);
        } else {
            let due = self.printed.lock().is_ok_and(|mut printed| {
                let due = printed
                    .get(&host)
                    .is_none_or(|last| now.duration_since(*last) >= PLAIN_PROGRESS_EVERY);
                if due {
                    printed.insert(host.clone(), now);
                }
                due
            });
            if due {
                self.emit(progress_line(at, &host, &step, &text, left));
            }
        }
    }
}

/// A plain progress line: `  123.4s  lab-w1       drain: ... (312 s left)`.
fn progress_line(at: f64, host: &str, step: &str, text: &str, left: Option<u64>) -> String {
    let left = left.map(|l| format!(" ({l} s left)")).unwrap_or_default();
    format!("{at:>7.1}s  {host:<12} {step}: {text}{left}")
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
                    view.width = terminal_width(std::io::stderr()).unwrap_or(0);
                    view.draw(&mut std::io::stderr().lock(), &[], Instant::now());
                }
            });
        }
        let started = Instant::now();
        let route = Arc::new(Route::new(json, false, started, live.clone()));
        if let Ok(mut current) = ROUTE.lock() {
            *current = Some(Arc::downgrade(&route));
        }
        Reporter {
            json,
            quiet: false,
            plan: false,
            started,
            order: hosts.to_vec(),
            nodes: BTreeMap::new(),
            hosts: Mutex::new(BTreeMap::new()),
            timeline: Mutex::new(Timeline::default()),
            earlier: Mutex::new(BTreeMap::new()),
            versions: Mutex::new(None),
            live,
            log: None,
            verbose: 0,
            route,
        }
    }

    /// Every event also goes to `log`.
    pub fn with_log(mut self, log: Option<Arc<RunLog>>) -> Reporter {
        if let Ok(mut route_log) = self.route.log.lock() {
            route_log.clone_from(&log);
        }
        self.log = log;
        self
    }

    pub fn with_verbosity(mut self, verbose: u8) -> Reporter {
        self.verbose = verbose;
        self
    }

    /// A plan's report: the kubelet now and what the plan would install.
    pub fn for_plan(mut self) -> Reporter {
        self.plan = true;
        self
    }

    /// `(host, node name)` pairs, so that what the API server says of a node lands on its host.
    pub fn with_nodes(mut self, nodes: impl IntoIterator<Item = (String, String)>) -> Reporter {
        self.nodes = nodes.into_iter().map(|(host, node)| (node, host)).collect();
        if let Ok(mut route_nodes) = self.route.nodes.lock() {
            route_nodes.clone_from(&self.nodes);
        }
        self
    }

    /// The journal's record of kubelet versions: what an earlier run found is read now (a host it
    /// finished shows its versions in this run's report), and this run's go there too.
    pub fn keep_versions_in(&self, versions: journal::Versions) {
        if let (Ok(mut earlier), Ok(now)) = (self.earlier.lock(), versions.lock()) {
            *earlier = now.clone();
        }
        if let Ok(mut slot) = self.versions.lock() {
            *slot = Some(versions);
        }
    }

    /// A reporter that keeps its tallies and prints nothing (kup status, the tests).
    pub fn silent() -> Reporter {
        let started = Instant::now();
        Reporter {
            json: true,
            quiet: true,
            plan: false,
            started,
            order: Vec::new(),
            nodes: BTreeMap::new(),
            hosts: Mutex::new(BTreeMap::new()),
            timeline: Mutex::new(Timeline::default()),
            earlier: Mutex::new(BTreeMap::new()),
            versions: Mutex::new(None),
            live: None,
            log: None,
            verbose: 0,
            route: Arc::new(Route::new(true, true, started, None)),
        }
    }

    /// A `--json` reporter whose events are kept (see [`Reporter::captured`]) instead of printed.
    #[cfg(test)]
    pub fn capturing(hosts: &[String]) -> Reporter {
        let silent = Reporter::silent();
        let mut route = Route::new(true, false, silent.started, None);
        route.captured = Some(Arc::new(Mutex::new(Vec::new())));
        Reporter {
            json: true,
            quiet: false,
            order: hosts.to_vec(),
            route: Arc::new(route),
            ..silent
        }
    }

    /// A module's progress line for this reporter (what [`progress`] does for the run's).
    #[cfg(test)]
    pub fn progress(&self, place: &str, module: &str, line: &Value) {
        self.route.progress(place, module, line);
    }

    /// The events a [`Reporter::capturing`] reporter was given, as their lines.
    #[cfg(test)]
    pub fn captured(&self) -> Vec<String> {
        self.route
            .captured
            .as_ref()
            .and_then(|c| c.lock().ok().map(|c| c.clone()))
            .unwrap_or_default()
    }

    /// One event of the `--json` stream, with `at` (seconds since kup started).
    fn emit_event(&self, kind: &str, fields: Value) {
        let mut e = events::event(kind, fields);
        if let Some(obj) = e.as_object_mut() {
            obj.insert("at".into(), json!(round(self.started.elapsed().as_secs_f64())));
        }
        self.emit(e.to_string());
    }

    fn emit(&self, line: String) {
        self.route.emit(line);
    }

    /// The stream's first event: what runs, against what, on which hosts.
    pub fn start(&self, command: &str, target: &str, inventory: &std::path::Path) {
        if self.json {
            self.emit_event(
                "start",
                json!({"command": command, "target": target, "inventory": inventory.display().to_string(),
                       "hosts": self.order, "kup_version": env!("CARGO_PKG_VERSION")}),
            );
        }
    }

    /// A step has started on `host` (the live view; `step-start` in the event stream).
    pub fn running(&self, host: &str, step: &str) {
        if let Ok(mut running) = self.route.running.lock() {
            running.insert(host.to_string(), step.to_string());
        }
        if let Ok(mut timeline) = self.timeline.lock() {
            timeline.started(host, step, self.started.elapsed().as_secs_f64());
        }
        if let Some(log) = &self.log {
            log.record("running", json!({"host": host, "step": step}));
        }
        if self.json {
            self.emit_event("step-start", json!({"host": host, "step": step}));
        }
        if let Some(mut view) = self.live.as_ref().and_then(|l| l.lock().ok()) {
            view.running(host, step, Instant::now());
            view.width = terminal_width(std::io::stderr()).unwrap_or(0);
            view.draw(&mut std::io::stderr().lock(), &[], Instant::now());
        }
    }

    /// What a step's result says of kubelets: its host's package, or (a survey, a readiness check)
    /// the nodes as the API server reports them.
    fn learn(&self, h: &mut HostSummary, e: &StepEvent) {
        let kubelet = e.result["packages"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["name"] == "kubelet"));
        if let Some(kubelet) = kubelet {
            let before = kubelet["before"].as_str().map(str::to_string);
            let after = kubelet["after"].as_str().map(str::to_string);
            if h.kubelet_first.is_none() {
                h.kubelet_first = before.clone();
            }
            // A check only tells what is installed now (and what it would install); the real step
            // what is installed after.
            if e.step == "packages" && e.status != "FAILED" {
                h.kubelet_installed = after.clone();
            } else {
                h.kubelet_now = before.clone();
                h.kubelet_planned = after.clone();
            }
            if let Some(versions) = self.versions.lock().ok().and_then(|v| v.clone()) {
                if let Ok(mut versions) = versions.lock() {
                    let v = versions.entry(e.host.clone()).or_default();
                    if v.before.is_none() {
                        v.before = before;
                    }
                    if e.step == "packages" && e.status != "FAILED" {
                        v.after = after;
                    }
                }
            }
        }
    }

    /// What the API server said of the nodes (a survey's or a readiness check's `nodes`).
    fn learn_nodes(&self, hosts: &mut BTreeMap<String, HostSummary>, e: &StepEvent) {
        let survey = e.module == "cluster_survey";
        if !(survey || e.module == "node_ready") {
            return;
        }
        for node in e.result["nodes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let (Some(name), Some(version)) = (node["name"].as_str(), node["kubelet_version"].as_str())
            else {
                continue;
            };
            let Some(host) = self.nodes.get(name) else {
                continue;
            };
            let h = hosts.entry(host.clone()).or_default();
            if survey {
                if h.live_before.is_none() {
                    h.live_before = Some(version.to_string());
                }
            } else {
                h.live_after = Some(version.to_string());
            }
        }
    }

    pub fn step(&self, e: StepEvent) {
        if let Ok(mut running) = self.route.running.lock() {
            if running.get(&e.host) == Some(&e.step) {
                running.remove(&e.host);
            }
        }
        if let Some(log) = &self.log {
            log.record(
                "step",
                json!({"host": e.host, "step": e.step, "module": e.module, "status": e.status,
                       "changed": e.changed, "seconds": round(e.seconds), "msg": e.msg, "result": e.result}),
            );
        }
        if let Ok(mut timeline) = self.timeline.lock() {
            let at = self.started.elapsed().as_secs_f64();
            timeline.ended(&e.host, &e.step, e.status, e.seconds, at);
        }
        if let Ok(mut hosts) = self.hosts.lock() {
            self.learn_nodes(&mut hosts, &e);
            let h = hosts.entry(e.host.clone()).or_default();
            h.steps += 1;
            h.earlier += usize::from(e.status == "done");
            h.changed += usize::from(e.changed);
            h.seconds += e.seconds;
            self.learn(h, &e);
        }
        if let Some(mut view) = self.live.as_ref().and_then(|l| l.lock().ok()) {
            view.finished(&e.host, &e.step, e.status, e.seconds);
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        if self.json {
            let mut fields = json!({"host": e.host, "step": e.step, "module": e.module, "status": e.status,
                                    "changed": e.changed, "seconds": round(e.seconds),
                                    "msg": runlog::redact_text(&e.msg)});
            if e.status == "FAILED" {
                if let Some(obj) = fields.as_object_mut() {
                    obj.extend(events::failure_fields(&e.result));
                }
            }
            self.emit_event("step", fields);
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
            self.emit_event("note", json!({"host": host, "msg": text}));
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
            self.emit_event("phase", json!({"name": name}));
        } else {
            self.emit(format!("== {name}"));
        }
    }

    /// A plan's blockers, every one by name: an event of its own in the stream, before the report.
    pub fn blockers(&self, blockers: &[String]) {
        if let Some(log) = &self.log {
            log.record("blockers", json!({"blockers": blockers}));
        }
        if self.json {
            self.emit_event("blockers", json!({"blockers": blockers}));
        }
    }

    /// Every host's row of the report, in inventory order (then any other host a step named).
    fn rows(&self) -> Vec<(String, Value)> {
        let earlier = self.earlier.lock().map(|e| e.clone()).unwrap_or_default();
        let Ok(hosts) = self.hosts.lock() else {
            return Vec::new();
        };
        let now = self.started.elapsed().as_secs_f64();
        let timeline = self.timeline.lock();
        // Every host of the inventory, also one the run never reached (a complete report).
        let untouched = HostSummary::default();
        let mut names: Vec<&String> = self.order.iter().collect();
        names.extend(hosts.keys().filter(|h| !self.order.contains(h)));
        names
            .into_iter()
            .map(|name| {
                let h = hosts.get(name).unwrap_or(&untouched);
                let kubelet = h.kubelet(self.plan, earlier.get(name));
                let window = timeline.as_ref().ok().and_then(|t| t.out_of_service(name, now));
                (name.clone(), summary_json(h, &kubelet, window.as_ref()))
            })
            .collect()
    }

    /// The final report (stdout), and the totals for the caller. The live view stays on screen
    /// as it last was, above the report. `target`: the resolved target, else as given.
    pub fn finish(&self, outcome: &str, target: Option<String>) -> (usize, usize) {
        if let Some(mut view) = self.live.as_ref().and_then(|l| l.lock().ok()) {
            view.width = terminal_width(std::io::stderr()).unwrap_or(0);
            view.draw(&mut std::io::stderr().lock(), &[], Instant::now());
            view.freeze();
        }
        let hosts = self.rows();
        let total = |key: &str| -> usize {
            hosts
                .iter()
                .map(|(_, v)| v[key].as_u64().unwrap_or(0) as usize)
                .sum()
        };
        let (steps, changed, earlier) = (total("steps"), total("changed"), total("done_earlier"));
        let seconds = round(self.started.elapsed().as_secs_f64());
        let critical = round(self.timeline.lock().map(|t| t.critical_path()).unwrap_or(0.0));
        let map: serde_json::Map<String, Value> = hosts.iter().cloned().collect();
        let report = json!({"outcome": outcome, "target": target, "seconds": seconds, "steps": steps,
                            "done_earlier": earlier, "changed": changed, "hosts": map,
                            "wall": seconds, "critical_path": critical, "ratio": ratio(seconds, critical)});
        if let Some(log) = &self.log {
            log.record("report", report.clone());
        }
        if self.quiet {
            return (steps, changed);
        }
        if self.json {
            self.emit_event("report", report);
        } else {
            let width = terminal_width(std::io::stdout()).unwrap_or(0);
            let text = render_report(&report, &hosts, self.plan, width);
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
        }
        (steps, changed)
    }
}

/// Continuation lines of a wrapped line are indented this much.
const CONTINUATION: usize = 10;

/// The width of the terminal `fd` is, if it is one.
pub fn terminal_width(fd: impl std::os::fd::AsFd) -> Option<usize> {
    rustix::termios::tcgetwinsize(fd)
        .ok()
        .map(|w| usize::from(w.ws_col))
        .filter(|&w| w > 0)
}

/// `text` wrapped at `width` columns between words (0: not at all), each continuation line indented
/// by `indent`: nothing is cut, a word longer than a line stays whole on a line of its own.
pub fn wrap(text: &str, width: usize, indent: usize) -> Vec<String> {
    let indent = if width > indent + 20 { indent } else { 0 };
    let mut out = Vec::new();
    for line in text.split('\n') {
        if width == 0 {
            out.push(line.to_string());
            continue;
        }
        let mut rest = line;
        let mut first = true;
        loop {
            let prefix = if first { 0 } else { indent };
            let avail = width - prefix;
            let pad = " ".repeat(prefix);
            if rest.chars().count() <= avail {
                out.push(format!("{pad}{rest}"));
                break;
            }
            let leading = rest.len() - rest.trim_start().len();
            // The byte where the character after the line's last one starts.
            let edge = rest.char_indices().nth(avail).map_or(rest.len(), |(i, _)| i);
            let space = if rest[edge..].starts_with(' ') {
                Some(edge)
            } else {
                rest[..edge].rfind(' ')
            }
            .filter(|&i| i > leading);
            let cut = match space {
                Some(i) => i,
                // One long word: it stays whole, up to the next space.
                None => match rest[edge..].find(' ') {
                    Some(j) => edge + j,
                    None => {
                        out.push(format!("{pad}{rest}"));
                        break;
                    }
                },
            };
            out.push(format!("{pad}{}", rest[..cut].trim_end()));
            rest = rest[cut..].trim_start();
            first = false;
            if rest.is_empty() {
                break;
            }
        }
    }
    out
}

/// The report as text: the outcome, one row per host under clear headings, then each host's
/// notes. Wrapped at `width` between words (0: lines kept whole).
fn render_report(report: &Value, hosts: &[(String, Value)], plan: bool, width: usize) -> String {
    let mut out = String::new();
    let target = report["target"]
        .as_str()
        .map(|t| format!(" (target {t})"))
        .unwrap_or_default();
    let earlier = report["done_earlier"].as_u64().unwrap_or(0);
    let earlier = if earlier > 0 {
        format!(" ({earlier} done by an earlier run)")
    } else {
        String::new()
    };
    out.push_str(&format!(
        "\n{}{target}: {} steps{earlier}, {} changed, {:.1} s\n",
        report["outcome"].as_str().unwrap_or("?"),
        report["steps"],
        report["changed"],
        report["seconds"].as_f64().unwrap_or(0.0)
    ));
    if !plan {
        // What the run cost beyond the waits it cannot avoid.
        let ratio = report["ratio"]
            .as_f64()
            .map_or("-".to_string(), |r| format!("{r:.2}"));
        out.push_str(&format!(
            "wall {:.1} s, critical path {:.1} s, ratio {ratio}\n",
            report["wall"].as_f64().unwrap_or(0.0),
            report["critical_path"].as_f64().unwrap_or(0.0)
        ));
    }
    let kubelet_heading = if plan {
        "KUBELET NOW -> PLANNED"
    } else {
        "KUBELET BEFORE -> AFTER"
    };
    let kubelets: Vec<String> = hosts
        .iter()
        .map(|(_, v)| {
            let show = |key: &str| v[key].as_str().unwrap_or("?").to_string();
            match (v["kubelet_before"].is_null(), v["kubelet_after"].is_null()) {
                (true, true) => "-".to_string(),
                _ => format!("{} -> {}", show("kubelet_before"), show("kubelet_after")),
            }
        })
        .collect();
    let host_w = hosts.iter().map(|(h, _)| h.len()).max().unwrap_or(0).max(4);
    let kubelet_w = kubelets
        .iter()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max(kubelet_heading.len());
    // An upgrade's rows end with each node's time out of service (- : not taken out this run).
    let out_heading = if plan { "" } else { "  OUT OF SERVICE" };
    out.push_str(&format!(
        "{:<host_w$}  {kubelet_heading:<kubelet_w$}  {:>5}  {:>13}  {:>7}  {:>7}{out_heading}\n",
        "HOST", "STEPS", "DONE EARLIER", "CHANGED", "SECONDS"
    ));
    for ((name, v), kubelet) in hosts.iter().zip(&kubelets) {
        let out_of_service = match (plan, v["out_of_service"].as_f64()) {
            (true, _) => String::new(),
            (false, Some(s)) => format!("  {:>14}", format!("{s:.1}")),
            (false, None) => format!("  {:>14}", "-"),
        };
        out.push_str(&format!(
            "{name:<host_w$}  {kubelet:<kubelet_w$}  {:>5}  {:>13}  {:>7}  {:>7.1}{out_of_service}\n",
            v["steps"].as_u64().unwrap_or(0),
            v["done_earlier"].as_u64().unwrap_or(0),
            v["changed"].as_u64().unwrap_or(0),
            v["seconds"].as_f64().unwrap_or(0.0),
        ));
    }
    let mut notes = Vec::new();
    for (name, v) in hosts {
        let from = |key: &str| v[key].as_str().filter(|s| *s != "run");
        let sources = match (from("kubelet_before_from"), from("kubelet_after_from")) {
            (None, None) => None,
            (b, a) => Some(format!(
                "kubelet before from {}, after from {}",
                source_words(b.or(Some("run"))),
                source_words(a.or(Some("run")))
            )),
        };
        let own = v["notes"].as_array().map(Vec::as_slice).unwrap_or_default();
        for note in own
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .chain(sources)
        {
            notes.push(format!("{name}: {note}"));
        }
    }
    if !notes.is_empty() {
        out.push_str("NOTES\n");
        for note in notes {
            for line in wrap(&note, width, 2) {
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    out
}

fn source_words(source: Option<&str>) -> &'static str {
    match source {
        Some("journal") => "the journal (an earlier run)",
        Some("cluster") => "the cluster",
        Some("run") => "this run",
        _ => "nowhere",
    }
}

/// A step's progress line: the first line of its message whole (how many more it has said), or
/// (`-v`) the whole message.
fn step_line(e: &StepEvent, elapsed: f64, verbose: u8) -> String {
    let msg: String = if verbose >= 1 {
        e.msg.clone()
    } else {
        let mut lines = e.msg.lines();
        let first = lines.next().unwrap_or("").to_string();
        match lines.count() {
            0 => first,
            n => format!("{first} [+{n} lines: -v, or the run log]"),
        }
    };
    format!(
        "{elapsed:>7.1}s  {:<12} {:<24} {:<8} {:>6.1}s  {msg}",
        e.host, e.step, e.status, e.seconds
    )
}

/// A host's row of the report; `window`: its time out of service this run (None: never taken out).
fn summary_json(h: &HostSummary, kubelet: &KubeletRow, window: Option<&Window>) -> Value {
    let value = |v: &Option<(String, Source)>| v.as_ref().map(|(v, _)| v.clone());
    let source = |v: &Option<(String, Source)>| v.as_ref().map(|(_, s)| s.name());
    let mut notes = h.notes.clone();
    if let Some((step, since)) = window.and_then(|w| w.open.as_ref()) {
        notes.push(format!(
            "still out of service when the run ended: its {step} began {since:.1} s into the run and no uncordon followed"
        ));
    }
    json!({"steps": h.steps, "done_earlier": h.earlier, "changed": h.changed, "seconds": round(h.seconds),
           "kubelet_before": value(&kubelet.before), "kubelet_after": value(&kubelet.after),
           "kubelet_before_from": source(&kubelet.before), "kubelet_after_from": source(&kubelet.after),
           "out_of_service": window.map(|w| round(w.seconds)), "notes": notes})
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// wall / critical path, two decimals; None without a critical path (nothing waited on).
fn ratio(wall: f64, critical: f64) -> Option<f64> {
    (critical > 0.0).then(|| (wall / critical * 100.0).round() / 100.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn step_lines_keep_the_whole_first_line_and_say_how_much_more() {
        let first = format!("is v1.9.99 a real release or a typo {}", "word ".repeat(60));
        let long = format!("{first}\nsecond line: the reason\nthird");
        let e = StepEvent::ran(
            "cp1",
            "packages",
            "package_pin",
            &json!({"failed": true, "msg": long}),
            1.0,
        );
        let short = step_line(&e, 2.0, 0);
        assert!(!short.contains('\n') && !short.contains("second line"), "{short}");
        assert!(
            short.contains(&first) && short.ends_with("[+2 lines: -v, or the run log]"),
            "never cut: {short}"
        );
        let full = step_line(&e, 2.0, 1);
        assert!(full.ends_with(&long), "{full}");
        assert!(full.contains("FAILED"));
    }

    #[test]
    fn wrapping_breaks_between_words_and_never_cuts_one() {
        let text = "    12.0s  lab-w1       packages                 FAILED      3.1s  \
                    E: Unable to correct problems, you have held broken packages: kubelet-1.9.2-00 \
                    Depends kubernetes-cni (= 0.6.0)";
        let lines = wrap(text, 60, CONTINUATION);
        assert!(lines.len() > 1, "{lines:#?}");
        for line in &lines {
            assert!(line.chars().count() <= 60, "{line:?}");
        }
        assert!(lines[0].starts_with("    12.0s  lab-w1"), "{lines:#?}");
        assert!(lines[1].starts_with(&" ".repeat(CONTINUATION)), "{lines:#?}");
        let words = |t: &str| t.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(words(&lines.join(" ")), words(text), "a word was cut or lost");
        let url = format!("see {} for it", "h".repeat(80));
        let lines = wrap(&url, 40, 4);
        assert!(lines.contains(&format!("    {}", "h".repeat(80))), "{lines:#?}");
        assert_eq!(wrap("as it is", 0, 4), ["as it is"], "0: kept whole");
        assert_eq!(wrap("a\nb", 80, 4), ["a", "b"]);
    }

    fn packages(before: &str, after: &str) -> Value {
        json!({"failed": false, "changed": before != after,
               "packages": [{"name": "kubelet", "before": before, "after": after}]})
    }

    #[test]
    fn a_resumed_runs_report_has_every_hosts_versions_under_clear_headings() {
        let hosts: Vec<String> = ["cp1", "w1", "w2"].map(String::from).to_vec();
        let reporter = Reporter::capturing(&hosts).with_nodes([
            ("cp1".to_string(), "cp1".to_string()),
            ("w1".to_string(), "worker-1".to_string()),
            ("w2".to_string(), "w2".to_string()),
        ]);
        // An earlier run upgraded w1 and recorded it; w2 it finished before versions were kept.
        let versions: journal::Versions = Arc::new(Mutex::new(BTreeMap::from([(
            "w1".to_string(),
            journal::Kubelet {
                before: Some("1.8.3-00".into()),
                after: Some("1.9.2-00".into()),
            },
        )])));
        reporter.keep_versions_in(Arc::clone(&versions));
        let survey = json!({"failed": false, "changed": false, "nodes": [
            {"name": "cp1", "kubelet_version": "v1.8.3"}, {"name": "worker-1", "kubelet_version": "v1.9.2"},
            {"name": "w2", "kubelet_version": "v1.9.2"}]});
        reporter.step(StepEvent::ran(
            "cp1",
            "cluster_survey",
            "cluster_survey",
            &survey,
            0.5,
        ));
        reporter.step(StepEvent::ran(
            "cp1",
            "packages-check",
            "package_pin",
            &packages("1.8.3-00", "1.9.2-00"),
            1.0,
        ));
        reporter.step(StepEvent::ran(
            "cp1",
            "packages",
            "package_pin",
            &packages("1.8.3-00", "1.9.2-00"),
            9.0,
        ));
        for host in ["w1", "w2"] {
            reporter.step(StepEvent::skipped(host, "drain", "node_drain"));
            reporter.step(StepEvent::skipped(host, "packages", "package_pin"));
        }
        let ready = json!({"failed": false, "changed": false, "nodes": [
            {"name": "cp1", "kubelet_version": "v1.9.2"}, {"name": "worker-1", "kubelet_version": "v1.9.2"},
            {"name": "w2", "kubelet_version": "v1.9.2"}]});
        reporter.step(StepEvent::ran("cp1", "verify", "node_ready", &ready, 0.2));
        let rows = reporter.rows();
        let row = |h: &str| rows.iter().find(|(n, _)| n == h).unwrap().1.clone();
        assert_eq!(
            (
                row("cp1")["kubelet_before"].as_str(),
                row("cp1")["kubelet_after"].as_str()
            ),
            (Some("1.8.3-00"), Some("1.9.2-00"))
        );
        assert_eq!(row("w1")["kubelet_before"], "1.8.3-00");
        assert_eq!(row("w1")["kubelet_after"], "1.9.2-00");
        assert_eq!(row("w1")["kubelet_after_from"], "journal");
        assert_eq!(row("w1")["done_earlier"], 2);
        // Not in the journal: the cluster says where w2 is now; where it was, nobody knows.
        assert_eq!(row("w2")["kubelet_before"], Value::Null);
        assert_eq!(row("w2")["kubelet_after"], "v1.9.2");
        assert_eq!(row("w2")["kubelet_after_from"], "cluster");
        // This run's versions went to the journal, for the next run.
        assert_eq!(versions.lock().unwrap()["cp1"].after.as_deref(), Some("1.9.2-00"));
        assert_eq!(
            rows.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["cp1", "w1", "w2"]
        );

        reporter.finish("upgraded", Some("v1.9.2".into()));
        let report: Value = serde_json::from_str(reporter.captured().last().unwrap()).unwrap();
        let text = render_report(&report, &rows, false, 0);
        assert!(text.contains("upgraded (target v1.9.2): "), "{text}");
        assert!(text.contains("(4 done by an earlier run)"), "{text}");
        let header = text.lines().find(|l| l.starts_with("HOST")).unwrap();
        assert!(
            header.contains("KUBELET BEFORE -> AFTER") && header.contains("DONE EARLIER"),
            "{header}"
        );
        let line = |h: &str| text.lines().find(|l| l.starts_with(&format!("{h} "))).unwrap();
        assert!(line("w1").contains("1.8.3-00 -> 1.9.2-00"), "{text}");
        assert!(line("w2").contains("? -> v1.9.2"), "{text}");
        assert!(!line("w1").contains(" - "), "{text}");
        assert!(
            text.contains("w1: kubelet before from the journal (an earlier run), after from the journal"),
            "{text}"
        );
        let plan = render_report(&report, &rows, true, 0);
        assert!(plan.contains("KUBELET NOW -> PLANNED"), "{plan}");
    }

    #[test]
    fn a_plan_shows_the_kubelet_now_and_what_it_would_install() {
        let reporter = Reporter::capturing(&["cp1".to_string()]).for_plan();
        reporter.step(StepEvent::ran(
            "cp1",
            "package_pin",
            "package_pin",
            &packages("1.8.3-00", "1.9.2-00"),
            1.0,
        ));
        let rows = reporter.rows();
        assert_eq!(rows[0].1["kubelet_before"], "1.8.3-00");
        assert_eq!(rows[0].1["kubelet_after"], "1.9.2-00");
    }

    #[test]
    fn the_event_stream_follows_its_documented_schema() {
        let schema = events::json_schema();
        let reporter = Reporter::capturing(&["cp1".to_string(), "w1".to_string()]);
        reporter.start("upgrade", "stable-1.9", std::path::Path::new("hosts.ini"));
        reporter.phase("preflight");
        reporter.running("cp1", "packages");
        reporter.step(StepEvent::ran(
            "cp1",
            "packages",
            "package_pin",
            &packages("1.8.3-00", "1.9.2-00"),
            3.0,
        ));
        reporter.step(StepEvent::skipped("w1", "drain", "node_drain"));
        let failed = json!({"failed": true, "changed": false, "msg": "apt-get install failed", "rc": 100,
                            "stdout": "Reading package lists...", "stderr": "E: Unable to correct problems",
                            "warnings": ["kubelet was held"]});
        reporter.running("w1", "packages");
        reporter.step(StepEvent::ran("w1", "packages", "package_pin", &failed, 2.0));
        reporter.note("w1", "a note");
        reporter.blockers(&["w1: something".to_string()]);
        reporter.finish("stopped", Some("v1.9.3".into()));
        let mut lines = reporter.captured();
        let error = events::Error {
            kind: events::ErrorKind::Failed,
            message: "w1: step packages failed: apt-get install failed".into(),
            fix: Some("read the package manager's error".into()),
            exit_code: 1,
            host: Some("w1".into()),
            step: Some("packages".into()),
        };
        lines.push(error.to_event().to_string());
        let stream = lines.join("\n");
        let events = events::schema::validate_stream(&schema, &stream, Some(1)).unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "start",
                "phase",
                "step-start",
                "step",
                "step",
                "step-start",
                "step",
                "note",
                "blockers",
                "report",
                "error"
            ]
        );
        assert_eq!(events[0]["hosts"], json!(["cp1", "w1"]));
        let failure = &events[6];
        assert_eq!(failure["rc"], 100);
        assert_eq!(failure["stderr_tail"], "E: Unable to correct problems");
        assert_eq!(failure["report"], Value::Null);
        assert_eq!(events[9]["target"], "v1.9.3");

        // The validator can say no: each of these breaks the documented schema.
        let step: Value = serde_json::from_str(&lines[3]).unwrap();
        let broken = |f: &dyn Fn(&mut Value)| {
            let mut e = step.clone();
            f(&mut e);
            events::schema::validate(&schema, &e)
        };
        assert!(broken(&|_| {}).is_ok());
        for (what, f) in [
            (
                "no time",
                &(|e: &mut Value| drop(e.as_object_mut().unwrap().remove("time"))) as &dyn Fn(&mut Value),
            ),
            ("a time that is not RFC 3339", &|e: &mut Value| {
                e["time"] = json!("12:00 yesterday")
            }),
            ("another schema version", &|e: &mut Value| {
                e["schema"] = json!("kup.events/v0")
            }),
            ("an unknown status", &|e: &mut Value| e["status"] = json!("maybe")),
            ("an undocumented field", &|e: &mut Value| e["extra"] = json!(1)),
            ("rc not an integer", &|e: &mut Value| e["rc"] = json!("100")),
            ("an unknown event", &|e: &mut Value| {
                e["event"] = json!("heartbeat")
            }),
        ] {
            assert!(broken(f).is_err(), "accepted {what}");
        }
        let error_first = [lines[10].clone(), lines[0].clone()].join("\n");
        assert!(events::schema::validate_stream(&schema, &error_first, Some(1)).is_err());
        let no_error = lines[..10].join("\n");
        assert!(events::schema::validate_stream(&schema, &no_error, Some(1)).is_err());
        assert!(events::schema::validate_stream(&schema, &stream, Some(0)).is_err());
    }

    #[test]
    fn progress_lines_land_on_the_running_steps_host_as_documented() {
        let schema = events::json_schema();
        let reporter = Reporter::capturing(&["cp1".to_string(), "w1".to_string()]).with_nodes([
            ("cp1".to_string(), "node-cp1".to_string()),
            ("w1".to_string(), "node-w1".to_string()),
        ]);
        reporter.start("upgrade", "v1.9.2", std::path::Path::new("hosts.ini"));
        let line = |text: &str, node: Option<&str>| json!({"kup_progress": 1, "text": text, "left_s": 290, "node": node});
        // No step runs: a late line is dropped.
        reporter.progress("cp1", "node_drain", &line("late", Some("node-w1")));
        reporter.running("w1", "drain");
        // An API module runs on the first control plane; its line names the node it drains.
        reporter.progress(
            "cp1",
            "node_drain",
            &line(
                "drain node-w1: default/web-0 refused by PodDisruptionBudget default/web",
                Some("node-w1"),
            ),
        );
        // Without a node, the host it runs on, when a step of that host runs.
        reporter.progress("w1", "node_drain", &line("still waiting", None));
        reporter.progress("cp1", "node_ready", &line("nobody's", None));
        reporter.step(StepEvent::ran(
            "w1",
            "drain",
            "node_drain",
            &json!({"failed": false, "changed": true, "msg": "drained"}),
            30.0,
        ));
        reporter.progress("cp1", "node_drain", &line("after its step", Some("node-w1")));
        reporter.finish("upgraded", Some("v1.9.2".into()));
        let stream = reporter.captured().join("\n");
        let events = events::schema::validate_stream(&schema, &stream, Some(0)).unwrap();
        let progress: Vec<&Value> = events.iter().filter(|e| e["event"] == "progress").collect();
        assert_eq!(progress.len(), 2, "{stream}");
        let first = progress[0];
        assert_eq!(
            (
                first["host"].as_str(),
                first["step"].as_str(),
                first["module"].as_str()
            ),
            (Some("w1"), Some("drain"), Some("node_drain"))
        );
        assert_eq!(
            first["text"],
            "drain node-w1: default/web-0 refused by PodDisruptionBudget default/web"
        );
        assert_eq!(
            (first["left_s"].as_u64(), first["node"].as_str()),
            (Some(290), Some("node-w1"))
        );
        assert_eq!(
            (progress[1]["host"].as_str(), progress[1]["node"].as_str()),
            (Some("w1"), None)
        );

        // The schema says no to a broken one.
        for (what, f) in [
            (
                "no text",
                &(|e: &mut Value| drop(e.as_object_mut().unwrap().remove("text"))) as &dyn Fn(&mut Value),
            ),
            ("left_s as a string", &|e: &mut Value| e["left_s"] = json!("290")),
            ("a negative left_s", &|e: &mut Value| e["left_s"] = json!(-1)),
            ("no host", &|e: &mut Value| {
                drop(e.as_object_mut().unwrap().remove("host"))
            }),
            ("an undocumented field", &|e: &mut Value| e["pods"] = json!([])),
        ] {
            let mut e = first.clone();
            f(&mut e);
            assert!(
                events::schema::validate(&schema, &e).is_err(),
                "accepted {what}: {e}"
            );
        }
    }

    #[test]
    fn plain_output_prints_a_hosts_progress_at_most_every_few_seconds() {
        let captured = Arc::new(Mutex::new(Vec::new()));
        let mut route = Route::new(false, false, Instant::now(), None);
        route.captured = Some(Arc::clone(&captured));
        route
            .running
            .lock()
            .unwrap()
            .insert("w1".into(), "node-ready".into());
        route.running.lock().unwrap().insert("w2".into(), "drain".into());
        let line = |text: &str| json!({"kup_progress": 1, "text": text, "left_s": 100, "node": null});
        route.progress("w1", "node_ready", &line("w1: Ready=False (KubeletNotReady)"));
        route.progress("w1", "node_ready", &line("w1: kubelet v1.9.2, Ready=False"));
        route.progress("w2", "node_drain", &line("w2: 2 pod(s) still on the node"));
        let lines = captured.lock().unwrap().clone();
        assert_eq!(lines.len(), 2, "one line per host so soon: {lines:?}");
        assert!(
            lines[0].ends_with("w1           node-ready: w1: Ready=False (KubeletNotReady) (100 s left)"),
            "{lines:?}"
        );
        // Once the interval has passed, the host's latest text.
        route
            .printed
            .lock()
            .unwrap()
            .insert("w1".into(), Instant::now() - PLAIN_PROGRESS_EVERY);
        route.progress("w1", "node_ready", &line("w1: kubelet v1.9.2, Ready=True"));
        assert_eq!(captured.lock().unwrap().len(), 3);
    }

    #[test]
    fn overlapping_intervals_count_once() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert_eq!(union_length(&[]), 0.0);
        assert!(close(union_length(&[(1.0, 3.0)]), 2.0));
        // Apart, overlapping, nested, touching, out of order, empty and backwards ones.
        let intervals = [
            (10.0, 12.0),
            (0.0, 2.0),
            (1.0, 3.0),
            (1.5, 2.5),
            (3.0, 4.0),
            (20.0, 20.0),
            (30.0, 29.0),
            (11.0, 15.5),
        ];
        // [0, 4] and [10, 15.5].
        assert!(
            close(union_length(&intervals), 9.5),
            "{}",
            union_length(&intervals)
        );
        // A batch of three workers draining at once: one wait, not three.
        let batch = [(5.0, 9.0), (5.1, 8.0), (5.2, 9.4)];
        assert!(close(union_length(&batch), 4.4));
    }

    /// A rollout as its events come: seconds since kup started.
    fn rollout() -> Timeline {
        let mut t = Timeline::default();
        let mut step = |host: &str, step: &str, from: f64, to: f64| {
            t.started(host, step, from);
            t.ended(host, step, "ok", to - from, to);
        };
        step("cp1", "preflight", 0.5, 1.0);
        step("cp1", "kubeadm-apply", 1.0, 11.0);
        step("cp1", "control-plane-ready", 11.0, 13.0);
        step("cp1", "cordon", 13.5, 13.7);
        step("cp1", "packages", 13.7, 17.7);
        step("cp1", "restart-kubelet", 17.7, 18.0);
        step("cp1", "node-ready", 18.0, 21.0);
        step("cp1", "uncordon", 21.0, 21.3);
        // Two workers in one batch: their steps overlap.
        for (host, lag) in [("w1", 0.0), ("w2", 0.5)] {
            step(host, "drain", 22.0 + lag, 25.0 + lag);
            step(host, "packages", 25.0 + lag, 28.0 + lag);
            step(host, "restart-kubelet", 28.0 + lag, 28.5 + lag);
            step(host, "node-ready", 28.5 + lag, 31.0 + lag);
            step(host, "uncordon", 31.0 + lag, 31.2 + lag);
        }
        t
    }

    #[test]
    fn out_of_service_windows_from_the_events() {
        let close =
            |a: Option<Window>, b: f64| a.is_some_and(|w| (w.seconds - b).abs() < 1e-9 && w.open.is_none());
        let mut t = rollout();
        // From the start of its take-out step to the end of its uncordon.
        assert!(
            close(t.out_of_service("cp1", 40.0), 21.3 - 13.5),
            "{:?}",
            t.out_of_service("cp1", 40.0)
        );
        assert!(close(t.out_of_service("w1", 40.0), 9.2));
        assert!(close(t.out_of_service("w2", 40.0), 9.2));
        // A host the run never took out has none.
        assert_eq!(t.out_of_service("cp2", 40.0), None);
        // Nor one whose take-out an earlier run did (the journal's): this run did not take it out.
        t.ended("w3", "drain", "done", 0.0, 32.0);
        t.started("w3", "packages", 32.0);
        t.ended("w3", "packages", "ok", 1.0, 33.0);
        t.started("w3", "uncordon", 33.0);
        t.ended("w3", "uncordon", "ok", 0.5, 33.5);
        assert_eq!(t.out_of_service("w3", 40.0), None);
        // Taken out, its uncordon failed: still out, counted up to now.
        t.started("w4", "cordon", 34.0);
        t.ended("w4", "cordon", "changed", 0.2, 34.2);
        t.started("w4", "uncordon", 35.0);
        t.ended("w4", "uncordon", "FAILED", 0.1, 35.1);
        let w4 = t.out_of_service("w4", 40.0).unwrap();
        assert!((w4.seconds - 6.0).abs() < 1e-9, "{w4:?}");
        assert_eq!(w4.open, Some(("cordon".to_string(), 34.0)));
        // A second minor takes cp1 out again: the windows add up.
        t.started("cp1", "cordon", 50.0);
        t.ended("cp1", "cordon", "changed", 0.1, 50.1);
        t.started("cp1", "uncordon", 52.0);
        t.ended("cp1", "uncordon", "changed", 0.5, 52.5);
        assert!(close(t.out_of_service("cp1", 60.0), 21.3 - 13.5 + 2.5));
    }

    #[test]
    fn the_critical_path_counts_the_waits_of_a_batch_once() {
        let t = rollout();
        // cp1: kubeadm-apply + control-plane-ready [1, 13], packages .. node-ready [13.7, 21]; the
        // batch: drain .. node-ready [22, 31.5]; preflight, cordon, uncordon are not waits.
        let expected = 12.0 + 7.3 + 9.5;
        assert!(
            (t.critical_path() - expected).abs() < 1e-9,
            "{}",
            t.critical_path()
        );
        // A repository switch is a wait when it refreshed the index, not when it found it done.
        let mut t = rollout();
        t.started("w1", "package-repo", 40.0);
        t.ended("w1", "package-repo", "changed", 0.5, 40.5);
        t.started("w2", "package-repo", 41.0);
        t.ended("w2", "package-repo", "ok", 0.2, 41.2);
        assert!(
            (t.critical_path() - expected - 0.5).abs() < 1e-9,
            "{}",
            t.critical_path()
        );
        // Without steps: none.
        assert_eq!(Timeline::default().critical_path(), 0.0);
        assert_eq!(ratio(3.2, 0.0), None);
        assert_eq!(ratio(52.3, 48.9), Some(1.07));
    }

    #[test]
    fn the_text_report_prints_wall_critical_path_and_each_nodes_window() {
        let row = |oos: Value| {
            json!({"steps": 6, "done_earlier": 0, "changed": 4, "seconds": 20.0, "kubelet_before": "1.8.3-00",
                   "kubelet_after": "1.9.2-00", "kubelet_before_from": "run", "kubelet_after_from": "run",
                   "out_of_service": oos, "notes": []})
        };
        let hosts = vec![
            ("cp1".to_string(), row(json!(7.8))),
            ("w1".to_string(), row(Value::Null)),
        ];
        let report = json!({"outcome": "upgraded", "target": "v1.9.2", "seconds": 52.3, "steps": 12,
                            "done_earlier": 0, "changed": 8, "hosts": {}, "wall": 52.3,
                            "critical_path": 48.9, "ratio": 1.07});
        let text = render_report(&report, &hosts, false, 0);
        assert!(
            text.contains("\nwall 52.3 s, critical path 48.9 s, ratio 1.07\n"),
            "{text}"
        );
        let header = text.lines().find(|l| l.starts_with("HOST")).unwrap();
        assert!(header.ends_with("SECONDS  OUT OF SERVICE"), "{text}");
        let line = |h: &str| text.lines().find(|l| l.starts_with(&format!("{h} "))).unwrap();
        assert!(line("cp1").ends_with("20.0             7.8"), "{text}");
        assert!(line("w1").ends_with("20.0               -"), "{text}");
        // Nothing waited on: no ratio. A plan has neither the line nor the column.
        let idle = json!({"outcome": "upgraded", "target": "v1.9.2", "seconds": 3.2, "steps": 0,
                          "done_earlier": 0, "changed": 0, "hosts": {}, "wall": 3.2,
                          "critical_path": 0.0, "ratio": null});
        assert!(render_report(&idle, &hosts, false, 0).contains("wall 3.2 s, critical path 0.0 s, ratio -\n"));
        let plan = render_report(&report, &hosts, true, 0);
        assert!(
            !plan.contains("critical path") && !plan.contains("OUT OF SERVICE"),
            "{plan}"
        );
    }

    #[test]
    fn the_report_event_carries_windows_and_the_critical_path_as_documented() {
        let schema = events::json_schema();
        let hosts: Vec<String> = ["cp1", "w1", "w2"].map(String::from).to_vec();
        let reporter = Reporter::capturing(&hosts);
        reporter.start("upgrade", "v1.9.2", std::path::Path::new("hosts.ini"));
        for step in ["cordon", "packages", "node-ready", "uncordon"] {
            reporter.running("cp1", step);
            let ok = json!({"failed": false, "changed": true, "msg": ""});
            reporter.step(StepEvent::ran("cp1", step, "m", &ok, 0.0));
        }
        // w1: an earlier run took it out; w2: taken out, never back.
        reporter.step(StepEvent::skipped("w1", "drain", "node_drain"));
        reporter.running("w2", "drain");
        reporter.step(StepEvent::ran(
            "w2",
            "drain",
            "node_drain",
            &json!({"failed": false, "changed": true, "msg": "drained"}),
            0.0,
        ));
        reporter.finish("stopped", Some("v1.9.2".into()));
        let lines = reporter.captured();
        let events = events::schema::validate_stream(&schema, &lines.join("\n"), Some(0)).unwrap();
        let report = events.last().unwrap().clone();
        assert!(report["hosts"]["cp1"]["out_of_service"].is_f64(), "{report}");
        assert_eq!(report["hosts"]["w1"]["out_of_service"], Value::Null);
        assert!(report["hosts"]["w2"]["out_of_service"].is_f64(), "{report}");
        let notes = report["hosts"]["w2"]["notes"].to_string();
        assert!(
            notes.contains("still out of service when the run ended: its drain began"),
            "{notes}"
        );
        assert!(
            report["critical_path"].is_f64() && report["wall"].is_f64(),
            "{report}"
        );
        assert_eq!(report["wall"], report["seconds"]);
        assert!(report["ratio"].is_null() || report["ratio"].is_f64(), "{report}");

        // The schema says what each new field is: a wrongly typed one is refused.
        let broken = |f: &dyn Fn(&mut Value)| {
            let mut e = report.clone();
            f(&mut e);
            events::schema::validate(&schema, &e)
        };
        assert!(broken(&|e: &mut Value| e["ratio"] = json!(1.07)).is_ok());
        assert!(broken(&|e: &mut Value| e["ratio"] = Value::Null).is_ok());
        assert!(broken(&|e: &mut Value| e["hosts"]["cp1"]["out_of_service"] = Value::Null).is_ok());
        // Optional: a report without them (an older kup's) is still valid.
        assert!(broken(&|e: &mut Value| {
            let o = e.as_object_mut().unwrap();
            for k in ["wall", "critical_path", "ratio"] {
                o.remove(k);
            }
            e["hosts"]["cp1"]
                .as_object_mut()
                .unwrap()
                .remove("out_of_service");
        })
        .is_ok());
        for (what, f) in [
            (
                "a string critical_path",
                &(|e: &mut Value| e["critical_path"] = json!("48.9 s")) as &dyn Fn(&mut Value),
            ),
            ("a null critical_path", &|e: &mut Value| {
                e["critical_path"] = Value::Null
            }),
            ("a negative wall", &|e: &mut Value| e["wall"] = json!(-1.0)),
            ("a string ratio", &|e: &mut Value| e["ratio"] = json!("1.07")),
            ("a string out_of_service", &|e: &mut Value| {
                e["hosts"]["cp1"]["out_of_service"] = json!("7.8")
            }),
            ("a boolean out_of_service", &|e: &mut Value| {
                e["hosts"]["w1"]["out_of_service"] = json!(false)
            }),
        ] {
            assert!(broken(f).is_err(), "accepted {what}");
        }
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
