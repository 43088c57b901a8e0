//! The procedure against a fake transport: order, journal, resume and faults, in milliseconds.
#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use crate::inventory::Inventory;
use crate::report::Reporter;
use crate::transport::{RunError, Transport};
use serde_json::json;
use std::sync::Mutex as StdMutex;

type Answer = Box<dyn Fn(&str, &str, &Value) -> Result<Value, RunError> + Sync>;

/// Records every call as `host module [check]` and answers with `answer`.
struct Fake {
    calls: StdMutex<Vec<String>>,
    answer: Answer,
}

impl Fake {
    fn new(answer: impl Fn(&str, &str, &Value) -> Result<Value, RunError> + Sync + 'static) -> Fake {
        Fake {
            calls: StdMutex::new(Vec::new()),
            answer: Box::new(answer),
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Transport for Fake {
    fn run(
        &self,
        host: Option<&Host>,
        module: &str,
        args: &Value,
        limit: Duration,
    ) -> Result<Value, RunError> {
        assert!(limit >= Duration::from_secs(60), "{module}: limit {limit:?}");
        let place = host.map_or("local", |h| h.name.as_str()).to_string();
        let check = if args["_ansible_check_mode"] == true {
            "check"
        } else {
            ""
        };
        let step = args["state"].as_str().or(args["action"].as_str()).unwrap_or("");
        let label: Vec<&str> = [place.as_str(), module, step, check]
            .into_iter()
            .filter(|w| !w.is_empty())
            .collect();
        self.calls.lock().unwrap().push(label.join(" "));
        // Whatever kup sends, the module's own intake accepts.
        let intake = (crate::modules::info(module).unwrap().intake)(args.clone());
        assert_eq!(intake["failed"], false, "{module} {args}: {}", intake["msg"]);
        (self.answer)(&place, module, args)
    }
}

fn ok(changed: bool) -> Result<Value, RunError> {
    Ok(json!({"failed": false, "changed": changed, "msg": ""}))
}

const INVENTORY: &str = "[control_plane]\ncp1\ncp2\n[workers]\nw1\nw2\n[all:vars]\nkubeconfig=/k\n";

fn inventory_of(dir: &tempfile::TempDir, text: &str) -> Inventory {
    let path = dir.path().join("hosts.ini");
    std::fs::write(&path, text).unwrap();
    Inventory::load(&path).unwrap()
}

fn options() -> Options {
    Options {
        target: "v1.9.2".into(),
        workers_batch: WorkersBatch::Count(1),
        retry_delay: 1,
        base_url: "http://r".into(),
        cni_version: None,
        force_drain: false,
        drain_timeout: 30,
        ready_timeout: 30,
        on_node_failure: OnNodeFailure::Rollback,
        rollback_uncordon: false,
        stage: false,
        limit: None,
    }
}

fn with_run<R>(fake: &Fake, journal: Journal, f: impl FnOnce(&Run<'_>) -> R) -> R {
    with_run_on(INVENTORY, fake, journal, f)
}

fn with_run_on<R>(inventory: &str, fake: &Fake, journal: Journal, f: impl FnOnce(&Run<'_>) -> R) -> R {
    with_run_opts(inventory, options(), fake, journal, f)
}

fn with_run_opts<R>(
    inventory: &str,
    opts: Options,
    fake: &Fake,
    journal: Journal,
    f: impl FnOnce(&Run<'_>) -> R,
) -> R {
    let dir = tempfile::tempdir().unwrap();
    let inv = inventory_of(&dir, inventory);
    let reporter = Reporter::silent();
    let run = Run::new(
        &inv,
        fake,
        opts,
        journal,
        &reporter,
        Arc::new(AtomicBool::new(false)),
    );
    f(&run)
}

fn target() -> Version {
    Version::parse("v1.9.2").unwrap()
}

/// A journal reopened after a run that finished these steps of w1.
fn resumed_journal(done: &[&str]) -> (tempfile::TempDir, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.json");
    {
        let (mut j, _) = Journal::open(path.clone(), "v1.9.2", false).unwrap();
        for s in done {
            j.mark(&format!("w1/{s}")).unwrap();
        }
    }
    let (journal, _) = Journal::open(path, "v1.9.2", false).unwrap();
    (dir, journal)
}

/// A node not yet at the target: the package check would change something.
fn not_upgraded(_: &str, module: &str, args: &Value) -> Result<Value, RunError> {
    match module {
        "package_pin" if args["_ansible_check_mode"] == true => ok(true),
        "node_ready" if args["timeout"] == 0 => Ok(json!({"failed": true, "changed": false})),
        _ => ok(true),
    }
}

#[test]
fn a_worker_is_drained_and_a_control_plane_cordoned_in_the_runbook_order() {
    let fake = Fake::new(not_upgraded);
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), "v1.9.2", false);
    with_run(&fake, journal, |run| {
        run.upgrade_node(&run.inventory.workers[0], target(), true)
            .unwrap();
        run.upgrade_node(run.primary(), target(), false).unwrap();
    });
    assert_eq!(
        fake.calls(),
        [
            "w1 package_pin check",
            "local node_ready",
            "w1 package_repo",
            "local node_drain drain",
            "w1 service_state stopped",
            "w1 package_pin",
            "w1 service_state started",
            "local node_ready",
            "local node_drain uncordon",
            "cp1 package_pin check",
            "local node_ready",
            "cp1 package_repo",
            "local node_drain cordon",
            "cp1 service_state stopped",
            "cp1 package_pin",
            "cp1 service_state started",
            "local node_ready",
            "local node_drain uncordon",
        ]
    );
}

#[test]
fn kubeadm_never_comes_from_a_world_writable_directory() {
    let seen = Arc::new(StdMutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let fake = Fake::new(move |_, module, args| {
        if module.starts_with("kubeadm_") && module != "kubeadm_config_nodename" {
            let path = args["dest"].as_str().or(args["kubeadm_path"].as_str());
            record.lock().unwrap().push(path.map(str::to_string));
        }
        ok(false)
    });
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), "v1.9.2", false);
    with_run(&fake, journal, |run| run.control_plane_kubeadm(target()).unwrap());
    let seen = seen.lock().unwrap().clone();
    // Download, the check whether it is at the target, and apply on each of the two control planes.
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert!(
        seen.iter().all(|p| p.as_deref() == Some(KUBEADM_PATH)),
        "{seen:?}"
    );
}

#[test]
fn a_resumed_node_whose_services_were_started_by_hand_is_stopped_again() {
    let (_dir, journal) = resumed_journal(&["drain", "stop-services"]);
    // The operator started the services again: a check of "stopped" would change something.
    let fake = Fake::new(|_, _, _| ok(true));
    with_run(&fake, journal, |run| {
        run.upgrade_node(&run.inventory.workers[0], target(), true)
            .unwrap();
        assert!(run.journal.lock().unwrap().is_done("w1/stop-services"));
    });
    assert_eq!(
        fake.calls(),
        [
            "w1 package_repo",
            "w1 service_state stopped check",
            "w1 service_state stopped",
            "w1 package_pin",
            "w1 service_state started",
            "local node_ready",
            "local node_drain uncordon",
        ]
    );
}

#[test]
fn a_resumed_node_as_the_journal_left_it_continues_without_redoing() {
    let (_dir, journal) = resumed_journal(&["drain", "stop-services"]);
    let fake = Fake::new(|_, _, args| ok(args["_ansible_check_mode"] != true));
    with_run(&fake, journal, |run| {
        run.upgrade_node(&run.inventory.workers[0], target(), true)
            .unwrap()
    });
    assert_eq!(
        fake.calls()[..3],
        [
            "w1 package_repo",
            "w1 service_state stopped check",
            "w1 package_pin"
        ]
    );
}

#[test]
fn a_resumed_node_that_is_no_longer_ready_waits_for_ready_again() {
    let (_dir, journal) = resumed_journal(&[
        "drain",
        "stop-services",
        "packages",
        "start-services",
        "node-ready",
    ]);
    let fake = Fake::new(|_, module, args| match module {
        "node_ready" if args["timeout"] == 0 => {
            Ok(json!({"failed": true, "changed": false, "msg": "NotReady"}))
        }
        _ => ok(true),
    });
    with_run(&fake, journal, |run| {
        run.upgrade_node(&run.inventory.workers[0], target(), true)
            .unwrap()
    });
    assert_eq!(
        fake.calls(),
        [
            "w1 package_repo",
            "local node_ready check",
            "local node_ready",
            "local node_drain uncordon"
        ]
    );
}

#[test]
fn a_lost_host_stops_the_rollout_with_its_state_and_touches_no_later_host() {
    let fake = Fake::new(|place, module, args| {
        if place == "w1" && module == "package_pin" && args["_ansible_check_mode"] != true {
            return Err(RunError::Unreachable {
                place: "w1".into(),
                detail: "Timeout, server w1 not responding.".into(),
            });
        }
        not_upgraded(place, module, args)
    });
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), "v1.9.2", false);
    let stop = with_run(&fake, journal, |run| run.nodes(target())).unwrap_err();
    let Stop::Failed { host, step, msg, fix } = stop else {
        panic!("not a failure")
    };
    assert_eq!((host.as_str(), step.as_str()), ("w1", "packages"));
    assert!(
        msg.contains("host w1 stopped answering during step packages"),
        "{msg}"
    );
    assert!(
        msg.contains("w1 is drained (cordoned), its services stopped by kup"),
        "{msg}"
    );
    assert!(fix.contains("rerun"), "{fix}");
    // w2, the next, was asked its checks while w1 was out (check mode only); nothing changed it.
    let w2: Vec<String> = fake.calls().into_iter().filter(|c| c.starts_with("w2")).collect();
    assert_eq!(w2, ["w2 package_pin check"], "{:?}", fake.calls());
}

#[test]
fn an_interrupt_finishes_the_step_under_way_and_starts_no_other() {
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    let fake = Fake::new(move |place, module, args| {
        if module == "service_state" {
            // The operator's Ctrl-C arrives while the services are being stopped.
            flag.store(true, Ordering::SeqCst);
        }
        not_upgraded(place, module, args)
    });
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = Journal::open(dir.path().join("j.json"), "v1.9.2", false).unwrap();
    let inv = inventory_of(&dir, INVENTORY);
    let reporter = Reporter::silent();
    let run = Run::new(&inv, &fake, options(), journal, &reporter, interrupted);
    let stop = run.nodes(target()).unwrap_err();
    assert!(matches!(stop, Stop::Interrupted), "{stop}");
    let calls = fake.calls();
    assert_eq!(calls.last().unwrap(), "cp1 service_state stopped", "{calls:?}");
    // The step that was under way finished and is journaled: the rerun goes on after it.
    assert!(run.journal.lock().unwrap().is_done("cp1/stop-services"));
}

#[test]
fn an_abort_names_the_step_that_may_be_half_done() {
    let fake = Fake::new(|place, module, args| {
        if module == "package_pin" && args["_ansible_check_mode"] != true {
            return Err(RunError::Aborted);
        }
        not_upgraded(place, module, args)
    });
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), "v1.9.2", false);
    let stop = with_run(&fake, journal, |run| run.nodes(target())).unwrap_err();
    let text = stop.to_string();
    assert!(matches!(stop, Stop::Aborted { .. }), "{text}");
    assert!(
        text.contains("cp1/packages") && text.contains("half-done"),
        "{text}"
    );
}

