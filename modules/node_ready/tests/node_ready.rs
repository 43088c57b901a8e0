#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! node_ready (the binary) against the lab API server: both emulated releases, HTTP and HTTPS+token.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{matrix, with, Lab};
use lab_apiserver::patch::PatchKind;
use lab_apiserver::store::Kind;
use lab_apiserver::{Cluster, Emulation, FaultSpec};
use module_kit::testkit::Ran;
use serde_json::{json, Value};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_node_ready"))
}

/// Runs node_ready with `args` while, `after` it starts, the kubelet of `node` is started again.
fn run_while_kubelet_starts(lab: &Lab, node: &str, after: Duration, args: Value) -> Ran {
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(after);
            lab.handle()
                .with_store(|s| s.set_kubelet_running(node, true))
                .unwrap();
        });
        lab.run(bin(), args)
    })
}

#[test]
fn all_ready_is_read_only_in_every_mode() {
    for (emu, tls) in matrix() {
        let lab = Lab::start(emu, tls, Cluster::sample(None));
        let args = json!({"kubelet_version": emu.git_version(), "timeout": 5, "interval": 1});
        for extra in [
            json!({"_ansible_check_mode": true}),
            json!({}),
            json!({"_ansible_check_mode": true}),
            json!({}),
        ] {
            let ran = lab.run(bin(), with(&args, extra));
            assert!(!ran.failed(), "{}: {}", lab.label(), ran.stdout);
            assert!(!ran.changed(), "{}", ran.stdout);
            assert_eq!(ran.json["nodes"].as_array().unwrap().len(), 6, "{}", ran.stdout);
            assert_eq!(ran.json["looks"], 1);
        }
        // The minor alone matches any patch; names restrict the set.
        let ran = lab.run(
            bin(),
            json!({"names": "worker-1, master-1", "kubelet_version": format!("1.{}", emu.minor)}),
        );
        assert!(!ran.failed(), "{}", ran.stdout);
        assert_eq!(ran.json["nodes"].as_array().unwrap().len(), 2);
    }
}

