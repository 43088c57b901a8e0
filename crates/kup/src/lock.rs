//! One rollout per cluster: the `cluster_lock` module's lock (a Lease in kube-system, a ConfigMap on
//! clusters older than coordination.k8s.io/v1), taken before the first change, renewed while the
//! rollout runs, released at its end. Beside it the journal's own file lock keeps two runs on this
//! machine apart.

use crate::modules::Args;
use crate::procedure::{Run, Stop};
use cluster_lock::Action;
use module_kit::{Name, Seconds};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Seconds the lock stays valid without a renewal; renewed every third of it.
pub const DURATION: u64 = 90;

/// Who holds the lock: this machine and this journal. A rerun of the same command here (after a
/// crash or an abort) is the same holder and takes the lock back at once; the journal's file lock
/// keeps two runs of it on this machine apart.
pub fn holder(journal: &std::path::Path) -> String {
    let path = std::fs::canonicalize(journal)
        .or_else(|_| std::path::absolute(journal))
        .unwrap_or_else(|_| journal.to_path_buf());
    format!("kup@{}:{}", machine(), path.display())
}

/// `user@machine pid N`, shown to the other operator.
pub fn whereabouts() -> String {
    let uid = || {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|l| l.split_whitespace().next().map(|u| format!("uid {u}")))
            })
            .unwrap_or_else(|| "?".into())
    };
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| uid());
    format!("{user}@{} pid {}", machine(), std::process::id())
}

fn machine() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

pub struct ClusterLock {
    pub holder: Name,
    pub host: Name,
    pub takeover: bool,
    /// Set when a renewal finds the lock taken by another run.
    pub lost: AtomicBool,
    pub lost_why: Mutex<String>,
}

impl ClusterLock {
    /// The lock of this run (`journal`'s), taken over from a stale holder with `takeover`.
    pub fn new(journal: &std::path::Path, takeover: bool) -> Result<ClusterLock, String> {
        let name = |what: &str, text: String| {
            Name::new(&text).map_err(|e| format!("cannot name this run's {what} for the cluster's lock: {e}"))
        };
        Ok(ClusterLock {
            holder: name("holder", holder(journal))?,
            host: name("machine", whereabouts())?,
            takeover,
            lost: AtomicBool::new(false),
            lost_why: Mutex::new(String::new()),
        })
    }

    fn args(&self, run: &Run<'_>, action: Action) -> Args {
        Args::of::<cluster_lock::ClusterLock>(&cluster_lock::Params {
            holder: Some(self.holder.clone()),
            host: Some(self.host.clone()),
            duration: Seconds::of(DURATION),
            takeover: self.takeover && action == Action::Acquire,
            connection: run.connection(),
            ..cluster_lock::Params::new(action)
        })
    }

    pub fn acquire(&self, run: &Run<'_>) -> Result<(), Stop> {
        let result = run
            .call(run.primary(), self.args(run, Action::Acquire))
            .map_err(|e| Stop::Setup(format!("cannot take the cluster's lock: {e}")))?;
        if result["failed"] != false {
            return Err(Stop::Setup(format!(
                "{}\n  what to do: wait for that run to end; if it is gone for good, rerun with --take-over-lock once the lock is stale",
                result["msg"].as_str().unwrap_or("the cluster's lock was refused")
            )));
        }
        for w in result["warnings"].as_array().into_iter().flatten() {
            if let Some(w) = w.as_str() {
                run.reporter.note(&run.primary().name, w);
            }
        }
        Ok(())
    }

    /// Renews the lock every third of its duration until `done`; a lock lost to another run
    /// interrupts the rollout after the steps under way.
    pub fn keep(&self, run: &Run<'_>, done: &AtomicBool) {
        let every = Duration::from_secs(DURATION / 3);
        let mut last = Instant::now();
        while !done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
            if last.elapsed() < every {
                continue;
            }
            last = Instant::now();
            match run.call(run.primary(), self.args(run, Action::Renew)) {
                Ok(r) if r["failed"] == false => {}
                Ok(r) => {
                    let why = r["msg"].as_str().unwrap_or("lost").to_string();
                    if let Ok(mut w) = self.lost_why.lock() {
                        *w = why.clone();
                    }
                    self.lost.store(true, Ordering::SeqCst);
                    run.interrupted.store(true, Ordering::SeqCst);
                    run.reporter.note(
                        &run.primary().name,
                        &format!("the cluster's lock was lost ({why}): stopping after the steps under way"),
                    );
                    return;
                }
                // Unreachable for now: the next renewal tries again; the lock lasts DURATION.
                Err(e) => run.reporter.note(
                    &run.primary().name,
                    &format!("cannot renew the cluster's lock now: {e}"),
                ),
            }
        }
    }

    pub fn release(&self, run: &Run<'_>) {
        match run.call(run.primary(), self.args(run, Action::Release)) {
            Ok(r) if r["failed"] == false => {}
            Ok(r) => run.reporter.note(
                &run.primary().name,
                &format!(
                    "the cluster's lock was not released: {}",
                    r["msg"].as_str().unwrap_or("")
                ),
            ),
            Err(e) => run.reporter.note(
                &run.primary().name,
                &format!("the cluster's lock was not released ({e}); it expires after {DURATION} s"),
            ),
        }
    }
}
