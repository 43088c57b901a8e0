//! `kup`: upgrade a kubeadm HA cluster, the runbook automated.
//!
//!   kup plan    -i INVENTORY --to VERSION|CHANNEL    what would change; changes nothing
//!   kup upgrade -i INVENTORY --to VERSION|CHANNEL    the whole rollout, resumable
//!   kup status  -i INVENTORY [--to VERSION]          the journal against the live cluster
//!   kup module NAME [ARGS.json]                      run one module (JSON on stdin without ARGS)
//!   kup module                                       the modules kup carries, each in a line
//!   kup module describe NAME [--json]                a module's arguments, from its documentation
//!   kup module --list                                the modules, for scripts: NAME api|host LINKS
//!
//! Exit codes: 0 done (plan: can go ahead), 1 failed or refused (plan: blocked), 2 usage,
//! 130 interrupted. With `--json`, stdout is the `kup.events/v1` stream ([`events`]).

mod batches;
mod events;
mod hops;
mod inventory;
mod journal;
mod live;
mod lock;
mod moduledoc;
mod modules;
mod procedure;
mod report;
mod runlog;
mod status;
mod transport;

use clap::{Parser, Subcommand};
use events::ErrorKind;
use inventory::Inventory;
use journal::Journal;
use procedure::{Options, Run, Stop};
use report::Reporter;
use runlog::RunLog;
use serde_json::{json, Value};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use transport::SshTransport;

#[derive(Parser, Debug)]
#[command(
    name = "kup",
    version,
    about = "Upgrade a kubeadm-built, highly-available Kubernetes cluster, one minor version at a time",
    long_about = "Upgrade a kubeadm-built, highly-available Kubernetes cluster, one minor version at a time.\n\n\
        The procedure is the classic runbook, automated: preflight; on the first control plane download the \
        target's kubeadm, point kubeadm-config's nodeName at it and `kubeadm upgrade apply`; the same on each \
        other control plane (retried, or `kubeadm upgrade node` from 1.15); then every node one by one \
        (control planes cordoned, workers drained in batches): stop keepalived/kubelet/runtime, install the \
        pinned packages, start them again in reverse order, wait until Ready at the version, uncordon; then \
        verify.\n\nStart with `kup plan`. A failed or interrupted `kup upgrade` resumes where it stopped when \
        run again.\n\nProgress: on a terminal, a live table of every host and its steps (+ changed, . unchanged, \
        = done before, X failed, and the running step with its time) above the log; plain lines when stderr \
        is not a terminal; `--json` for an event stream. The report follows on stdout.\n\n\
        Every plan and upgrade appends a log of the run, one JSON object a line (the command, every step \
        with its module's full result, the outcome), beside the journal; its path is printed at the end. \
        `kup status` shows what the journal has done against what the API server says.\n\n\
        Examples:\n  \
        kup plan    -i hosts.ini --to v1.9.2 -v      # every message in full\n  \
        kup upgrade -i hosts.ini --to v1.9.2 -vv     # also each module's result, as it comes\n  \
        kup upgrade -i hosts.ini --to v1.9.2 --log ~/upgrade-prod.log\n  \
        kup status  -i hosts.ini                     # the journal's target, per host done/next and the node now\n  \
        jq 'select(.status == \"FAILED\") | .result' .hosts.ini.kup-journal.json.log"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug, Clone)]
struct Common {
    /// Ansible inventory (INI or YAML): groups control_plane (or masters) and workers (or nodes).
    #[arg(short, long)]
    inventory: PathBuf,
    /// Target: a release (v1.9.2) or a channel (stable-1.9) resolved with the release server.
    #[arg(long)]
    to: String,
    /// A release to pass through on the way to a target several minors ahead (repeatable); each
    /// minor in between not named here goes to its channel's release (`stable-1.X`). kup never
    /// skips a minor: `--to 1.35` on a 1.33 cluster is two rollouts, 1.34 then 1.35.
    #[arg(long, value_name = "RELEASE")]
    via: Vec<String>,
    /// Only these hosts or groups, as Ansible's --limit (comma-separated or repeated: host names,
    /// node names, control_plane/masters, workers/nodes, all). The others stay at their version
    /// (the plan lists them); control planes not yet at the target cannot be left out.
    #[arg(long, value_delimiter = ',', value_name = "HOSTS")]
    limit: Vec<String>,
    /// Release server (default: the inventory's kubeadm_base_url, else https://dl.k8s.io/release).
    #[arg(long)]
    base_url: Option<String>,
    /// Also pin kubernetes-cni at this version (default: the inventory's cni_version, if any).
    #[arg(long)]
    cni_version: Option<String>,
    /// The `kup.events/v1` JSON event stream on stdout (one object a line: start, phase,
    /// step-start, step, note, blockers, report, and a final error with the exit code and what to
    /// do) instead of progress lines and the report table; documented in the README and
    /// docs/kup-events.schema.json.
    #[arg(long)]
    json: bool,
    /// Go ahead although the cluster has nodes the inventory does not name (they stay behind at
    /// their version; the plan lists them).
    #[arg(long)]
    allow_partial: bool,
    /// Drains also delete pods without a controller (nothing recreates them: their data is lost).
    /// The plan judges the drains with the same flag.
    #[arg(long)]
    force_drain: bool,
    /// More on stderr as steps end: -v each step's message in full (not cut to a line), -vv also
    /// the module's whole result (JSON, secrets hidden). The run log has both either way.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// The run log (one JSON object a line, appended, mode 0600): default `<journal>.log` for
    /// upgrade, `<journal>.plan.log` for plan, beside the journal. A --log in a world-writable
    /// directory is refused; the default name gets a random part there.
    #[arg(long, value_name = "PATH")]
    log: Option<PathBuf>,
}

