//! The runbook, in order: preflight -> kubeadm on the first control plane (download, nodeName,
//! apply) -> each other control plane (apply retried, or `upgrade node` from 1.15) -> control-plane
//! nodes one by one (cordon, stop, pin, start, Ready, uncordon) -> workers in batches (drain ...) ->
//! verify. The first failure stops the rollout and says where, what, the node's state and what to do.

use crate::inventory::{Host, Inventory};
use crate::journal::Journal;
use crate::modules::{self, Args};
use crate::report::{Reporter, StepEvent};
use crate::transport::{RunError, Transport};
use kube_kit::Connection;
use kube_version::Version;
use module_kit::{FilePath, Module, Seconds};
use node_ready::NodeReady;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where kubeadm_download puts the target's kubeadm: root's own 0700 directory, never a
/// predictable name in a world-writable one.
pub const KUBEADM_PATH: &str = "/var/lib/kup/kubeadm";
/// Where the kubeadm package installs it.
pub const PACKAGED_KUBEADM: &str = "/usr/bin/kubeadm";

#[derive(Debug, Clone)]
pub struct Options {
    pub target: String,
    pub workers_batch: WorkersBatch,
    pub retry_delay: u64,
    pub base_url: String,
    pub cni_version: Option<String>,
    pub force_drain: bool,
    pub drain_timeout: u64,
    pub ready_timeout: u64,
    /// A worker whose kubelet does not come back at the target: reinstalled at its previous
    /// versions (`Rollback`, the default) or left as it is (`Stop`).
    pub on_node_failure: OnNodeFailure,
    /// A worker rolled back is uncordoned (else it stays cordoned for the operator to look at).
    pub rollback_uncordon: bool,
    /// Every node's packages downloaded while the control planes' kubeadm runs, before any node
    /// is taken out (`--no-stage`: off).
    pub stage: bool,
    /// `--limit`: only these hosts or groups (`control_plane`/`masters`, `workers`/`nodes`, `all`)
    /// are upgraded; `None`: every host.
    pub limit: Option<Vec<String>>,
}

/// How many workers are upgraded at once (`--workers-batch`): a number, or a percentage of the
/// workers as Ansible's `serial: 20%` (kubespray's default for nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkersBatch {
    Count(usize),
    Percent(u8),
}

impl WorkersBatch {
    /// The batch size for `workers` workers. A percentage is rounded down and is at least 1, as
    /// Ansible computes `serial` (lib/ansible/utils/helpers.py `pct_to_int`, min_value 1).
    pub fn size(self, workers: usize) -> usize {
        match self {
            WorkersBatch::Count(n) => n.max(1),
            WorkersBatch::Percent(p) => (workers * usize::from(p) / 100).max(1),
        }
    }
}

impl std::str::FromStr for WorkersBatch {
    type Err = String;
    fn from_str(text: &str) -> Result<WorkersBatch, String> {
        let bad = || format!("expected a number of workers (5) or a percentage of them (20%), got {text:?}");
        match text.strip_suffix('%') {
            Some(pct) => match pct.parse::<u8>() {
                Ok(p @ 1..=100) => Ok(WorkersBatch::Percent(p)),
                _ => Err(bad()),
            },
            None => match text.parse::<usize>() {
                Ok(n @ 1..) => Ok(WorkersBatch::Count(n)),
                _ => Err(bad()),
            },
        }
    }
}

impl std::fmt::Display for WorkersBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkersBatch::Count(n) => write!(f, "{n}"),
            WorkersBatch::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// What becomes of a worker whose new kubelet does not come back (`--on-node-failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnNodeFailure {
    Rollback,
    Stop,
}

/// Why a rollout stopped.
#[derive(Debug)]
pub enum Stop {
    Failed {
        host: String,
        step: String,
        msg: String,
        fix: String,
    },
    /// The operator's Ctrl-C (or SIGTERM): the step under way was finished, nothing more started.
    Interrupted,
    /// The operator's second Ctrl-C: steps under way were ended where they were.
    Aborted {
        running: Vec<String>,
    },
    Setup(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Failed { host, step, msg, fix } => {
                write!(f, "{host}: step {step} failed: {msg}\n  what to do: {fix}")
            }
            Stop::Interrupted => write!(
                f,
                "interrupted: the steps under way were finished, no other was started; rerun the same command to resume"
            ),
            Stop::Aborted { running } if running.is_empty() => {
                write!(f, "aborted: no step was under way; rerun the same command to resume")
            }
            Stop::Aborted { running } => write!(
                f,
                "aborted: these steps were ended while running and may be half-done: {}; \
                 rerun the same command: it runs them again",
                running.join(", ")
            ),
            Stop::Setup(msg) => write!(f, "{msg}"),
        }
    }
}

pub struct Run<'a> {
    pub inventory: &'a Inventory,
    pub transport: &'a dyn Transport,
    pub opts: Options,
    pub journal: Mutex<Journal>,
    pub reporter: &'a Reporter,
    /// Set by the first Ctrl-C: finish the steps under way, start no other.
    pub interrupted: Arc<AtomicBool>,
    /// Steps under way (`host/step`), for the message of an abort.
    pub running: Mutex<Vec<String>>,
    /// Hosts whose packages are being (or are about to be) staged: a node's upgrade waits for its
    /// own stage only (its package manager must be free), never for the others'.
    staging: (Mutex<std::collections::HashSet<String>>, std::sync::Condvar),
    /// What [`Run::prepare_node`] answered ahead for the node phase's first node, asked while the
    /// last control plane's kubeadm settled.
    prepared_ahead: Mutex<std::collections::HashMap<String, Result<Prepared, Stop>>>,
    /// Hosts whose repository this run already pointed at the target's minor: the node phase
    /// need not ask again.
    repo_switched: Mutex<std::collections::HashSet<(String, Version)>>,
    /// Targets whose kubeadm package cannot be installed before the kubelet's (its dependencies
    /// need the new kubelet): their `kubeadm upgrade` runs the release binary instead.
    kubeadm_from_release: Mutex<std::collections::HashSet<Version>>,
}

/// What [`Run::prepare_node`] learnt of a node before it is taken out.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The exact kubelet package version it runs (`1.34.2-1.1`), for a rollback; None when unknown.
    pub previous: Option<String>,
    /// It already runs the target, its packages pinned: nothing to do.
    pub at_target: bool,
    /// An earlier run began its upgrade: it is finished, never skipped.
    pub begun: bool,
}

/// One step of a node's upgrade, as data: the rollout runs these, a resume checks them.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStep {
    pub name: &'static str,
    pub args: Args,
    /// What a resume asks the live node (in check mode) when this was the last step done.
    pub recheck: Args,
}

impl NodeStep {
    fn new(name: &'static str, args: Args) -> NodeStep {
        let recheck = args.clone().check_mode();
        NodeStep { name, args, recheck }
    }
}

/// How long one module run may take: its own timeout (plus kup's margin for ssh and start-up),
/// else the bound [`modules::MODULES`] gives for what the module does.
pub fn step_limit(module: &str, args: &Value) -> Duration {
    const MARGIN: u64 = 60;
    let own = args["timeout"].as_u64();
    let bound = modules::info(module).map_or(300, |m| m.limit);
    let seconds = if module == kubeadm_upgrade::KubeadmUpgrade::NAME {
        // Each attempt has its own timeout; retries wait retry_delay between them.
        let attempts = args["retries"].as_u64().unwrap_or(0) + 1;
        attempts * own.unwrap_or(bound) + attempts * args["retry_delay"].as_u64().unwrap_or(0)
    } else if module == package_pin::PackagePin::NAME {
        // Its timeout bounds each long command: a cache update and the transaction.
        own.map_or(bound, |t| t.saturating_mul(3) / 2)
    } else {
        own.unwrap_or(bound)
    };
    Duration::from_secs(seconds.saturating_add(MARGIN).min(7 * 24 * 3600))
}

impl<'a> Run<'a> {
    /// A run with no step under way yet.
    pub fn new(
        inventory: &'a Inventory,
        transport: &'a dyn Transport,
        opts: Options,
        journal: Journal,
        reporter: &'a Reporter,
        interrupted: Arc<AtomicBool>,
    ) -> Run<'a> {
        Run {
            inventory,
            transport,
            opts,
            journal: Mutex::new(journal),
            reporter,
            interrupted,
            running: Mutex::new(Vec::new()),
            staging: Default::default(),
            prepared_ahead: Default::default(),
            repo_switched: Default::default(),
            kubeadm_from_release: Default::default(),
        }
    }
}

impl<'a> Run<'a> {
    /// Whether `host` is one `--limit` names (by name, node name or group).
    pub fn in_limit(&self, host: &Host) -> bool {
        let Some(limit) = &self.opts.limit else {
            return true;
        };
        let control_plane = self.inventory.control_plane.iter().any(|c| c.name == host.name);
        limit.iter().any(|l| {
            l == &host.name
                || l == host.node_name.as_str()
                || l == "all"
                || (control_plane && (l == "control_plane" || l == "masters"))
                || (!control_plane && (l == "workers" || l == "nodes"))
        })
    }