#[test]
fn limits_follow_each_steps_own_timeout() {
    let drain = step_limit("node_drain", &json!({"timeout": 600}));
    assert_eq!(drain, Duration::from_secs(660));
    let kubeadm = step_limit("kubeadm_upgrade", &json!({"retries": 1, "retry_delay": 90}));
    assert_eq!(kubeadm, Duration::from_secs(2 * 600 + 2 * 90 + 60));
    assert_eq!(step_limit("service_state", &json!({})), Duration::from_secs(360));
    let huge = step_limit("node_ready", &json!({"timeout": u64::MAX}));
    assert_eq!(huge, Duration::from_secs(7 * 24 * 3600));
}

#[test]
fn every_argument_kup_builds_passes_the_modules_own_intake() {
    // The fake transport runs each module's intake on what it is sent.
    let fake = Fake::new(|place, module, args| {
        // A path on this machine means nothing on another host: only modules run here get it.
        if place != "local" {
            assert!(args.get("kubeconfig").is_none(), "{module} on {place}: {args}");
        }
        ok(false)
    });
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), "v1.9.2", false);
    with_run(&fake, journal, |run| {
        run.preflight(target(), &[target()]).unwrap();
        run.check(run.primary(), run.download_args("stable-1.9", false))
            .unwrap();
        for worker in [false, true] {
            for args in crate::modules::plan_steps(run, run.primary(), target(), worker).unwrap() {
                run.check(run.primary(), args).unwrap();
            }
        }
        let survey = crate::modules::survey_args(run.inventory, run.connection(), true);
        run.check(run.primary(), survey).unwrap();
        let lock = crate::lock::ClusterLock::new(&dir.path().join("j.json"), true).unwrap();
        lock.acquire(run).unwrap();
        lock.release(run);
        run.verify(target()).unwrap();
    });
    // API modules run here with the inventory's kubeconfig; the others on their host.
    let calls = fake.calls();
    for call in [
        "cp1 upgrade_preflight",
        "w2 upgrade_preflight",
        "cp1 kubeadm_download check",
        "cp1 kubeadm_upgrade apply check",
        "cp1 package_pin check",
        "cp1 package_repo check",
        "local cluster_survey check",
        "local cluster_lock acquire",
        "local cluster_lock release",
        "local node_ready",
    ] {
        assert!(calls.iter().any(|c| c == call), "{call}: {calls:?}");
    }
}