/// `kup status`'s arguments.
#[derive(clap::Args, Debug, Clone)]
struct StatusArgs {
    /// Ansible inventory (INI or YAML), as given to upgrade.
    #[arg(short, long)]
    inventory: PathBuf,
    /// The rollout's target (default: the journal's). A journal for another target counts as none.
    #[arg(long)]
    to: Option<String>,
    /// The journal, as given to upgrade (default: beside the inventory).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Release server, only to resolve a channel given to --to.
    #[arg(long)]
    base_url: Option<String>,
    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Preflight, then host by host what would change (every module in check mode), then one survey of
    /// the cluster (versions, what would block or hold up each node's drain). Changes nothing.
    Plan(Common),
    /// Run the upgrade.
    Upgrade {
        #[command(flatten)]
        common: Common,
        /// Workers upgraded at the same time: a number, or a percentage of the workers as
        /// Ansible's `serial: 20%` (rounded down, at least 1).
        #[arg(long, default_value = "1", value_name = "N|PCT%")]
        workers_batch: procedure::WorkersBatch,
        /// Do not stage packages. By default every node's packages are downloaded into its
        /// package manager's cache while the control planes' kubeadm runs (a private view of its
        /// repository at the target's minor; nothing installed, its repository file and holds
        /// untouched), so a node out of service only installs from local cache. The inventory's
        /// `stage_packages=false` turns it off for one host.
        #[arg(long)]
        no_stage: bool,
        /// Seconds before a failed `kubeadm upgrade` is retried once.
        #[arg(long, default_value_t = 90)]
        retry_delay: u64,
        /// Seconds a drain may take (PodDisruptionBudgets make it wait).
        #[arg(long, default_value_t = 600)]
        drain_timeout: u64,
        /// Seconds a node may take to be Ready at the new version.
        #[arg(long, default_value_t = 300)]
        ready_timeout: u64,
        /// A worker whose new kubelet does not come back Ready at the target (or whose services
        /// fail to start): `rollback` reinstalls its previous kubelet/kubeadm/kubectl (repository
        /// switched back), restarts the kubelet, waits for it Ready at the old version and stops the
        /// rollout; `stop` leaves it as it is and stops. Control planes always stop.
        #[arg(long, value_enum, default_value_t = procedure::OnNodeFailure::Rollback)]
        on_node_failure: procedure::OnNodeFailure,
        /// A worker rolled back is uncordoned (default: left cordoned for you to look at).
        #[arg(long)]
        rollback_uncordon: bool,
        /// The journal of finished steps (default: `.INVENTORY.kup-journal.json` beside the inventory).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Ignore the journal and start from the beginning.
        #[arg(long)]
        restart: bool,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
        /// The same as `kup plan`.
        #[arg(long)]
        check: bool,
        /// Take the cluster's lock from a run that stopped renewing it (crashed, or its machine is
        /// gone) once it is stale. A live run's lock is never taken.
        #[arg(long)]
        take_over_lock: bool,
    },
    /// What a rollout has done and what the cluster says now: per host the journal's steps done
    /// and the next one, what that leaves the node in, and its kubelet version, Ready and cordoned
    /// as the API server tells them (one survey in check mode). Changes nothing, takes no lock;
    /// exit 0, 1 when the API server could not be asked (the journal is shown all the same).
    ///
    /// Examples: `kup status -i hosts.ini` (the target the journal holds), `kup status -i hosts.ini
    /// --to v1.9.2` (no journal: nothing done yet, or the rollout finished), `--json` for scripts.
    Status(StatusArgs),
    /// Print the procedure per Kubernetes era that kup follows (the table playbooks/vars/eras.yml
    /// holds for upgrade.yml): where kubeadm comes from, what the other control planes and the
    /// workers run, how nodes are taken out, what happens to their services, which repository.
    Eras {
        /// One JSON object on stdout (`{"eras": [...]}`, the same rows and fields) instead of YAML.
        #[arg(long)]
        json: bool,
    },
    /// Run one module (the multicall entry kup uses on hosts): JSON args file, or JSON on stdin.
    /// Without a name, the modules kup carries, each with what it does; `kup module describe NAME`
    /// describes a module's arguments (name, type, required, default, what it is), from the
    /// module's own documentation (the sidecar NAME.yml that Ansible reads, built into kup).
    Module {
        /// List the modules kup carries instead, one a line for scripts: name, where it runs (api:
        /// on this machine or the first control plane; host: on its host), what it links (std,
        /// https, kube).
        #[arg(long, exclusive = true)]
        list: bool,
        /// While the module runs, write its progress (why a long wait still waits) on stderr, one
        /// JSON object a line; stdout stays its one result. How kup runs modules on hosts; modules
        /// run any other way (Ansible) stay silent.
        #[arg(long)]
        progress: bool,
        /// The module to run (or `describe`, then the module to describe).
        name: Option<String>,
        #[arg(allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match cli.command {
        Command::Module { list: true, .. } => modules::list(),
        Command::Module { name: None, .. } => moduledoc::print_list(),
        Command::Module {
            name: Some(name),
            args,
            ..
        } if name == "describe" => moduledoc::print_describe(&args),
        Command::Module {
            name: Some(name),
            args,
            progress,
            ..
        } => {
            if progress {
                module_kit::progress::enable();
            }
            modules::run(&name, args)
        }
        Command::Eras { json } => {
            let text = if json {
                moduledoc::eras_json().to_string() + "\n"
            } else {
                kube_eras::to_yaml()
            };
            match std::io::stdout().lock().write_all(text.as_bytes()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            }
        }
        Command::Plan(common) => plan(&common),
        Command::Status(args) => status(&args),
        Command::Upgrade {
            common,
            workers_batch,
            no_stage,
            retry_delay,
            drain_timeout,
            ready_timeout,
            on_node_failure,
            rollback_uncordon,
            state,
            restart,
            yes,
            check,
            take_over_lock,
        } => {
            if check {
                return plan(&common);
            }
            let mut opts = options(&common, workers_batch, retry_delay, drain_timeout, ready_timeout);
            opts.on_node_failure = on_node_failure;
            opts.rollback_uncordon = rollback_uncordon;
            opts.stage = !no_stage;
            upgrade(&common, opts, state, restart, yes, take_over_lock)
        }
    }
}