    /// The hosts `--limit` leaves as they are, in inventory order.
    pub fn left_out(&self) -> Vec<&Host> {
        self.inventory.all_hosts().filter(|h| !self.in_limit(h)).collect()
    }

    /// A `--limit` that leaves out the control planes still to upgrade is refused: they come first
    /// (kubeadm's skew policy: no kubelet newer than the API server), and the first one's `apply`
    /// upgrades the cluster. A limit naming no host is refused too.
    pub fn check_limit(&self, target: Version) -> Result<(), Stop> {
        let Some(limit) = &self.opts.limit else {
            return Ok(());
        };
        if self.inventory.all_hosts().all(|h| !self.in_limit(h)) {
            return Err(Stop::Setup(format!(
                "--limit {} names no host of the inventory (hosts, node names, or the groups control_plane, \
                 workers, all)",
                limit.join(",")
            )));
        }
        let outdated: Vec<&str> = self
            .inventory
            .control_plane
            .iter()
            .filter(|h| !self.in_limit(h))
            .filter(|h| {
                let check = Args::of::<kubeadm_upgrade::KubeadmUpgrade>(&kubeadm_upgrade::Params::new(
                    kubeadm_upgrade::Action::Apply,
                    Some(target.to_string()),
                ))
                .check_mode();
                self.call(h, check)
                    .map_or(true, |r| r["changed"] != false || r["failed"] == true)
            })
            .map(|h| h.name.as_str())
            .collect();
        if outdated.is_empty() {
            return Ok(());
        }
        Err(Stop::Setup(format!(
            "--limit leaves out control plane(s) not yet at {target}: {}; control planes are upgraded first \
             (the first one's kubeadm upgrade apply moves the cluster): include them in --limit",
            outdated.join(", ")
        )))
    }

    pub fn primary(&self) -> &Host {
        &self.inventory.control_plane[0]
    }

    /// The API modules' connection: the inventory's `kubeconfig` (this machine's, made absolute when
    /// the inventory was read) when it gives one, else none (the first control plane's admin.conf).
    pub fn connection<const T: u64>(&self) -> Connection<T> {
        Connection::with_kubeconfig(
            self.inventory
                .var("kubeconfig")
                .and_then(|k| FilePath::new(&k).ok()),
        )
    }

    /// Where a module runs: an API module here when its arguments name a kubeconfig (only
    /// [`Run::connection`] puts one there, the inventory's), else on the first control plane (its
    /// admin.conf); host modules on their host.
    fn place<'h>(&'h self, args: &Args, host: &'h Host) -> Option<&'h Host> {
        match modules::info(args.module) {
            Some(m) if m.api && args.json.get("kubeconfig").is_some() => None,
            Some(m) if m.api => Some(self.primary()),
            _ => Some(host),
        }
    }

    /// Runs a module for `host` where it belongs, bounded by its limit.
    pub fn call(&self, host: &Host, args: Args) -> Result<Value, RunError> {
        let run_on = self.place(&args, host);
        let limit = step_limit(args.module, &args.json);
        self.transport.run(run_on, args.module, &args.json, limit)
    }

    /// Runs one module for `host` unless the journal has it; records it when done.
    fn step(&self, host: &Host, step: &str, args: Args, journaled: bool) -> Result<Value, Stop> {
        let module = args.module;
        let key = format!("{}/{step}", host.name);
        if journaled && self.journal.lock().map(|j| j.is_done(&key)).unwrap_or(false) {
            self.reporter.step(StepEvent::skipped(&host.name, step, module));
            return Ok(Value::Null);
        }
        if self.interrupted.load(Ordering::SeqCst) {
            return Err(Stop::Interrupted);
        }
        self.reporter.running(&host.name, step);
        if let Ok(mut running) = self.running.lock() {
            running.push(key.clone());
        }
        let started = Instant::now();
        let outcome = self.call(host, args);
        if let Ok(mut running) = self.running.lock() {
            running.retain(|k| k != &key);
        }
        let result = outcome.map_err(|e| self.lost(host, step, e))?;
        let seconds = started.elapsed().as_secs_f64();
        let failed = result["failed"].as_bool().unwrap_or(true);
        self.reporter
            .step(StepEvent::ran(&host.name, step, module, &result, seconds));
        if failed {
            // Whatever failed, the operator learns what kup has left the node in (cordoned,
            // services stopped), not only the module's reason.
            // (A plan's checks and probes change nothing: their reason is enough.)
            let mut msg = result["msg"].as_str().unwrap_or("no message").to_string();
            if journaled {
                msg = format!("{msg}; its state: {}", self.state_of(host));
            }
            return Err(Stop::Failed {
                host: host.name.clone(),
                step: step.to_string(),
                msg,
                fix: fix_for(step),
            });
        }
        if journaled {
            let mut journal = self
                .journal
                .lock()
                .map_err(|_| Stop::Setup("journal lock poisoned".into()))?;
            journal.mark(&key).map_err(Stop::Setup)?;
        }
        Ok(result)
    }

    /// A module that gave no answer: what happened, the node's state as far as kup knows, what to do.
    fn lost(&self, host: &Host, step: &str, e: RunError) -> Stop {
        let state = self.state_of(host);
        let (msg, fix) = match &e {
            RunError::Aborted => {
                let running = self.running.lock().map(|r| r.clone()).unwrap_or_default();
                let mut all = running;
                all.push(format!("{}/{step}", host.name));
                all.sort();
                all.dedup();
                return Stop::Aborted { running: all };
            }
            RunError::Unreachable { place, detail } => (
                format!("host {place} stopped answering during step {step} ({detail}); its state: {state}"),
                format!("bring {place} back (network, sshd), then rerun the same command to resume; hosts after it were not touched"),
            ),
            RunError::Deadline { .. } => (
                format!("{e}; its state: {state}"),
                "look at the host (the module's process was ended), then rerun the same command to resume".into(),
            ),
            RunError::Refused { place, .. } => (
                format!("{e}"),
                format!("on {place}, remove what the message names (as root), then rerun; kup never runs a file it did not put there itself"),
            ),
            RunError::Other(_) => (
                format!("{e}; its state: {state}"),
                "check that the host is reachable over ssh, then rerun the same command to resume".into(),
            ),
        };
        Stop::Failed {
            host: host.name.clone(),
            step: step.to_string(),
            msg,
            fix,
        }
    }

    /// What this rollout has done to `host`, from the journal.
    pub fn state_of(&self, host: &Host) -> String {
        let done = |s: &str| {
            self.journal
                .lock()
                .map(|j| j.is_done(&format!("{}/{s}", host.name)))
                .unwrap_or(false)
        };
        let mut facts = Vec::new();
        if done("drain") {
            facts.push("drained (cordoned)");
        } else if done("cordon") {
            facts.push("cordoned");
        }
        if done("stop-services") && !done("start-services") {
            facts.push("its services stopped by kup");
        }
        if done("packages") {
            facts.push("its packages at the target");
            if !done("node-ready") && !done("start-services") && !done("restart-kubelet") {
                facts.push("its kubelet not yet restarted on them");
            }
        }
        if done("node-ready") && !done("uncordon") {
            facts.push("Ready at the target but not yet uncordoned");
        }
        if done("uncordon") {
            facts.push("upgraded and uncordoned");
        }
        if facts.is_empty() {
            if done("kubeadm-apply") || done("kubeadm-node") {
                format!("{}: kubeadm done, its packages not yet changed", host.name)
            } else {
                format!("{}: not changed by this rollout yet", host.name)
            }
        } else {
            format!("{} is {}", host.name, facts.join(", "))
        }
    }

    /// The target version, resolving a channel (`stable-1.9`, or a minor `1.35` as its stable
    /// channel) with the release server.
    pub fn resolve_target(&self) -> Result<Version, Stop> {
        self.resolve(&self.opts.target)
    }

    /// A release as given, or a channel resolved with the release server (`1.35`: `stable-1.35`).
    pub fn resolve(&self, spec: &str) -> Result<Version, Stop> {
        if let Some(v) = Version::parse(spec) {
            return Ok(v);
        }
        let spec = minor_channel(spec).unwrap_or_else(|| spec.to_string());
        let primary = self.primary();
        let args = self.download_args(&spec, false).check_mode();
        let result = self.step(primary, "resolve-channel", args, false)?;
        result["version"]
            .as_str()
            .and_then(Version::parse)
            .ok_or_else(|| Stop::Setup(format!("channel {spec} did not resolve to a version")))
    }