#[test]
fn a_failed_step_says_what_the_node_was_left_in() {
    let fake = Fake::new(|place, module, args| {
        if place == "w1" && module == "package_pin" && args["_ansible_check_mode"] != true {
            return Ok(json!({"failed": true, "changed": false, "msg": "E: Unable to correct problems"}));
        }
        not_upgraded(place, module, args)
    });
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), "v1.9.2", false);
    let (stop, stopped_in_journal) = with_run(&fake, journal, |run| {
        let stop = run.upgrade_node(&run.inventory.workers[0], target(), true);
        (stop, run.journal.lock().unwrap().is_done("w1/stop-services"))
    });
    let Stop::Failed { msg, .. } = stop.unwrap_err() else {
        panic!("not a failure")
    };
    assert!(msg.starts_with("E: Unable to correct problems"), "{msg}");
    // Nothing half-done: the services kup stopped run again, and the message says what is left.
    assert!(msg.contains("kup started its services again"), "{msg}");
    assert!(msg.ends_with("its state: w1 is drained (cordoned)"), "{msg}");
    let calls = fake.calls();
    let failed = calls.iter().rposition(|c| c == "w1 package_pin").unwrap();
    assert_eq!(calls[failed + 1..], ["w1 service_state started"], "{calls:?}");
    assert!(
        !stopped_in_journal,
        "a rerun must stop the services again before the packages"
    );
}

/// The calls of a whole rollout of `target` (control-plane kubeadm, then every node) on the fake.
fn rollout_calls(target: &str) -> Vec<String> {
    let fake = Fake::new(not_upgraded);
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), target, false);
    let target = Version::parse(target).unwrap();
    with_run(&fake, journal, |run| {
        run.control_plane_kubeadm(target).unwrap();
        run.upgrade_node(&run.inventory.workers[0], target, true).unwrap();
        run.upgrade_node(run.primary(), target, false).unwrap();
    });
    fake.calls()
}

#[test]
fn the_runbook_era_downloads_kubeadm_edits_node_name_applies_everywhere_and_stops_services() {
    let calls = rollout_calls("v1.9.2");
    assert_eq!(
        calls[..7],
        [
            "cp1 kubeadm_download",
            // A verified etcd snapshot before the control plane moves.
            "cp1 etcd_snapshot",
            "cp1 kubeadm_upgrade apply check",
            "local kubeadm_config_nodename",
            "cp1 kubeadm_upgrade apply",
            // The next control plane waits until this one's API server and etcd are Ready again.
            "local node_ready",
            "cp2 kubeadm_download"
        ]
    );
    assert!(
        calls.contains(&"cp2 kubeadm_upgrade apply".to_string()),
        "{calls:?}"
    );
    assert!(
        calls.contains(&"local node_drain cordon".to_string()),
        "{calls:?}"
    );
    assert!(
        calls.contains(&"w1 service_state stopped".to_string()),
        "{calls:?}"
    );
    assert!(!calls.iter().any(|c| c.ends_with("restarted")), "{calls:?}");
}

#[test]
fn the_1_13_era_uses_packages_experimental_control_plane_and_node_config() {
    let calls = rollout_calls("v1.13.12");
    let at = |call: &str| {
        calls
            .iter()
            .position(|c| c == call)
            .unwrap_or_else(|| panic!("{call}: {calls:?}"))
    };
    assert!(
        at("cp1 package_repo") < at("cp1 package_pin")
            && at("cp1 package_pin") < at("cp1 kubeadm_upgrade apply")
    );
    assert!(
        calls.contains(&"cp2 kubeadm_upgrade experimental_control_plane".to_string()),
        "{calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.contains("kubeadm_config_nodename")),
        "{calls:?}"
    );
    assert!(at("w1 kubeadm_upgrade node_config") < at("local node_drain drain"));
    // Every node is drained; the kubelet restarted, no other service touched.
    assert!(
        !calls
            .iter()
            .any(|c| c.contains("cordon") && !c.contains("uncordon")),
        "{calls:?}"
    );
    assert!(
        calls.contains(&"w1 service_state restarted".to_string()),
        "{calls:?}"
    );
    assert!(!calls.iter().any(|c| c.ends_with("stopped")), "{calls:?}");
}

#[test]
fn today_a_worker_gets_the_targets_kubeadm_package_and_upgrade_node_before_it_is_drained() {
    let calls = rollout_calls("v1.35.1");
    let worker: Vec<&str> = calls
        .iter()
        .map(String::as_str)
        .skip_while(|c| !c.starts_with("w1"))
        .take_while(|c| !c.starts_with("cp1"))
        .collect();
    assert_eq!(
        worker,
        [
            "w1 package_pin check",
            "local node_ready",
            "w1 package_repo",
            "w1 package_pin",
            "w1 kubeadm_upgrade node",
            "local node_drain drain",
            "w1 package_pin",
            "w1 service_state restarted",
            "local node_ready",
            "local node_drain uncordon",
        ]
    );
    assert!(
        calls.contains(&"cp2 kubeadm_upgrade node".to_string()),
        "{calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c == "cp1 kubeadm_upgrade node"),
        "{calls:?}"
    );
}