#[test]
fn waits_for_a_stopped_kubelet_to_come_back() {
    for (emu, tls) in [(Emulation::V1_9, false), (Emulation::V1_30, true)] {
        let lab = Lab::start(emu, tls, Cluster::sample(None));
        lab.handle()
            .with_store(|s| s.set_kubelet_running("worker-2", false))
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        // Not Ready now: a quick look fails naming the node and the kubelet's reason.
        let ran = lab.run(bin(), json!({"timeout": 0}));
        ran.assert_failed_saying(&["worker-2 NotReady"]);
        assert!(!ran.msg().contains("worker-1"), "{}", ran.msg());
        assert_eq!(ran.json["not_ready"], json!(["worker-2"]));

        // Back after ~2 s: a wait with a 1 s interval sees it.
        let started = Instant::now();
        let restart = run_while_kubelet_starts(
            &lab,
            "worker-2",
            Duration::from_secs(2),
            json!({"names": ["worker-2"], "timeout": 20, "interval": 1}),
        );
        assert!(!restart.failed(), "{}: {}", lab.label(), restart.stdout);
        assert!(restart.json["looks"].as_u64().unwrap() >= 2, "{}", restart.stdout);
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

#[test]
fn keeps_looking_until_the_deadline_even_when_the_interval_is_longer() {
    for (emu, tls) in [(Emulation::V1_9, false), (Emulation::V1_30, true)] {
        // worker-2 starts NotReady and turns Ready ~1.5 s in. With timeout 4 and the default
        // interval (5 s, longer than the timeout), the module must still look again at the deadline
        // instead of giving up after its first look.
        let mut cluster = Cluster::sample(None);
        cluster.node_mut("worker-2").unwrap().ready = false;
        let lab = Lab::start(emu, tls, cluster);
        let ran = run_while_kubelet_starts(
            &lab,
            "worker-2",
            Duration::from_millis(1500),
            json!({"names": ["worker-2"], "timeout": 4}),
        );
        assert!(!ran.failed(), "{}: {}", lab.label(), ran.stdout);
        assert_eq!(ran.json["not_ready"], json!([]), "{}", ran.stdout);
        // The first look (at once) saw it NotReady unless the module started late; the second one
        // came at the deadline, not an interval after the first.
        let looks = ran.json["looks"].as_u64().unwrap();
        assert!((1..=2).contains(&looks), "{}", ran.stdout);

        // Never Ready: one look at once and one at the deadline, and `waited` says so.
        let mut cluster = Cluster::sample(None);
        cluster.node_mut("worker-2").unwrap().ready = false;
        let lab = Lab::start(emu, tls, cluster);
        let ran = lab.run(bin(), json!({"names": ["worker-2"], "timeout": 2}));
        assert!(ran.failed(), "{}", ran.stdout);
        assert_eq!(ran.json["looks"], 2, "{}", ran.stdout);
        assert!(ran.json["waited"].as_f64().unwrap() >= 2.0, "{}", ran.stdout);
        assert_eq!(ran.json["not_ready"], json!(["worker-2"]));
    }
}

#[test]
fn wrong_version_and_unknown_node_fail_saying_why() {
    for (emu, tls) in [(Emulation::V1_9, true), (Emulation::V1_30, false)] {
        let lab = Lab::start(emu, tls, Cluster::sample(None));
        lab.handle()
            .with_store(|s| {
                s.patch(
                    Kind::Node,
                    "",
                    "worker-3",
                    PatchKind::Merge,
                    &json!({"status": {"nodeInfo": {"kubeletVersion": "v1.8.15"}}}),
                    true,
                )
            })
            .unwrap();
        let started = Instant::now();
        let ran = lab.run(
            bin(),
            json!({"names": ["worker-1", "worker-3", "ghost"], "kubelet_version": emu.git_version(),
                   "timeout": 2, "interval": 1}),
        );
        assert!(ran.failed(), "{}", ran.stdout);
        assert!(started.elapsed() < Duration::from_secs(8));
        let msg = ran.msg();
        // (A status write makes the lab treat worker-3's kubelet as external, so it may turn NotReady too.)
        assert!(msg.contains("worker-3 "), "{msg}");
        assert!(
            msg.contains(&format!("kubelet is v1.8.15, expected {}", emu.git_version())),
            "{msg}"
        );
        assert!(msg.contains("ghost not found"), "{msg}");
        assert!(!msg.contains("worker-1"), "{msg}");
        assert_eq!(ran.json["not_ready"], json!(["worker-3", "ghost"]));
    }
}

#[test]
fn server_errors_are_waited_out_and_reported() {
    let lab = Lab::start(Emulation::V1_30, true, Cluster::sample(None));
    // Two 503s, then the server answers: the wait succeeds.
    lab.inject(FaultSpec::fail("GET", "/api/v1/nodes", 503, 2));
    let ran = lab.run(bin(), json!({"timeout": 10, "interval": 1}));
    assert!(!ran.failed(), "{}", ran.stdout);
    assert_eq!(ran.json["looks"], 3);
    // Errors until the timeout: the failure carries the HTTP status and the server's message.
    lab.inject(FaultSpec {
        message: Some("etcdserver: leader changed".into()),
        ..FaultSpec::fail("GET", "/api/v1/nodes", 500, 100)
    });
    let ran = lab.run(bin(), json!({"timeout": 1, "interval": 1}));
    ran.assert_failed_saying(&["HTTP 500", "etcdserver: leader changed"]);
    // A 403 is not waited out.
    let lab = Lab::start(Emulation::V1_9, false, Cluster::sample(None));
    lab.inject(FaultSpec {
        message: Some("nodes is forbidden: User \"x\" cannot list nodes".into()),
        ..FaultSpec::fail("GET", "/api/v1/nodes", 403, 1)
    });
    let ran = lab.run(bin(), json!({"timeout": 30}));
    assert!(ran.failed());
    assert!(
        ran.msg().contains("HTTP 403") && ran.msg().contains("nodes is forbidden"),
        "{}",
        ran.msg()
    );
}

#[test]
fn bad_params_and_missing_kubeconfig_name_the_field() {
    let lab = Lab::start(Emulation::V1_9, false, Cluster::sample(None));
    for (args, field) in [
        (json!({"interval": 0}), "interval"),
        (json!({"timeout": "soon"}), "timeout"),
        (json!({"names": []}), "names"),
        (json!({"kubelet_version": "latest"}), "kubelet_version"),
        (json!({"bogus": 1}), "bogus"),
        (json!({"context": "nope"}), "context"),
    ] {
        let ran = lab.run(bin(), args.clone());
        assert!(ran.failed(), "{args}: {}", ran.stdout);
        assert!(ran.msg().contains(field), "{args}: {}", ran.msg());
    }
    let ran =
        module_kit::testkit::run_with_args_file(bin(), &json!({"kubeconfig": "/nonexistent/kubeconfig"}))
            .unwrap();
    ran.assert_failed_saying(&["kubeconfig"]);
}

#[test]
fn host_names_resolve_without_nss() {
    // `localhost` goes through the module's own resolver (/etc/hosts, then resolv.conf's nameservers), never getaddrinfo.
    let lab = Lab::start(Emulation::V1_9, false, Cluster::sample(None));
    let text = std::fs::read_to_string(&lab.kubeconfig).unwrap();
    let by_name = text.replace("http://127.0.0.1:", "http://localhost:");
    assert_ne!(text, by_name);
    let path = lab.dir.path().join("by-name");
    std::fs::write(&path, by_name).unwrap();
    let ran =
        module_kit::testkit::run_with_args_file(bin(), &json!({"kubeconfig": path, "timeout": 0})).unwrap();
    assert!(!ran.failed(), "{}", ran.stdout);
}
