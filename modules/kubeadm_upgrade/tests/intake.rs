#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! kubeadm_upgrade's argument intake: fuzzed, and the defects fuzzing found (issue 17, item 8).

use module_kit::testkit::merged;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

module_kit::intake_tests!(
    kubeadm_upgrade::KubeadmUpgrade,
    env!("CARGO_BIN_EXE_kubeadm_upgrade"),
    fuzz: json!({"action": "apply", "version": "v1.9.2", "kubeadm_path": "/nonexistent/kubeadm"}),
    unknown_null: (json!({"action": "plan"}), "kubeadm_pth"),
);

#[test]
fn a_huge_timeout_is_refused_not_a_panic() {
    // /bin/true runs, so before the bound the deadline `now + timeout` overflowed: "internal error".
    let base = json!({"action": "plan", "kubeadm_path": "/bin/true"});
    MODULE.huge_durations_refused(base, &["timeout", "retry_delay"]);
    MODULE.refused(json!({"action": "plan", "timeout": "0"}), "timeout");
}

#[test]
fn retries_are_bounded() {
    let ran = MODULE.refused(json!({"action": "plan", "retries": 4294967295u32}), "retries");
    assert!(ran.msg().contains("from 0 to 100"), "{}", ran.msg());
}

#[test]
fn a_version_with_a_suffix_is_refused_not_cut() {
    for v in ["v1.9.2-y --force", "v1.9.2-$(id)", "v1.9.2 -y", "v1.9.2+x"] {
        MODULE.refused(
            json!({"action": "apply", "version": v, "_ansible_check_mode": true}),
            "version",
        );
    }
}

#[test]
fn a_pre_release_is_kept_whole() {
    let dir = tempfile_dir();
    let ran = MODULE.run(
        json!({"action": "apply", "version": "v1.10.0-beta.1", "kubeadm_path": dir.join("missing"),
                         "manifests_dir": &*dir, "_ansible_check_mode": true}),
    );
    // No manifests here: refused as not a control plane, but not for its version.
    assert!(ran.failed());
    assert!(!ran.msg().contains("version"), "{}", ran.msg());
    let ran = MODULE.run(
        json!({"action": "node", "version": "v1.10.0-beta.1", "kubeadm_path": dir.join("missing"),
                         "manifests_dir": &*dir, "_ansible_check_mode": true}),
    );
    assert!(!ran.failed(), "{}", ran.stdout);
    assert_eq!(ran.json["after"], "v1.10.0-beta.1", "{}", ran.stdout);
}

#[test]
fn nul_bytes_and_empty_paths_are_refused() {
    MODULE.refused(
        json!({"action": "plan", "kubeadm_path": "/tmp/kube\u{0}adm"}),
        "kubeadm_path",
    );
    MODULE.refused(json!({"action": "plan", "kubeadm_path": ""}), "kubeadm_path");
    MODULE.refused(json!({"action": "plan", "manifests_dir": ""}), "manifests_dir");
    MODULE.refused(
        json!({"action": "plan", "manifests_dir": "/etc/kubernetes\u{0}"}),
        "manifests_dir",
    );
    MODULE.refused(
        json!({"action": "plan", "extra_args": ["--v=5", "a\u{0}b"]}),
        "extra_args[1]",
    );
    MODULE.refused(
        json!({"action": "plan", "feature_gates": "A=true\u{0}"}),
        "feature_gates",
    );
}

#[test]
fn a_huge_argument_is_not_echoed_whole() {
    let args = json!({"action": "apply", "version": "v".repeat(1 << 20)});
    MODULE.refused_small(args, "version", "(1048576 bytes)");
}

