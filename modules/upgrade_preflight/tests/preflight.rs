#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! upgrade_preflight against an in-process lab API server (1.9 and 1.30, HTTPS with a token), with a
//! kubeadm stand-in script of a chosen version.

use lab_apiserver::{testing, Cluster, Emulation};
use module_kit::testkit::{run_with_args_file, Ran};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lab API server harness over HTTPS with a token, node grace 300 ms; plus kubeadm stand-ins.
struct Lab(testing::Lab);

impl Lab {
    fn start(emu: Emulation) -> Lab {
        Lab(testing::Lab::start_with(
            emu,
            true,
            Cluster::sample(None),
            |cfg| {
                cfg.token = Some("preflight-test".into());
                cfg.node_grace = Duration::from_millis(300);
            },
        ))
    }

    /// A kubeadm that says it is `version`.
    fn kubeadm(&self, version: &str) -> PathBuf {
        let path = self.0.dir.path().join(format!("kubeadm-{version}"));
        std::fs::write(&path, format!("#!/bin/sh\necho {version}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Runs the module with `args`, and the lab's kubeconfig unless `args` name one.
    fn run(&self, mut args: Value) -> Ran {
        let obj = args.as_object_mut().unwrap();
        obj.entry("kubeconfig").or_insert(json!(self.0.kubeconfig));
        run_with_args_file(Path::new(env!("CARGO_BIN_EXE_upgrade_preflight")), &args).unwrap()
    }
}

fn check<'a>(ran: &'a Ran, name: &str) -> &'a Value {
    ran.json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name}: {}", ran.stdout))
}

fn swap_is_on() -> bool {
    std::fs::read_to_string("/proc/swaps").unwrap().lines().count() > 1
}

#[test]
fn a_healthy_cluster_passes_every_check_for_the_next_minor() {
    for (emu, next) in [(Emulation::V1_9, "v1.10.0"), (Emulation::V1_30, "v1.31.0")] {
        let lab = Lab::start(emu);
        let skip: Vec<&str> = if swap_is_on() { vec!["swap"] } else { vec![] };
        let args = json!({"version": next, "kubeadm_path": lab.kubeadm(next), "disk_path": "/tmp", "min_free_mb": 1, "skip": skip});
        let ran = lab.run(args.clone());
        assert!(!ran.failed(), "{emu:?}: {}", ran.stdout);
        assert!(!ran.changed());
        assert_eq!(ran.json["checks"].as_array().unwrap().len(), 8 - skip.len());
        assert_eq!(check(&ran, "nodes_ready")["detail"], "all 6 nodes are Ready");
        // Read-only: check mode gives the same verdict.
        let mut checked = args.clone();
        checked["_ansible_check_mode"] = json!(true);
        assert!(!lab.run(checked).failed());
    }
}

#[test]
fn each_failing_check_says_why() {
    let lab = Lab::start(Emulation::V1_9);
    // A skipped minor, an old kubeadm, an impossible disk demand.
    let ran = lab.run(
        json!({"version": "v1.11.0", "kubeadm_path": lab.kubeadm("v1.9.11"), "disk_path": "/tmp",
                             "min_free_mb": 1u64 << 40, "skip": ["swap"]}),
    );
    assert!(ran.failed());
    assert_eq!(ran.exit_code, 1);
    assert_eq!(check(&ran, "version_skew")["ok"], false);
    assert!(
        check(&ran, "version_skew")["detail"]
            .as_str()
            .unwrap()
            .contains("v1.10 -> v1.11"),
        "{}",
        ran.stdout
    );
    assert!(check(&ran, "kubeadm")["detail"]
        .as_str()
        .unwrap()
        .contains("older than the target v1.11.0"));
    assert_eq!(check(&ran, "disk")["ok"], false);
    assert_eq!(check(&ran, "api")["ok"], true);
    assert!(
        ran.msg().contains("version_skew") && ran.msg().contains("kubeadm") && ran.msg().contains("disk"),
        "{}",
        ran.msg()
    );

    // A missing kubeadm, and a node whose kubelet stopped.
    lab.0
        .handle()
        .with_store(|s| s.set_kubelet_running("worker-2", false))
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let ran = lab
        .run(json!({"version": "v1.10.0", "kubeadm_path": "/nonexistent/kubeadm", "skip": ["swap", "disk"]}));
    assert!(check(&ran, "kubeadm")["detail"]
        .as_str()
        .unwrap()
        .contains("/nonexistent/kubeadm"));
    assert_eq!(check(&ran, "nodes_ready")["detail"], "not Ready: worker-2");
}