/// A command line clap refuses: exit 2 with its message (as the one `error` event of the stream
/// when `--json` was asked for); `--help` and `--version` print as usual.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind as Clap;
    if matches!(e.kind(), Clap::DisplayHelp | Clap::DisplayVersion) {
        e.exit();
    }
    if std::env::args_os().any(|a| a == "--json") {
        let _ = writeln!(std::io::stdout(), "{}", events::usage_error(&e.to_string()));
        let _ = write!(std::io::stderr(), "{e}");
        return ExitCode::from(2);
    }
    e.exit()
}

/// `--to` as a release or a channel, or a usage error that says what is expected.
fn check_target(to: &str) -> Result<(), String> {
    if procedure::minor_channel(to).is_some() {
        return Ok(());
    }
    kubeadm_download::VersionSpec::parse(to)
        .map(|_| ())
        .map_err(|e| format!("--to: {e}"))
}

/// `--via` releases, or a usage error naming the bad one.
fn via_versions(via: &[String]) -> Result<Vec<kube_version::Version>, String> {
    via.iter()
        .map(|v| {
            kube_version::Version::parse(v)
                .ok_or_else(|| format!("--via {v}: expected a release such as v1.34.7"))
        })
        .collect()
}

fn options(
    c: &Common,
    workers_batch: procedure::WorkersBatch,
    retry_delay: u64,
    drain_timeout: u64,
    ready_timeout: u64,
) -> Options {
    Options {
        target: c.to.clone(),
        workers_batch,
        retry_delay,
        base_url: String::new(),
        cni_version: c.cni_version.clone(),
        force_drain: c.force_drain,
        drain_timeout,
        ready_timeout,
        on_node_failure: procedure::OnNodeFailure::Rollback,
        stage: false,
        rollback_uncordon: false,
        limit: (!c.limit.is_empty()).then(|| c.limit.iter().map(|l| l.trim().to_string()).collect()),
    }
}

fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "kup: {text}");
}

/// What the signals have asked for: the first Ctrl-C (or SIGTERM) finishes the steps under way and
/// starts no other; a second one ends them where they are. Children run in process groups of
/// their own, so the terminal's Ctrl-C reaches kup alone.
struct Signals {
    interrupted: Arc<AtomicBool>,
    aborted: Arc<AtomicBool>,
}

impl Signals {
    fn watch() -> Signals {
        let s = Signals {
            interrupted: Arc::new(AtomicBool::new(false)),
            aborted: Arc::new(AtomicBool::new(false)),
        };
        let (interrupted, aborted) = (Arc::clone(&s.interrupted), Arc::clone(&s.aborted));
        match signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        {
            Ok(mut signals) => {
                std::thread::spawn(move || {
                    for _ in signals.forever() {
                        if interrupted.swap(true, Ordering::SeqCst) {
                            aborted.store(true, Ordering::SeqCst);
                            say("second interrupt: ending the steps under way now");
                        } else {
                            say("interrupt: finishing the steps under way, then stopping (interrupt again to end them now)");
                        }
                    }
                });
            }
            Err(e) => say(&format!(
                "cannot watch for Ctrl-C ({e}): an interrupt ends kup at once"
            )),
        }
        s
    }
}

