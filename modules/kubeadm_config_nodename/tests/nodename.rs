#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! kubeadm_config_nodename (the binary) against the lab API server.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{with, Lab};
use lab_apiserver::patch::PatchKind;
use lab_apiserver::store::Kind;
use lab_apiserver::{Cluster, Emulation, FaultSpec};
use serde_json::json;

/// Where the API serves ConfigMaps in kube-system, and the one kubeadm keeps its config in.
const CONFIG_MAPS: &str = "/api/v1/namespaces/kube-system/configmaps";
const KUBEADM_CONFIG: &str = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kubeadm_config_nodename"))
}

fn master_config(lab: &Lab) -> String {
    lab.kubeadm_config()["data"]["MasterConfiguration"]
        .as_str()
        .unwrap()
        .to_string()
}

fn rv(lab: &Lab) -> String {
    lab.kubeadm_config()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn rewrites_node_name_on_1_9_only_that_line() {
    for tls in [false, true] {
        let lab = Lab::start(Emulation::V1_9, tls, Cluster::sample(None));
        let original = master_config(&lab);
        assert!(original.contains("\nnodeName: master-1\n"), "{original}");
        let args = json!({"node_name": "master-2"});

        let check = lab.run(
            bin(),
            with(&args, json!({"_ansible_check_mode": true, "_ansible_diff": true})),
        );
        assert!(!check.failed(), "{}", check.stdout);
        assert!(check.changed());
        assert!(check.msg().contains("would set nodeName"), "{}", check.msg());
        assert_eq!(check.json["diff"]["before"], json!(original));
        assert!(check.json["diff"]["after"]
            .as_str()
            .unwrap()
            .contains("\nnodeName: master-2\n"));
        assert_eq!(master_config(&lab), original, "check mode wrote");

        let apply = lab.run(bin(), with(&args, json!({"_ansible_diff": true})));
        assert!(apply.changed(), "{}: {}", lab.label(), apply.stdout);
        assert_eq!(apply.json["previous"], "master-1");
        assert_eq!(apply.json["node_name"], "master-2");
        assert_eq!(apply.json["node_name_source"], "parameter");
        assert_eq!(apply.json["conflicts"], 0);
        let now = master_config(&lab);
        assert_eq!(apply.json["diff"]["after"], json!(now));
        let changed: Vec<(&str, &str)> = original
            .lines()
            .zip(now.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(changed, vec![("nodeName: master-1", "nodeName: master-2")]);
        assert_eq!(original.lines().count(), now.lines().count());

        let rv_after = rv(&lab);
        let recheck = lab.run(bin(), with(&args, json!({"_ansible_check_mode": true})));
        assert!(!recheck.changed() && !recheck.failed(), "{}", recheck.stdout);
        let rerun = lab.run(bin(), args.clone());
        assert!(!rerun.changed() && !rerun.failed(), "{}", rerun.stdout);
        assert!(rerun.msg().contains("already master-2"), "{}", rerun.msg());
        assert_eq!(rv(&lab), rv_after, "an unchanged run wrote");
    }
}

#[test]
fn newer_formats_need_no_rewrite() {
    for (emu, tls, format) in [
        (Emulation::parse("1.11").unwrap(), false, "v1alpha2"),
        (Emulation::V1_30, false, "ClusterConfiguration"),
        (Emulation::V1_30, true, "ClusterConfiguration"),
        (Emulation::parse("1.15").unwrap(), true, "ClusterConfiguration"),
    ] {
        let lab = Lab::start(emu, tls, Cluster::sample(None));
        let before = rv(&lab);
        for extra in [json!({"_ansible_check_mode": true}), json!({})] {
            let ran = lab.run(bin(), with(&json!({"node_name": "master-2"}), extra));
            assert!(!ran.failed(), "{}: {}", lab.label(), ran.stdout);
            assert!(!ran.changed(), "{}", ran.stdout);
            assert!(ran.msg().contains(format), "{}", ran.msg());
            assert!(ran.msg().contains("not needed"), "{}", ran.msg());
        }
        assert_eq!(rv(&lab), before);
    }
}

#[test]
fn conflicts_are_retried_with_a_fresh_read() {
    // An injected 409 on the first write.
    let lab = Lab::start(Emulation::V1_9, true, Cluster::sample(None));
    lab.inject(FaultSpec::fail("PUT", KUBEADM_CONFIG, 409, 1));
    let ran = lab.run(bin(), json!({"node_name": "master-3"}));
    assert!(ran.changed() && !ran.failed(), "{}", ran.stdout);
    assert_eq!(ran.json["conflicts"], 1);
    assert!(master_config(&lab).contains("\nnodeName: master-3\n"));

    // A real one: someone writes the ConfigMap between our read and our (delayed) write. Their
    // change must survive ours.
    let lab = Lab::start(Emulation::V1_9, false, Cluster::sample(None));
    lab.inject(FaultSpec {
        method: Some("PUT".into()),
        path_prefix: Some(KUBEADM_CONFIG.into()),
        latency_ms: Some(1500),
        count: Some(1),
        ..FaultSpec::default()
    });
    let ran = std::thread::scope(|scope| {
        let module = scope.spawn(|| lab.run(bin(), json!({"node_name": "master-3"})));
        std::thread::sleep(Duration::from_millis(700));
        lab.handle()
            .with_store(|s| {
                s.patch(
                    Kind::ConfigMap,
                    "kube-system",
                    "kubeadm-config",
                    PatchKind::Merge,
                    &json!({"data": {"note": "written by someone else"}}),
                    false,
                )
            })
            .unwrap();
        module.join().unwrap()
    });
    assert!(ran.changed() && !ran.failed(), "{}", ran.stdout);
    assert_eq!(ran.json["conflicts"], 1, "{}", ran.stdout);
    let cm = lab.kubeadm_config();
    assert_eq!(cm["data"]["note"], "written by someone else");
    assert!(master_config(&lab).contains("\nnodeName: master-3\n"));
}

#[test]
fn server_errors_are_retried_or_reported() {
    let lab = Lab::start(Emulation::V1_9, false, Cluster::sample(None));
    lab.inject(FaultSpec::fail("GET", CONFIG_MAPS, 503, 2));
    lab.inject(FaultSpec::fail("PUT", CONFIG_MAPS, 500, 1));
    let ran = lab.run(bin(), json!({"node_name": "master-2"}));
    assert!(ran.changed() && !ran.failed(), "{}", ran.stdout);

    lab.inject(FaultSpec {
        message: Some("etcdserver: request timed out".into()),
        ..FaultSpec::fail("GET", CONFIG_MAPS, 500, 1000)
    });
    let ran = lab.run(bin(), json!({"node_name": "master-3", "timeout": 2}));
    ran.assert_failed_saying(&["HTTP 500", "etcdserver: request timed out"]);
    assert_eq!(ran.json["status"], 500);
}

#[test]
fn bad_params_and_missing_config_map() {
    let lab = Lab::start(Emulation::V1_9, false, Cluster::sample(None));
    for (args, field) in [
        (json!({"node_name": "Master_2"}), "node_name"),
        (json!({"node_name": "m2", "timeout": -1}), "timeout"),
        (
            json!({"node_name": "m2", "namespace": "Kube System"}),
            "namespace",
        ),
        (json!({"node_name": "m2", "nodename": "x"}), "nodename"),
        (json!({"node_name": ["m2"]}), "node_name"),
    ] {
        let ran = lab.run(bin(), args.clone());
        assert!(ran.failed(), "{args}: {}", ran.stdout);
        assert!(ran.msg().contains(field), "{args}: {}", ran.msg());
    }
    let ran = lab.run(bin(), json!({"node_name": "m2", "namespace": "default"}));
    ran.assert_failed_saying(&["configmap default/kubeadm-config not found"]);
    // Without node_name the host's own name is used.
    let ran = lab.run(bin(), json!({"_ansible_check_mode": true}));
    assert!(!ran.failed(), "{}", ran.stdout);
    assert_eq!(ran.json["node_name_source"], "hostname");
}
