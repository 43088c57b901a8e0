//! `etcd_snapshot`: a verified snapshot of etcd before the control plane moves (issue 14).
//!
//! Takes a snapshot through etcd's v3 API (its JSON gateway on the client port, with the cluster's
//! client certificates), writes it atomically, mode 0600, into a directory only root or the running
//! user can write to, and verifies it before it gets its name: the sha256 etcd appends, and the
//! database read by our own bbolt reader (`crates/bbolt-stats`), giving the facts `etcdctl snapshot
//! status` gives (hash, revision, total keys, total size). One snapshot per target version: a rerun
//! finds the verified snapshot for that target and changes nothing (unless `force`). Keeps the last
//! `keep` snapshots of its own naming; never touches another file.

mod gateway;
pub mod store;
pub mod verify;

use module_kit::{
    de, Applied, Change, Context, Failure, FilePath, Module, Outcome, Plan, PlannedModule, Seconds,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};
pub use verify::{verify, Facts};

pub struct EtcdSnapshot;

#[derive(Debug, Clone, Deserialize, Serialize, module_kit::Params)]
pub struct Params {
    pub target_version: String,
    #[serde(default = "default_endpoint")]
    pub endpoint: String,
    #[serde(default = "default_cacert")]
    pub cacert: FilePath,
    #[serde(default = "default_cert")]
    pub cert: FilePath,
    #[serde(default = "default_key")]
    pub key: FilePath,
    #[serde(default = "default_dest_dir")]
    pub dest_dir: FilePath,
    #[serde(default = "default_keep", deserialize_with = "de::int")]
    pub keep: u32,
    #[serde(default, deserialize_with = "de::boolean")]
    pub force: bool,
    #[serde(default = "default_timeout")]
    pub timeout: Seconds,
    #[serde(default, deserialize_with = "de::boolean")]
    pub skip_without_certs: bool,
}

impl Params {
    /// A snapshot for `target_version` with every other parameter at its default (for callers
    /// such as kup).
    pub fn new(target_version: impl Into<String>) -> Params {
        Params {
            target_version: target_version.into(),
            endpoint: default_endpoint(),
            cacert: default_cacert(),
            cert: default_cert(),
            key: default_key(),
            dest_dir: default_dest_dir(),
            keep: default_keep(),
            force: false,
            timeout: default_timeout(),
            skip_without_certs: false,
        }
    }
}

/// etcd's client URL on a kubeadm control plane (stacked etcd listens on 127.0.0.1:2379 too).
pub const DEFAULT_ENDPOINT: &str = "https://127.0.0.1:2379";
/// Where snapshots go: a directory of this project's own, created 0700.
pub const DEFAULT_DEST_DIR: &str = "/var/lib/kubeadm-ha-upgrade/etcd-snapshots";
const MAX_KEEP: u32 = 100;

fn default_endpoint() -> String {
    DEFAULT_ENDPOINT.into()
}
fn default_cacert() -> FilePath {
    FilePath::from_static("/etc/kubernetes/pki/etcd/ca.crt")
}
// kubeadm writes a client certificate for etcd on every control plane with stacked etcd:
// etcd/healthcheck-client (`kubeadm init phase certs etcd-healthcheck-client`), client auth only.
fn default_cert() -> FilePath {
    FilePath::from_static("/etc/kubernetes/pki/etcd/healthcheck-client.crt")
}
fn default_key() -> FilePath {
    FilePath::from_static("/etc/kubernetes/pki/etcd/healthcheck-client.key")
}
fn default_dest_dir() -> FilePath {
    FilePath::from_static(DEFAULT_DEST_DIR)
}
fn default_keep() -> u32 {
    3
}
fn default_timeout() -> Seconds {
    Seconds::of(600)
}

/// `v1.31.2` for `1.31.2`, `v1.31.2`; `None` for anything else.
fn target(p: &Params) -> Option<String> {
    let text = &p.target_version;
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    kube_version::Version::parse(text).map(|v| v.to_string())
}

fn validate(p: &Params) -> Result<(), Failure> {
    if target(p).is_none() {
        return Err(Failure::param(
            "target_version",
            format!(
                "expected a Kubernetes version such as v1.31.2, got {}",
                module_kit::shown(&p.target_version)
            ),
        ));
    }
    check_endpoint(&p.endpoint).map_err(|why| Failure::param("endpoint", why))?;
    if !(1..=MAX_KEEP).contains(&p.keep) {
        return Err(Failure::param(
            "keep",
            format!("must be from 1 to {MAX_KEEP}, got {}", p.keep),
        ));
    }
    Ok(())
}