/// The inventory, the options completed from its variables, and a transport to its hosts.
fn load(
    common: &Common,
    mut opts: Options,
    aborted: &Arc<AtomicBool>,
) -> Result<(Inventory, Options, SshTransport), String> {
    let mut inventory = Inventory::load(&common.inventory)?;
    // The modules take only absolute paths: `~/.kube/config` and relative names are the
    // controller's, so they are made absolute here.
    if let Some(kubeconfig) = inventory.var("kubeconfig") {
        let path = controller_path(&kubeconfig)?;
        module_kit::FilePath::new(&path.to_string_lossy())
            .map_err(|e| format!("inventory {}: kubeconfig {e}", common.inventory.display()))?;
        inventory
            .vars
            .insert("kubeconfig".into(), json!(path.to_string_lossy()));
    }
    opts.base_url = common
        .base_url
        .clone()
        .or_else(|| inventory.var("kubeadm_base_url"))
        .unwrap_or_else(|| "https://dl.k8s.io/release".into());
    if opts.cni_version.is_none() {
        opts.cni_version = inventory.var("cni_version");
    }
    // Modules' progress lines (a drain held up, a node not Ready yet) go to this run's reporter.
    let transport = SshTransport::new(Arc::clone(aborted))?.with_progress(Arc::new(
        |host: &str, module: &str, line: &Value| report::progress(host, module, line),
    ));
    Ok((inventory, opts, transport))
}

/// A path on the controller, absolute: `~/x` under `$HOME`, a relative one under the current
/// directory.
fn controller_path(text: &str) -> Result<PathBuf, String> {
    let expanded = match text.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(rest))
            .ok_or_else(|| format!("kubeconfig {text}: HOME is not set"))?,
        None => PathBuf::from(text),
    };
    std::path::absolute(&expanded).map_err(|e| format!("kubeconfig {text}: {e}"))
}

/// How a command ended: its exit code, the outcome and reason the run log keeps, and for any exit
/// code but 0 the `error` event that ends a `--json` stream.
struct Ended {
    code: u8,
    outcome: String,
    detail: Option<String>,
    error: Option<events::Error>,
}

impl Ended {
    fn new(code: u8, outcome: &str, detail: Option<String>) -> Ended {
        Ended {
            code,
            outcome: outcome.into(),
            detail,
            error: None,
        }
    }

    /// Ended by `error` (its exit code).
    fn failed(outcome: &str, error: events::Error) -> Ended {
        let detail = match &error.fix {
            Some(fix) => format!("{}\n  what to do: {fix}", error.message),
            None => error.message.clone(),
        };
        Ended {
            code: error.exit_code,
            outcome: outcome.into(),
            detail: Some(detail),
            error: Some(error),
        }
    }

    /// Logged as the last record, the log's path told, and (`json`) the stream's `error` event.
    fn close(self, log: Option<&RunLog>, json: bool) -> ExitCode {
        if let Some(log) = log {
            log.end(&self.outcome, self.detail.as_deref(), self.code);
            say(&format!("full log: {}", log.path().display()));
        }
        if let (true, Some(error)) = (json, &self.error) {
            let _ = writeln!(std::io::stdout().lock(), "{}", error.to_event());
        }
        ExitCode::from(self.code)
    }
}

/// An error before anything ran: said, and the exit code (2: usage, else refused).
fn refused(code: u8, msg: String) -> Ended {
    say(&msg);
    let kind = if code == 2 {
        ErrorKind::Usage
    } else {
        ErrorKind::Refused
    };
    Ended::failed("refused", events::Error::new(kind, code, &msg))
}

/// Why a run stopped, as the stream's `error` event.
fn stop_error(stop: &Stop) -> events::Error {
    match stop {
        Stop::Failed { host, step, msg, fix } => events::Error {
            kind: ErrorKind::Failed,
            message: format!("{host}: step {step} failed: {msg}"),
            fix: Some(fix.clone()),
            exit_code: 1,
            host: Some(host.clone()),
            step: Some(step.clone()),
        },
        Stop::Interrupted | Stop::Aborted { .. } => {
            events::Error::new(ErrorKind::Interrupted, 130, &stop.to_string())
        }
        Stop::Setup(_) => events::Error::new(ErrorKind::Failed, 1, &stop.to_string()),
    }
}

/// The journal's default place: `.NAME.kup-journal.json` beside the inventory `NAME`.
fn default_journal(inventory: &Path) -> PathBuf {
    let name = inventory
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    inventory.with_file_name(format!(".{name}.kup-journal.json"))
}

/// The run log: `--log`, else the journal's path with `suffix` appended; its start record written.
fn open_log(common: &Common, journal: &Path, suffix: &str, command: &str) -> Result<Arc<RunLog>, String> {
    let log = match &common.log {
        Some(path) => RunLog::open(path, true)?,
        None => {
            let mut name = journal.as_os_str().to_owned();
            name.push(suffix);
            RunLog::open(Path::new(&name), false)?
        }
    };
    log.start(command, &common.inventory, Some(&common.to));
    Ok(Arc::new(log))
}

fn upgrade(
    common: &Common,
    opts: Options,
    state: Option<PathBuf>,
    restart: bool,
    yes: bool,
    take_over_lock: bool,
) -> ExitCode {
    if let Err(e) = check_target(&common.to).and_then(|()| via_versions(&common.via).map(|_| ())) {
        return refused(2, e).close(None, common.json);
    }
    if !yes && !std::io::stdin().is_terminal() {
        let e = "not a terminal: pass --yes to upgrade without confirmation".to_string();
        return refused(2, e).close(None, common.json);
    }
    let journal_path = state.unwrap_or_else(|| default_journal(&common.inventory));
    // The log first: whatever happens next, it is written.
    let log = match open_log(common, &journal_path, ".log", "upgrade") {
        Ok(log) => log,
        Err(e) => {
            // A refused --log already says what to do.
            let e = if e.contains("--log") {
                e
            } else {
                format!("{e}\n  what to do: give --log a path in a directory of your own")
            };
            return refused(2, e).close(None, common.json);
        }
    };
    let ended = upgrade_logged(common, opts, journal_path, restart, yes, take_over_lock, &log);
    ended.close(Some(&log), common.json)
}