/// `kup status` names each host's journaled steps: exactly those a rollout marks, in every era.
#[test]
fn the_journaled_steps_kup_status_names_are_those_a_rollout_marks() {
    for target in ["v1.9.2", "v1.13.4", "v1.35.1"] {
        let fake = Fake::new(not_upgraded);
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::unlocked(dir.path().join("j.json"), target, false);
        let version = Version::parse(target).unwrap();
        with_run(&fake, journal, |run| {
            run.control_plane_kubeadm(version).unwrap();
            run.nodes(version).unwrap();
            let journal = run.journal.lock().unwrap();
            for (i, host) in run.inventory.all_hosts().enumerate() {
                let mut named: Vec<String> = run
                    .journaled_steps(i, host, version)
                    .iter()
                    .map(|s| format!("{}/{s}", host.name))
                    .collect();
                let len = named.len();
                named.sort();
                named.dedup();
                assert_eq!(named.len(), len, "{target} {}: a step named twice", host.name);
                let marked: Vec<String> = journal
                    .done()
                    .iter()
                    .filter(|k| k.starts_with(&format!("{}/", host.name)))
                    .cloned()
                    .collect();
                assert_eq!(named, marked, "{target} {}", host.name);
            }
        });
    }
}

#[test]
fn preflight_asks_every_node_whether_its_packages_resolve_and_names_each_that_would_refuse() {
    let fake = Fake::new(|place, module, args| {
        if module == "package_pin" {
            assert_eq!(args["assume_switched"], true, "{args}");
            assert_eq!(args["_ansible_check_mode"], true, "{args}");
            if place == "cp2" || place == "w2" {
                return Ok(json!({"failed": true, "changed": false,
                    "msg": format!("apt would refuse the transaction: kubelet : Depends: cri-tools (>= 1.30.0) ({place})")}));
            }
        }
        ok(false)
    });
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), "v1.9.2", false);
    let stop = with_run(&fake, journal, |run| {
        run.preflight(target(), &[target()]).unwrap_err()
    });
    let Stop::Failed { host, step, msg, fix } = stop else {
        panic!("{stop:?}");
    };
    assert_eq!((host.as_str(), step.as_str()), ("cp2", "packages-resolve"));
    assert!(msg.starts_with("the packages of v1.9.2: cp2: "), "{msg}");
    assert!(msg.contains("; w2: "), "{msg}");
    assert!(msg.contains("Depends: cri-tools"), "{msg}");
    assert!(fix.contains("nothing was changed"), "{fix}");
    // Every node was asked, and nothing but checks ran.
    let calls = fake.calls();
    for host in ["cp1", "cp2", "w1", "w2"] {
        assert!(
            calls.iter().any(|c| c == &format!("{host} package_pin check")),
            "{host}: {calls:?}"
        );
    }
    assert!(
        calls
            .iter()
            .filter(|c| c.contains(" package_"))
            .all(|c| c.ends_with(" check")),
        "{calls:?}"
    );
    // The plan's preflight leaves the packages to the plan's own per-host steps.
    let journal = Journal::unlocked(dir.path().join("j2.json"), "v1.9.2", false);
    with_run(&fake, journal, |run| run.preflight(target(), &[]).unwrap());
}

#[test]
fn the_first_hops_preflight_also_asks_for_every_later_hops_packages() {
    // w1's repository has no 1.10 packages: found before the first hop changes anything.
    let fake = Fake::new(|place, module, args| {
        if module == "package_pin" && place == "w1" && args["version"] == "1.10.3" {
            return Ok(json!({"failed": true, "changed": false,
                "msg": "no kubelet 1.10.3 in the repository"}));
        }
        ok(false)
    });
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), "v1.9.2", false);
    let later = Version::parse("v1.10.3").unwrap();
    let stop = with_run(&fake, journal, |run| {
        run.preflight(target(), &[target(), later]).unwrap_err()
    });
    let Stop::Failed { host, step, msg, .. } = stop else {
        panic!("{stop:?}");
    };
    assert_eq!((host.as_str(), step.as_str()), ("w1", "packages-resolve"));
    assert!(
        msg.starts_with("the packages of v1.10.3: w1: no kubelet 1.10.3"),
        "{msg}"
    );
    let calls = fake.calls();
    assert!(
        calls
            .iter()
            .all(|c| !c.contains(" package_") || c.ends_with(" check")),
        "{calls:?}"
    );
    // Each node was asked about each hop: 4 hosts x 2 releases.
    assert_eq!(
        calls.iter().filter(|c| c.contains(" package_pin")).count(),
        8,
        "{calls:?}"
    );
}

#[test]
fn the_next_control_plane_waits_until_the_last_ones_api_server_and_etcd_are_ready() {
    let fake = Fake::new(|place, module, args| {
        if module == "node_ready" && args["control_plane"] == true && args["names"] == json!(["cp1"]) {
            return Ok(json!({"failed": true, "changed": false,
                "msg": "after 300s, not every node is Ready: cp1 control plane: etcd not Ready (ContainersNotReady)"}));
        }
        not_upgraded(place, module, args)
    });
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), "v1.30.2", false);
    let target = Version::parse("v1.30.2").unwrap();
    let stop = with_run(&fake, journal, |run| {
        run.control_plane_kubeadm(target).unwrap_err()
    });
    let Stop::Failed { host, step, msg, fix } = stop else {
        panic!("{stop:?}");
    };
    assert_eq!((host.as_str(), step.as_str()), ("cp1", "control-plane-ready"));
    assert!(msg.contains("etcd not Ready"), "{msg}");
    assert!(fix.contains("the next control plane was not touched"), "{fix}");
    let calls = fake.calls();
    assert!(
        calls.contains(&"cp1 kubeadm_upgrade apply".to_string()),
        "{calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.starts_with("cp2 kubeadm_upgrade")),
        "{calls:?}"
    );
}

