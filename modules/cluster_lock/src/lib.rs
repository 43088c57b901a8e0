//! `cluster_lock`: one exclusive lock per cluster, so that two upgrades (two `kup upgrade` runs,
//! or kup and a playbook) cannot interleave their steps.
//!
//! The lock is the `coordination.k8s.io/v1` Lease `kube-system/kup-upgrade` (holderIdentity,
//! leaseDurationSeconds, acquireTime, renewTime; the holder's host and start time as annotations)
//! where the server serves Leases (1.14 and later), else a ConfigMap of the same name holding the
//! same record in the annotation `kubeadm-ha-upgrade/lock`. Params -> observe (read the lock) ->
//! plan (a pure decision, [`plan`]) -> apply (one conditional write). Every write is optimistic: a
//! create that finds the object created, a replace whose resourceVersion is stale, or a delete whose
//! preconditions fail means someone else got there first; the lock is read again and the decision
//! made again, so another holder's lock is never overwritten.
//!
//! Staleness is judged by this machine's clock against the holder's last renewTime.

mod record;
mod store;

use std::time::Instant;

use kube_kit::k8s_openapi::jiff::Timestamp;
use kube_kit::{is_dns1123_label, is_dns1123_subdomain, Connection};
use module_kit::{de, shown, Context, Failure, Module, Name, Outcome, Seconds};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub use record::{Record, HOST_ANNOTATION, LOCK_ANNOTATION, STARTED_ANNOTATION};
pub use store::Backend;
use store::{Store, WriteError};

pub struct ClusterLock;

/// What to do with the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Acquire,
    Renew,
    Release,
    Status,
}