/// An etcd client URL: `https://HOST:PORT`, nothing else (TLS is never optional here).
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let expected = "expected etcd's client URL https://HOST:PORT";
    let url = reqwest::Url::parse(endpoint)
        .map_err(|e| format!("{expected}, got {} ({e})", module_kit::shown(endpoint)))?;
    if url.scheme() != "https" {
        return Err(format!(
            "{expected} (TLS, verified against cacert), got scheme {}",
            module_kit::shown(url.scheme())
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{expected}, got {}", module_kit::shown(endpoint)));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{expected}, without user or password"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{expected}, without a path, query or fragment"));
    }
    Ok(())
}

/// What the run found.
pub struct Observed {
    /// The module's snapshots in the directory, newest first.
    listed: Vec<store::Listed>,
    /// Partial snapshots left by runs that were killed.
    stale: Vec<PathBuf>,
    /// The newest snapshot for the target that verifies, and its facts.
    existing: Option<(store::Listed, Facts)>,
    /// How long verifying the existing snapshots took.
    verify_time: Duration,
    /// Snapshots for the target that do not verify, in words.
    rejected: Vec<String>,
    /// When a snapshot is to be taken: the client, etcd's status, the free space.
    taking: Option<Taking>,
    /// The name a new snapshot gets.
    name: String,
    /// `skip_without_certs` and no CA certificate here: why no snapshot is taken.
    skipped: Option<String>,
}

struct Taking {
    gateway: gateway::Gateway,
    status: gateway::Status,
    free: Option<u64>,
}

/// One step of `apply`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Takes the snapshot into the directory under this name.
    Take { name: String },
    /// Removes this old snapshot (beyond `keep`).
    Remove(PathBuf),
}

impl Module for EtcdSnapshot {
    const NAME: &'static str = "etcd_snapshot";
    const DOCS: &'static str = include_str!("../etcd_snapshot.yml");
    type Params = Params;

    fn validate(p: &Params) -> Result<(), Failure> {
        validate(p)
    }

    fn run(p: Params, ctx: &Context) -> Result<Outcome, Failure> {
        module_kit::plan::drive::<Self>(p, ctx)
    }
}

fn rounded_secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

impl PlannedModule for EtcdSnapshot {
    type Observed = Observed;
    type Action = Action;

    fn observe(p: &Params, _ctx: &Context) -> Result<Observed, Failure> {
        let version =
            target(p).ok_or_else(|| Failure::param("target_version", "not a Kubernetes version"))?;
        if p.skip_without_certs && std::fs::symlink_metadata(p.cacert.as_path()).is_err() {
            return Ok(Observed {
                listed: Vec::new(),
                stale: Vec::new(),
                existing: None,
                verify_time: Duration::ZERO,
                rejected: Vec::new(),
                taking: None,
                name: String::new(),
                skipped: Some(format!(
                    "no etcd client certificates here ({} does not exist): no snapshot taken; for an \
                     external etcd give endpoint, cacert, cert and key",
                    p.cacert.display()
                )),
            });
        }
        let dir = p.dest_dir.as_path();
        store::check_dir(dir).map_err(|e| Failure::new(format!("refusing dest_dir: {e}")))?;
        let listed = store::list(dir).map_err(Failure::new)?;
        let stale = SystemTime::now()
            .checked_sub(p.timeout.duration())
            .map_or_else(Vec::new, |before| store::stale_parts(dir, before));
        let started = Instant::now();
        let mut existing = None;
        let mut rejected = Vec::new();
        if !p.force {
            for candidate in listed.iter().filter(|l| l.version == version) {
                match verify(&candidate.path) {
                    Ok(facts) => {
                        existing = Some((candidate.clone(), facts));
                        break;
                    }
                    Err(e) => rejected.push(e),
                }
            }
        }
        let verify_time = started.elapsed();
        let taking = if existing.is_none() {
            let gateway =
                gateway::Gateway::new(&p.endpoint, &p.cacert, &p.cert, &p.key, p.timeout.duration())
                    .map_err(Failure::new)?;
            let status = gateway.status().map_err(Failure::new)?;
            Some(Taking {
                gateway,
                status,
                free: store::free_bytes(dir),
            })
        } else {
            None
        };
        Ok(Observed {
            listed,
            stale,
            existing,
            verify_time,
            rejected,
            taking,
            name: store::file_name(&version, &store::stamp(SystemTime::now())),
            skipped: None,
        })
    }

