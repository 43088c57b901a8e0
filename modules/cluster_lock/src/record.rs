//! The lock record and the two ways it is stored: a `coordination.k8s.io/v1` Lease (its spec, with
//! the holder's host and start time as annotations), or, on servers without Leases, one JSON
//! annotation of a ConfigMap (as client-go's old ConfigMapLock kept its LeaderElectionRecord in
//! `control-plane.alpha.kubernetes.io/leader`).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use kube_kit::k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube_kit::k8s_openapi::api::core::v1::ConfigMap;
use kube_kit::k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube_kit::k8s_openapi::jiff::fmt::strtime;
use kube_kit::k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{json, Map, Value};

/// The ConfigMap annotation holding the record (JSON).
pub const LOCK_ANNOTATION: &str = "kubeadm-ha-upgrade/lock";
/// The Lease annotation naming the machine the holder runs on.
pub const HOST_ANNOTATION: &str = "kubeadm-ha-upgrade/host";
/// The Lease annotation with the time the holder acquired the lock (RFC 3339).
pub const STARTED_ANNOTATION: &str = "kubeadm-ha-upgrade/started";
/// The label on the objects this module creates.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kubeadm-ha-upgrade");

/// Who holds the lock, since when, and until when it is valid without renewal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The holder's identity; empty when nobody holds it (a released ConfigMap record).
    pub holder: String,
    /// The machine the holder runs on, if it said.
    pub host: Option<String>,
    /// Seconds the lock stays valid after `renewed`.
    pub duration: Option<i64>,
    pub acquired: Option<Timestamp>,
    pub renewed: Option<Timestamp>,
    /// How many times the lock changed hands.
    pub transitions: i32,
}

impl Record {
    pub fn held(&self) -> bool {
        !self.holder.is_empty()
    }

    /// The last sign of life: the renewal, else the acquisition.
    pub fn last_renewed(&self) -> Option<Timestamp> {
        self.renewed.or(self.acquired)
    }

    /// The duration in the record, or `fallback` when it has none.
    pub fn duration_or(&self, fallback: i64) -> i64 {
        self.duration.filter(|d| *d > 0).unwrap_or(fallback)
    }

    /// When the lock stops being valid unless renewed.
    pub fn expires(&self, fallback: i64) -> Option<Timestamp> {
        let secs = self.duration_or(fallback);
        self.last_renewed()?
            .checked_add(SignedDuration::from_secs(secs))
            .ok()
    }

    /// Not renewed for longer than its duration (by `now`, this machine's clock). A record without
    /// any time is stale: nothing says its holder is alive.
    pub fn stale(&self, now: Timestamp, fallback: i64) -> bool {
        self.expires(fallback).is_none_or(|e| e < now)
    }
}

/// Now, to the microsecond (a MicroTime's precision).
pub fn now() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_micros()).ok())
        .and_then(|us| Timestamp::from_microsecond(us).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A MicroTime as the API writes it: `2024-05-01T10:00:00.123456Z`.
pub fn micro(t: Timestamp) -> String {
    strtime::format("%Y-%m-%dT%H:%M:%S%.6fZ", t).unwrap_or_else(|_| t.to_string())
}

/// For messages: `2024-05-01T10:00:00Z`.
pub fn short(t: Timestamp) -> String {
    strtime::format("%Y-%m-%dT%H:%M:%SZ", t).unwrap_or_else(|_| t.to_string())
}

/// Seconds from `earlier` to `later` (negative when `later` is before).
pub fn seconds_between(earlier: Timestamp, later: Timestamp) -> i64 {
    later.duration_since(earlier).as_secs()
}

fn annotation(meta: &ObjectMeta, key: &str) -> Option<String> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .filter(|v| !v.is_empty())
        .cloned()
}

fn mark(meta: &mut ObjectMeta) {
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string());
}

/// The record a Lease holds.
pub fn from_lease(lease: &Lease) -> Record {
    let spec = lease.spec.clone().unwrap_or_default();
    Record {
        holder: spec.holder_identity.unwrap_or_default(),
        host: annotation(&lease.metadata, HOST_ANNOTATION),
        duration: spec.lease_duration_seconds.map(i64::from),
        acquired: spec.acquire_time.map(|t| t.0),
        renewed: spec.renew_time.map(|t| t.0),
        transitions: spec.lease_transitions.unwrap_or(0),
    }
}

/// The metadata of a new lock object.
fn new_meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        ..ObjectMeta::default()
    }
}