fn upgrade_logged(
    common: &Common,
    opts: Options,
    journal_path: PathBuf,
    restart: bool,
    yes: bool,
    take_over_lock: bool,
    log: &Arc<RunLog>,
) -> Ended {
    let signals = Signals::watch();
    let (inventory, opts, transport) = match load(common, opts, &signals.aborted) {
        Ok(x) => x,
        Err(e) => return refused(2, e),
    };
    // The journal is keyed by the target as given until resolved; a channel is resolved first.
    // Opening it takes its lock: a second kup with the same journal stops here.
    let (journal, _) = match Journal::open(journal_path.clone(), &opts.target, true) {
        Ok(j) => j,
        Err(e) => return refused(1, e),
    };
    let reporter = Reporter::new(common.json, &inventory.host_names())
        .with_log(Some(Arc::clone(log)))
        .with_verbosity(common.verbose)
        .with_nodes(node_names(&inventory));
    reporter.start("upgrade", &common.to, &common.inventory);
    let mut run = Run::new(
        &inventory,
        &transport,
        opts,
        journal,
        &reporter,
        Arc::clone(&signals.interrupted),
    );
    let target = match run.resolve_target() {
        Ok(t) => t,
        Err(stop) => return finish(&reporter, stop, Some(common.to.clone())),
    };
    // One rollout per minor from the cluster's lowest version; a rerun starts (and resumes) at the
    // hop the cluster is in.
    let hops = match rollout_hops(&run, target, &common.via) {
        Ok(h) => h,
        Err(stop) => return finish(&reporter, stop, Some(target.to_string())),
    };
    let first = hops.first().copied().unwrap_or(target);
    let limited = if hops.len() > 1 && run.opts.limit.is_some() {
        Err(Stop::Setup(
            "--limit with several minors: each hop needs every node at the minor before; upgrade one minor at a \
             time with --limit, or drop it"
                .into(),
        ))
    } else {
        run.check_limit(first)
    };
    if let Err(stop) = limited {
        return finish(&reporter, stop, Some(target.to_string()));
    }
    for host in run.left_out() {
        reporter.note(&host.name, "outside --limit: stays at its version");
    }
    let journal = match run.journal.into_inner() {
        Ok(j) => j.retarget(&first.to_string(), restart),
        Err(_) => {
            return finish(
                &reporter,
                Stop::Setup("journal lock poisoned".into()),
                Some(target.to_string()),
            )
        }
    };
    // Versions an earlier run recorded show in this run's report; this run's are kept there too.
    reporter.keep_versions_in(journal.versions());
    let resumed = journal.done_count();
    if resumed > 0 {
        say(&format!(
            "resuming: {resumed} steps already done (journal {}); --restart ignores it",
            journal.path().display()
        ));
    }
    let cluster_lock = match lock::ClusterLock::new(journal.path(), take_over_lock) {
        Ok(lock) => lock,
        Err(e) => return finish(&reporter, Stop::Setup(e), Some(target.to_string())),
    };
    run.journal = Mutex::new(journal);
    let hosts = inventory.all_hosts().count();
    let shown_hops = hops
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>()
        .join(" -> ");
    if hops.len() > 1 {
        reporter.note(
            &run.primary().name,
            &format!("{} rollouts, one minor at a time: {shown_hops}", hops.len()),
        );
    }
    if !yes {
        say(&format!(
            "upgrade {hosts} hosts to {target} ({shown_hops})? [y/N] "
        ));
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            // The stream that started has its report before its error.
            reporter.finish("refused", Some(target.to_string()));
            return refused(1, "not upgrading".into());
        }
    }
    if let Err(stop) = cluster_lock.acquire(&run) {
        return finish(&reporter, stop, Some(target.to_string()));
    }
    let done = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| cluster_lock.keep(&run, &done));
        let result = (|| {
            for (i, hop) in hops.iter().enumerate() {
                if hops.len() > 1 {
                    reporter.phase(&format!("hop {}/{}: {hop}", i + 1, hops.len()));
                }
                if i > 0 {
                    if let Ok(mut journal) = run.journal.lock() {
                        journal.switch_target(&hop.to_string());
                    }
                }
                // The first hop's preflight asks for every hop's packages, so a chained upgrade
                // does not stop at a later minor's missing packages with the cluster half-way.
                rollout(&run, &reporter, &hops[i..], hosts, common.allow_partial)?;
            }
            Ok(())
        })();
        done.store(true, Ordering::SeqCst);
        result
    });
    finish_upgrade(run, &reporter, &cluster_lock, &signals, result, target)
}