    /// The lowest version the cluster runs: its API server's or any listed node's kubelet (one
    /// survey, in check mode). Where a rollout of several minors starts, or resumes.
    pub fn cluster_floor(&self) -> Result<Version, Stop> {
        let survey = self.check(
            self.primary(),
            modules::survey_args(self.inventory, self.connection(), self.opts.force_drain),
        )?;
        let server = survey["server_version"]
            .as_str()
            .and_then(Version::parse_reported);
        let kubelets = survey["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["kubelet_version"].as_str().and_then(Version::parse_reported));
        server
            .into_iter()
            .chain(kubelets)
            .min()
            .ok_or_else(|| Stop::Setup("the cluster survey reported no versions".into()))
    }

    /// The checks before anything changes. `package_targets`: ask every node whether each of these
    /// releases' packages resolve (this hop's and every later hop's, so that a chained upgrade does
    /// not stop at a later minor's missing packages after the first hop moved the cluster); empty
    /// for the plan, which asks that itself, host by host, to list every blocker.
    pub fn preflight(&self, target: Version, package_targets: &[Version]) -> Result<(), Stop> {
        let primary = self.primary();
        let preflight = |skip: &[&str]| {
            Args::of::<upgrade_preflight::UpgradePreflight>(&upgrade_preflight::Params {
                skip: skip.iter().map(|s| s.to_string()).collect(),
                // It runs on the host it checks, so the host's own admin.conf: never the
                // controller's kubeconfig, whose path means nothing there.
                connection: Connection::with_kubeconfig(None),
                ..upgrade_preflight::Params::new(target.to_string())
            })
        };
        // kubeadm is not downloaded yet; kubeadm_upgrade checks it before it runs. The other hosts
        // check only themselves. Every host's checks are read-only and independent: all at once,
        // each host going on to its packages as soon as its own checks pass (this is also each
        // host's first contact: the ssh master and the copy of kup).
        let full = preflight(&["kubeadm"]);
        let local_only = preflight(&["kubeadm", "version_skew", "api", "nodes_ready", "control_plane"]);
        let mut hosts = vec![primary];
        hosts.extend(self.inventory.all_hosts().skip(1).filter(|h| self.in_limit(h)));
        // (index of the package target, host, the resolver's refusal)
        let refusals = std::sync::Mutex::new(Vec::new());
        // The same for the kubeadm package alone, where it moves before the node is drained.
        let kubeadm_alone = std::sync::Mutex::new(Vec::new());
        self.on_each(&hosts, |host| {
            let is_primary = std::ptr::eq(host, primary);
            let checks = if is_primary { &full } else { &local_only };
            self.step(host, "preflight", checks.clone(), false)?;
            // The first control plane's etcd snapshot in check mode: its certificates, etcd
            // answering and room for the snapshot, before the first change rather than at the
            // first apply.
            if is_primary && self.etcd_snapshot_wanted(host) && self.in_limit(host) {
                let check = self.etcd_snapshot_args(host, target).check_mode();
                self.step(host, "etcd-snapshot-check", check, false)?;
            }
            if !self.in_limit(host) {
                return Ok(());
            }
            for (i, package_target) in package_targets.iter().enumerate() {
                let check = self.pin_check_args(host, *package_target);
                match self.step(host, "packages-resolve", check, false) {
                    Err(Stop::Failed { msg, .. }) => {
                        if let Ok(mut r) = refusals.lock() {
                            r.push((i, host.name.clone(), msg));
                        }
                        continue;
                    }
                    other => other.map(|_| ())?,
                }
                // Only the legacy repositories' kubeadm ever needed a kubelet of its own minor
                // (kubernetes/release PR #738's floors); pkgs.k8s.io's needs kubelet >= 1.19.0 at most
                // (kubernetes/release packages metadata.yaml), which a node one minor back has.
                let era = kube_eras::for_target(*package_target);
                if era.kubeadm != kube_eras::KubeadmSource::Package
                    || era.repository != kube_eras::Repository::Legacy
                {
                    continue;
                }
                let alone = self.kubeadm_alone_check_args(host, *package_target);
                match self.step(host, "kubeadm-package-resolve", alone, false) {
                    Err(Stop::Failed { msg, .. }) => {
                        if let Ok(mut r) = kubeadm_alone.lock() {
                            r.push((*package_target, host.name.clone(), msg));
                        }
                    }
                    other => other.map(|_| ())?,
                }
            }
            Ok(())
        })?;
        // The whole set resolves but the kubeadm package alone does not: packages built after
        // kubernetes/release PR #738 (2019-06) need kubelet >= 1.13.0, so kubeadm 1.13's cannot move
        // before the node is drained. kubeadm's release binary (as the runbook downloads it) runs
        // the upgrade instead; the package moves with the kubelet's.
        for (package_target, host, msg) in kubeadm_alone.into_inner().unwrap_or_default() {
            let new = self
                .kubeadm_from_release
                .lock()
                .is_ok_and(|mut t| t.insert(package_target));
            if new {
                self.reporter.note(
                    &host,
                    &format!(
                        "the kubeadm package of {package_target} cannot be installed before the kubelet's \
                         ({msg}): `kubeadm upgrade` runs its release binary ({KUBEADM_PATH}, checksum \
                         verified), and the kubeadm package moves with the kubelet's"
                    ),
                );
            }
        }
        let refusals = refusals.into_inner().unwrap_or_default();
        let order: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        for (i, package_target) in package_targets.iter().enumerate() {
            let mut refused: Vec<&(usize, String, String)> = refusals.iter().filter(|r| r.0 == i).collect();
            refused.sort_by_key(|(_, h, _)| order.iter().position(|o| o == h));
            if let Some((_, first, _)) = refused.first() {
                return Err(Stop::Failed {
                    host: first.clone(),
                    step: "packages-resolve".into(),
                    msg: format!("the packages of {package_target}: ")
                        + &refused
                            .iter()
                            .map(|(_, h, m)| format!("{h}: {m}"))
                            .collect::<Vec<_>>()
                            .join("; "),
                    fix: "make the target's packages available on those nodes (their repository, a mirror \
                          that has the target's minor, the packages the resolver names), then rerun; nothing \
                          was changed"
                        .into(),
                });
            }
        }
        Ok(())
    }

    /// The cluster's nodes that the inventory does not name (one survey). An inventory that leaves
    /// nodes out would leave them behind at the old version.
    pub fn unlisted_nodes(&self) -> Result<Vec<String>, Stop> {
        let survey = self.check(
            self.primary(),
            modules::survey_args(self.inventory, self.connection(), self.opts.force_drain),
        )?;
        Ok(survey["unlisted"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default())
    }

    /// Runs `job` for every host concurrently; the first failure in inventory order wins.
    fn on_each<F>(&self, hosts: &[&Host], job: F) -> Result<(), Stop>
    where
        F: Fn(&Host) -> Result<(), Stop> + Sync,
    {
        let results: Vec<Result<(), Stop>> = std::thread::scope(|scope| {
            let job = &job;
            let running: Vec<_> = hosts.iter().map(|h| scope.spawn(move || job(h))).collect();
            running
                .into_iter()
                .map(|r| {
                    r.join()
                        .unwrap_or_else(|_| Err(Stop::Setup("a host's thread crashed".into())))
                })
                .collect()
        });
        results.into_iter().collect()
    }

    /// kubeadm on each control plane, as the target's era does it ([`kube_eras`]): the target's
    /// kubeadm (downloaded, or its package after the repository switch), kubeadm-config's nodeName
    /// where the old kubeadm needs it, `apply` on the first and the era's command on the others.
    pub fn control_plane_kubeadm(&self, target: Version) -> Result<(), Stop> {
        self.control_plane_kubeadm_then(target, &|_| {})
    }

    /// [`Run::control_plane_kubeadm`], then `nodes` (the node phase), while every node's packages
    /// are staged ([`Run::stage`]). Stages begin once the first control plane has the target's
    /// kubeadm, so that no stage shares the repository's bandwidth with that download, which every
    /// later step waits for: then the workers' all at once, and each control plane's as soon as
    /// its own kubeadm is in place (its package manager is then free: from 1.12 that step installs
    /// the kubeadm package there), while its kubeadm runs. Each node's upgrade waits for its own
    /// stage only.
    pub fn control_plane_kubeadm_staging(
        &self,
        target: Version,
        nodes: impl FnOnce() -> Result<(), Stop>,
    ) -> Result<(), Stop> {
        if !self.opts.stage {
            self.control_plane_kubeadm(target)?;
            return nodes();
        }
        let wanted: Vec<&'a Host> = self
            .inventory
            .all_hosts()
            .filter(|h| self.stage_wanted(h))
            .collect();
        if let Ok(mut pending) = self.staging.0.lock() {
            pending.extend(wanted.iter().map(|h| h.name.clone()));
        }
        let (done, staged_next) = std::sync::mpsc::channel::<&'a Host>();
        let kubeadm_failed = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let kubeadm_failed = &kubeadm_failed;
            let stager = scope.spawn(move || {
                std::thread::scope(|each| {
                    let workers = || {
                        for host in &self.inventory.workers {
                            each.spawn(move || self.stage(host, target));
                        }
                    };
                    let mut workers_begun = false;
                    for host in staged_next {
                        if !workers_begun {
                            workers();
                            workers_begun = true;
                        }
                        each.spawn(move || self.stage(host, target));
                    }
                    // No control plane in this run (`--limit`), or every one left alone: the
                    // workers' stages begin now, unless the kubeadm phase failed.
                    if !workers_begun {
                        if kubeadm_failed.load(Ordering::SeqCst) {
                            self.unstage(self.inventory.workers.iter());
                        } else {
                            workers();
                        }
                    }
                });
            });
            let kubeadm = self.control_plane_kubeadm_then(target, &|host| {
                // The stager outlives this loop; a send fails only once it is gone.
                let _ = done.send(host);
            });
            kubeadm_failed.store(kubeadm.is_err(), Ordering::SeqCst);
            drop(done);
            let result = kubeadm.and_then(|()| nodes());
            if stager.join().is_err() {
                return Err(Stop::Setup("the staging thread crashed".into()));
            }
            result
        })
    }