/// `base` (keeping its resourceVersion, labels and annotations) or a new Lease, holding `r`.
pub fn to_lease(base: Option<&Lease>, namespace: &str, name: &str, r: &Record) -> Lease {
    let mut lease = base.cloned().unwrap_or_else(|| Lease {
        metadata: new_meta(namespace, name),
        spec: None,
    });
    mark(&mut lease.metadata);
    let annotations = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match &r.host {
        Some(h) => annotations.insert(HOST_ANNOTATION.to_string(), h.clone()),
        None => annotations.remove(HOST_ANNOTATION),
    };
    match r.acquired {
        Some(t) => annotations.insert(STARTED_ANNOTATION.to_string(), short(t)),
        None => annotations.remove(STARTED_ANNOTATION),
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = Some(r.holder.clone());
    spec.lease_duration_seconds = r.duration.and_then(|d| i32::try_from(d).ok());
    spec.acquire_time = r.acquired.map(MicroTime);
    spec.renew_time = r.renewed.map(MicroTime);
    spec.lease_transitions = Some(r.transitions);
    lease
}

/// The record a ConfigMap holds; a ConfigMap without the annotation holds a free one.
pub fn from_config_map(cm: &ConfigMap) -> Result<Record, String> {
    match annotation(&cm.metadata, LOCK_ANNOTATION) {
        Some(text) => from_json(&text),
        None => Ok(Record::default()),
    }
}

/// `base` (keeping its resourceVersion, data, labels and other annotations) or a new ConfigMap,
/// holding `r`.
pub fn to_config_map(base: Option<&ConfigMap>, namespace: &str, name: &str, r: &Record) -> ConfigMap {
    let mut cm = base.cloned().unwrap_or_else(|| ConfigMap {
        metadata: new_meta(namespace, name),
        ..ConfigMap::default()
    });
    mark(&mut cm.metadata);
    cm.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(LOCK_ANNOTATION.to_string(), to_json(r));
    cm
}

/// The annotation's JSON, with a Lease spec's field names (and `host`).
pub fn to_json(r: &Record) -> String {
    let mut m = Map::new();
    m.insert("holderIdentity".into(), json!(r.holder));
    if let Some(h) = &r.host {
        m.insert("host".into(), json!(h));
    }
    if let Some(d) = r.duration {
        m.insert("leaseDurationSeconds".into(), json!(d));
    }
    if let Some(t) = r.acquired {
        m.insert("acquireTime".into(), json!(micro(t)));
    }
    if let Some(t) = r.renewed {
        m.insert("renewTime".into(), json!(micro(t)));
    }
    m.insert("leaseTransitions".into(), json!(r.transitions));
    Value::Object(m).to_string()
}

pub fn from_json(text: &str) -> Result<Record, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let obj = value.as_object().ok_or("not a JSON object")?;
    let text_of = |key: &str| obj.get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
    let time = |key: &str| -> Result<Option<Timestamp>, String> {
        text_of(key)
            .map(|s| {
                s.parse::<Timestamp>()
                    .map_err(|e| format!("{key} {s:?} is not an RFC 3339 time: {e}"))
            })
            .transpose()
    };
    Ok(Record {
        holder: text_of("holderIdentity").unwrap_or_default().to_string(),
        host: text_of("host").map(String::from),
        duration: obj.get("leaseDurationSeconds").and_then(Value::as_i64),
        acquired: time("acquireTime")?,
        renewed: time("renewTime")?,
        transitions: obj
            .get("leaseTransitions")
            .and_then(Value::as_i64)
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or(0),
    })
}