/// One full rollout to the first of `hops` (the rest are the later hops, whose packages its
/// preflight checks too): preflight, the control planes' kubeadm, every node, verify.
fn rollout(
    run: &Run<'_>,
    reporter: &Reporter,
    hops: &[kube_version::Version],
    hosts: usize,
    allow_partial: bool,
) -> Result<(), Stop> {
    let Some(&target) = hops.first() else {
        return Ok(());
    };
    {
        {
            reporter.phase(&format!("preflight ({hosts} hosts, target {target})"));
            run.preflight(target, hops)?;
            let unlisted = run.unlisted_nodes()?;
            if !unlisted.is_empty() {
                let what = format!(
                    "the cluster has {} node(s) the inventory does not name: {}; they would stay behind",
                    unlisted.len(),
                    unlisted.join(", ")
                );
                if !allow_partial {
                    return Err(Stop::Setup(format!(
                        "{what}\n  what to do: add them to the inventory (groups control_plane/workers), or rerun with --allow-partial"
                    )));
                }
                reporter.note(&run.primary().name, &format!("{what} (--allow-partial)"));
            }
            reporter.phase(if run.opts.stage {
                "control planes: kubeadm (every node's packages staged meanwhile)"
            } else {
                "control planes: kubeadm"
            });
            run.control_plane_kubeadm_staging(target, || {
                reporter.phase("nodes: packages (control planes one by one, then workers)");
                run.nodes(target)
            })?;
            reporter.phase("verify");
            run.verify(target)
        }
    }
}

/// The hops of this rollout (see [`hops::plan`]): from the cluster's lowest version to `target`,
/// each channel resolved; refused before anything changes when they cannot work.
fn rollout_hops(
    run: &Run<'_>,
    target: kube_version::Version,
    via: &[String],
) -> Result<Vec<kube_version::Version>, Stop> {
    let via = via_versions(via).map_err(Stop::Setup)?;
    let floor = run.cluster_floor()?;
    hops::plan(floor, target, &via)
        .map_err(Stop::Setup)?
        .into_iter()
        .map(|hop| match hop {
            hops::Hop::Exact(v) => Ok(v),
            hops::Hop::Channel(channel) => run.resolve(&channel),
        })
        .collect()
}

/// The end of an upgrade: the cluster's lock released, the journal finished or kept, the report.
fn finish_upgrade(
    run: Run<'_>,
    reporter: &Reporter,
    cluster_lock: &lock::ClusterLock,
    signals: &Signals,
    result: Result<(), Stop>,
    target: kube_version::Version,
) -> Ended {
    if !signals.aborted.load(Ordering::SeqCst) {
        cluster_lock.release(&run);
    }
    let result = match result {
        Err(Stop::Interrupted) if cluster_lock.lost.load(Ordering::SeqCst) => Err(Stop::Setup(format!(
            "stopped: the cluster's lock was lost ({}); another run may be changing the cluster",
            cluster_lock
                .lost_why
                .lock()
                .map(|w| w.clone())
                .unwrap_or_default()
        ))),
        other => other,
    };
    match result {
        Ok(()) => {
            if let Ok(journal) = run.journal.into_inner() {
                if let Err(e) = journal.finish() {
                    say(&e);
                }
            }
            let (_, changed) = reporter.finish("upgraded", Some(target.to_string()));
            let detail = (changed == 0).then(|| format!("nothing to do: every host was already at {target}"));
            if let Some(d) = &detail {
                say(d);
            }
            Ended::new(0, "upgraded", detail)
        }
        Err(stop) => finish(reporter, stop, Some(target.to_string())),
    }
}

fn finish(reporter: &Reporter, stop: Stop, target: Option<String>) -> Ended {
    let outcome = match stop {
        Stop::Interrupted => "interrupted",
        Stop::Aborted { .. } => "aborted",
        Stop::Setup(_) | Stop::Failed { .. } => "stopped",
    };
    reporter.finish("stopped", target);
    say(&stop.to_string());
    Ended::failed(outcome, stop_error(&stop))
}

/// `(host, node name)` of every host, for the reporter to place what the cluster says of nodes.
fn node_names(inventory: &Inventory) -> Vec<(String, String)> {
    inventory
        .all_hosts()
        .map(|h| (h.name.clone(), h.node_name.to_string()))
        .collect()
}

fn plan(common: &Common) -> ExitCode {
    if let Err(e) = check_target(&common.to).and_then(|()| via_versions(&common.via).map(|_| ())) {
        return refused(2, e).close(None, common.json);
    }
    // A plan without its log still plans (it changes nothing): the operator is told.
    let log = match open_log(common, &default_journal(&common.inventory), ".plan.log", "plan") {
        Ok(log) => Some(log),
        Err(e) => {
            say(&format!("{e}; planning without a run log (--log PATH names one)"));
            None
        }
    };
    plan_logged(common, log.as_ref()).close(log.as_deref(), common.json)
}