    /// Waits until `host`'s own stage has ended (at once when it has none under way).
    fn wait_for_stage(&self, host: &Host) {
        let (pending, ended) = &self.staging;
        let Ok(mut pending) = pending.lock() else {
            return;
        };
        while pending.contains(&host.name) && !self.interrupted.load(Ordering::SeqCst) {
            match ended.wait_timeout(pending, Duration::from_millis(500)) {
                Ok((guard, _)) => pending = guard,
                Err(_) => return,
            }
        }
    }

    /// Control planes' kubeadm; `kubeadm_done` hears of each control plane as soon as the
    /// target's kubeadm is in place there (before kubeadm runs).
    fn control_plane_kubeadm_then(
        &self,
        target: Version,
        kubeadm_done: &(dyn Fn(&'a Host) + Sync),
    ) -> Result<(), Stop> {
        let era = kube_eras::for_target(target);
        let retry_delay = Seconds::<0>::new(self.opts.retry_delay)
            .map_err(|e| Stop::Setup(format!("--retry-delay {e}")))?;
        for (i, host) in self.inventory.control_plane.iter().enumerate() {
            if !self.in_limit(host) {
                continue;
            }
            let kubeadm_path = self.target_kubeadm(host, target)?;
            // Its package manager is free again: its stage may begin while its kubeadm runs.
            kubeadm_done(host);
            let action = match (i, era.other_control_planes) {
                (0, _) | (_, kube_eras::OtherControlPlanes::Apply) => kubeadm_upgrade::Action::Apply,
                (_, kube_eras::OtherControlPlanes::ExperimentalControlPlane) => {
                    kubeadm_upgrade::Action::ExperimentalControlPlane
                }
                (_, kube_eras::OtherControlPlanes::Node) => kubeadm_upgrade::Action::Node,
            };
            let apply = action == kubeadm_upgrade::Action::Apply;
            let mut args = Args::of::<kubeadm_upgrade::KubeadmUpgrade>(&kubeadm_upgrade::Params {
                kubeadm_path: kubeadm_path.clone(),
                retries: module_kit::Retries::of(1),
                retry_delay,
                ..kubeadm_upgrade::Params::new(action, Some(target.to_string()))
            });
            // A control plane already at the target is left alone: its nodeName is not moved to it
            // (a no-op rerun changes nothing in kubeadm-config).
            let outdated = || {
                self.call(host, args.clone().check_mode())
                    .map_or(true, |r| r["changed"] != false || r["failed"] == true)
            };
            // kubernetes.io "Upgrading kubeadm clusters": back up etcd first. A verified snapshot on
            // the first control plane before its apply (one per target; a rerun keeps it).
            if i == 0 && self.etcd_snapshot_wanted(host) {
                let taken = self.step(host, "etcd-snapshot", self.etcd_snapshot_args(host, target), true)?;
                if let Some(path) = taken["path"].as_str() {
                    self.reporter.note(
                        &host.name,
                        &format!(
                            "etcd snapshot {path} (revision {}, {} keys)",
                            taken["revision"], taken["total_key"]
                        ),
                    );
                }
            }
            if apply && era.config_edit == kube_eras::ConfigEdit::NodeName && outdated() {
                let nodename = Args::of::<kubeadm_config_nodename::KubeadmConfigNodename>(
                    &kubeadm_config_nodename::Params {
                        connection: self.connection(),
                        ..kubeadm_config_nodename::Params::new(Some(host.node_name.clone()))
                    },
                );
                self.step(host, "kubeadm-config-nodename", nodename, true)?;
            }
            // The 1.12 and 1.13 HA pages' kubeadm-config edits (idempotent, so never journaled: a
            // rerun asks again and learns the `--config` file again).
            if let Some(edit) = self.config_edit_args(host, target, i == 0) {
                if outdated() {
                    // The 1.12 HA page: an external etcd's copy of 1.11's MasterConfiguration must
                    // exist on every control plane before the upgrade begins (the first apply
                    // replaces it); a stacked etcd's other control planes have nothing to do yet.
                    if i == 0 && era.config_edit == kube_eras::ConfigEdit::EtcdPerNode {
                        for other in self.inventory.control_plane[1..]
                            .iter()
                            .filter(|h| self.in_limit(h))
                        {
                            if let Some(early) = self.config_edit_args(other, target, false) {
                                self.step(other, "kubeadm-config-edit", early, false)?;
                            }
                        }
                    }
                    let edited = self.step(host, "kubeadm-config-edit", edit, false)?;
                    if let Some(file) = edited["config_file"].as_str() {
                        args.json["config"] = Value::String(file.to_string());
                    }
                }
            }
            // kubeadm, then (it restarted this control plane's static pods) the wait until its API
            // server and etcd are Ready again: the next one is touched only then.
            let kubeadm_and_ready = || -> Result<(), Stop> {
                let step = if apply { "kubeadm-apply" } else { "kubeadm-node" };
                self.step(host, step, args.clone(), true)?;
                let ready = self.control_plane_ready_args(&host.node_name, None, self.opts.ready_timeout);
                self.step(host, "control-plane-ready", ready, false).map(|_| ())
            };
            let last = self.inventory.control_plane[i + 1..]
                .iter()
                .all(|h| !self.in_limit(h));
            match self.first_node().filter(|_| last) {
                // The node phase's first checks (read-only) while the last control plane's kubeadm runs.
                Some((first, worker)) => std::thread::scope(|scope| {
                    let ahead = scope.spawn(move || self.prepare_node(first, target, worker));
                    let done = kubeadm_and_ready();
                    let answer = ahead
                        .join()
                        .unwrap_or_else(|_| Err(Stop::Setup("a host's thread crashed".into())));
                    if let Ok(mut prepared) = self.prepared_ahead.lock() {
                        prepared.insert(first.name.clone(), answer);
                    }
                    done
                })?,
                None => kubeadm_and_ready()?,
            }
        }
        Ok(())
    }

    /// kubeadm_config_edit before `host`'s kubeadm, when the target's era edits kubeadm-config
    /// ([`kube_eras::ConfigEdit`]): 1.12 on every control plane, 1.13 on the first. It runs on the
    /// control plane (an external etcd's `--config` file is written there), with its admin.conf.
    pub fn config_edit_args(&self, host: &Host, target: Version, first: bool) -> Option<Args> {
        let wanted = match kube_eras::for_target(target).config_edit {
            kube_eras::ConfigEdit::EtcdPerNode => true,
            kube_eras::ConfigEdit::EtcdSectionRemoved => first,
            kube_eras::ConfigEdit::NodeName | kube_eras::ConfigEdit::None => false,
        };
        wanted.then(|| {
            let mut params =
                kubeadm_config_edit::Params::new(target.to_string(), host.node_name.clone(), first);
            params.connection = Connection::with_kubeconfig(None);
            // The inventory's `cri_socket` for the 1.12 annotation (the page's example: docker's).
            params.cri_socket = host
                .var("cri_socket")
                .and_then(|s| module_kit::Name::new(&s).ok());
            Args::of::<kubeadm_config_edit::KubeadmConfigEdit>(&params)
        })
    }

    /// Where `target`'s kubeadm comes from: its era's way, unless the preflight found that its
    /// package cannot be installed before the kubelet's.
    pub fn kubeadm_source(&self, target: Version) -> kube_eras::KubeadmSource {
        let from_release = self
            .kubeadm_from_release
            .lock()
            .is_ok_and(|t| t.contains(&target));
        match from_release {
            true => kube_eras::KubeadmSource::Download,
            false => kube_eras::for_target(target).kubeadm,
        }
    }

    /// package_pin of the kubeadm package alone at `target`, as it will resolve after the node's
    /// repository switch, in check mode: can kubeadm move first, the kubelet held?
    pub fn kubeadm_alone_check_args(&self, host: &Host, target: Version) -> Args {
        let mut args = self.pin_check_args(host, target);
        if let Some(o) = args.json.as_object_mut() {
            o.remove("cni_version");
            o.insert("packages".into(), serde_json::json!(["kubeadm"]));
        }
        args
    }

    /// The node phase's first node, and whether it is a worker.
    fn first_node(&self) -> Option<(&'a Host, bool)> {
        let inventory: &'a Inventory = self.inventory;
        let in_limit = |hosts: &'a [Host]| hosts.iter().find(|h| self.in_limit(h));
        in_limit(&inventory.control_plane)
            .map(|h| (h, false))
            .or_else(|| in_limit(&inventory.workers).map(|h| (h, true)))
    }

    /// Whether `host`'s packages are staged before it is taken out: `--no-stage` and the
    /// inventory's `stage_packages=false` say no; a host outside `--limit`, or whose packages an
    /// earlier run already changed, has nothing to stage.
    pub fn stage_wanted(&self, host: &Host) -> bool {
        let done = self
            .journal
            .lock()
            .map(|j| j.is_done(&format!("{}/packages", host.name)))
            .unwrap_or(false);
        self.opts.stage
            && self.in_limit(host)
            && !done
            && !matches!(
                host.var("stage_packages").as_deref(),
                Some("false" | "False" | "no" | "0")
            )
    }

    /// package_pin `stage` at `target`: the node's transaction downloaded into its package
    /// manager's cache from a private view of its repository at the target's minor, nothing
    /// installed, the node's repository file and holds untouched.
    pub fn stage_args(&self, host: &Host, target: Version) -> Args {
        let mut args = self.pin_args(Some(host), target);
        args.json["stage"] = Value::Bool(true);
        if let Some(file) = host.var("package_repo_file") {
            args.json["repo_path"] = Value::String(file);
        }
        args
    }

    /// Stages `host`'s packages so that its out-of-service window holds only the install from
    /// local cache. A failure is said and is no stop: the install then downloads, as unstaged.
    pub fn stage(&self, host: &Host, target: Version) {
        if self.stage_wanted(host) {
            if let Err(Stop::Failed { msg, .. }) =
                self.step(host, "stage", self.stage_args(host, target), false)
            {
                self.reporter.note(
                    &host.name,
                    &format!("its packages could not be staged (its install will download them): {msg}"),
                );
            }
        }
        self.unstage([host]);
    }

    /// `hosts` have no stage under way any more: their upgrades need not wait.
    fn unstage<'h>(&self, hosts: impl IntoIterator<Item = &'h Host>) {
        if let Ok(mut pending) = self.staging.0.lock() {
            for host in hosts {
                pending.remove(&host.name);
            }
        }
        self.staging.1.notify_all();
    }

    /// The inventory's `etcd_snapshot=false` turns the snapshot before the first apply off.
    fn etcd_snapshot_wanted(&self, host: &Host) -> bool {
        !matches!(
            host.var("etcd_snapshot").as_deref(),
            Some("false" | "False" | "no" | "0")
        )
    }

    /// etcd_snapshot for `target` on the first control plane: kubeadm's stacked-etcd client
    /// certificates by default (no snapshot, said so, when the host has none), or the external etcd
    /// the inventory names (`etcd_endpoint`, `etcd_cacert`, `etcd_cert`, `etcd_key`: then required),
    /// into `etcd_snapshot_dir`, keeping `etcd_snapshot_keep`.
    pub fn etcd_snapshot_args(&self, host: &Host, target: Version) -> Args {
        const VARS: [(&str, &str); 6] = [
            ("etcd_endpoint", "endpoint"),
            ("etcd_cacert", "cacert"),
            ("etcd_cert", "cert"),
            ("etcd_key", "key"),
            ("etcd_snapshot_dir", "dest_dir"),
            ("etcd_snapshot_keep", "keep"),
        ];
        let mut params = etcd_snapshot::Params::new(target.to_string());
        params.skip_without_certs = !VARS[..4].iter().any(|(var, _)| host.var(var).is_some());
        let mut args = Args::of::<etcd_snapshot::EtcdSnapshot>(&params);
        // As given: the module's own intake refuses a bad value, naming its parameter.
        for (var, field) in VARS {
            if let Some(value) = host.var(var) {
                args.json[field] = Value::String(value);
            }
        }
        args
    }

    /// Puts the target's kubeadm on `host` the era's way and says where it is: downloaded to
    /// [`KUBEADM_PATH`], or (from 1.12) its package installed after the repository switch.
    fn target_kubeadm(&self, host: &Host, target: Version) -> Result<FilePath, Stop> {
        match self.kubeadm_source(target) {
            kube_eras::KubeadmSource::Download => {
                let download = self.download_args(&target.to_string(), true);
                self.step(host, "kubeadm-download", download, true)?;
                Ok(FilePath::from_static(KUBEADM_PATH))
            }
            kube_eras::KubeadmSource::Package => {
                self.step(host, "package-repo", self.repo_args(Some(host), target)?, false)?;
                if let Ok(mut switched) = self.repo_switched.lock() {
                    switched.insert((host.name.clone(), target));
                }
                let package = self.kubeadm_package_args(host, target);
                self.step(host, "kubeadm-package", package, true)?;
                Ok(FilePath::from_static(PACKAGED_KUBEADM))
            }
        }
    }

    /// package_pin of the kubeadm package alone at `target` (kubernetes.io "Upgrading kubeadm
    /// clusters": upgrade kubeadm first, `apt-mark unhold kubeadm && apt-get install kubeadm=...`).
    fn kubeadm_package_args(&self, host: &Host, target: Version) -> Args {
        let mut params = package_pin::Params::new(target.to_string().trim_start_matches('v'));
        params.packages = vec!["kubeadm".to_string()];
        if let Some(manager) = host.var("package_manager") {
            params.manager = manager;
        }
        Args::of::<package_pin::PackagePin>(&params)
    }

    /// kubeadm_download of `version` (a release or a channel) from the release server; `install`:
    /// to [`KUBEADM_PATH`] (else its default, the same place).
    pub fn download_args(&self, version: &str, install: bool) -> Args {
        // A version or channel the module would refuse is refused by it, with its message.
        let spec = kubeadm_download::VersionSpec::parse(version)
            .unwrap_or_else(|_| kubeadm_download::VersionSpec::Exact(version.to_string()));
        let mut params = kubeadm_download::Params {
            base_url: self.opts.base_url.clone(),
            ..kubeadm_download::Params::new(spec)
        };
        if install {
            params.dest = FilePath::from_static(KUBEADM_PATH);
        }
        Args::of::<kubeadm_download::KubeadmDownload>(&params)
    }

    /// package_pin at `target` (and the CNI version, if any), with `host`'s package manager if the
    /// inventory names one.
    pub fn pin_args(&self, host: Option<&Host>, target: Version) -> Args {
        let mut params = package_pin::Params::new(target.to_string().trim_start_matches('v'));
        params.cni_version = self.opts.cni_version.clone();
        if let Some(manager) = host.and_then(|h| h.var("package_manager")) {
            params.manager = manager;
        }
        Args::of::<package_pin::PackagePin>(&params)
    }

    /// package_pin at `target` judged before anything changes (check mode only): from a fresh,
    /// private copy of the node's Kubernetes repository pointed at the target's minor, the
    /// transaction rehearsed by apt/dnf. What the plan and the preflight ask every node.
    pub fn pin_check_args(&self, host: &Host, target: Version) -> Args {
        let mut params = package_pin::Params::new(target.to_string().trim_start_matches('v'));
        params.cni_version = self.opts.cni_version.clone();
        params.assume_switched = true;
        if let Some(manager) = host.var("package_manager") {
            params.manager = manager;
        }
        params.repo_path = host.var("package_repo_file").and_then(|f| FilePath::new(&f).ok());
        Args::of::<package_pin::PackagePin>(&params).check_mode()
    }

    /// package_repo at `target`: the node's pkgs.k8s.io repository switched to the target's minor
    /// (kubernetes.io "Changing The Kubernetes Package Repository"); a legacy repository is left as
    /// it is. The inventory's `package_repo_file` names a file kup should not look for itself.
    pub fn repo_args(&self, host: Option<&Host>, target: Version) -> Result<Args, Stop> {
        let mut params = package_repo::Params::new(target.to_string());
        // A patch published since the node's last refresh is seen (never in the plan's check mode).
        params.refresh_always = true;
        if let Some(manager) = host.and_then(|h| h.var("package_manager")) {
            params.manager = manager;
        }
        if let Some((host, file)) = host.and_then(|h| h.var("package_repo_file").map(|f| (h, f))) {
            params.path = Some(FilePath::new(&file).map_err(|e| Stop::Failed {
                host: host.name.clone(),
                step: "package-repo".into(),
                msg: format!("the inventory's package_repo_file {e}"),
                fix: "give the repository file's absolute path".into(),
            })?);
        }
        Ok(Args::of::<package_repo::PackageRepo>(&params))
    }

    /// kubeadm_upgrade `action` (`node` or `node_config`) with the kubeadm at `path`.
    fn kubeadm_node_args(&self, action: kubeadm_upgrade::Action, path: FilePath, target: Version) -> Args {
        Args::of::<kubeadm_upgrade::KubeadmUpgrade>(&kubeadm_upgrade::Params {
            kubeadm_path: path,
            ..kubeadm_upgrade::Params::new(action, Some(target.to_string()))
        })
    }

    /// node_ready for `names` at `target`, waiting up to `timeout` seconds (0: look once).
    fn ready_args(&self, names: Vec<kube_kit::NodeName>, target: Version, timeout: u64) -> Args {
        Args::of::<NodeReady>(&node_ready::Params {
            names: Some(names),
            kubelet_version: Some(target.to_string()),
            timeout,
            interval: 1,
            control_plane: false,
            connection: self.connection(),
        })
    }

    /// node_ready of a control plane: Ready (at `target`, when its kubelet is there already) with
    /// its API server and etcd static pods Ready, so that the next control plane is only touched
    /// while this one serves again (kubernetes.io "Upgrading kubeadm clusters": one control plane
    /// at a time).
    fn control_plane_ready_args(
        &self,
        node: &kube_kit::NodeName,
        target: Option<Version>,
        timeout: u64,
    ) -> Args {
        Args::of::<NodeReady>(&node_ready::Params {
            names: Some(vec![node.clone()]),
            kubelet_version: target.map(|t| t.to_string()),
            timeout,
            interval: 1,
            control_plane: true,
            connection: self.connection(),
        })
    }

    fn drain_args(&self, node: &kube_kit::NodeName, state: node_drain::State) -> Args {
        let mut params = node_drain::Params {
            connection: self.connection(),
            ..node_drain::Params::new(node.clone(), state)
        };
        if state == node_drain::State::Drain {
            params.ignore_daemonsets = true;
            params.delete_emptydir_data = true;
            params.force = self.opts.force_drain;
            params.timeout = self.opts.drain_timeout;
        }
        Args::of::<node_drain::NodeDrain>(&params)
    }

    /// A node's upgrade as data, in order, as the target's era does it ([`kube_eras`]): on workers
    /// the target's kubeadm rewriting the kubelet's configuration (`upgrade node config` 1.11-1.14,
    /// `upgrade node` from 1.15), taken out (cordon or drain), the services stopped (up to 1.10),
    /// packages pinned, the services started (up to 1.10) or the kubelet restarted (from 1.11),
    /// Ready at the target, back in.
    pub fn node_steps(&self, host: &Host, target: Version, worker: bool) -> Vec<NodeStep> {
        let era = kube_eras::for_target(target);
        let node = &host.node_name;
        // The inventory's `units` replace the runbook's keepalived, kubelet, runtime.
        let units = |state| {
            let units = host.units().unwrap_or_else(|| {
                let runtime = host.var("container_runtime").unwrap_or_else(|| "docker".into());
                vec!["keepalived".to_string(), "kubelet".to_string(), runtime]
            });
            Args::of::<service_state::ServiceState>(&service_state::Params::new(units, state))
        };
        // The inventory's `take_out` overrides the era's.
        let how = match (host.take_out(), worker) {
            (Some(how), _) => how,
            (None, true) => era.take_out_workers,
            (None, false) => era.take_out_control_planes,
        };
        let take_out = match how {
            kube_eras::TakeOut::Drain => {
                NodeStep::new("drain", self.drain_args(node, node_drain::State::Drain))
            }
            kube_eras::TakeOut::Cordon => {
                NodeStep::new("cordon", self.drain_args(node, node_drain::State::Cordon))
            }
        };
        let ready = vec![node.clone()];
        let ready_args = |timeout| match worker {
            true => self.ready_args(ready.clone(), target, timeout),
            // A control plane's kubelet at a new minor restarts its static pods: the next node
            // waits until its API server and etcd serve again.
            false => self.control_plane_ready_args(node, Some(target), timeout),
        };
        let mut node_ready = NodeStep::new("node-ready", ready_args(self.opts.ready_timeout));
        // A resume looks once: is the node still Ready at the target?
        node_ready.recheck = ready_args(0).check_mode();
        let mut steps = Vec::new();
        // Workers: the target's kubeadm rewrites the kubelet's configuration and drops the flags its
        // kubelet no longer accepts, before the kubelet moves (kubernetes.io "Upgrading Linux nodes":
        // upgrade kubeadm, `kubeadm upgrade node`, drain, upgrade the kubelet).
        let kubelet_config = match era.workers_kubelet {
            kube_eras::WorkersKubelet::None => None,
            kube_eras::WorkersKubelet::NodeConfig => Some(kubeadm_upgrade::Action::NodeConfig),
            kube_eras::WorkersKubelet::Node => Some(kubeadm_upgrade::Action::Node),
        };
        if let (true, Some(action)) = (worker, kubelet_config) {
            let path = match self.kubeadm_source(target) {
                kube_eras::KubeadmSource::Download => {
                    steps.push(NodeStep::new(
                        "kubeadm-download",
                        self.download_args(&target.to_string(), true),
                    ));
                    FilePath::from_static(KUBEADM_PATH)
                }
                kube_eras::KubeadmSource::Package => {
                    steps.push(NodeStep::new(
                        "kubeadm-package",
                        self.kubeadm_package_args(host, target),
                    ));
                    FilePath::from_static(PACKAGED_KUBEADM)
                }
            };
            steps.push(NodeStep::new(
                "kubeadm-node",
                self.kubeadm_node_args(action, path, target),
            ));
        }
        steps.push(take_out);
        match era.services {
            kube_eras::Services::StopStart => steps.extend([
                NodeStep::new("stop-services", units(service_state::Wanted::Stopped)),
                NodeStep::new("packages", self.pin_args(Some(host), target)),
                NodeStep::new("start-services", units(service_state::Wanted::Started)),
            ]),
            kube_eras::Services::RestartKubelet => {
                let kubelet = vec!["kubelet".to_string()];
                steps.extend([
                    NodeStep::new("packages", self.pin_args(Some(host), target)),
                    NodeStep::new(
                        "restart-kubelet",
                        Args::of::<service_state::ServiceState>(&service_state::Params::new(
                            kubelet,
                            service_state::Wanted::Restarted,
                        )),
                    ),
                ])
            }
        }
        steps.extend([
            node_ready,
            NodeStep::new("uncordon", self.drain_args(node, node_drain::State::Uncordon)),
        ]);
        steps
    }

    /// The journaled steps of `host` (the `index`-th in inventory order) in the order a rollout to
    /// `target` runs them: on a control plane its kubeadm steps ([`Run::control_plane_kubeadm`]),
    /// then the node's ([`Run::node_steps`]). What `kup status` holds the journal against.
    pub fn journaled_steps(&self, index: usize, host: &Host, target: Version) -> Vec<&'static str> {
        let control_planes = self.inventory.control_plane.len();
        let worker = index >= control_planes;
        let mut names = Vec::new();
        if !worker {
            let era = kube_eras::for_target(target);
            names.push(match self.kubeadm_source(target) {
                kube_eras::KubeadmSource::Download => "kubeadm-download",
                kube_eras::KubeadmSource::Package => "kubeadm-package",
            });
            let apply = index == 0 || era.other_control_planes == kube_eras::OtherControlPlanes::Apply;
            if index == 0 && self.etcd_snapshot_wanted(host) {
                names.push("etcd-snapshot");
            }
            if apply && era.config_edit == kube_eras::ConfigEdit::NodeName {
                names.push("kubeadm-config-nodename");
            }
            names.push(if apply { "kubeadm-apply" } else { "kubeadm-node" });
        }
        names.extend(self.node_steps(host, target, worker).iter().map(|s| s.name));
        names
    }

