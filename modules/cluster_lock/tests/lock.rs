#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! cluster_lock (the binary) against the lab API server: a Lease on the modern emulation, a
//! ConfigMap on 1.9 (which served no Leases), over HTTP and HTTPS + token.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{matrix, with, Lab};
use lab_apiserver::store::Kind;
use lab_apiserver::{Cluster, Emulation, FaultSpec};
use serde_json::{json, Value};

/// Where the API serves Leases and ConfigMaps in kube-system.
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";
const CONFIG_MAPS: &str = "/api/v1/namespaces/kube-system/configmaps";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cluster_lock"))
}

const A: &str = "kup 0.1.0 root@ctrl-a pid 4242 run 8f3a";
const B: &str = "kup 0.1.0 admin@ctrl-b pid 77 run 19c0";

fn uses_leases(lab: &Lab) -> bool {
    lab.emu.minor >= 14
}

fn kind(lab: &Lab) -> &'static str {
    if uses_leases(lab) {
        "Lease"
    } else {
        "ConfigMap"
    }
}

/// The object holding the lock, as stored.
fn object(lab: &Lab, k: Kind) -> Option<Value> {
    lab.stored(k, "kube-system", "kup-upgrade")
}

fn lock_object(lab: &Lab) -> Option<Value> {
    object(
        lab,
        if uses_leases(lab) {
            Kind::Lease
        } else {
            Kind::ConfigMap
        },
    )
}

/// The stored record's holder ("" when released, None when there is no object).
fn stored_holder(lab: &Lab) -> Option<String> {
    let obj = lock_object(lab)?;
    if uses_leases(lab) {
        return Some(obj["spec"]["holderIdentity"].as_str().unwrap_or("").to_string());
    }
    let text = obj["metadata"]["annotations"]["kubeadm-ha-upgrade/lock"].as_str()?;
    let rec: Value = serde_json::from_str(text).unwrap();
    Some(rec["holderIdentity"].as_str().unwrap_or("").to_string())
}

fn rv(lab: &Lab) -> Option<String> {
    lock_object(lab).map(|o| o["metadata"]["resourceVersion"].as_str().unwrap().to_string())
}

fn acquire(holder: &str, host: &str) -> Value {
    json!({"action": "acquire", "holder": holder, "host": host})
}

fn act(action: &str, holder: &str) -> Value {
    json!({"action": action, "holder": holder})
}

fn check() -> Value {
    json!({"_ansible_check_mode": true, "_ansible_diff": true})
}

/// Puts a record held by `holder`, last renewed `ago` seconds before now, straight into the store.
fn seed(lab: &Lab, holder: &str, ago: u64) {
    let stamp = lab_apiserver::util::rfc3339(std::time::SystemTime::now() - Duration::from_secs(ago))
        .replace('Z', ".000000Z");
    let rec = json!({"holderIdentity": holder, "leaseDurationSeconds": 60, "acquireTime": stamp,
        "renewTime": stamp, "leaseTransitions": 0});
    let (k, body) = if uses_leases(lab) {
        (
            Kind::Lease,
            json!({"metadata": {"name": "kup-upgrade", "annotations": {"kubeadm-ha-upgrade/host": "ctrl-a"}},
                "spec": rec}),
        )
    } else {
        let mut with_host = rec.clone();
        with_host["host"] = json!("ctrl-a");
        (
            Kind::ConfigMap,
            json!({"metadata": {"name": "kup-upgrade",
                "annotations": {"kubeadm-ha-upgrade/lock": with_host.to_string()}}}),
        )
    };
    lab.handle()
        .with_store(|s| s.create(k, "kube-system", body))
        .unwrap();
}