fn plan_logged(common: &Common, log: Option<&Arc<RunLog>>) -> Ended {
    let signals = Signals::watch();
    // The plan shows what `kup upgrade`'s default staging would download.
    let opts = Options {
        stage: true,
        ..options(common, procedure::WorkersBatch::Count(1), 0, 0, 0)
    };
    let (inventory, opts, transport) = match load(common, opts, &signals.aborted) {
        Ok(x) => x,
        Err(e) => return refused(2, e),
    };
    let reporter = Reporter::new(common.json, &inventory.host_names())
        .with_log(log.cloned())
        .with_verbosity(common.verbose)
        .with_nodes(node_names(&inventory))
        .for_plan();
    reporter.start("plan", &common.to, &common.inventory);
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => {
            reporter.finish("plan: cannot go ahead", Some(common.to.clone()));
            return refused(1, format!("temp dir: {e}"));
        }
    };
    let journal = Journal::unlocked(tmp.path().join("plan.json"), &opts.target, true);
    let run = Run::new(
        &inventory,
        &transport,
        opts,
        journal,
        &reporter,
        Arc::clone(&signals.interrupted),
    );
    let mut blockers = Vec::new();
    // The report's target: resolved, else as given.
    let mut resolved = None;
    let result = (|| -> Result<(), Stop> {
        let final_target = run.resolve_target()?;
        resolved = Some(final_target.to_string());
        reporter.phase(&format!("preflight (target {final_target})"));
        // Several minors: one rollout per minor. The first is checked against the cluster as it
        // is; each later one is listed with its steps (its checks need the hop before it done).
        let hops = rollout_hops(&run, final_target, &common.via)?;
        let target = hops.first().copied().unwrap_or(final_target);
        if hops.len() > 1 {
            let shown = hops
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join(" -> ");
            reporter.note(
                &run.primary().name,
                &format!(
                    "{} rollouts, one minor at a time: {shown}; checked now: {target}",
                    hops.len()
                ),
            );
            for (n, hop) in hops.iter().enumerate().skip(1) {
                let era = kube_eras::for_target(*hop);
                reporter.note(
                    &run.primary().name,
                    &format!("hop {}/{}: {hop} ({})", n + 1, hops.len(), era.source),
                );
                for (i, host) in inventory.all_hosts().enumerate() {
                    let steps = run.journaled_steps(i, host, *hop).join(", ");
                    reporter.note(
                        &host.name,
                        &format!("hop {}/{} to {hop}: {steps}", n + 1, hops.len()),
                    );
                    // Its packages can be judged now (a private view of the repository at its
                    // minor): a later minor missing from a node's mirror blocks the whole chain.
                    if let Err(Stop::Failed { msg, .. }) = run.check(host, run.pin_check_args(host, *hop)) {
                        blockers.push(format!(
                            "{}: hop {}/{} to {hop}: package_pin: {msg}",
                            host.name,
                            n + 1,
                            hops.len()
                        ));
                    }
                }
            }
        }
        if let Err(Stop::Setup(why)) = run.check_limit(target) {
            blockers.push(format!("{}: {why}", run.primary().name));
        }
        for host in run.left_out() {
            reporter.note(
                &host.name,
                "outside --limit: stays at its version, nothing planned",
            );
        }
        run.preflight(target, &[])?;
        reporter.phase("what would change (check mode)");
        for (i, host) in inventory.all_hosts().enumerate() {
            let worker = i >= inventory.control_plane.len();
            if !run.in_limit(host) {
                continue;
            }
            for args in modules::plan_steps(&run, host, target, worker)? {
                let module = args.module;
                // Staging that fails is no stop (the install downloads instead): a note. Nor is a
                // kubeadm package that cannot move before the kubelet's (its release binary runs).
                let staging = args.json["stage"] == true;
                let kubeadm_alone = args.json["packages"] == serde_json::json!(["kubeadm"]);
                match run.check(host, args) {
                    Err(Stop::Failed { msg, .. }) if staging => reporter.note(
                        &host.name,
                        &format!("its packages could not be staged (its install will download them): {msg}"),
                    ),
                    Err(Stop::Failed { msg, .. }) if kubeadm_alone => reporter.note(
                        &host.name,
                        &format!(
                            "the kubeadm package of {target} cannot be installed before the kubelet's ({msg}): \
                             `kubeadm upgrade` will run its release binary, and the package moves with the \
                             kubelet's"
                        ),
                    ),
                    Err(Stop::Failed { msg, .. }) => blockers.push(format!("{}: {module}: {msg}", host.name)),
                    Ok(repo) if module == "package_repo" => {
                        if let Some(note) = modules::repo_switch_note(&repo) {
                            reporter.note(&host.name, &note);
                        }
                    }
                    _ => {}
                }
            }
        }
        // Every node's versions and drain blockers in one pass over the API, not a pod list per node.
        reporter.phase("the cluster: versions, drain blockers (one survey)");
        let Some(primary) = inventory.control_plane.first() else {
            return Ok(());
        };
        let survey = modules::survey_args(&inventory, run.connection(), common.force_drain);
        let surveyed = survey.module;
        match run.check(primary, survey) {
            Ok(survey) => {
                let found = modules::survey_findings(
                    &inventory,
                    &survey,
                    common.allow_partial,
                    kube_eras::for_target(target),
                );
                for (host, note) in &found.notes {
                    reporter.note(host, note);
                }
                // As `kubeadm upgrade plan` shows it: each component, now -> target, and how.
                let era = kube_eras::for_target(target);
                for line in modules::component_plan(&survey, target, era, &primary.name) {
                    reporter.note(&primary.name, &line);
                }
                blockers.extend(found.blockers);
            }
            Err(Stop::Failed { msg, .. }) => blockers.push(format!("{}: {surveyed}: {msg}", primary.name)),
            Err(other) => return Err(other),
        }
        // Another operator's rollout under way.
        let status = cluster_lock::Params {
            connection: run.connection(),
            ..cluster_lock::Params::new(cluster_lock::Action::Status)
        };
        if let Ok(lock) = run.check(primary, modules::Args::of::<cluster_lock::ClusterLock>(&status)) {
            if let Some(other) = modules::lock_blocker(&lock) {
                blockers.push(format!("{}: {other}", primary.name));
            }
        }
        Ok(())
    })();
    let outcome = match (&result, blockers.is_empty()) {
        (Ok(()), true) => "plan: the upgrade can go ahead",
        (Ok(()), false) => "plan: blocked",
        (Err(_), _) => "plan: cannot go ahead",
    };
    reporter.blockers(&blockers);
    reporter.finish(outcome, resolved.or_else(|| Some(common.to.clone())));
    for b in &blockers {
        say(&format!("blocker: {b}"));
    }
    match result {
        Err(stop) => {
            say(&stop.to_string());
            Ended::failed(outcome, stop_error(&stop))
        }
        Ok(()) if blockers.is_empty() => Ended::new(0, outcome, None),
        Ok(()) => Ended::failed(outcome, blocked(&blockers)),
    }
}