#[derive(Debug, Clone, Deserialize, Serialize, module_kit::Params)]
pub struct Params {
    pub action: Action,
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Who holds (or wants) the lock; required except for `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<Name>,
    /// The machine the holder runs on, shown to whoever finds the cluster locked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Name>,
    /// Seconds the lock stays valid without renewal.
    #[serde(default = "default_duration")]
    pub duration: Seconds<MIN_DURATION>,
    /// Take over a lock whose holder stopped renewing it for longer than its duration.
    #[serde(default, deserialize_with = "de::boolean")]
    pub takeover: bool,
    /// `kubeconfig`, `context`, `request_timeout`.
    #[serde(flatten)]
    pub connection: Connection,
}

impl Params {
    /// `action` on the default lock, by nobody in particular yet (for callers such as kup: `status`
    /// needs no holder).
    pub fn new(action: Action) -> Params {
        Params {
            action,
            name: default_name(),
            namespace: default_namespace(),
            holder: None,
            host: None,
            duration: default_duration(),
            takeover: false,
            connection: Connection::default(),
        }
    }
}

fn default_name() -> String {
    "kup-upgrade".into()
}
fn default_namespace() -> String {
    "kube-system".into()
}
fn default_duration() -> Seconds<MIN_DURATION> {
    Seconds::of(120)
}

/// Bounds of `duration`: at least 10 s (renewals must have time to land), at most a day.
pub const MIN_DURATION: u64 = 10;
pub const MAX_DURATION: u64 = 86_400;
/// Longest holder or host string.
const MAX_TEXT: usize = 1024;
/// Looks (and conditional writes) before giving up on a lock that keeps changing.
const MAX_ROUNDS: u32 = 5;

/// A one-line, non-empty, bounded string.
fn text_param(field: &str, value: &str) -> Result<String, Failure> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Failure::param(field, "must not be empty"));
    }
    if v.len() > MAX_TEXT {
        return Err(Failure::param(field, format!("is longer than {MAX_TEXT} bytes")));
    }
    if v.chars().any(char::is_control) {
        return Err(Failure::param(
            field,
            "must be one line without control characters",
        ));
    }
    Ok(v.to_string())
}

/// What is asked, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub action: Action,
    pub holder: Option<String>,
    pub host: Option<String>,
    pub duration: i64,
    pub takeover: bool,
}

impl Ask {
    fn from_params(p: &Params) -> Result<Ask, Failure> {
        let duration = p.duration.get();
        if duration > MAX_DURATION {
            return Err(Failure::param(
                "duration",
                format!("must be at most {MAX_DURATION} seconds (a day), got {duration}"),
            ));
        }
        if !is_dns1123_subdomain(&p.name) {
            return Err(Failure::param(
                "name",
                format!(
                    "{} is not a valid object name (lowercase letters, digits, '-' and '.')",
                    shown(&p.name)
                ),
            ));
        }
        if !is_dns1123_label(&p.namespace) {
            return Err(Failure::param(
                "namespace",
                format!(
                    "{} is not a valid namespace name (lowercase letters, digits and '-')",
                    shown(&p.namespace)
                ),
            ));
        }
        let holder = p.holder.as_deref().map(|h| text_param("holder", h)).transpose()?;
        if holder.is_none() && p.action != Action::Status {
            return Err(Failure::param(
                "holder",
                "is required to acquire, renew or release (who holds the lock)",
            ));
        }
        let host = p.host.as_deref().map(|h| text_param("host", h)).transpose()?;
        Ok(Ask {
            action: p.action,
            holder,
            host,
            duration: i64::try_from(duration).unwrap_or(120),
            takeover: p.takeover,
        })
    }

    fn me(&self) -> &str {
        self.holder.as_deref().unwrap_or_default()
    }
}

/// What the action does to the lock as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to write.
    Keep { msg: String },
    /// Write this record: create the object when there is none, else replace the one read.
    Write {
        record: Record,
        changed: bool,
        msg: String,
        warning: Option<String>,
    },
    /// Delete the Lease (free the ConfigMap's record).
    Release { msg: String },
    /// Fail without writing.
    Refuse { msg: String },
}

fn when(t: Option<Timestamp>) -> String {
    t.map(record::short).unwrap_or_else(|| "an unknown time".into())
}

fn on_host(r: &Record) -> String {
    match &r.host {
        Some(h) => format!(" on {h}"),
        None => " (host not recorded)".into(),
    }
}

/// `X on H since A (last renewed R, valid for D s)`.
fn who(r: &Record, fallback: i64) -> String {
    format!(
        "{}{} since {} (last renewed {}, valid for {} s)",
        r.holder,
        on_host(r),
        when(r.acquired),
        when(r.last_renewed()),
        r.duration_or(fallback)
    )
}

/// `expired at E, N s ago by this machine's clock`.
fn expiry(r: &Record, now: Timestamp, fallback: i64) -> String {
    match r.expires(fallback) {
        Some(e) => format!(
            "expired at {}, {} s ago by this machine's clock",
            record::short(e),
            record::seconds_between(e, now)
        ),
        None => "never renewed".into(),
    }
}

fn would(check: bool, done: &str, todo: &str) -> String {
    if check {
        format!("would {todo}")
    } else {
        done.to_string()
    }
}

/// The decision, from what was read (`None`: no object) and this machine's clock. `what` names
/// the object (`lease kube-system/kup-upgrade`); `check` only words the messages.
pub fn plan(ask: &Ask, seen: Option<&Record>, what: &str, now: Timestamp, check: bool) -> Plan {
    let fallback = ask.duration;
    let me = ask.me();
    let held = seen.filter(|r| r.held());
    let transitions = seen.map(|r| r.transitions).unwrap_or(0);
    let fresh_record = |transitions: i32| Record {
        holder: me.to_string(),
        host: ask.host.clone(),
        duration: Some(ask.duration),
        acquired: Some(now),
        renewed: Some(now),
        transitions,
    };
    let renewal = |r: &Record| Record {
        holder: r.holder.clone(),
        host: ask.host.clone().or_else(|| r.host.clone()),
        duration: Some(ask.duration),
        acquired: r.acquired.or(Some(now)),
        renewed: Some(now),
        transitions: r.transitions,
    };
    let until = |r: &Record| when(r.expires(fallback));
    let late = |r: &Record| {
        r.stale(now, fallback).then(|| {
            format!(
                "the lock had {} before this renewal; nobody had taken it over",
                expiry(r, now, fallback)
            )
        })
    };
    match ask.action {
        Action::Status => Plan::Keep {
            msg: match held {
                None if seen.is_some() => format!("the cluster is not locked ({what} is released)"),
                None => format!("the cluster is not locked ({what} does not exist)"),
                Some(r) if r.stale(now, fallback) => format!(
                    "the cluster is locked ({what}) by {}, but the lock is stale ({}): takeover would take it",
                    who(r, fallback),
                    expiry(r, now, fallback)
                ),
                Some(r) => format!(
                    "the cluster is locked ({what}) by {}{}; valid until {}",
                    who(r, fallback),
                    if !me.is_empty() && r.holder == me {
                        " (this holder)"
                    } else {
                        ""
                    },
                    until(r)
                ),
            },
        },
        Action::Acquire => match held {
            None => {
                // A released record changes hands too.
                let record = fresh_record(if seen.is_some() {
                    transitions.saturating_add(1)
                } else {
                    transitions
                });
                let msg = format!(
                    "{} the cluster lock ({what}) for {me}, valid for {} s without renewal",
                    would(check, "acquired", "acquire"),
                    ask.duration
                );
                Plan::Write {
                    record,
                    changed: true,
                    msg,
                    warning: None,
                }
            }
            Some(r) if r.holder == me => {
                let record = renewal(r);
                let msg = format!(
                    "the cluster lock ({what}) is already held by {me} since {}; {} until {}",
                    when(r.acquired),
                    would(check, "renewed it", "renew it"),
                    until(&record)
                );
                Plan::Write {
                    changed: false,
                    warning: late(r),
                    record,
                    msg,
                }
            }
            Some(r) if !r.stale(now, fallback) => Plan::Refuse {
                msg: format!(
                    "the cluster is locked ({what}) by {}: another upgrade is running; wait for it, or if that \
                     run is gone, rerun with --take-over-lock (cluster_lock takeover=true) after {}",
                    who(r, fallback),
                    until(r)
                ),
            },
            Some(r) if ask.takeover => {
                let previous = format!("{}{}", r.holder, on_host(r));
                let record = fresh_record(r.transitions.saturating_add(1));
                let msg = format!(
                    "{} the cluster lock ({what}) from {previous}, whose lock had {}",
                    would(check, "took over", "take over"),
                    expiry(r, now, fallback)
                );
                let warning = format!(
                    "{} the cluster lock from {}: that run stopped renewing it; if it is still running, stop it",
                    would(check, "took over", "take over"),
                    who(r, fallback)
                );
                Plan::Write {
                    record,
                    changed: true,
                    msg,
                    warning: Some(warning),
                }
            }
            Some(r) => Plan::Refuse {
                msg: format!(
                    "the cluster is locked ({what}) by {}, but the lock is stale ({}): that run seems gone; \
                     if so, rerun with --take-over-lock (cluster_lock takeover=true) to take it over",
                    who(r, fallback),
                    expiry(r, now, fallback)
                ),
            },
        },
        Action::Renew => match held {
            None => Plan::Refuse {
                msg: format!(
                    "lock lost: it was released or deleted ({what} {}); this run no longer holds the cluster \
                     lock",
                    if seen.is_some() { "is released" } else { "does not exist" }
                ),
            },
            Some(r) if r.holder == me => {
                let record = renewal(r);
                let msg = format!(
                    "{} the cluster lock ({what}) for {me} until {}",
                    would(check, "renewed", "renew"),
                    until(&record)
                );
                Plan::Write {
                    changed: true,
                    warning: late(r),
                    record,
                    msg,
                }
            }
            Some(r) => Plan::Refuse {
                msg: format!(
                    "lock lost to {} ({what}): this run ({me}) no longer holds the cluster lock",
                    who(r, fallback)
                ),
            },
        },
        Action::Release => match held {
            None => Plan::Keep {
                msg: format!(
                    "the cluster is not locked ({what} {}): nothing to release",
                    if seen.is_some() { "is released" } else { "does not exist" }
                ),
            },
            Some(r) if r.holder == me => Plan::Release {
                msg: format!(
                    "{} the cluster lock ({what}) held by {me} since {}",
                    would(check, "released", "release"),
                    when(r.acquired)
                ),
            },
            Some(r) => Plan::Refuse {
                msg: format!(
                    "the cluster lock ({what}) is held by {}, not by {me}: not released (only its holder \
                     releases a lock)",
                    who(r, fallback)
                ),
            },
        },
    }
}

/// Before/after for diff mode: who holds the lock.
fn holder_state(r: Option<&Record>) -> Value {
    let held = r.filter(|r| r.held());
    json!({"holder": held.map(|r| &r.holder), "host": held.and_then(|r| r.host.as_ref())})
}

fn add_fields(mut values: Map<String, Value>, extra: Map<String, Value>) -> Map<String, Value> {
    values.extend(extra);
    values
}

impl Module for ClusterLock {
    const NAME: &'static str = "cluster_lock";
    const DOCS: &'static str = include_str!("../cluster_lock.yml");
    type Params = Params;