#[test]
fn a_rerun_on_control_planes_at_the_target_leaves_kubeadm_config_alone() {
    // Every control plane already runs the target: kubeadm_upgrade's check says unchanged.
    let fake = Fake::new(|_, module, args| match module {
        "kubeadm_upgrade" if args["_ansible_check_mode"] == true => ok(false),
        _ => ok(false),
    });
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), "v1.9.2", false);
    with_run(&fake, journal, |run| run.control_plane_kubeadm(target()).unwrap());
    let calls = fake.calls();
    assert!(
        !calls.iter().any(|c| c.contains("kubeadm_config_nodename")),
        "nodeName moved on a rerun: {calls:?}"
    );
    // A control plane still to upgrade gets its nodeName first.
    let calls = rollout_calls("v1.9.2");
    assert!(
        calls.contains(&"local kubeadm_config_nodename".to_string()),
        "{calls:?}"
    );
}

#[test]
fn the_inventorys_units_and_take_out_override_the_era_per_host() {
    let fake = Fake::new(|_, _, _| ok(false));
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), "v1.9.2", false);
    let inventory =
        "[control_plane]\ncp1 take_out=drain units=kubelet,containerd\n[workers]\nw1 take_out=cordon\nw2\n";
    with_run_on(inventory, &fake, journal, |run| {
        let names = |host: &Host, worker| -> Vec<&'static str> {
            run.node_steps(host, target(), worker)
                .iter()
                .map(|s| s.name)
                .collect()
        };
        // 1.9 cordons control planes and drains workers: each host says otherwise here.
        assert!(names(run.primary(), false).contains(&"drain"));
        assert!(names(&run.inventory.workers[0], true).contains(&"cordon"));
        assert!(names(&run.inventory.workers[1], true).contains(&"drain"));
        let stop = run
            .node_steps(run.primary(), target(), false)
            .into_iter()
            .find(|s| s.name == "stop-services")
            .unwrap();
        assert_eq!(stop.args.json["units"], json!(["kubelet", "containerd"]));
        let stop = run
            .node_steps(&run.inventory.workers[1], target(), true)
            .into_iter()
            .find(|s| s.name == "stop-services")
            .unwrap();
        assert_eq!(
            stop.args.json["units"],
            json!(["keepalived", "kubelet", "docker"])
        );
    });
}

#[test]
fn the_first_control_plane_snapshots_etcd_before_its_apply_unless_told_not_to() {
    let fake = Fake::new(|_, module, args| match module {
        "etcd_snapshot" => {
            // kubeadm's stacked-etcd certificates, or nothing said when the host has none.
            assert_eq!(args["skip_without_certs"], true, "{args}");
            assert_eq!(args["target_version"], "v1.30.2", "{args}");
            Ok(json!({"failed": false, "changed": true, "msg": "took",
                      "path": "/var/lib/kubeadm-ha-upgrade/etcd-snapshots/x.db", "revision": 7, "total_key": 3}))
        }
        _ => ok(true),
    });
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), "v1.30.2", false);
    let target = Version::parse("v1.30.2").unwrap();
    with_run(&fake, journal, |run| run.control_plane_kubeadm(target).unwrap());
    let calls = fake.calls();
    let snapshot = calls.iter().position(|c| c == "cp1 etcd_snapshot").unwrap();
    let apply = calls
        .iter()
        .position(|c| c == "cp1 kubeadm_upgrade apply")
        .unwrap();
    assert!(snapshot < apply, "{calls:?}");
    assert_eq!(
        calls.iter().filter(|c| c.contains("etcd_snapshot")).count(),
        1,
        "{calls:?}"
    );

    // An external etcd the inventory names: required, with its certificates as given.
    let fake = Fake::new(|_, _, _| ok(false));
    let journal = Journal::unlocked(dir.path().join("j2.json"), "v1.30.2", false);
    let inventory = "[control_plane]\ncp1 etcd_endpoint=https://10.0.0.9:2379 etcd_cacert=/etc/etcd/ca.pem etcd_snapshot_keep=5\n[workers]\nw1\n";
    with_run_on(inventory, &fake, journal, |run| {
        let args = run.etcd_snapshot_args(run.primary(), target);
        assert_eq!(args.json["skip_without_certs"], false);
        assert_eq!(args.json["endpoint"], "https://10.0.0.9:2379");
        assert_eq!(args.json["cacert"], "/etc/etcd/ca.pem");
        assert_eq!(args.json["keep"], "5");
    });
    // etcd_snapshot=false: none.
    let fake = Fake::new(|_, _, _| ok(true));
    let journal = Journal::unlocked(dir.path().join("j3.json"), "v1.30.2", false);
    with_run_on(
        "[control_plane]\ncp1 etcd_snapshot=false\n",
        &fake,
        journal,
        |run| run.control_plane_kubeadm(target).unwrap(),
    );
    assert!(
        !fake.calls().iter().any(|c| c.contains("etcd_snapshot")),
        "{:?}",
        fake.calls()
    );
}