/// A private directory of our own (tempfile is not a dependency of this crate), removed on drop.
struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o700));
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir() -> TempDir {
    let dir = std::env::temp_dir().join(format!(
        "kubeadm-upgrade-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    TempDir(dir)
}

#[test]
fn the_default_kubeadm_is_not_in_tmp() {
    let ran = MODULE.run(json!({"action": "node", "_ansible_check_mode": true,
                         "manifests_dir": "/nonexistent/manifests"}));
    assert!(!ran.failed(), "{}", ran.stdout);
    assert!(ran.msg().contains("/var/lib/kup/kubeadm"), "{}", ran.msg());
}

#[test]
fn a_kubeadm_others_could_replace_is_not_run() {
    let dir = tempfile_dir();
    let kubeadm = dir.join("kubeadm");
    // It would say "v1.30.2" and succeed: only the trust check stops it.
    std::fs::write(&kubeadm, "#!/bin/sh\necho v1.30.2\n").unwrap();
    let mode =
        |path: &Path, m: u32| std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap();
    let args = json!({"action": "node", "kubeadm_path": kubeadm, "manifests_dir": &*dir, "_ansible_check_mode": true});

    mode(&kubeadm, 0o755);
    let ran = MODULE.run(args.clone());
    assert!(!ran.failed(), "{}", ran.stdout);

    for (file, dir_mode, why) in [
        (0o777, 0o700, "mode 0777"),
        (0o775, 0o700, "mode 0775"),
        (0o755, 0o777, "mode 0777"),
    ] {
        mode(&kubeadm, file);
        mode(&dir, dir_mode);
        let ran = MODULE.refused(args.clone(), "kubeadm_path");
        assert!(ran.msg().contains("refusing to run"), "{}", ran.msg());
        assert!(ran.msg().contains(why), "{}", ran.msg());
        // Check mode too, and plan: nothing runs it.
        MODULE.refused(json!({"action": "plan", "kubeadm_path": kubeadm}), "kubeadm_path");
    }
}

/// `kubeadm upgrade node` on a worker changes only the kubelet's files: a second run that leaves
/// them as they are reports no change, so the module stays idempotent where it has no manifests.
#[test]
fn a_worker_upgrade_node_reports_a_change_only_when_the_kubelet_files_change() {
    let dir = tempfile_dir();
    let kubeadm = dir.join("kubeadm");
    let kubelet = dir.join("kubelet");
    std::fs::create_dir(&kubelet).unwrap();
    std::fs::write(
        kubelet.join("kubeadm-flags.env"),
        "KUBELET_KUBEADM_ARGS=\"--pod-infra-container-image=x\"\n",
    )
    .unwrap();
    // Like kubeadm 1.35: writes config.yaml and drops the flag 1.35's kubelet no longer has.
    std::fs::write(
        &kubeadm,
        format!(
            "#!/bin/sh\nif [ \"$1\" = version ]; then echo v1.35.1; exit 0; fi\n\
             printf 'kind: KubeletConfiguration\\n' > '{k}/config.yaml'\n\
             printf 'KUBELET_KUBEADM_ARGS=\"\"\\n' > '{k}/kubeadm-flags.env'\n",
            k = kubelet.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&kubeadm, std::fs::Permissions::from_mode(0o700)).unwrap();
    let args = json!({"action": "node", "version": "v1.35.1", "kubeadm_path": kubeadm,
                      "manifests_dir": dir.join("no-manifests"), "kubelet_dir": kubelet, "retries": 0});
    let first = MODULE.run(args.clone());
    assert!(!first.failed(), "{}", first.stdout);
    assert_eq!(first.json["changed"], true, "{}", first.stdout);
    let second = MODULE.run(args);
    assert!(!second.failed(), "{}", second.stdout);
    assert_eq!(second.json["changed"], false, "{}", second.stdout);
    assert!(
        second.msg().contains("already as it writes them"),
        "{}",
        second.msg()
    );
}

/// The per-release subcommands: run with the words that release has, refused with a kubeadm
/// of a release without them (before anything runs).
#[test]
fn node_config_and_experimental_control_plane_exist_only_in_their_releases() {
    let dir = tempfile_dir();
    let kubeadm = dir.join("kubeadm");
    let argv = dir.join("argv");
    let script = |version: &str| {
        std::fs::write(
            &kubeadm,
            format!(
                "#!/bin/sh\nif [ \"$1\" = version ]; then echo {version}; exit 0; fi\necho \"$@\" > '{}'\n",
                argv.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&kubeadm, std::fs::Permissions::from_mode(0o700)).unwrap();
    };
    let kubelet = dir.join("kubelet");
    std::fs::create_dir(&kubelet).unwrap();
    let run = |action: &str, version: &str| {
        // A fresh path each time: the module caches a kubeadm's version by its path and mtime.
        MODULE.run(
            json!({"action": action, "version": version, "kubeadm_path": kubeadm,
                          "manifests_dir": dir.join("none"), "kubelet_dir": kubelet, "retries": 0}),
        )
    };

    script("v1.13.12");
    let config = run("node_config", "v1.13.12");
    assert!(!config.failed(), "{}", config.stdout);
    assert_eq!(
        std::fs::read_to_string(&argv).unwrap().trim(),
        "upgrade node config --kubelet-version v1.13.12"
    );
    // The manifests are not there: experimental-control-plane needs a control plane.
    let ecp = run("experimental_control_plane", "v1.13.12");
    assert!(
        ecp.failed() && ecp.msg().contains("runs on control-plane nodes"),
        "{}",
        ecp.stdout
    );

    std::fs::remove_file(&argv).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    script("v1.20.15");
    let gone = run("node_config", "v1.20.15");
    assert!(gone.failed(), "{}", gone.stdout);
    assert!(
        gone.msg().contains("has no `kubeadm upgrade node config`"),
        "{}",
        gone.msg()
    );
    assert!(!argv.exists(), "kubeadm ran anyway");
    script("v1.14.10");
    let early = run("node", "v1.14.10");
    assert!(early.msg().contains("it exists from 1.15"), "{}", early.msg());
    assert!(!argv.exists(), "kubeadm ran anyway");
}

/// `config` (the 1.12 HA page's external-etcd `kubeadm upgrade apply --config FILE`): passed to
/// apply only, refused for any other action, naming the field; a file others could write is refused.
#[test]
fn config_is_passed_to_apply_only() {
    let dir = tempfile_dir();
    let kubeadm = dir.join("kubeadm");
    let argv = dir.join("argv");
    let manifests = dir.join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    let manifest = manifests.join("kube-apiserver.yaml");
    std::fs::write(&manifest, "    image: k8s.gcr.io/kube-apiserver:v1.11.3\n").unwrap();
    std::fs::write(
        &kubeadm,
        format!(
            "#!/bin/sh\nif [ \"$1\" = version ]; then echo v1.12.10; exit 0; fi\necho \"$@\" > '{}'\n\
             echo '    image: k8s.gcr.io/kube-apiserver:v1.12.10' > '{}'\n",
            argv.display(),
            manifest.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&kubeadm, std::fs::Permissions::from_mode(0o700)).unwrap();
    let config = dir.join("kubeadm-upgrade-config.yaml");
    let args = json!({"action": "apply", "version": "v1.12.10", "kubeadm_path": kubeadm,
                      "manifests_dir": manifests, "retries": 0, "config": config});

    // Not there yet: check mode says what it would run, a real run is refused.
    let check = MODULE.run(merged(&args, json!({"_ansible_check_mode": true})));
    assert!(!check.failed(), "{}", check.stdout);
    assert!(
        check
            .msg()
            .contains(&format!("apply v1.12.10 -y --config {}", config.display())),
        "{}",
        check.msg()
    );
    MODULE.refused_with(args.clone(), "config", "does not exist");
    assert!(!argv.exists(), "kubeadm ran without its config");

    std::fs::write(&config, "apiVersion: kubeadm.k8s.io/v1alpha2\n").unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o666)).unwrap();
    MODULE.refused_with(args.clone(), "config", "mode 0666");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ran = MODULE.run(args.clone());
    assert!(!ran.failed() && ran.changed(), "{}", ran.stdout);
    assert_eq!(
        std::fs::read_to_string(&argv).unwrap().trim(),
        format!("upgrade apply v1.12.10 -y --config {}", config.display())
    );
    // Idempotence is the manifests' as before: at the target, nothing runs.
    std::fs::remove_file(&argv).unwrap();
    let again = MODULE.run(args);
    assert!(!again.failed() && !again.changed(), "{}", again.stdout);
    assert!(!argv.exists());

    for action in ["plan", "node", "node_config", "experimental_control_plane"] {
        let ran = MODULE.refused_with(
            json!({"action": action, "version": "v1.12.10", "config": config, "_ansible_check_mode": true}),
            "config",
            "action=apply",
        );
        assert!(ran.msg().contains("only"), "{}", ran.msg());
    }
    MODULE.refused(
        json!({"action": "apply", "version": "v1.12.10", "config": "relative.yaml"}),
        "config",
    );
}