    fn validate(p: &Params) -> Result<(), Failure> {
        Ask::from_params(p).map(drop)
    }

    fn run(p: Params, ctx: &Context) -> Result<Outcome, Failure> {
        let ask = Ask::from_params(&p)?;
        let check = ctx.check_mode;
        kube_kit::block_on(async move { apply(&p, &ask, check).await })?
    }
}

async fn apply(p: &Params, ask: &Ask, check: bool) -> Result<Outcome, Failure> {
    let api = kube_kit::connect(&p.connection).await?;
    // Transient errors (5xx, 429, timeouts) are retried for up to two request timeouts.
    let deadline = Instant::now() + p.connection.request_timeout.duration() * 2;
    let mut store = Store::new(&api, &p.namespace, &p.name, deadline);
    let me = ask.holder.as_deref();
    let mut conflicts = 0u32;
    loop {
        let seen = store.look().await?;
        let now = record::now();
        let current = seen.record();
        let refused = conflicts;
        let values = |r: Option<&Record>| {
            let mut m = record::fields(r, me, now, ask.duration);
            m.insert("kind".into(), json!(seen.backend.kind()));
            m.insert("conflicts".into(), json!(refused));
            m
        };
        let step = plan(ask, current, &seen.what, now, check);
        let (out, after) = match step {
            Plan::Keep { msg } => {
                let mut out = Outcome::unchanged(msg);
                out.values = values(current);
                return Ok(out.with_diff(holder_state(current), holder_state(current)));
            }
            Plan::Refuse { msg } => {
                let mut failure = Failure::new(msg);
                failure.values = values(current);
                return Err(failure);
            }
            Plan::Write {
                record,
                changed,
                msg,
                warning,
            } => {
                if !check {
                    let written = store.write(&seen, &record).await;
                    if !landed(written, &mut conflicts, &seen.what, || values(current))? {
                        continue;
                    }
                }
                let mut out = if changed {
                    Outcome::changed(msg)
                } else {
                    Outcome::unchanged(msg)
                };
                if let Some(w) = warning {
                    out = out.warn(w);
                }
                let previous = current
                    .filter(|r| r.held() && r.holder != ask.me())
                    .map(|r| r.holder.clone());
                out.values = add_fields(
                    values(Some(&record)),
                    Map::from_iter([("previous_holder".to_string(), json!(previous))]),
                );
                (out, Some(record))
            }
            Plan::Release { msg } => {
                if !check {
                    let written = store.release(&seen, now).await;
                    if !landed(written, &mut conflicts, &seen.what, || values(current))? {
                        continue;
                    }
                }
                let mut out = Outcome::changed(msg);
                out.values = add_fields(
                    values(None),
                    Map::from_iter([("previous_holder".to_string(), json!(current.map(|r| &r.holder)))]),
                );
                (out, None)
            }
        };
        return Ok(out.with_diff(holder_state(current), holder_state(after.as_ref())));
    }
}

/// What a conditional write came to: `Ok(true)` when it landed, `Ok(false)` when another writer
/// came first (look again); an error when the write failed or that has happened `MAX_ROUNDS` times.
fn landed(
    written: Result<(), WriteError>,
    conflicts: &mut u32,
    what: &str,
    values: impl FnOnce() -> Map<String, Value>,
) -> Result<bool, Failure> {
    match written {
        Ok(()) => Ok(true),
        Err(WriteError::Lost) => {
            *conflicts += 1;
            if *conflicts >= MAX_ROUNDS {
                return Err(kept_changing(what, *conflicts, values()));
            }
            Ok(false)
        }
        Err(WriteError::Failed(f)) => Err(f),
    }
}

fn kept_changing(what: &str, conflicts: u32, values: Map<String, Value>) -> Failure {
    let mut f = Failure::new(format!(
        "{what} kept changing under us ({conflicts} conditional writes refused); nothing was overwritten: \
         try again"
    ));
    f.values = values;
    f
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const WHAT: &str = "lease kube-system/kup-upgrade";

    fn ask(action: Action, holder: &str) -> Ask {
        Ask {
            action,
            holder: Some(holder.into()),
            host: Some("ctrl-b".into()),
            duration: 120,
            takeover: false,
        }
    }

    fn held_by(holder: &str, renewed: &str) -> Record {
        Record {
            holder: holder.into(),
            host: Some("ctrl-a".into()),
            duration: Some(60),
            acquired: Some(at("2024-05-01T10:00:00Z")),
            renewed: Some(at(renewed)),
            transitions: 0,
        }
    }

    #[test]
    fn acquire_creates_renews_refuses_or_takes_over() {
        let now = at("2024-05-01T10:01:00Z");
        // Absent: create, fresh times, this machine's host.
        match plan(&ask(Action::Acquire, "b"), None, WHAT, now, false) {
            Plan::Write { record, changed, .. } => {
                assert!(changed);
                assert_eq!(record.holder, "b");
                assert_eq!(record.host.as_deref(), Some("ctrl-b"));
                assert_eq!(record.renewed, Some(now));
                assert_eq!(record.duration, Some(120));
            }
            other => panic!("{other:?}"),
        }
        // Mine: renewed, unchanged, the start time kept.
        let mine = held_by("b", "2024-05-01T10:00:30Z");
        match plan(&ask(Action::Acquire, "b"), Some(&mine), WHAT, now, false) {
            Plan::Write {
                record,
                changed,
                warning,
                ..
            } => {
                assert!(!changed);
                assert!(warning.is_none());
                assert_eq!(record.acquired, mine.acquired);
                assert_eq!(record.renewed, Some(now));
            }
            other => panic!("{other:?}"),
        }
        // Someone else's, fresh: refused with their identity and when it could be taken over.
        let theirs = held_by("kup 0.1.0 root@ctrl-a pid 4242", "2024-05-01T10:00:30Z");
        let Plan::Refuse { msg } = plan(&ask(Action::Acquire, "b"), Some(&theirs), WHAT, now, false) else {
            panic!()
        };
        assert_eq!(
            msg,
            "the cluster is locked (lease kube-system/kup-upgrade) by kup 0.1.0 root@ctrl-a pid 4242 on ctrl-a \
             since 2024-05-01T10:00:00Z (last renewed 2024-05-01T10:00:30Z, valid for 60 s): another upgrade \
             is running; wait for it, or if that run is gone, rerun with --take-over-lock (cluster_lock \
             takeover=true) after 2024-05-01T10:01:30Z"
        );
        // Takeover does not apply to a fresh lock.
        let mut taking = ask(Action::Acquire, "b");
        taking.takeover = true;
        assert!(matches!(
            plan(&taking, Some(&theirs), WHAT, now, false),
            Plan::Refuse { .. }
        ));
        // Stale: refused without takeover, taken with it.
        let stale = held_by("a", "2024-05-01T09:00:00Z");
        let Plan::Refuse { msg } = plan(&ask(Action::Acquire, "b"), Some(&stale), WHAT, now, false) else {
            panic!()
        };
        assert!(msg.contains("stale"), "{msg}");
        assert!(
            msg.contains("expired at 2024-05-01T09:01:00Z, 3600 s ago"),
            "{msg}"
        );
        match plan(&taking, Some(&stale), WHAT, now, false) {
            Plan::Write {
                record,
                changed,
                warning,
                msg,
            } => {
                assert!(changed);
                assert_eq!(record.holder, "b");
                assert_eq!(record.transitions, 1);
                assert_eq!(record.acquired, Some(now));
                assert!(msg.starts_with("took over the cluster lock"), "{msg}");
                assert!(warning.unwrap().contains("a on ctrl-a"));
            }
            other => panic!("{other:?}"),
        }
        // A released record is free.
        let free = Record {
            transitions: 3,
            ..Record::default()
        };
        match plan(&ask(Action::Acquire, "b"), Some(&free), WHAT, now, true) {
            Plan::Write { record, msg, .. } => {
                assert_eq!(record.transitions, 4);
                assert!(msg.starts_with("would acquire"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn renew_and_release_only_by_the_holder() {
        let now = at("2024-05-01T10:01:00Z");
        let mine = held_by("b", "2024-05-01T10:00:30Z");
        let theirs = held_by("a", "2024-05-01T10:00:30Z");
        assert!(matches!(
            plan(&ask(Action::Renew, "b"), Some(&mine), WHAT, now, false),
            Plan::Write { changed: true, .. }
        ));
        let Plan::Refuse { msg } = plan(&ask(Action::Renew, "b"), Some(&theirs), WHAT, now, false) else {
            panic!()
        };
        assert!(msg.starts_with("lock lost to a on ctrl-a"), "{msg}");
        let Plan::Refuse { msg } = plan(&ask(Action::Renew, "b"), None, WHAT, now, false) else {
            panic!()
        };
        assert!(msg.starts_with("lock lost: it was released or deleted"), "{msg}");
        // Renewing a lock that expired but that nobody took: allowed, with a warning.
        let late = held_by("b", "2024-05-01T09:00:00Z");
        match plan(&ask(Action::Renew, "b"), Some(&late), WHAT, now, false) {
            Plan::Write { warning, .. } => assert!(warning.unwrap().contains("nobody had taken it over")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            plan(&ask(Action::Release, "b"), Some(&mine), WHAT, now, false),
            Plan::Release { .. }
        ));
        assert!(matches!(
            plan(&ask(Action::Release, "b"), None, WHAT, now, false),
            Plan::Keep { .. }
        ));
        let Plan::Refuse { msg } = plan(&ask(Action::Release, "b"), Some(&theirs), WHAT, now, false) else {
            panic!()
        };
        assert!(msg.contains("held by a on ctrl-a"), "{msg}");
        assert!(msg.contains("not released"), "{msg}");
    }

    #[test]
    fn status_describes() {
        let now = at("2024-05-01T10:01:00Z");
        let mut status = ask(Action::Status, "b");
        status.holder = None;
        let Plan::Keep { msg } = plan(&status, None, WHAT, now, false) else {
            panic!()
        };
        assert!(msg.contains("not locked"), "{msg}");
        let Plan::Keep { msg } = plan(
            &status,
            Some(&held_by("a", "2024-05-01T09:00:00Z")),
            WHAT,
            now,
            false,
        ) else {
            panic!()
        };
        assert!(msg.contains("stale"), "{msg}");
    }

    #[test]
    fn names_and_text_parameters() {
        assert!(is_dns1123_subdomain("kup-upgrade"));
        assert!(is_dns1123_subdomain("a.b"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_subdomain("Kup"));
        assert!(!is_dns1123_label("-a"));
        assert!(text_param("holder", " x ").is_ok());
        assert!(text_param("holder", "  ").is_err());
        assert!(text_param("holder", "a\nb").is_err());
        assert!(text_param("holder", &"x".repeat(2000)).is_err());
    }
}