/// A worker whose kubelet does not come back at the target is rolled back (fake answers).
fn rollback_run(policy: OnNodeFailure) -> (Stop, Vec<String>) {
    let fake = Fake::new(|_, module, args| {
        let check = args["_ansible_check_mode"] == true;
        match module {
            "package_pin" if check => Ok(json!({"failed": false, "changed": true, "msg": "would install",
                "packages": [{"name": "kubelet", "before": "1.8.3-00", "after": "1.9.2-00"}]})),
            "node_ready"
                if args["names"] == json!(["w1"])
                    && args["kubelet_version"] == "v1.9.2"
                    && args["timeout"] != 0 =>
            {
                Ok(json!({"failed": true, "changed": false,
                    "msg": "after 30s, not every node is Ready at v1.9.2: w1 NotReady"}))
            }
            "node_ready" if args["timeout"] == 0 => Ok(json!({"failed": true, "changed": false})),
            _ => ok(true),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), "v1.9.2", false);
    let mut opts = options();
    opts.on_node_failure = policy;
    let stop = with_run_opts(INVENTORY, opts, &fake, journal, |run| {
        let stop = run
            .upgrade_node(&run.inventory.workers[0], target(), true)
            .unwrap_err();
        // The journal forgot the node: a rerun upgrades it again.
        if policy == OnNodeFailure::Rollback {
            assert!(!run.journal.lock().unwrap().is_done("w1/packages"));
        }
        stop
    });
    (stop, fake.calls())
}

#[test]
fn a_worker_whose_kubelet_does_not_come_back_is_rolled_back_and_the_rollout_stops() {
    let (stop, calls) = rollback_run(OnNodeFailure::Rollback);
    let Stop::Failed { host, step, msg, fix } = stop else {
        panic!("{stop:?}");
    };
    assert_eq!((host.as_str(), step.as_str()), ("w1", "node-ready"));
    assert!(
        msg.contains("kup rolled w1 back to kubelet 1.8.3-00: Ready at v1.8.3, left cordoned"),
        "{msg}"
    );
    assert!(fix.contains("rerun"), "{fix}");
    // After the failed wait: the repository back, the previous versions reinstalled, the services
    // started, Ready at the old version.
    assert_eq!(
        calls[calls.len() - 5..],
        [
            "local node_ready",
            "w1 package_repo",
            "w1 package_pin",
            "w1 service_state started",
            "local node_ready"
        ],
        "{calls:?}"
    );
    // --on-node-failure stop: nothing reinstalled after the failed wait.
    let (stop, calls) = rollback_run(OnNodeFailure::Stop);
    assert!(!stop.to_string().contains("rolled"), "{stop}");
    assert_eq!(
        calls.last().map(String::as_str),
        Some("local node_ready"),
        "{calls:?}"
    );
    assert_eq!(
        calls.iter().filter(|c| *c == "w1 package_pin").count(),
        1,
        "{calls:?}"
    );
}

#[test]
fn limit_upgrades_only_the_named_hosts_and_refuses_to_leave_outdated_control_planes_behind() {
    // Control planes already at the target (kubeadm's check unchanged), workers not.
    let fake = Fake::new(|_, module, args| match module {
        "kubeadm_upgrade" if args["_ansible_check_mode"] == true => ok(false),
        _ => not_upgraded("", module, args),
    });
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), "v1.9.2", false);
    let mut opts = options();
    opts.limit = Some(vec!["w2".into()]);
    with_run_opts(INVENTORY, opts, &fake, journal, |run| {
        assert!(run.in_limit(&run.inventory.workers[1]));
        assert!(!run.in_limit(&run.inventory.workers[0]));
        let left: Vec<&str> = run.left_out().iter().map(|h| h.name.as_str()).collect();
        assert_eq!(left, ["cp1", "cp2", "w1"]);
        run.check_limit(target()).unwrap();
        run.nodes(target()).unwrap();
        run.verify(target()).unwrap();
    });
    let calls = fake.calls();
    assert!(calls.iter().any(|c| c == "w2 package_pin"), "{calls:?}");
    for other in ["cp1 package_pin", "cp2 package_pin", "w1 package_pin"] {
        assert!(!calls.iter().any(|c| c == other), "{other} ran: {calls:?}");
    }
    // Groups name their hosts.
    let mut opts = options();
    opts.limit = Some(vec!["workers".into()]);
    let fake = Fake::new(|_, _, _| ok(true));
    let journal = Journal::unlocked(dir.path().join("j2.json"), "v1.9.2", false);
    with_run_opts(INVENTORY, opts, &fake, journal, |run| {
        assert!(run.in_limit(&run.inventory.workers[0]) && !run.in_limit(run.primary()));
        // kubeadm's check says the control planes are not at the target: refused, naming them.
        let Stop::Setup(why) = run.check_limit(target()).unwrap_err() else {
            panic!("not a setup refusal");
        };
        assert!(why.contains("cp1, cp2") && why.contains("include them"), "{why}");
    });
    let mut opts = options();
    opts.limit = Some(vec!["nosuchhost".into()]);
    let journal = Journal::unlocked(dir.path().join("j3.json"), "v1.9.2", false);
    with_run_opts(INVENTORY, opts, &fake, journal, |run| {
        let Stop::Setup(why) = run.check_limit(target()).unwrap_err() else {
            panic!("not a setup refusal");
        };
        assert!(why.contains("names no host"), "{why}");
    });
}

#[test]
fn a_workers_batch_is_a_number_or_a_percentage_rounded_down_as_ansible_does() {
    let batch = |text: &str| text.parse::<WorkersBatch>();
    assert_eq!(batch("5"), Ok(WorkersBatch::Count(5)));
    assert_eq!(batch("20%").map(|b| b.size(20)), Ok(4));
    assert_eq!(batch("30%").map(|b| b.size(20)), Ok(6));
    assert_eq!(batch("25%").map(|b| b.size(10)), Ok(2));
    // Never 0: a small percentage of few workers is one at a time.
    assert_eq!(batch("10%").map(|b| b.size(3)), Ok(1));
    assert_eq!(batch("100%").map(|b| b.size(7)), Ok(7));
    for bad in ["0", "0%", "101%", "-1", "x", "5 %", ""] {
        assert!(
            batch(bad).unwrap_err().contains("expected a number of workers"),
            "{bad}"
        );
    }
    assert_eq!(WorkersBatch::Percent(20).to_string(), "20%");
}

