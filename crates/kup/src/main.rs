//! `kup`: upgrade a kubeadm HA cluster, the runbook automated.
//!
//!   kup plan    -i INVENTORY --to VERSION|CHANNEL    what would change; changes nothing
//!   kup upgrade -i INVENTORY --to VERSION|CHANNEL    the whole rollout, resumable
//!   kup module NAME [ARGS.json]                      run one module (JSON on stdin without ARGS)
//!   kup module --list                                the modules kup carries

mod inventory;
mod journal;
mod live;
mod lock;
mod modules;
mod procedure;
mod report;
mod transport;

use clap::{Parser, Subcommand};
use inventory::Inventory;
use journal::Journal;
use procedure::{Options, Run, Stop};
use report::Reporter;
use serde_json::json;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
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
        is not a terminal; `--json` for an event stream. The report follows on stdout."
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
    /// Release server (default: the inventory's kubeadm_base_url, else https://dl.k8s.io/release).
    #[arg(long)]
    base_url: Option<String>,
    /// Also pin kubernetes-cni at this version (default: the inventory's cni_version, if any).
    #[arg(long)]
    cni_version: Option<String>,
    /// JSON event stream on stdout instead of progress lines.
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
        /// Workers upgraded at the same time.
        #[arg(long, default_value_t = 1)]
        workers_batch: usize,
        /// Seconds before a failed `kubeadm upgrade` is retried once.
        #[arg(long, default_value_t = 90)]
        retry_delay: u64,
        /// Seconds a drain may take (PodDisruptionBudgets make it wait).
        #[arg(long, default_value_t = 600)]
        drain_timeout: u64,
        /// Seconds a node may take to be Ready at the new version.
        #[arg(long, default_value_t = 300)]
        ready_timeout: u64,
        /// The journal of finished steps (default: beside the inventory).
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
    /// Print the procedure per Kubernetes era that kup follows (the table playbooks/vars/eras.yml
    /// holds for upgrade.yml): where kubeadm comes from, what the other control planes and the
    /// workers run, how nodes are taken out, what happens to their services, which repository.
    Eras,
    /// Run one module (the multicall entry kup uses on hosts): JSON args file, or JSON on stdin.
    Module {
        /// List the modules kup carries instead, one a line: name, where it runs (api: on this
        /// machine or the first control plane; host: on its host), what it links (std, https, kube).
        #[arg(long, exclusive = true)]
        list: bool,
        #[arg(required_unless_present = "list")]
        name: Option<String>,
        #[arg(allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Module { list: true, .. } => modules::list(),
        Command::Module { name, args, .. } => modules::run(name.as_deref().unwrap_or_default(), args),
        Command::Eras => match std::io::stdout()
            .lock()
            .write_all(kube_eras::to_yaml().as_bytes())
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        },
        Command::Plan(common) => plan(&common),
        Command::Upgrade {
            common,
            workers_batch,
            retry_delay,
            drain_timeout,
            ready_timeout,
            state,
            restart,
            yes,
            check,
            take_over_lock,
        } => {
            if check {
                return plan(&common);
            }
            let opts = options(&common, workers_batch, retry_delay, drain_timeout, ready_timeout);
            upgrade(&common, opts, state, restart, yes, take_over_lock)
        }
    }
}