/// The result fields describing the lock (a missing or free record: not locked).
pub fn fields(r: Option<&Record>, me: Option<&str>, now: Timestamp, fallback: i64) -> Map<String, Value> {
    let held = r.filter(|r| r.held());
    let mut m = Map::new();
    m.insert("locked".into(), json!(held.is_some()));
    m.insert("holder".into(), json!(held.map(|r| &r.holder)));
    m.insert("host".into(), json!(held.and_then(|r| r.host.as_ref())));
    m.insert("acquired".into(), json!(held.and_then(|r| r.acquired).map(micro)));
    m.insert("renewed".into(), json!(held.and_then(|r| r.renewed).map(micro)));
    m.insert("duration".into(), json!(held.map(|r| r.duration_or(fallback))));
    m.insert(
        "expires".into(),
        json!(held.and_then(|r| r.expires(fallback)).map(micro)),
    );
    m.insert(
        "stale".into(),
        json!(held.is_some_and(|r| r.stale(now, fallback))),
    );
    m.insert(
        "mine".into(),
        json!(held.is_some_and(|r| me.is_some_and(|me| me == r.holder))),
    );
    m.insert("transitions".into(), json!(r.map(|r| r.transitions).unwrap_or(0)));
    m
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn sample() -> Record {
        Record {
            holder: "kup 0.1.0 root@ctrl pid 4242".into(),
            host: Some("ctrl".into()),
            duration: Some(120),
            acquired: Some(at("2024-05-01T10:00:00.123456Z")),
            renewed: Some(at("2024-05-01T10:01:00.5Z")),
            transitions: 2,
        }
    }

    #[test]
    fn times_are_written_as_micro_times() {
        assert_eq!(micro(at("2024-05-01T10:00:00Z")), "2024-05-01T10:00:00.000000Z");
        assert_eq!(micro(at("2024-05-01T10:00:00.5Z")), "2024-05-01T10:00:00.500000Z");
        assert_eq!(short(at("2024-05-01T10:00:00.5Z")), "2024-05-01T10:00:00Z");
        let n = now();
        assert_eq!(n.subsec_nanosecond() % 1000, 0, "microsecond precision");
        assert!(n > at("2024-01-01T00:00:00Z"));
    }

    #[test]
    fn staleness_counts_from_the_last_renewal() {
        let r = sample();
        assert_eq!(r.expires(30), Some(at("2024-05-01T10:03:00.5Z")));
        assert!(!r.stale(at("2024-05-01T10:03:00Z"), 30));
        assert!(r.stale(at("2024-05-01T10:03:01Z"), 30));
        let no_duration = Record {
            duration: None,
            ..sample()
        };
        assert_eq!(no_duration.expires(30), Some(at("2024-05-01T10:01:30.5Z")));
        let timeless = Record {
            acquired: None,
            renewed: None,
            ..sample()
        };
        assert!(timeless.stale(at("2024-05-01T10:00:00Z"), 30));
    }

    #[test]
    fn config_map_annotation_round_trips() {
        let r = sample();
        let text = to_json(&r);
        assert!(
            text.contains("\"acquireTime\":\"2024-05-01T10:00:00.123456Z\""),
            "{text}"
        );
        assert_eq!(from_json(&text).unwrap(), r);
        let cm = to_config_map(None, "kube-system", "kup-upgrade", &r);
        assert_eq!(from_config_map(&cm).unwrap(), r);
        assert_eq!(
            cm.metadata.labels.unwrap().get(MANAGED_BY.0).map(String::as_str),
            Some(MANAGED_BY.1)
        );
        assert_eq!(from_config_map(&ConfigMap::default()).unwrap(), Record::default());
        assert!(from_json("[]").is_err());
        assert!(from_json(r#"{"holderIdentity":"a","renewTime":"yesterday"}"#)
            .unwrap_err()
            .contains("renewTime"));
    }

    #[test]
    fn lease_round_trips_with_host_and_start_annotations() {
        let r = sample();
        let lease = to_lease(None, "kube-system", "kup-upgrade", &r);
        let a = lease.metadata.annotations.clone().unwrap();
        assert_eq!(a[HOST_ANNOTATION], "ctrl");
        assert_eq!(a[STARTED_ANNOTATION], "2024-05-01T10:00:00Z");
        assert_eq!(from_lease(&lease), r);
        let wire = serde_json::to_value(&lease).unwrap();
        assert_eq!(wire["spec"]["renewTime"], "2024-05-01T10:01:00.500000Z");
        assert_eq!(wire["spec"]["leaseDurationSeconds"], 120);
        // Without a host the annotation goes.
        let hostless = Record { host: None, ..r };
        let again = to_lease(Some(&lease), "kube-system", "kup-upgrade", &hostless);
        assert!(!again.metadata.annotations.unwrap().contains_key(HOST_ANNOTATION));
    }

    #[test]
    fn fields_of_free_and_held_locks() {
        let now = at("2024-05-01T10:02:00Z");
        let f = fields(None, Some("me"), now, 120);
        assert_eq!(f["locked"], false);
        assert_eq!(f["holder"], Value::Null);
        assert_eq!(f["stale"], false);
        let r = sample();
        let f = fields(Some(&r), Some("kup 0.1.0 root@ctrl pid 4242"), now, 30);
        assert_eq!(f["locked"], true);
        assert_eq!(f["mine"], true);
        assert_eq!(f["duration"], 120);
        assert_eq!(f["expires"], "2024-05-01T10:03:00.500000Z");
        assert_eq!(f["stale"], false);
        assert_eq!(f["transitions"], 2);
    }
}