    /// One node's package upgrade, with cordon (control plane) or drain (worker) around it.
    /// Skipped when the node already runs the target with the packages pinned.
    #[cfg(test)]
    pub fn upgrade_node(&self, host: &Host, target: Version, worker: bool) -> Result<(), Stop> {
        let prepared = self.prepare_node(host, target, worker)?;
        self.upgrade_prepared(host, target, worker, prepared)
    }

    /// What a node's upgrade asks before it is taken out, none of it changing the node: its own
    /// stage ended, its packages in check mode as they will be after its repository switch (a
    /// private view of the repository at the target's minor, as the preflight asks), or, for a
    /// node an earlier run began, the journal. [`Run::nodes`] asks this of the next node while
    /// the current one is out of service; a rollout that stops has changed nothing on it.
    pub fn prepare_node(&self, host: &Host, target: Version, worker: bool) -> Result<Prepared, Stop> {
        // Its package manager is free once its own stage has ended.
        self.wait_for_stage(host);
        let steps = self.node_steps(host, target, worker);
        // A node this rollout already began on is finished, never skipped: it may still be cordoned.
        let begun = self
            .journal
            .lock()
            .map(|j| {
                steps
                    .iter()
                    .any(|s| j.is_done(&format!("{}/{}", host.name, s.name)))
            })
            .unwrap_or(false);
        if begun {
            return Ok(Prepared {
                previous: None,
                at_target: false,
                begun: true,
            });
        }
        let pinned = self.step(host, "packages-check", self.pin_check_args(host, target), false)?;
        let ready = self.ready_args(vec![host.node_name.clone()], target, 0);
        let ready_at_target = self.call(host, ready).is_ok_and(|r| r["failed"] == false);
        let at_target = pinned["changed"] == false && ready_at_target;
        Ok(Prepared {
            // The exact kubelet version the node had, for a rollback.
            previous: kubelet_before(&pinned),
            at_target,
            begun: false,
        })
    }