#[test]
fn every_nodes_packages_are_staged_while_the_control_planes_kubeadm_runs() {
    // Each call's place in one sequence, stages marked: "cp2 stage" vs "cp2 kubeadm_upgrade".
    let order = Arc::new(StdMutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&order);
    let fake = Fake::new(move |place, module, args| {
        let what = if args["stage"] == true { "stage" } else { module };
        seen.lock().unwrap().push(format!("{place} {what}"));
        if args["stage"] == true {
            assert_eq!(args["version"], "1.9.2", "{args}");
            assert!(args["_ansible_check_mode"].is_null(), "{args}");
            if place == "cp2" {
                return Ok(json!({"failed": true, "changed": false, "msg": "mirror unreachable"}));
            }
            // w1's download is slow: the control planes' node upgrades do not wait for it.
            if place == "w1" {
                std::thread::sleep(Duration::from_millis(800));
                seen.lock().unwrap().push("w1 stage-end".into());
            }
            return Ok(json!({"failed": false, "changed": true, "msg": "staged 3 packages"}));
        }
        not_upgraded(place, module, args)
    });
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), "v1.9.2", false);
    let inventory =
        "[control_plane]\ncp1\ncp2\n[workers]\nw1\nw2 stage_packages=false\n[all:vars]\nkubeconfig=/k\n";
    let opts = Options {
        stage: true,
        ..options()
    };
    // A stage that fails (cp2's) is said and is no stop: its install downloads, as unstaged.
    with_run_opts(inventory, opts, &fake, journal, |run| {
        run.control_plane_kubeadm_staging(target(), || run.nodes(target()))
            .unwrap()
    });
    let order = order.lock().unwrap().clone();
    let at = |label: &str| {
        order
            .iter()
            .position(|c| c == label)
            .unwrap_or_else(|| panic!("no {label}: {order:?}"))
    };
    // Nothing before the first control plane has the target's kubeadm (no stage shares the
    // bandwidth of that download); then every control plane once its own kubeadm is in place...
    assert!(at("cp1 stage") > at("cp1 kubeadm_download"), "{order:?}");
    assert!(at("cp2 stage") > at("cp2 kubeadm_download"), "{order:?}");
    // ...the worker with the first, and the one whose inventory says no, never.
    assert!(at("w1 stage") > at("cp1 kubeadm_download"), "{order:?}");
    assert!(!order.iter().any(|c| c == "w2 stage"), "{order:?}");
    assert_eq!(
        order.iter().filter(|c| c.ends_with(" stage")).count(),
        3,
        "{order:?}"
    );
    // Each node's upgrade waits for its own stage only: the control planes' begin while w1's
    // is still downloading, w1's once it has ended (its package manager free again).
    assert!(at("cp1 package_repo") < at("w1 stage-end"), "{order:?}");
    assert!(at("w1 package_repo") > at("w1 stage-end"), "{order:?}");

    // --no-stage: none.
    let fake = Fake::new(not_upgraded);
    let journal = Journal::unlocked(dir.path().join("j2.json"), "v1.9.2", false);
    with_run(&fake, journal, |run| {
        run.control_plane_kubeadm_staging(target(), || Ok(())).unwrap()
    });
    assert!(
        !fake.calls().iter().any(|c| c.starts_with("w1 package_pin")),
        "{:?}",
        fake.calls()
    );
}

#[test]
fn a_batch_of_workers_never_costs_a_budget_more_than_it_allows() {
    // web allows one disruption; w1 and w3 each hold a web pod: never drained together.
    let order = Arc::new(StdMutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&order);
    let fake = Fake::new(move |place, module, args| match module {
        "cluster_survey" => {
            seen.lock().unwrap().push("survey".into());
            Ok(json!({"failed": false, "changed": false, "msg": "",
                "nodes": [{"name": "w1", "budgeted": {"default/web": 1}}, {"name": "w2"},
                          {"name": "w3", "budgeted": {"default/web": 1}}],
                "pdb_allowances": {"default/web": 1}}))
        }
        "node_drain" => {
            let label = format!(
                "{} {}",
                args["state"].as_str().unwrap(),
                args["name"].as_str().unwrap()
            );
            seen.lock().unwrap().push(label.clone());
            // w1's and w2's drains wait for each other: they only both end if they run together.
            if label == "drain w1" || label == "drain w2" {
                let started = std::time::Instant::now();
                while !(seen.lock().unwrap().iter().any(|c| c == "drain w1")
                    && seen.lock().unwrap().iter().any(|c| c == "drain w2"))
                {
                    assert!(
                        started.elapsed() < Duration::from_secs(10),
                        "w1 and w2 were not drained together"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            ok(true)
        }
        _ => not_upgraded(place, module, args),
    });
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), "v1.9.2", false);
    let inventory = "[control_plane]\ncp1\n[workers]\nw1\nw2\nw3\n[all:vars]\nkubeconfig=/k\n";
    let opts = Options {
        workers_batch: WorkersBatch::Count(3),
        ..options()
    };
    with_run_opts(inventory, opts, &fake, journal, |run| {
        run.nodes(target()).unwrap()
    });
    let order = order.lock().unwrap().clone();
    let at = |label: &str| {
        order
            .iter()
            .position(|c| c == label)
            .unwrap_or_else(|| panic!("no {label}: {order:?}"))
    };
    // The first batch is w1 and w2; w3 is drained only once both are back in.
    assert!(
        at("drain w3") > at("uncordon w1") && at("drain w3") > at("uncordon w2"),
        "{order:?}"
    );
    // One survey per batch of more than one candidate; the last batch (w3 alone) needs none.
    assert_eq!(order.iter().filter(|c| *c == "survey").count(), 1, "{order:?}");
}

#[test]
fn a_resumes_recheck_is_said_whether_the_node_confirms_the_journal_or_not() {
    for (confirms, said) in [
        (true, "resuming: the node confirms step stop-services"),
        (false, "but the node says otherwise"),
    ] {
        let (_dir, journal) = resumed_journal(&["drain", "stop-services"]);
        // In check mode service_state has nothing to change when the services are still stopped.
        let fake = Fake::new(move |_, _, args| ok(args["_ansible_check_mode"] != true || !confirms));
        let dir = tempfile::tempdir().unwrap();
        let inv = inventory_of(&dir, INVENTORY);
        let reporter = Reporter::capturing(&inv.host_names());
        let run = Run::new(
            &inv,
            &fake,
            options(),
            journal,
            &reporter,
            Arc::new(AtomicBool::new(false)),
        );
        run.upgrade_node(&run.inventory.workers[0], target(), true)
            .unwrap();
        let notes: Vec<String> = reporter
            .captured()
            .into_iter()
            .filter(|e| e.contains("\"event\":\"note\"") && e.contains("resuming"))
            .collect();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains(said) && notes[0].contains("\"host\":\"w1\""),
            "{notes:?}"
        );
    }
}