#[test]
fn kubeadms_copy_of_a_local_etcds_data_must_fit_under_its_backup_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("etcd-data");
    std::fs::create_dir_all(data.join("member/snap")).unwrap();
    std::fs::write(data.join("member/snap/db"), vec![7u8; 3 << 20]).unwrap();
    let manifest = dir.path().join("etcd.yaml");
    std::fs::write(
        &manifest,
        format!(
            "spec:\n  containers:\n  - command:\n    - etcd\n    - --data-dir={}\n",
            data.display()
        ),
    )
    .unwrap();
    let only = [
        "swap",
        "kubeadm",
        "version_skew",
        "api",
        "nodes_ready",
        "control_plane",
        "disk",
    ];
    let run = |backup_dir: &Path| {
        let args = json!({"version": "v1.31.0", "skip": only, "etcd_manifest": manifest,
                          "etcd_backup_dir": backup_dir});
        run_with_args_file(Path::new(env!("CARGO_BIN_EXE_upgrade_preflight")), &args).unwrap()
    };
    // Room: the 3 MiB copy fits; the backup directory not made yet is judged at its parent.
    let ran = run(&dir.path().join("tmp/not-yet"));
    assert!(!ran.failed(), "{}", ran.stdout);
    let detail = check(&ran, "etcd_backup")["detail"].as_str().unwrap().to_string();
    assert!(
        detail.contains("3 MiB in ") && detail.contains("etcd-data"),
        "{detail}"
    );
    // A database far larger than any disk here (a sparse file, copied whole by kubeadm): refused.
    std::fs::File::create(data.join("member/snap/huge"))
        .unwrap()
        .set_len(1 << 43)
        .unwrap();
    let ran = run(dir.path());
    assert!(ran.failed(), "{}", ran.stdout);
    assert_eq!(check(&ran, "etcd_backup")["ok"], false);
    assert!(
        ran.msg().contains("etcd_backup: kubeadm copies etcd's data"),
        "{}",
        ran.msg()
    );
    assert!(ran.msg().contains("kubeadm-backup-"), "{}", ran.msg());
    // No local etcd (a worker, an external etcd): nothing to copy.
    std::fs::remove_file(&manifest).unwrap();
    let ran = run(dir.path());
    assert!(!ran.failed(), "{}", ran.stdout);
    assert!(check(&ran, "etcd_backup")["detail"]
        .as_str()
        .unwrap()
        .starts_with("no local etcd here"));
}

#[test]
fn an_unreachable_api_fails_every_api_check() {
    let lab = Lab::start(Emulation::V1_30);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = lab.0.dir.path().join("dead.conf");
    std::fs::write(
        &dead,
        std::fs::read_to_string(&lab.0.kubeconfig)
            .unwrap()
            .replace(&lab.0.handle().addr().port().to_string(), &port.to_string()),
    )
    .unwrap();
    let ran = lab.run(json!({"version": "v1.31.0", "kubeconfig": dead, "skip": ["swap", "kubeadm", "disk"], "request_timeout": 2}));
    assert!(ran.failed());
    for name in ["api", "version_skew", "nodes_ready", "control_plane"] {
        assert_eq!(check(&ran, name)["ok"], false, "{name}: {}", ran.stdout);
        assert!(
            check(&ran, name)["detail"]
                .as_str()
                .unwrap()
                .contains("not reachable"),
            "{}",
            ran.stdout
        );
    }
}

#[test]
fn bad_parameters_name_the_field() {
    let lab = Lab::start(Emulation::V1_30);
    for (args, field) in [
        (json!({}), "version"),
        (json!({"version": "1.31"}), "version"),
        (json!({"version": "v1.31.0", "skip": ["swapp"]}), "skip"),
        (
            json!({"version": "v1.31.0", "min_free_mb": "lots"}),
            "min_free_mb",
        ),
        (
            json!({"version": "v1.31.0", "request_timeout": 0}),
            "request_timeout",
        ),
        (json!({"version": "v1.31.0", "colour": "red"}), "colour"),
    ] {
        let ran = lab.run(args.clone());
        assert!(ran.failed(), "{args}");
        assert!(ran.msg().contains(field), "{args}: {}", ran.msg());
    }
}
