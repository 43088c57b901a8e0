#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! kubeadm_download's argument intake: fuzzed, and the defects fuzzing found (issue 17, item 8).

use serde_json::json;
use std::os::unix::fs::PermissionsExt;

module_kit::intake_tests!(
    kubeadm_download::KubeadmDownload,
    env!("CARGO_BIN_EXE_kubeadm_download"),
    fuzz: json!({"version": "v1.9.2", "dest": "/nonexistent/kubeadm", "base_url": "http://127.0.0.1:9"}),
    unknown_null: (json!({"version": "v1.9.2"}), "destination"),
);

const PINNED: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

#[test]
fn timeout_and_retries_are_bounded() {
    let ran = MODULE.refused(json!({"version": "v1.9.2", "timeout": 4294967295u32}), "timeout");
    assert!(ran.msg().contains("at most 604800 seconds"), "{}", ran.msg());
    MODULE.refused(
        json!({"version": "v1.9.2", "timeout": 9223372036854775807i64}),
        "timeout",
    );
    // Against a dead mirror this never returned.
    let ran = MODULE.refused(json!({"version": "v1.9.2", "retries": 4294967295u32}), "retries");
    assert!(ran.msg().contains("from 0 to 100"), "{}", ran.msg());
}

#[test]
fn a_password_in_base_url_is_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Unreachable: the failure names the URL, without the password.
    let ran = MODULE.run(
        json!({"version": "stable-1.9", "base_url": format!("http://kup:s3cret-pw@127.0.0.1:{port}/"),
                         "dest": dir.path().join("kubeadm"), "retries": 0}),
    );
    assert!(ran.failed());
    assert!(!ran.stdout.contains("s3cret-pw"), "{}", ran.stdout);
    assert!(
        ran.msg().contains(&format!("http://kup:***@127.0.0.1:{port}")),
        "{}",
        ran.msg()
    );
    // Check mode with a pinned checksum makes no request, and still shows no password.
    let ran = MODULE.run(
        json!({"version": "v1.9.2", "base_url": "https://kup:s3cret-pw@mirror.example/release",
                         "checksum": PINNED, "dest": dir.path().join("kubeadm"), "_ansible_check_mode": true}),
    );
    assert!(!ran.failed(), "{}", ran.stdout);
    assert!(!ran.stdout.contains("s3cret-pw"), "{}", ran.stdout);
    assert_eq!(
        ran.json["url"],
        "https://kup:***@mirror.example/release/v1.9.2/bin/linux/amd64/kubeadm"
    );
    // A refused URL is not echoed with it either.
    let ran = MODULE.refused(
        json!({"version": "v1.9.2", "base_url": "ftp://kup:s3cret-pw@mirror"}),
        "base_url",
    );
    assert!(!ran.stdout.contains("s3cret-pw"), "{}", ran.stdout);
    assert!(ran.msg().contains("ftp://kup:***@mirror"), "{}", ran.msg());
}

#[test]
fn a_version_with_a_suffix_is_refused() {
    for v in ["v1.9.2-y", "v1.9.2-$(id)", "v1.9.2 --force", "v1.10.0-beta"] {
        MODULE.refused(json!({"version": v}), "version");
    }
}

#[test]
fn nul_bytes_and_empty_paths_are_refused() {
    MODULE.refused(
        json!({"version": "v1.9.2", "dest": "/var/lib/kup/kube\u{0}adm"}),
        "dest",
    );
    MODULE.refused(json!({"version": "v1.9.2", "dest": ""}), "dest");
    MODULE.refused(json!({"version": "v1.9.2", "dest": "kubeadm"}), "dest");
}

#[test]
fn a_huge_argument_is_not_echoed_whole() {
    MODULE.refused_small(
        json!({"version": "1".repeat(1 << 20)}),
        "version",
        "(1048576 bytes)",
    );
}

#[test]
fn the_default_dest_is_not_in_tmp() {
    // Check mode, pinned: no request, nothing written (nor /var/lib/kup created).
    let ran = MODULE.run(json!({"version": "v1.9.2", "checksum": PINNED, "_ansible_check_mode": true}));
    assert!(ran.stdout.contains("/var/lib/kup/kubeadm"), "{}", ran.stdout);
    assert!(!ran.stdout.contains("/tmp/kubeadm"), "{}", ran.stdout);
}

#[test]
fn a_destination_others_could_write_to_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let args = |dest: &std::path::Path| json!({"version": "v1.9.2", "checksum": PINNED, "dest": dest, "_ansible_check_mode": true});
    let dest = dir.path().join("kubeadm");
    assert!(!MODULE.run(args(&dest)).failed());
    for mode in [0o777, 0o1777, 0o770, 0o702] {
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        let ran = MODULE.refused(args(&dest), "dest");
        assert!(
            ran.msg().contains("refusing to install kubeadm at"),
            "{}",
            ran.msg()
        );
        assert!(ran.msg().contains(&format!("mode {mode:04o}")), "{}", ran.msg());
        assert!(ran.msg().contains("/var/lib/kup"), "{}", ran.msg());
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    // Not through a symlinked directory either.
    let private = dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&private, &link).unwrap();
    let ran = MODULE.refused(args(&link.join("kubeadm")), "dest");
    assert!(ran.msg().contains("symbolic link"), "{}", ran.msg());
    // Nor into a directory owned by someone else (only root can give one away to test it).
    if module_kit::trust::euid() == 0 {
        std::os::unix::fs::chown(&private, Some(65534), Some(65534)).unwrap();
        let ran = MODULE.refused(args(&private.join("kubeadm")), "dest");
        assert!(ran.msg().contains("owned by uid 65534"), "{}", ran.msg());
    }
}