fn options(
    c: &Common,
    workers_batch: usize,
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
    Ok((inventory, opts, SshTransport::new(Arc::clone(aborted))?))
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

fn upgrade(
    common: &Common,
    opts: Options,
    state: Option<PathBuf>,
    restart: bool,
    yes: bool,
    take_over_lock: bool,
) -> ExitCode {
    let signals = Signals::watch();
    let (inventory, opts, transport) = match load(common, opts, &signals.aborted) {
        Ok(x) => x,
        Err(e) => {
            say(&e);
            return ExitCode::from(2);
        }
    };
    let journal_path = state.unwrap_or_else(|| {
        let name = common
            .inventory
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        common
            .inventory
            .with_file_name(format!(".{name}.kup-journal.json"))
    });
    // The journal is keyed by the target as given until resolved; a channel is resolved first.
    // Opening it takes its lock: a second kup with the same journal stops here.
    let (journal, _) = match Journal::open(journal_path.clone(), &opts.target, true) {
        Ok(j) => j,
        Err(e) => {
            say(&e);
            return ExitCode::from(1);
        }
    };
    let reporter = Reporter::new(common.json, &inventory.host_names());
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
        Err(stop) => return finish(&reporter, stop, None),
    };
    let journal = match run.journal.into_inner() {
        Ok(j) => j.retarget(&target.to_string(), restart),
        Err(_) => return finish(&reporter, Stop::Setup("journal lock poisoned".into()), None),
    };
    let resumed = journal.done_count();
    if resumed > 0 {
        say(&format!(
            "resuming: {resumed} steps already done (journal {}); --restart ignores it",
            journal.path().display()
        ));
    }
    let cluster_lock = match lock::ClusterLock::new(journal.path(), take_over_lock) {
        Ok(lock) => lock,
        Err(e) => return finish(&reporter, Stop::Setup(e), None),
    };
    run.journal = Mutex::new(journal);
    let hosts = inventory.all_hosts().count();
    if !yes {
        if !std::io::stdin().is_terminal() {
            say("not a terminal: pass --yes to upgrade without confirmation");
            return ExitCode::from(2);
        }
        say(&format!("upgrade {hosts} hosts to {target}? [y/N] "));
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            say("not upgrading");
            return ExitCode::from(1);
        }
    }
    if let Err(stop) = cluster_lock.acquire(&run) {
        return finish(&reporter, stop, Some(target.to_string()));
    }
    let done = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| cluster_lock.keep(&run, &done));
        let result = (|| {
            reporter.phase(&format!("preflight ({hosts} hosts, target {target})"));
            run.preflight(target)?;
            let unlisted = run.unlisted_nodes()?;
            if !unlisted.is_empty() {
                let what = format!(
                    "the cluster has {} node(s) the inventory does not name: {}; they would stay behind",
                    unlisted.len(),
                    unlisted.join(", ")
                );
                if !common.allow_partial {
                    return Err(Stop::Setup(format!(
                        "{what}\n  what to do: add them to the inventory (groups control_plane/workers), or rerun with --allow-partial"
                    )));
                }
                reporter.note(&run.primary().name, &format!("{what} (--allow-partial)"));
            }
            reporter.phase("control planes: kubeadm");
            run.control_plane_kubeadm(target)?;
            reporter.phase("nodes: packages (control planes one by one, then workers)");
            run.nodes(target)?;
            reporter.phase("verify");
            run.verify(target)
        })();
        done.store(true, Ordering::SeqCst);
        result
    });
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
            if changed == 0 {
                say(&format!("nothing to do: every host was already at {target}"));
            }
            ExitCode::SUCCESS
        }
        Err(stop) => finish(&reporter, stop, Some(target.to_string())),
    }
}

fn finish(reporter: &Reporter, stop: Stop, target: Option<String>) -> ExitCode {
    let code = match stop {
        Stop::Interrupted | Stop::Aborted { .. } => 130,
        Stop::Setup(_) | Stop::Failed { .. } => 1,
    };
    reporter.finish("stopped", target);
    say(&stop.to_string());
    ExitCode::from(code)
}

fn plan(common: &Common) -> ExitCode {
    let signals = Signals::watch();
    let opts = options(common, 1, 0, 0, 0);
    let (inventory, opts, transport) = match load(common, opts, &signals.aborted) {
        Ok(x) => x,
        Err(e) => {
            say(&e);
            return ExitCode::from(2);
        }
    };
    let reporter = Reporter::new(common.json, &inventory.host_names());
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => {
            say(&format!("temp dir: {e}"));
            return ExitCode::from(2);
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
    let result = (|| -> Result<(), Stop> {
        let target = run.resolve_target()?;
        reporter.phase(&format!("preflight (target {target})"));
        run.preflight(target)?;
        reporter.phase("what would change (check mode)");
        for (i, host) in inventory.all_hosts().enumerate() {
            let worker = i >= inventory.control_plane.len();
            for args in modules::plan_steps(&run, host, target, worker)? {
                let module = args.module;
                match run.check(host, args) {
                    Err(Stop::Failed { msg, .. }) => blockers.push(format!("{}: {module}: {msg}", host.name)),
                    Ok(repo) if module == "package_repo" => {
                        if let Some(note) = modules::repo_switch_note(&repo) {
                            reporter.note(&host.name, &note);
                            // The packages (the last step) cannot be judged before the switch.
                            break;
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
    reporter.finish(outcome, None);
    for b in &blockers {
        say(&format!("blocker: {b}"));
    }
    if common.json {
        let _ = writeln!(
            std::io::stdout(),
            "{}",
            json!({"event": "blockers", "blockers": blockers})
        );
    }
    match result {
        Err(stop) => {
            let code = if matches!(stop, Stop::Interrupted | Stop::Aborted { .. }) {
                130
            } else {
                1
            };
            say(&stop.to_string());
            ExitCode::from(code)
        }
        Ok(()) if blockers.is_empty() => ExitCode::SUCCESS,
        Ok(()) => ExitCode::from(1),
    }
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