#[test]
fn acquire_refuse_reacquire_renew_release() {
    for (emu, tls) in matrix() {
        let lab = Lab::start(emu, tls, Cluster::sample(None));
        let label = lab.label();

        let status = lab.run(bin(), json!({"action": "status"}));
        assert!(
            !status.failed() && !status.changed(),
            "{label}: {}",
            status.stdout
        );
        assert_eq!(status.json["locked"], false);
        assert_eq!(status.json["kind"], kind(&lab), "{label}");
        assert!(status.msg().contains("not locked"), "{}", status.msg());

        // Check mode says what would happen and writes nothing.
        let would = lab.run(bin(), with(&acquire(A, "ctrl-a"), check()));
        assert!(!would.failed() && would.changed(), "{label}: {}", would.stdout);
        assert!(would.msg().starts_with("would acquire"), "{}", would.msg());
        assert_eq!(would.json["diff"]["before"]["holder"], Value::Null);
        assert_eq!(would.json["diff"]["after"]["holder"], A);
        assert!(lock_object(&lab).is_none(), "{label}: check mode wrote");

        let got = lab.run(bin(), with(&acquire(A, "ctrl-a"), json!({"_ansible_diff": true})));
        assert!(!got.failed() && got.changed(), "{label}: {}", got.stdout);
        assert_eq!(got.json["holder"], A);
        assert_eq!(got.json["host"], "ctrl-a");
        assert_eq!(got.json["mine"], true);
        assert_eq!(got.json["locked"], true);
        assert_eq!(got.json["duration"], 120);
        assert_eq!(got.json["kind"], kind(&lab));
        assert_eq!(got.json["diff"]["after"]["holder"], A);
        assert_eq!(stored_holder(&lab).as_deref(), Some(A), "{label}");
        let stored = lock_object(&lab).unwrap();
        if uses_leases(&lab) {
            assert_eq!(stored["spec"]["leaseDurationSeconds"], 120);
            let renew = stored["spec"]["renewTime"].as_str().unwrap();
            assert_eq!(renew.len(), "2024-05-01T10:00:00.123456Z".len(), "{renew}");
            assert_eq!(got.json["renewed"], renew);
            let a = &stored["metadata"]["annotations"];
            assert_eq!(a["kubeadm-ha-upgrade/host"], "ctrl-a");
            assert!(a["kubeadm-ha-upgrade/started"].as_str().unwrap().ends_with('Z'));
            assert_eq!(
                stored["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                "kubeadm-ha-upgrade"
            );
        }

        // A second operator is refused, with the first one's identity, host and times.
        let other = lab.run(bin(), acquire(B, "ctrl-b"));
        assert!(other.failed(), "{label}: {}", other.stdout);
        let msg = other.msg();
        assert!(msg.starts_with("the cluster is locked"), "{msg}");
        assert!(msg.contains(&format!("by {A} on ctrl-a since ")), "{msg}");
        assert!(msg.contains("valid for 120 s"), "{msg}");
        assert!(msg.contains("another upgrade is running"), "{msg}");
        assert!(msg.contains("--take-over-lock"), "{msg}");
        assert_eq!(other.json["holder"], A);
        assert_eq!(other.json["host"], "ctrl-a");
        assert_eq!(other.json["stale"], false);
        assert_eq!(other.json["mine"], false);
        assert_eq!(other.json["acquired"], got.json["acquired"]);
        assert_eq!(other.json["kind"], kind(&lab));
        assert_eq!(stored_holder(&lab).as_deref(), Some(A));
        // Also in check mode, and with takeover: the lock is fresh.
        let r = lab.run(bin(), with(&acquire(B, "ctrl-b"), check()));
        assert!(r.failed(), "{}", r.stdout);
        let r = lab.run(bin(), with(&acquire(B, "ctrl-b"), json!({"takeover": true})));
        assert!(r.failed(), "{}", r.stdout);
        assert_eq!(stored_holder(&lab).as_deref(), Some(A));

        // The same holder again: renewed, reported unchanged.
        std::thread::sleep(Duration::from_millis(20));
        let again = lab.run(bin(), acquire(A, "ctrl-a"));
        assert!(!again.failed() && !again.changed(), "{label}: {}", again.stdout);
        assert!(again.msg().contains("already held by"), "{}", again.msg());
        assert_eq!(again.json["acquired"], got.json["acquired"], "start time kept");
        assert!(
            again.json["renewed"].as_str() > got.json["renewed"].as_str(),
            "{}",
            again.stdout
        );

        // Renew: the holder may, another may not.
        let before = rv(&lab);
        let renewed = lab.run(bin(), with(&act("renew", A), json!({"duration": 300})));
        assert!(
            !renewed.failed() && renewed.changed(),
            "{label}: {}",
            renewed.stdout
        );
        assert_eq!(renewed.json["duration"], 300);
        assert_ne!(rv(&lab), before);
        assert_eq!(renewed.json["host"], "ctrl-a", "the host is kept");
        let lost = lab.run(bin(), act("renew", B));
        assert_lost_to(&lost, A);

        // Release: not by another holder (the lock stays); check mode writes nothing; the holder does.
        let before = rv(&lab);
        let wrong = lab.run(bin(), act("release", B));
        assert!(wrong.failed(), "{}", wrong.stdout);
        assert!(wrong.msg().contains(&format!("held by {A}")), "{}", wrong.msg());
        assert!(wrong.msg().contains("not released"), "{}", wrong.msg());
        let would = lab.run(bin(), with(&act("release", A), check()));
        assert!(!would.failed() && would.changed(), "{}", would.stdout);
        assert!(would.msg().starts_with("would release"), "{}", would.msg());
        assert_eq!(rv(&lab), before, "{label}: a refused or checked release wrote");
        assert_eq!(stored_holder(&lab).as_deref(), Some(A));

        let released = lab.run(bin(), with(&act("release", A), json!({"_ansible_diff": true})));
        assert!(
            !released.failed() && released.changed(),
            "{label}: {}",
            released.stdout
        );
        assert_eq!(released.json["locked"], false);
        assert_eq!(released.json["previous_holder"], A);
        assert_eq!(released.json["diff"]["before"]["holder"], A);
        assert_eq!(released.json["diff"]["after"]["holder"], Value::Null);
        if uses_leases(&lab) {
            assert!(lock_object(&lab).is_none(), "the Lease is deleted");
        } else {
            // Freed in place: 1.9 ignores a DELETE's resourceVersion precondition.
            assert_eq!(stored_holder(&lab).as_deref(), Some(""));
        }
        let twice = lab.run(bin(), act("release", A));
        assert!(!twice.failed() && !twice.changed(), "{}", twice.stdout);
        let gone = lab.run(bin(), act("renew", A));
        assert!(gone.failed(), "{}", gone.stdout);
        assert!(
            gone.msg().starts_with("lock lost: it was released or deleted"),
            "{}",
            gone.msg()
        );

        // Free again: the other operator gets it.
        let next = lab.run(bin(), acquire(B, "ctrl-b"));
        assert!(!next.failed() && next.changed(), "{label}: {}", next.stdout);
        assert_eq!(stored_holder(&lab).as_deref(), Some(B));
        let expected_transitions = if uses_leases(&lab) { 0 } else { 1 };
        assert_eq!(next.json["transitions"], expected_transitions, "{}", next.stdout);
    }
}

#[test]
fn stale_lock_refused_without_takeover_and_taken_with_it() {
    for emu in [Emulation::V1_9, Emulation::V1_30] {
        let lab = Lab::start(emu, false, Cluster::sample(None));
        seed(&lab, A, 3600);
        let before = rv(&lab);

        let status = lab.run(bin(), json!({"action": "status"}));
        assert_eq!(status.json["stale"], true, "{}", status.stdout);
        assert!(status.msg().contains("stale"), "{}", status.msg());

        let refused = lab.run(bin(), acquire(B, "ctrl-b"));
        refused.assert_failed_saying(&["the lock is stale"]);
        assert!(refused.msg().contains(A), "{}", refused.msg());
        assert!(refused.msg().contains("--take-over-lock"), "{}", refused.msg());
        assert_eq!(refused.json["stale"], true);
        assert_eq!(refused.json["holder"], A);

        let takeover = with(&acquire(B, "ctrl-b"), json!({"takeover": true}));
        let would = lab.run(bin(), with(&takeover, check()));
        assert!(!would.failed() && would.changed(), "{}", would.stdout);
        assert!(would.msg().starts_with("would take over"), "{}", would.msg());
        assert_eq!(rv(&lab), before, "check mode wrote");

        let took = lab.run(bin(), takeover.clone());
        assert!(!took.failed() && took.changed(), "{}", took.stdout);
        assert!(
            took.msg().starts_with("took over the cluster lock"),
            "{}",
            took.msg()
        );
        let warnings = took.json["warnings"].as_array().unwrap();
        assert!(
            warnings[0].as_str().unwrap().contains(&format!("{A} on ctrl-a")),
            "{warnings:?}"
        );
        assert_eq!(took.json["previous_holder"], A);
        assert_eq!(took.json["holder"], B);
        assert_eq!(took.json["transitions"], 1);
        assert_eq!(stored_holder(&lab).as_deref(), Some(B));

        // The old holder finds out at its next renewal, and cannot release the new lock.
        let lost = lab.run(bin(), act("renew", A));
        assert_lost_to(&lost, B);
        assert!(lab.run(bin(), act("release", A)).failed());
        assert_eq!(stored_holder(&lab).as_deref(), Some(B));
    }
}

/// Runs `n` acquirers at once; returns their results.
/// The next two `method` requests under `path` take 700ms: long enough for racers to overlap.
fn slow_twice(lab: &Lab, method: &str, path: &str) {
    lab.inject(FaultSpec {
        method: Some(method.into()),
        path_prefix: Some(path.into()),
        latency_ms: Some(700),
        count: Some(2),
        ..FaultSpec::default()
    });
}

/// `ran` failed because `holder` holds the lock now.
fn assert_lost_to(ran: &module_kit::testkit::Ran, holder: &str) {
    assert!(ran.failed(), "{}", ran.stdout);
    assert!(
        ran.msg().starts_with(&format!("lock lost to {holder}")),
        "{}",
        ran.msg()
    );
}

fn race(lab: &Lab, args: &[Value]) -> Vec<module_kit::testkit::Ran> {
    std::thread::scope(|scope| {
        let runs: Vec<_> = args
            .iter()
            .map(|a| scope.spawn(move || lab.run(bin(), a.clone())))
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    })
}

fn one_winner(results: &[module_kit::testkit::Ran], lab: &Lab) -> String {
    let winners: Vec<_> = results.iter().filter(|r| !r.failed()).collect();
    assert_eq!(
        winners.len(),
        1,
        "{}: {:#?}",
        lab.label(),
        results.iter().map(|r| &r.stdout).collect::<Vec<_>>()
    );
    let winner = winners[0].json["holder"].as_str().unwrap().to_string();
    assert!(winners[0].changed());
    for loser in results.iter().filter(|r| r.failed()) {
        assert!(
            loser.msg().starts_with("the cluster is locked"),
            "{}",
            loser.msg()
        );
        assert!(loser.msg().contains(&winner), "{}", loser.msg());
        assert_eq!(loser.json["holder"], winner.as_str());
    }
    assert_eq!(stored_holder(lab).as_deref(), Some(winner.as_str()));
    winner
}

#[test]
fn concurrent_acquirers_exactly_one_wins() {
    for emu in [Emulation::V1_9, Emulation::V1_30] {
        // Both read "no lock", then both create: the slower create gets 409 AlreadyExists.
        let lab = Lab::start(emu, false, Cluster::sample(None));
        let collection = if uses_leases(&lab) { LEASES } else { CONFIG_MAPS };
        slow_twice(&lab, "POST", collection);
        let results = race(&lab, &[acquire(A, "ctrl-a"), acquire(B, "ctrl-b")]);
        one_winner(&results, &lab);
        let loser = results.iter().find(|r| r.failed()).unwrap();
        assert_eq!(loser.json["conflicts"], 1, "{}", loser.stdout);

        // Many at once, no help from faults.
        let lab = Lab::start(emu, true, Cluster::sample(None));
        let args: Vec<Value> = (0..4)
            .map(|i| acquire(&format!("holder-{i}"), &format!("ctrl-{i}")))
            .collect();
        one_winner(&race(&lab, &args), &lab);

        // Two takeovers of one stale lock: both replace with the resourceVersion they read; one
        // gets 409 Conflict, reads again, and finds the other's fresh lock.
        let lab = Lab::start(emu, false, Cluster::sample(None));
        seed(&lab, "gone", 3600);
        let object = if uses_leases(&lab) {
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kup-upgrade"
        } else {
            "/api/v1/namespaces/kube-system/configmaps/kup-upgrade"
        };
        slow_twice(&lab, "PUT", object);
        let takeover = json!({"takeover": true});
        let results = race(
            &lab,
            &[
                with(&acquire(A, "ctrl-a"), takeover.clone()),
                with(&acquire(B, "ctrl-b"), takeover),
            ],
        );
        one_winner(&results, &lab);
        let winner = results.iter().find(|r| !r.failed()).unwrap();
        assert_eq!(winner.json["previous_holder"], "gone");
    }
}

#[test]
fn a_config_map_lock_is_honoured_where_leases_are_served() {
    // Taken on a server without Leases (1.13, say); the API server is then upgraded to one with them.
    let lab = Lab::start(Emulation::V1_30, false, Cluster::sample(None));
    let cm = json!({"metadata": {"name": "kup-upgrade", "annotations": {"kubeadm-ha-upgrade/lock":
        json!({"holderIdentity": A, "host": "ctrl-a", "leaseDurationSeconds": 600,
            "acquireTime": "2099-01-01T00:00:00.000000Z", "renewTime": "2099-01-01T00:00:00.000000Z"}).to_string()}}});
    lab.handle()
        .with_store(|s| s.create(Kind::ConfigMap, "kube-system", cm))
        .unwrap();
    let refused = lab.run(bin(), acquire(B, "ctrl-b"));
    assert!(refused.failed(), "{}", refused.stdout);
    assert_eq!(refused.json["kind"], "ConfigMap");
    assert!(
        refused.msg().contains("configmap kube-system/kup-upgrade"),
        "{}",
        refused.msg()
    );
    let renewed = lab.run(bin(), act("renew", A));
    assert!(!renewed.failed(), "{}", renewed.stdout);
    assert_eq!(renewed.json["kind"], "ConfigMap");
    let released = lab.run(bin(), act("release", A));
    assert!(released.changed(), "{}", released.stdout);
    assert!(object(&lab, Kind::Lease).is_none());
    // Released, the next lock is a Lease.
    let next = lab.run(bin(), acquire(B, "ctrl-b"));
    assert!(next.changed(), "{}", next.stdout);
    assert_eq!(next.json["kind"], "Lease");
    assert!(object(&lab, Kind::Lease).is_some());
}

#[test]
fn server_errors_are_retried_or_reported() {
    let lab = Lab::start(Emulation::V1_30, false, Cluster::sample(None));
    lab.inject(FaultSpec::fail("GET", LEASES, 503, 2));
    lab.inject(FaultSpec::fail("POST", LEASES, 500, 1));
    let ran = lab.run(bin(), acquire(A, "ctrl-a"));
    assert!(ran.changed() && !ran.failed(), "{}", ran.stdout);

    lab.inject(FaultSpec::fail("PUT", "/apis/coordination.k8s.io", 403, 1));
    let ran = lab.run(bin(), act("renew", A));
    ran.assert_failed_saying(&["HTTP 403", "cannot write lease kube-system/kup-upgrade"]);
    assert_eq!(ran.json["status"], 403);
}

#[test]
fn bad_params_name_the_field() {
    let lab = Lab::start(Emulation::V1_30, false, Cluster::sample(None));
    for (args, field) in [
        (json!({}), "action"),
        (json!({"action": "grab", "holder": A}), "action"),
        (json!({"action": "acquire"}), "holder"),
        (json!({"action": "release", "holder": "  "}), "holder"),
        (json!({"action": "acquire", "holder": "a\nb"}), "holder"),
        (
            json!({"action": "acquire", "holder": A, "duration": 5}),
            "duration",
        ),
        (
            json!({"action": "acquire", "holder": A, "duration": 100000}),
            "duration",
        ),
        (
            json!({"action": "acquire", "holder": A, "duration": -1}),
            "duration",
        ),
        (
            json!({"action": "acquire", "holder": A, "takeover": "maybe"}),
            "takeover",
        ),
        (json!({"action": "acquire", "holder": A, "name": "Kup"}), "name"),
        (
            json!({"action": "acquire", "holder": A, "namespace": "a.b"}),
            "namespace",
        ),
        (json!({"action": "acquire", "holder": A, "host": ""}), "host"),
        (json!({"action": "acquire", "holder": A, "owner": "x"}), "owner"),
        (
            json!({"action": "status", "request_timeout": 0}),
            "request_timeout",
        ),
    ] {
        let ran = lab.run(bin(), args.clone());
        assert!(ran.failed(), "{args}: {}", ran.stdout);
        assert!(ran.msg().contains(field), "{args}: {}", ran.msg());
    }
    // Strings for numbers and booleans (Ansible templating), null for the default.
    let ran = lab.run(
        bin(),
        json!({"action": "acquire", "holder": A, "duration": "60", "takeover": "no", "host": null}),
    );
    assert!(ran.changed() && !ran.failed(), "{}", ran.stdout);
    assert_eq!(ran.json["duration"], 60);
    assert_eq!(ran.json["host"], Value::Null);
    let msg = lab.run(bin(), acquire(B, "ctrl-b"));
    assert!(msg.msg().contains("(host not recorded)"), "{}", msg.msg());
}

#[test]
fn fuzzed_arguments_fail_cleanly() {
    let base = json!({"action": "acquire", "holder": A, "host": "ctrl-a", "duration": 60});
    let report = module_kit::testkit::fuzz_intake::<cluster_lock::ClusterLock>(0x17_04, 400, &base).unwrap();
    assert!(report.accepted > 5 && report.refused > 100, "{report:?}");
}