    /// The rest of [`Run::upgrade_node`] once [`Run::prepare_node`] has answered.
    pub fn upgrade_prepared(
        &self,
        host: &Host,
        target: Version,
        worker: bool,
        prepared: Prepared,
    ) -> Result<(), Stop> {
        // pkgs.k8s.io holds one minor per repository: the target's packages are not there until the
        // node's repository definition points at its minor. Idempotent, so it runs every time, but
        // once a run (a control plane's kubeadm step switched it already).
        let switched = self
            .repo_switched
            .lock()
            .is_ok_and(|s| s.contains(&(host.name.clone(), target)));
        if !switched {
            self.step(host, "package-repo", self.repo_args(Some(host), target)?, false)?;
        }
        let steps = self.node_steps(host, target, worker);
        if prepared.begun {
            // Checked now, not ahead: the node may have changed while the one before it was out.
            self.recheck_resumed(host, &steps)?;
        } else if prepared.at_target {
            self.reporter
                .note(&host.name, &format!("already at {target}: nothing to do"));
            return Ok(());
        }
        let previous = prepared.previous;
        let restart = steps.iter().find(|s| s.name == "start-services").cloned();
        let mut packages_done = false;
        for s in steps {
            let name = s.name;
            if let Err(stop) = self.step(host, name, s.args, true) {
                let stop = self.put_back(host, restart.as_ref(), stop);
                let rollback = worker
                    && packages_done
                    && self.opts.on_node_failure == OnNodeFailure::Rollback
                    && matches!(name, "start-services" | "restart-kubelet" | "node-ready");
                return Err(match (rollback, previous.as_deref()) {
                    (true, Some(previous)) => self.roll_back(host, target, previous, stop),
                    _ => stop,
                });
            }
            packages_done |= name == "packages";
        }
        Ok(())
    }

