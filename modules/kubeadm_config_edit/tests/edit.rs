#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! kubeadm_config_edit (the binary) against the lab API server: the 1.12 and 1.13 HA pages' edits on
//! the kubeadm-config each release's kubeadm stored, check and diff mode, idempotence, conflicts.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{with, Lab};
use lab_apiserver::cluster::ExternalEtcdSeed;
use lab_apiserver::patch::PatchKind;
use lab_apiserver::store::Kind;
use lab_apiserver::{Cluster, Emulation, FaultSpec};
use serde_json::{json, Value};

const KUBEADM_CONFIG: &str = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config";
const CRI: &str = "kubeadm.alpha.kubernetes.io/cri-socket";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kubeadm_config_edit"))
}

fn doc(lab: &Lab, key: &str) -> String {
    lab.kubeadm_config()["data"][key].as_str().unwrap().to_string()
}

fn yaml(text: &str) -> serde_norway::Value {
    serde_norway::from_str(text).unwrap()
}

fn rv(lab: &Lab) -> String {
    lab.kubeadm_config()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

fn ip(lab: &Lab, name: &str) -> String {
    lab.node(name)["status"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string()
}

fn set_data(lab: &Lab, key: &str, text: &str) {
    lab.handle()
        .with_store(|s| {
            s.patch(
                Kind::ConfigMap,
                "kube-system",
                "kubeadm-config",
                PatchKind::Merge,
                &json!({"data": {key: text}}),
                false,
            )
        })
        .unwrap();
}

/// Runs `args` in check mode with diff, then for real, then again: the check changes nothing, the
/// run changes what the check said, the rerun nothing.
fn check_apply_rerun(lab: &Lab, args: &Value) -> (Value, Value) {
    let before = rv(lab);
    let check = lab.run(
        bin(),
        with(args, json!({"_ansible_check_mode": true, "_ansible_diff": true})),
    );
    assert!(
        !check.failed() && check.changed(),
        "{}: {}",
        lab.label(),
        check.stdout
    );
    assert!(check.msg().contains("would change"), "{}", check.msg());
    assert_eq!(rv(lab), before, "check mode wrote");
    let apply = lab.run(bin(), with(args, json!({"_ansible_diff": true})));
    assert!(!apply.failed() && apply.changed(), "{}", apply.stdout);
    assert_eq!(apply.json["edits"], check.json["edits"]);
    assert_eq!(apply.json["diff"], check.json["diff"]);
    let after = rv(lab);
    let rerun = lab.run(bin(), args.clone());
    assert!(!rerun.failed() && !rerun.changed(), "{}", rerun.stdout);
    assert!(rerun.msg().contains("nothing to change"), "{}", rerun.msg());
    assert_eq!(rerun.json["edits"], json!([]));
    assert_eq!(rv(lab), after, "an unchanged run wrote");
    (check.json, apply.json)
}

#[test]
fn first_control_plane_to_1_12_stacked() {
    let lab = Lab::start(Emulation::parse("1.11").unwrap(), true, Cluster::sample(None));
    let original = doc(&lab, "MasterConfiguration");
    let args = json!({"target": "v1.12.10", "node": "master-2", "first": true});
    let (check, apply) = check_apply_rerun(&lab, &args);
    assert_eq!(apply["topology"], "stacked");
    assert_eq!(apply["config_file"], Value::Null);
    assert_eq!(
        check["diff"]["before"],
        json!(format!(
            "# configmap kube-system/kubeadm-config MasterConfiguration\n{original}"
        ))
    );

    let now = doc(&lab, "MasterConfiguration");
    let (ip1, ip2, ip3) = (ip(&lab, "master-1"), ip(&lab, "master-2"), ip(&lab, "master-3"));
    let cfg = yaml(&now);
    assert_eq!(cfg["api"]["advertiseAddress"], ip2.as_str());
    let args = &cfg["etcd"]["local"]["extraArgs"];
    assert_eq!(
        args["advertise-client-urls"],
        format!("https://{ip2}:2379").as_str()
    );
    assert_eq!(
        args["initial-advertise-peer-urls"],
        format!("https://{ip2}:2380").as_str()
    );
    assert_eq!(
        args["listen-client-urls"],
        format!("https://127.0.0.1:2379,https://{ip2}:2379").as_str()
    );
    assert_eq!(args["listen-peer-urls"], format!("https://{ip2}:2380").as_str());
    assert_eq!(
        args["initial-cluster"],
        format!("master-1=https://{ip1}:2380,master-2=https://{ip2}:2380,master-3=https://{ip3}:2380")
            .as_str()
    );
    assert_eq!(args["initial-cluster-state"], "existing");
    // Every other line is kept, in its place.
    let kept: Vec<&str> = original
        .lines()
        .filter(|l| !l.contains("advertiseAddress"))
        .collect();
    let left: Vec<&str> = now.lines().filter(|l| kept.contains(l)).collect();
    assert_eq!(left, kept);
    assert_eq!(apply["edits"].as_array().unwrap().len(), 7, "{apply}");
    // The first control plane's apply converts kubeadm-config: nothing left for it then.
    let lab = Lab::start(Emulation::parse("1.12").unwrap(), false, Cluster::sample(None));
    let ran = lab.run(
        bin(),
        json!({"target": "1.12", "node": "master-1", "first": true}),
    );
    assert!(!ran.failed() && !ran.changed(), "{}", ran.stdout);
    assert!(ran.msg().contains("has run"), "{}", ran.msg());
}

#[test]
fn other_control_planes_to_1_12_stacked_with_the_annotation() {
    let lab = Lab::start(Emulation::parse("1.12").unwrap(), false, Cluster::sample(None));
    let ip1 = ip(&lab, "master-1");
    // As kubeadm 1.12 leaves it after the first control plane's apply: only that one listed.
    let status = format!(
        "apiEndpoints:\n  master-1:\n    advertiseAddress: {ip1}\n    bindPort: 6443\napiVersion: kubeadm.k8s.io/v1alpha3\nkind: ClusterStatus\n"
    );
    set_data(&lab, "ClusterStatus", &status);
    let original = doc(&lab, "ClusterConfiguration");
    let args = json!({"target": "v1.12.10", "node": "master-3"});
    let (check, apply) = check_apply_rerun(&lab, &args);
    let after = check["diff"]["after"].as_str().unwrap();
    assert!(
        after.contains(&format!(
            "# node master-3 annotation {CRI}\n/var/run/dockershim.sock\n"
        )),
        "{after}"
    );
    assert!(check["diff"]["before"].as_str().unwrap().contains("annotation"));
    assert_eq!(
        lab.node("master-3")["metadata"]["annotations"][CRI],
        "/var/run/dockershim.sock"
    );
    let ip3 = ip(&lab, "master-3");
    let cfg = yaml(&doc(&lab, "ClusterConfiguration"));
    let extra = &cfg["etcd"]["local"]["extraArgs"];
    assert_eq!(
        extra["advertise-client-urls"],
        format!("https://{ip3}:2379").as_str()
    );
    assert_eq!(
        extra["listen-client-urls"],
        format!("https://127.0.0.1:2379,https://{ip3}:2379").as_str()
    );
    assert!(doc(&lab, "ClusterConfiguration").starts_with(original.lines().next().unwrap()));
    assert_eq!(
        doc(&lab, "ClusterStatus"),
        status.replace(
            "apiVersion",
            &format!("  master-3:\n    advertiseAddress: {ip3}\n    bindPort: 6443\napiVersion")
        )
    );
    assert!(apply["edits"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e.as_str().unwrap().contains(CRI)));

    // Another socket: only the annotation changes.
    let ran = lab.run(
        bin(),
        with(&args, json!({"cri_socket": "/run/containerd/containerd.sock"})),
    );
    assert!(ran.changed() && !ran.failed(), "{}", ran.stdout);
    assert_eq!(ran.json["edits"].as_array().unwrap().len(), 1, "{}", ran.stdout);
    assert_eq!(
        lab.node("master-3")["metadata"]["annotations"][CRI],
        "/run/containerd/containerd.sock"
    );

    // Before the first control plane's apply, an other control plane has nothing to do yet.
    let lab = Lab::start(Emulation::parse("1.11").unwrap(), false, Cluster::sample(None));
    let ran = lab.run(bin(), json!({"target": "v1.12.10", "node": "master-2"}));
    assert!(!ran.changed() && !ran.failed(), "{}", ran.stdout);
    assert!(
        ran.msg().contains("come after the first control plane's"),
        "{}",
        ran.msg()
    );
}

#[test]
fn first_control_plane_to_1_13_stacked() {
    let lab = Lab::start(Emulation::parse("1.12").unwrap(), true, Cluster::sample(None));
    set_data(
        &lab,
        "ClusterStatus",
        "apiEndpoints: {}\napiVersion: kubeadm.k8s.io/v1alpha3\nkind: ClusterStatus\n",
    );
    let before = rv(&lab);
    let other = lab.run(bin(), json!({"target": "v1.13.5", "node": "master-2"}));
    assert!(!other.failed() && !other.changed(), "{}", other.stdout);
    assert!(
        other.msg().contains("experimental-control-plane"),
        "{}",
        other.msg()
    );
    assert_eq!(rv(&lab), before);

    let (_, apply) = check_apply_rerun(
        &lab,
        &json!({"target": "v1.13.5", "node": "master-1", "first": true}),
    );
    let cfg = yaml(&doc(&lab, "ClusterConfiguration"));
    assert!(cfg.get("etcd").is_none(), "{cfg:?}");
    assert_eq!(cfg["kind"], "ClusterConfiguration");
    let status = yaml(&doc(&lab, "ClusterStatus"));
    for n in ["master-1", "master-2", "master-3"] {
        assert_eq!(
            status["apiEndpoints"][n]["advertiseAddress"],
            ip(&lab, n).as_str()
        );
        assert_eq!(status["apiEndpoints"][n]["bindPort"], 6443);
    }
    assert_eq!(apply["edits"][0], "ClusterConfiguration: etcd: removed");
}

fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

#[test]
fn external_etcd_to_1_12_writes_the_config_file() {
    let mut cluster = Cluster::sample(None);
    cluster.external_etcd = Some(ExternalEtcdSeed {
        endpoints: vec!["https://10.9.0.1:2379".into()],
        ca_file: "/etc/kubernetes/pki/etcd/ca.pem".into(),
        cert_file: "/etc/kubernetes/pki/etcd/client.pem".into(),
        key_file: "/etc/kubernetes/pki/etcd/client-key.pem".into(),
    });
    let lab = Lab::start(Emulation::parse("1.11").unwrap(), false, cluster);
    let dir = private_dir();
    let path: PathBuf = dir.path().join("kubeadm-upgrade-config.yaml");
    let args = json!({"target": "v1.12.10", "node": "master-3", "config_path": path});
    let before = rv(&lab);
    let check = lab.run(
        bin(),
        with(&args, json!({"_ansible_check_mode": true, "_ansible_diff": true})),
    );
    assert!(check.changed() && !check.failed(), "{}", check.stdout);
    assert_eq!(check.json["config_file"], json!(path));
    assert_eq!(check.json["topology"], "external");
    assert!(!path.exists(), "check mode wrote the file");

    let apply = lab.run(bin(), args.clone());
    assert!(apply.changed() && !apply.failed(), "{}", apply.stdout);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    let cfg = yaml(&text);
    assert_eq!(cfg["api"]["advertiseAddress"], ip(&lab, "master-3").as_str());
    assert_eq!(cfg["nodeRegistration"]["name"], "master-3");
    assert_eq!(cfg["etcd"]["external"]["endpoints"][0], "https://10.9.0.1:2379");
    assert_eq!(
        check.json["diff"]["after"],
        json!(format!("# {}\n{text}", path.display()))
    );
    assert_eq!(rv(&lab), before, "kubeadm-config was written");

    let rerun = lab.run(bin(), args.clone());
    assert!(!rerun.changed() && !rerun.failed(), "{}", rerun.stdout);
    assert_eq!(
        rerun.json["config_file"],
        json!(path),
        "kubeadm upgrade apply needs it again"
    );
    // The first apply replaces the MasterConfiguration with 1.12's documents: the copy is kept.
    let stored = lab.kubeadm_config();
    let master = stored["data"]["MasterConfiguration"]
        .as_str()
        .unwrap()
        .to_string();
    let gone = json!({"data": {"MasterConfiguration": null,
        "ClusterConfiguration": "apiVersion: kubeadm.k8s.io/v1alpha3\netcd:\n  external:\n    endpoints:\n    - https://10.9.0.1:2379\nkind: ClusterConfiguration\nkubernetesVersion: v1.12.10\n"}});
    lab.handle()
        .with_store(|s| {
            s.patch(
                Kind::ConfigMap,
                "kube-system",
                "kubeadm-config",
                PatchKind::Merge,
                &gone,
                false,
            )
        })
        .unwrap();
    let kept = lab.run(bin(), args.clone());
    assert!(!kept.changed() && !kept.failed(), "{}", kept.stdout);
    assert_eq!(kept.json["config_file"], json!(path));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    // A control plane without its copy by then cannot get one: refused, naming the page's order.
    let late = lab.run(
        bin(),
        json!({"target": "v1.12.10", "node": "master-2", "config_path": dir.path().join("other.yaml")}),
    );
    late.assert_failed_saying(&["before the upgrade begins"]);
    set_data(&lab, "MasterConfiguration", &master);
    // A file others could have touched is replaced, 0600 again.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let fixed = lab.run(bin(), args.clone());
    assert!(fixed.changed(), "{}", fixed.stdout);
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);

    // A directory others can write to is refused, naming the field, even in check mode.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let ran = lab.run(bin(), with(&args, json!({"_ansible_check_mode": true})));
    ran.assert_failed_saying(&["config_path", "mode 0777"]);
    // 1.13 asks nothing of external etcd.
    let ran = lab.run(
        bin(),
        json!({"target": "v1.13.0", "node": "master-1", "first": true}),
    );
    assert!(!ran.changed() && !ran.failed(), "{}", ran.stdout);
    assert_eq!(ran.json["topology"], "external");
}

#[test]
fn conflicts_are_retried_with_a_fresh_read() {
    let lab = Lab::start(Emulation::parse("1.11").unwrap(), true, Cluster::sample(None));
    lab.inject(FaultSpec::fail("PUT", KUBEADM_CONFIG, 409, 1));
    let ran = lab.run(
        bin(),
        json!({"target": "v1.12.10", "node": "master-1", "first": true}),
    );
    assert!(ran.changed() && !ran.failed(), "{}", ran.stdout);
    assert_eq!(ran.json["conflicts"], 1);
    assert_eq!(
        yaml(&doc(&lab, "MasterConfiguration"))["etcd"]["local"]["extraArgs"]["initial-cluster-state"],
        "existing"
    );
}

#[test]
fn other_targets_workers_and_missing_nodes() {
    let lab = Lab::start(Emulation::parse("1.12").unwrap(), false, Cluster::sample(None));
    let before = rv(&lab);
    for target in ["v1.14.0", "1.11", "v1.30.2"] {
        let ran = lab.run(
            bin(),
            json!({"target": target, "node": "master-1", "first": true}),
        );
        assert!(!ran.failed() && !ran.changed(), "{}", ran.stdout);
        assert!(ran.msg().contains("nothing to do"), "{}", ran.msg());
        assert_eq!(ran.json["topology"], Value::Null);
    }
    assert_eq!(rv(&lab), before);
    let ran = lab.run(bin(), json!({"target": "v1.12.10", "node": "worker-1"}));
    ran.assert_failed_saying(&["node worker-1 is not a control plane"]);
    let ran = lab.run(bin(), json!({"target": "v1.12.10", "node": "nobody"}));
    ran.assert_failed_saying(&["node nobody not found"]);
}