/// A blocked plan's `error` event.
fn blocked(blockers: &[String]) -> events::Error {
    events::Error {
        kind: ErrorKind::Blocked,
        message: format!(
            "the upgrade is blocked ({} blocker(s)): {}",
            blockers.len(),
            blockers.join("; ")
        ),
        fix: Some(
            "remove each blocker as its message says (the `blockers` event lists them), then plan again"
                .into(),
        ),
        exit_code: 1,
        host: None,
        step: None,
    }
}

/// `kup status`: the journal against the live cluster; changes nothing, takes no lock.
fn status(args: &StatusArgs) -> ExitCode {
    let journal_path = args
        .state
        .clone()
        .unwrap_or_else(|| default_journal(&args.inventory));
    let journal_target = Journal::target_of(&journal_path);
    let Some(to) = args.to.clone().or_else(|| journal_target.clone()) else {
        let msg = format!(
            "no journal at {}: no rollout under way (or the last one finished); pass --to VERSION to see \
             the cluster against a target",
            journal_path.display()
        );
        return refused(2, msg).close(None, args.json);
    };
    if let Err(e) = check_target(&to) {
        return refused(2, e).close(None, args.json);
    }
    let common = Common {
        inventory: args.inventory.clone(),
        to,
        via: Vec::new(),
        limit: Vec::new(),
        base_url: args.base_url.clone(),
        cni_version: None,
        json: args.json,
        allow_partial: false,
        force_drain: false,
        verbose: 0,
        log: None,
    };
    let aborted = Arc::new(AtomicBool::new(false));
    let (inventory, opts, transport) = match load(
        &common,
        options(&common, procedure::WorkersBatch::Count(1), 0, 0, 0),
        &aborted,
    ) {
        Ok(x) => x,
        Err(e) => return refused(2, e).close(None, args.json),
    };
    let reporter = Reporter::silent();
    let tmp_journal = Journal::unlocked(PathBuf::new(), &opts.target, true);
    let mut run = Run::new(
        &inventory,
        &transport,
        opts,
        tmp_journal,
        &reporter,
        Arc::new(AtomicBool::new(false)),
    );
    let target = match run.resolve_target() {
        Ok(t) => t,
        Err(stop) => {
            say(&stop.to_string());
            return Ended::failed("stopped", stop_error(&stop)).close(None, args.json);
        }
    };
    // Read only: the journal as the last run left it, without its lock (a run may hold it).
    let journal = Journal::unlocked(journal_path.clone(), &target.to_string(), false);
    let (journal_text, journal_json) = match &journal_target {
        Some(t) if *t == target.to_string() => (
            format!(
                "journal {} ({} steps done)",
                journal_path.display(),
                journal.done_count()
            ),
            json!({"path": journal_path, "target": t, "done": journal.done_count()}),
        ),
        Some(t) => (
            format!(
                "journal {} is for {t}, not {target}: nothing of this rollout is recorded",
                journal_path.display()
            ),
            json!({"path": journal_path, "target": t, "done": 0}),
        ),
        None => (
            format!(
                "no journal at {}: nothing done yet, or the rollout finished",
                journal_path.display()
            ),
            Value::Null,
        ),
    };
    run.journal = Mutex::new(journal);
    let found = status::gather(&run, target);
    let text = if args.json {
        status::to_json(&found, target, &journal_json).to_string() + "\n"
    } else {
        status::render(&found, target, &journal_text)
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    if let Some(e) = &found.api_error {
        say(&format!("the API server could not be asked: {e}"));
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_controllers_kubeconfig_is_made_absolute() {
        let home = std::env::var("HOME").unwrap();
        assert_eq!(
            controller_path("~/.kube/config").unwrap(),
            PathBuf::from(home).join(".kube/config")
        );
        assert_eq!(controller_path("/etc/k").unwrap(), PathBuf::from("/etc/k"));
        let relative = controller_path("lab/kubeconfig").unwrap();
        assert!(
            relative.is_absolute() && relative.ends_with("lab/kubeconfig"),
            "{relative:?}"
        );
    }
}