    /// A worker whose kubelet did not come back at the target goes back to `previous` (its exact
    /// kubelet package version): its repository to that minor, kubelet/kubeadm/kubectl reinstalled
    /// (a downgrade), the kubelet restarted, Ready at the old version, left cordoned unless asked.
    /// The journal forgets the node's steps toward `target` (the era's names, which can differ
    /// from the old version's), so a rerun upgrades it again; the rollout stops either way.
    fn roll_back(&self, host: &Host, target: Version, previous: &str, stop: Stop) -> Stop {
        let Stop::Failed {
            host: name,
            step,
            msg,
            ..
        } = stop
        else {
            return stop;
        };
        let upstream = previous.split('-').next().unwrap_or(previous);
        let Some(old) = Version::parse(upstream) else {
            return Stop::Failed {
                host: name,
                step,
                msg: format!("{msg}; no rollback: {previous} is not a version kup can read"),
                fix: fix_for("node-ready"),
            };
        };
        self.reporter.note(
            &host.name,
            &format!("rolling back to kubelet {previous} (--on-node-failure rollback)"),
        );
        let era = kube_eras::for_target(old);
        let mut pin = package_pin::Params::new(previous);
        pin.allow_downgrade = true;
        if let Some(manager) = host.var("package_manager") {
            pin.manager = manager;
        }
        let restart = match era.services {
            kube_eras::Services::RestartKubelet => {
                service_state::Params::new(vec!["kubelet".into()], service_state::Wanted::Restarted)
            }
            kube_eras::Services::StopStart => {
                let units = host.units().unwrap_or_else(|| {
                    let runtime = host.var("container_runtime").unwrap_or_else(|| "docker".into());
                    vec!["keepalived".to_string(), "kubelet".to_string(), runtime]
                });
                service_state::Params::new(units, service_state::Wanted::Started)
            }
        };
        let back = (|| -> Result<(), Stop> {
            self.step(host, "rollback-repo", self.repo_args(Some(host), old)?, false)?;
            self.step(
                host,
                "rollback-packages",
                Args::of::<package_pin::PackagePin>(&pin),
                false,
            )?;
            self.step(
                host,
                "rollback-restart",
                Args::of::<service_state::ServiceState>(&restart),
                false,
            )?;
            let ready = self.ready_args(vec![host.node_name.clone()], old, self.opts.ready_timeout);
            self.step(host, "rollback-ready", ready, false)?;
            if self.opts.rollback_uncordon {
                let uncordon = self.drain_args(&host.node_name, node_drain::State::Uncordon);
                self.step(host, "rollback-uncordon", uncordon, false)?;
            }
            Ok(())
        })();
        let reason = msg.split("; its state: ").next().unwrap_or(&msg).to_string();
        match back {
            Ok(()) => {
                if let Ok(mut journal) = self.journal.lock() {
                    for s in self.node_steps(host, target, true) {
                        let _ = journal.unmark(&format!("{}/{}", host.name, s.name));
                    }
                }
                let left = if self.opts.rollback_uncordon {
                    "uncordoned"
                } else {
                    "left cordoned"
                };
                Stop::Failed {
                    host: name,
                    step,
                    msg: format!(
                        "{reason}; kup rolled {} back to kubelet {previous}: Ready at {old}, {left}; the rollout \
                         stopped there",
                        host.name
                    ),
                    fix: "find why the new kubelet did not come back on it (its last log lines above), fix \
                          that, then rerun: the node is upgraded again and the rollout goes on"
                        .into(),
                }
            }
            Err(e) => Stop::Failed {
                host: name,
                step,
                msg: format!(
                    "{reason}; rolling it back to kubelet {previous} failed too: {e}; its state: {}",
                    self.state_of(host)
                ),
                fix: fix_for("node-ready"),
            },
        }
    }

    /// After a failed step, the services kup stopped on `host` are started again (the node keeps
    /// running, on whatever packages it has), and the journal forgets that they were stopped, so
    /// that a rerun stops them again before the packages. An interrupt or an abort changes nothing.
    fn put_back(&self, host: &Host, restart: Option<&NodeStep>, stop: Stop) -> Stop {
        let Stop::Failed {
            host: name,
            step,
            msg,
            fix,
        } = stop
        else {
            return stop;
        };
        let key = |s: &str| format!("{}/{s}", host.name);
        let stopped = self
            .journal
            .lock()
            .map(|j| j.is_done(&key("stop-services")) && !j.is_done(&key("start-services")))
            .unwrap_or(false);
        // A host that stopped answering cannot be asked to start anything.
        let lost = msg.starts_with(&format!("host {} stopped answering", host.name));
        let (Some(restart), true, false) = (restart, stopped, lost) else {
            return Stop::Failed {
                host: name,
                step,
                msg,
                fix,
            };
        };
        let reason = msg.split("; its state: ").next().unwrap_or(&msg).to_string();
        let msg = match self.step(host, "start-services", restart.args.clone(), false) {
            Ok(_) => {
                if let Ok(mut journal) = self.journal.lock() {
                    let _ = journal.unmark(&key("stop-services"));
                }
                format!(
                    "{reason}; kup started its services again (a rerun stops them before the packages); \
                     its state: {}",
                    self.state_of(host)
                )
            }
            Err(e) => format!("{msg}; starting its services again failed too: {e}"),
        };
        Stop::Failed {
            host: name,
            step,
            msg,
            fix,
        }
    }