#[test]
fn the_node_phase_is_asked_ahead_and_a_switched_repository_is_not_switched_again() {
    // cp2's control plane settles slowly: cp1's checks for the node phase run meanwhile.
    let seen = Arc::new(StdMutex::new(Vec::<String>::new()));
    let order = Arc::clone(&seen);
    let fake = Fake::new(move |place, module, args| {
        let settling = module == "node_ready" && args["names"] == json!(["cp2"]) && args["timeout"] != 0;
        if settling && args["kubelet_version"].is_null() {
            std::thread::sleep(Duration::from_millis(300));
            order.lock().unwrap().push("cp2 settled".into());
        }
        if module == "package_pin" && args["_ansible_check_mode"] == true {
            order.lock().unwrap().push(format!("{place} checked"));
        }
        not_upgraded(place, module, args)
    });
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), "v1.35.1", false);
    let target = Version::parse("v1.35.1").unwrap();
    with_run(&fake, journal, |run| {
        run.control_plane_kubeadm(target).unwrap();
        run.nodes(target).unwrap();
    });
    let seen = seen.lock().unwrap().clone();
    let at = |label: &str| seen.iter().position(|c| c == label).unwrap_or(usize::MAX);
    assert!(at("cp1 checked") < at("cp2 settled"), "{seen:?}");
    // Each control plane's repository was switched by its kubeadm step: once in the run.
    let calls = fake.calls();
    for host in ["cp1", "cp2"] {
        let switches = calls
            .iter()
            .filter(|c| *c == &format!("{host} package_repo"))
            .count();
        assert_eq!(switches, 1, "{host}: {calls:?}");
    }
    // A worker's, switched by nobody before, is switched in its turn.
    assert!(calls.contains(&"w1 package_repo".to_string()), "{calls:?}");
}

#[test]
fn the_1_12_and_1_13_ha_pages_edit_kubeadm_config_before_each_control_planes_kubeadm() {
    // 1.12: every control plane, before its apply; an external etcd's file goes to `--config`.
    let applied = Arc::new(StdMutex::new(Vec::<(String, Value)>::new()));
    let seen = Arc::clone(&applied);
    let fake = Fake::new(move |place, module, args| {
        match module {
            "kubeadm_config_edit" => {
                assert!(
                    args["kubeconfig"].is_null(),
                    "on the host, its admin.conf: {args}"
                );
                return Ok(json!({"failed": false, "changed": true, "msg": "",
                    "config_file": "/etc/kubernetes/kubeadm-upgrade-config.yaml", "topology": "external"}));
            }
            "kubeadm_upgrade" if args["_ansible_check_mode"] != true => {
                seen.lock().unwrap().push((place.to_string(), args.clone()));
            }
            _ => {}
        }
        not_upgraded(place, module, args)
    });
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), "v1.12.10", false);
    with_run(&fake, journal, |run| {
        run.control_plane_kubeadm(Version::parse("v1.12.10").unwrap())
            .unwrap()
    });
    let calls = fake.calls();
    for cp in ["cp1", "cp2"] {
        let edit = calls
            .iter()
            .position(|c| c == &format!("{cp} kubeadm_config_edit"));
        let apply = calls
            .iter()
            .position(|c| c == &format!("{cp} kubeadm_upgrade apply"));
        assert!(edit.is_some() && edit < apply, "{cp}: {calls:?}");
    }
    // Every control plane's copy exists before the first apply (the page: "before the upgrade
    // begins"): cp2's is asked first, then again before its own apply.
    let first_apply = calls
        .iter()
        .position(|c| c == "cp1 kubeadm_upgrade apply")
        .unwrap();
    let cp2_edits: Vec<usize> = (0..calls.len())
        .filter(|&i| calls[i] == "cp2 kubeadm_config_edit")
        .collect();
    assert!(cp2_edits.len() == 2 && cp2_edits[0] < first_apply, "{calls:?}");
    for (place, args) in applied.lock().unwrap().iter() {
        assert_eq!(
            args["config"], "/etc/kubernetes/kubeadm-upgrade-config.yaml",
            "{place}"
        );
    }

    // 1.13: the first control plane only; no file, no `--config`.
    let fake = Fake::new(not_upgraded);
    let journal = Journal::unlocked(dir.path().join("j2.json"), "v1.13.12", false);
    with_run(&fake, journal, |run| {
        run.control_plane_kubeadm(Version::parse("v1.13.12").unwrap())
            .unwrap()
    });
    let edits: Vec<String> = fake
        .calls()
        .into_iter()
        .filter(|c| c.ends_with("kubeadm_config_edit"))
        .collect();
    assert_eq!(edits, ["cp1 kubeadm_config_edit"]);

    // 1.14: none.
    let calls = rollout_calls("v1.14.10");
    assert!(
        !calls.iter().any(|c| c.contains("kubeadm_config_edit")),
        "{calls:?}"
    );
}

#[test]
fn a_kubeadm_package_that_needs_the_new_kubelet_is_replaced_by_its_release_binary() {
    // kubeadm 1.13.12-00 depends on kubelet >= 1.13.0 (kubernetes/release PR #738): alone, with
    // the kubelet held at 1.12, apt refuses it; with the kubelet it resolves.
    let fake = Fake::new(|place, module, args| {
        if module == "package_pin"
            && args["_ansible_check_mode"] == true
            && args["packages"] == json!(["kubeadm"])
        {
            return Ok(json!({"failed": true, "changed": false,
                "msg": "apt would refuse the transaction: kubeadm : Depends: kubelet (>= 1.13.0) but 1.12.9-00 is to be installed"}));
        }
        not_upgraded(place, module, args)
    });
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::unlocked(dir.path().join("j.json"), "v1.13.12", false);
    let target = Version::parse("v1.13.12").unwrap();
    with_run(&fake, journal, |run| {
        run.preflight(target, &[target]).unwrap();
        assert_eq!(run.kubeadm_source(target), kube_eras::KubeadmSource::Download);
        run.control_plane_kubeadm(target).unwrap();
        run.nodes(target).unwrap();
    });
    let calls = fake.calls();
    // Each control plane downloads the release binary; no kubeadm package moves before a drain.
    for cp in ["cp1", "cp2"] {
        assert!(
            calls.contains(&format!("{cp} kubeadm_download")),
            "{cp}: {calls:?}"
        );
    }
    let first_drain = calls.iter().position(|c| c == "local node_drain drain").unwrap();
    let early_installs: Vec<&String> = calls[..first_drain]
        .iter()
        .filter(|c| c.ends_with(" package_pin"))
        .collect();
    assert!(early_installs.is_empty(), "{calls:?}");
    // Where the package alone resolves, the era's way stays.
    let fake = Fake::new(not_upgraded);
    let journal = Journal::unlocked(dir.path().join("j2.json"), "v1.13.12", false);
    with_run(&fake, journal, |run| {
        run.preflight(target, &[target]).unwrap();
        assert_eq!(run.kubeadm_source(target), kube_eras::KubeadmSource::Package);
    });
}