    fn plan(p: &Params, seen: &Observed) -> Result<Plan<Action>, Failure> {
        let version =
            target(p).ok_or_else(|| Failure::param("target_version", "not a Kubernetes version"))?;
        let dir = p.dest_dir.as_path();
        if let Some(why) = &seen.skipped {
            return Ok(Plan::new(why.clone())
                .with("target_version", &version)
                .with("skipped", true));
        }
        let names =
            |list: &[&store::Listed]| -> Vec<String> { list.iter().map(|l| l.name.clone()).collect() };
        let before: Vec<&store::Listed> = seen.listed.iter().collect();
        let mut plan = Plan::new("")
            .with("target_version", &version)
            .with("dest_dir", dir);
        for rejected in &seen.rejected {
            plan = plan.warn(format!("{rejected}; not counted as this target's snapshot"));
        }
        let taking = match (&seen.existing, &seen.taking) {
            (Some((listed, facts)), _) => {
                let lead = format!(
                    "a verified etcd snapshot for {version} exists: {} (revision {}, {} keys)",
                    listed.path.display(),
                    facts.revision,
                    facts.total_key
                );
                let state = json!({ "snapshots": names(&before) });
                return Ok(Plan { lead, ..plan }
                    .with("path", &listed.path)
                    .with_facts(facts)
                    .with("duration", rounded_secs(seen.verify_time))
                    .with("taken", false)
                    .with("removed", Vec::<String>::new())
                    .with_diff(state.clone(), state));
            }
            (None, Some(taking)) => taking,
            (None, None) => return Err(Failure::new("etcd was not asked for its status")),
        };
        let path = dir.join(&seen.name);
        let db_size = taking.status.db_size;
        if let (Some(free), Some(size)) = (taking.free, db_size) {
            // The snapshot is the database and 32 bytes; keep a margin for the file system.
            if size.saturating_add(size / 10) > free {
                return Err(Failure::new(format!(
                    "{} has {free} bytes free, too few for a snapshot of etcd's {size}-byte database",
                    dir.display()
                )));
            }
        }
        let keep = p.keep as usize;
        let removed: Vec<&store::Listed> = seen.listed.iter().skip(keep.saturating_sub(1)).collect();
        let mut after = vec![seen.name.clone()];
        after.extend(
            seen.listed
                .iter()
                .take(keep.saturating_sub(1))
                .map(|l| l.name.clone()),
        );
        let size_words = db_size.map_or("an etcd snapshot".to_string(), |s| {
            format!("an etcd snapshot ({s} bytes)")
        });
        if !seen.stale.is_empty() {
            let shown: Vec<String> = seen.stale.iter().map(|p| p.display().to_string()).collect();
            plan = plan.change(Change::new(
                "remove",
                "removed",
                format!("{} (left by an interrupted run)", shown.join(", ")),
            ));
            for part in &seen.stale {
                plan = plan.action(Action::Remove(part.clone()));
            }
        }
        plan = plan
            .change(Change::new(
                "take",
                "took and verified",
                format!("{size_words} from {} into {}", p.endpoint, path.display()),
            ))
            .action(Action::Take {
                name: seen.name.clone(),
            });
        if !removed.is_empty() {
            plan = plan.change(Change::new(
                "remove",
                "removed",
                format!("{} beyond keep={}", names(&removed).join(", "), p.keep),
            ));
            for r in &removed {
                plan = plan.action(Action::Remove(r.path.clone()));
            }
        }
        Ok(plan
            .with("path", &path)
            .with("db_size", db_size)
            .with("etcd_version", &taking.status.version)
            .with("revision", taking.status.header.revision)
            .with("endpoint", &p.endpoint)
            .with("taken", false)
            .with("removed", names(&removed))
            .with_diff(
                json!({ "snapshots": names(&before) }),
                json!({ "snapshots": after }),
            ))
    }

    fn apply(p: &Params, seen: Observed, plan: &Plan<Action>) -> Result<Applied, Failure> {
        let Some(taking) = seen.taking else {
            return Ok(Applied::default());
        };
        let dir = p.dest_dir.as_path();
        let mut applied = Applied::default();
        for action in &plan.actions {
            match action {
                Action::Take { name } => {
                    let started = Instant::now();
                    store::ensure_dir(dir).map_err(|e| Failure::new(format!("refusing dest_dir: {e}")))?;
                    let deadline = started + p.timeout.duration();
                    let facts = store::write_atomically(
                        dir,
                        name,
                        |out| taking.gateway.snapshot(out, deadline),
                        |part| {
                            verify(part).map_err(|e| format!("the snapshot etcd sent does not verify: {e}"))
                        },
                    )
                    .map_err(Failure::new)?;
                    applied = applied
                        .with("path", dir.join(name))
                        .with_facts(&facts)
                        .with("duration", rounded_secs(started.elapsed()))
                        .with("taken", true);
                }
                Action::Remove(path) => {
                    if let Err(e) = std::fs::remove_file(path) {
                        applied =
                            applied.warn(format!("cannot remove the old snapshot {}: {e}", path.display()));
                    }
                }
            }
        }
        if plan.actions.iter().any(|a| matches!(a, Action::Remove(_))) {
            if let Err(e) = store::sync_dir(dir) {
                applied = applied.warn(e);
            }
        }
        Ok(applied)
    }
}

/// The facts of a snapshot as return values.
trait WithFacts: Sized {
    fn with_value(self, key: &str, value: serde_json::Value) -> Self;

    fn with_facts(self, facts: &Facts) -> Self {
        match serde_json::to_value(facts) {
            Ok(serde_json::Value::Object(map)) => {
                map.into_iter().fold(self, |acc, (k, v)| acc.with_value(&k, v))
            }
            _ => self,
        }
    }
}

impl WithFacts for Plan<Action> {
    fn with_value(self, key: &str, value: serde_json::Value) -> Self {
        self.with(key, value)
    }
}

impl WithFacts for Applied {
    fn with_value(self, key: &str, value: serde_json::Value) -> Self {
        self.with(key, value)
    }
}