    /// Resuming a node an earlier run left halfway: the journal says which steps it finished, but
    /// someone may have changed the node since (started its services by hand, uncordoned it). The
    /// last finished step is checked against the live node (its module in check mode); if the
    /// node no longer is as that step left it, the step is forgotten and runs again.
    fn recheck_resumed(&self, host: &Host, steps: &[NodeStep]) -> Result<(), Stop> {
        let inherited = |s: &NodeStep| {
            self.journal
                .lock()
                .map(|j| j.inherited(&format!("{}/{}", host.name, s.name)))
                .unwrap_or(false)
        };
        let Some(last) = steps.iter().rev().find(|s| inherited(s)) else {
            return Ok(());
        };
        let verdict = self
            .call(host, last.recheck.clone())
            .map_err(|e| self.lost(host, &format!("{} (check)", last.name), e))?;
        // node_ready changes nothing: it contradicts the step by failing; the others by having
        // something to change.
        let contradicted = if last.recheck.module == NodeReady::NAME {
            verdict["failed"] == true
        } else {
            verdict["changed"] == true
        };
        if contradicted {
            let key = format!("{}/{}", host.name, last.name);
            self.journal
                .lock()
                .map_err(|_| Stop::Setup("journal lock poisoned".into()))?
                .unmark(&key)
                .map_err(Stop::Setup)?;
            self.reporter.note(
                &host.name,
                &format!(
                    "resuming: the journal says step {} was done, but the node says otherwise ({}); running it again",
                    last.name,
                    verdict["msg"].as_str().unwrap_or("")
                ),
            );
        } else {
            // The operator (and the event stream) learns what the resume relied on.
            self.reporter.note(
                &host.name,
                &format!(
                    "resuming: the node confirms step {} that an earlier run did ({}: {})",
                    last.name,
                    last.recheck.module,
                    verdict["msg"].as_str().unwrap_or("")
                ),
            );
        }
        Ok(())
    }

    /// One module in check mode, for `kup plan` (never journaled).
    pub fn check(&self, host: &Host, args: Args) -> Result<Value, Stop> {
        let module = args.module;
        self.step(host, module, args.check_mode(), false)
    }

    /// The node phase: each control plane, then the workers in batches. The next node's (or the
    /// next batch's) checks ([`Run::prepare_node`]) run while the current one is out of service,
    /// so that no node waits for them between two windows.
    pub fn nodes(&self, target: Version) -> Result<(), Stop> {
        let in_limit =
            |hosts: &'a [Host]| -> Vec<&'a Host> { hosts.iter().filter(|h| self.in_limit(h)).collect() };
        let control_planes = in_limit(&self.inventory.control_plane);
        let workers = in_limit(&self.inventory.workers);
        let size = self.opts.workers_batch.size(workers.len());
        let next_workers = |rest: &[&'a Host]| rest[..size.min(rest.len())].to_vec();
        std::thread::scope(|scope| {
            let ahead = std::cell::RefCell::new(std::collections::HashMap::new());
            // Asks `hosts` ahead, each once, in threads of their own.
            let prepare = |hosts: &[&'a Host]| {
                let mut ahead = ahead.borrow_mut();
                let asked = self
                    .prepared_ahead
                    .lock()
                    .map(|a| a.keys().cloned().collect())
                    .unwrap_or_else(|_| std::collections::HashSet::new());
                for &host in hosts.iter().filter(|h| !asked.contains(&h.name)) {
                    let worker = !control_planes.iter().any(|c| std::ptr::eq(*c, host));
                    ahead
                        .entry(host.name.clone())
                        .or_insert_with(|| scope.spawn(move || self.prepare_node(host, target, worker)));
                }
            };
            // What was asked ahead of `host`, waited for.
            let answer = |host: &Host| -> Result<Prepared, Stop> {
                let early = self
                    .prepared_ahead
                    .lock()
                    .ok()
                    .and_then(|mut a| a.remove(&host.name));
                if let Some(answer) = early {
                    return answer;
                }
                let asked = ahead.borrow_mut().remove(&host.name);
                match asked {
                    Some(asked) => asked
                        .join()
                        .unwrap_or_else(|_| Err(Stop::Setup("a host's thread crashed".into()))),
                    None => Err(Stop::Setup(format!("{} was not prepared", host.name))),
                }
            };
            for (i, &host) in control_planes.iter().enumerate() {
                prepare(&[host]);
                match control_planes.get(i + 1) {
                    Some(&next) => prepare(&[next]),
                    None => prepare(&next_workers(&workers)),
                }
                self.upgrade_prepared(host, target, false, answer(host)?)?;
            }
            let mut rest: &[&'a Host] = &workers;
            while !rest.is_empty() {
                prepare(&next_workers(rest));
                let (batch, more) = rest.split_at(self.next_batch(rest, size).min(rest.len()));
                prepare(&next_workers(more));
                let answers: std::sync::Mutex<std::collections::HashMap<String, Result<Prepared, Stop>>> =
                    std::sync::Mutex::new(batch.iter().map(|h| (h.name.clone(), answer(h))).collect());
                self.on_each(batch, |host| {
                    let prepared = answers
                        .lock()
                        .ok()
                        .and_then(|mut a| a.remove(&host.name))
                        .unwrap_or_else(|| Err(Stop::Setup(format!("{} was not prepared", host.name))));
                    self.upgrade_prepared(host, target, true, prepared?)
                })?;
                rest = more;
            }
            Ok(())
        })
    }

    /// How many of `candidates` the next batch drains: up to `size`, fewer when draining one
    /// more would cost a PodDisruptionBudget more disruptions than it allows now (one survey of
    /// the cluster per batch: the allowances recover as the last batch's pods come back).
    fn next_batch(&self, candidates: &[&Host], size: usize) -> usize {
        if size <= 1 || candidates.len() <= 1 {
            return 1;
        }
        let survey = modules::survey_args(self.inventory, self.connection(), self.opts.force_drain);
        let survey = match self.check(self.primary(), survey) {
            Ok(survey) => survey,
            Err(stop) => {
                // The eviction API still refuses what a budget does not allow: the drains wait.
                self.reporter.note(
                    &self.primary().name,
                    &format!(
                        "the budgets could not be read to size the next batch ({stop}); it takes {size}"
                    ),
                );
                return size;
            }
        };
        let names: Vec<&str> = candidates.iter().map(|h| h.node_name.as_str()).collect();
        let (costs, allowed) = crate::batches::from_survey(&survey, &names);
        let ordered: Vec<(&str, crate::batches::Cost)> = names.iter().copied().zip(costs).collect();
        let (taken, why) = crate::batches::next(&ordered, size, &allowed);
        if let Some(why) = why {
            self.reporter.note(&candidates[0].name, &why);
        }
        taken
    }

    pub fn verify(&self, target: Version) -> Result<(), Stop> {
        let names = self
            .inventory
            .all_hosts()
            .filter(|h| self.in_limit(h))
            .map(|h| h.node_name.clone())
            .collect();
        let args = self.ready_args(names, target, self.opts.ready_timeout);
        self.step(self.primary(), "verify", args, false).map(|_| ())
    }
}

/// The kubelet package version a node runs before its packages change (`1.34.2-1.1`), from
/// package_pin's check result.
fn kubelet_before(check: &Value) -> Option<String> {
    check["packages"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == "kubelet")?["before"]
        .as_str()
        .map(str::to_string)
}

/// `1.35` or `v1.35`: its stable channel, `stable-1.35`.
pub fn minor_channel(spec: &str) -> Option<String> {
    let bare = spec.trim().trim_start_matches('v');
    let (major, minor) = bare.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(major) && digits(minor)).then(|| format!("stable-{major}.{minor}"))
}

fn fix_for(step: &str) -> String {
    match step {
        "preflight" => "fix what the failed checks say, then rerun".into(),
        "kubeadm-download" => "check base_url (--base-url) and the target version, then rerun".into(),
        "kubeadm-package" => "the target's kubeadm package could not be installed: read the package manager's error above (a repository without the target? a held or missing dependency?), fix it, then rerun".into(),
        "kubeadm-apply" | "kubeadm-node" => {
            "read kubeadm's error above (the runbook: a secondary often succeeds when retried after a minute); rerun to resume".into()
        }
        "control-plane-ready" => "this control plane's API server or etcd did not come back Ready after kubeadm: look at `crictl ps -a` / `journalctl -u kubelet` and the static pod manifests on it (kubeadm kept the old ones under /etc/kubernetes/tmp), repair it, then rerun to resume; the next control plane was not touched".into(),
        "drain" => "a PodDisruptionBudget or a pod without a controller blocks the drain: fix it (or --force-drain for bare pods), then rerun".into(),
        "node-ready" | "start-services" | "restart-kubelet" => {
            "the node's kubelet did not come back: look at `systemctl status kubelet` and `journalctl -u kubelet` on it, repair it, then rerun to resume".into()
        }
        "lock" => "wait for the other run to end; if it is gone for good, rerun with --take-over-lock once the lock is stale".into(),
        _ => "fix the cause above, then rerun the same command to resume".into(),
    }
}

#[cfg(test)]
#[path = "procedure_tests.rs"]
mod tests;
