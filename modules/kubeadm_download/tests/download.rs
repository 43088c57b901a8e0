#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! kubeadm_download against a real HTTP release server on loopback.

mod common;

use common::{binary_for, leftovers, run, Lab};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

#[test]
fn check_apply_recheck_reapply() {
    let lab = Lab::start();
    let dest = lab.dest("kubeadm");
    let args = json!({"version": "v1.9.2", "base_url": lab.base(), "dest": dest});
    let with = |extra: serde_json::Value| {
        let mut a = args.clone();
        a.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        a
    };

    let check = run(with(json!({"_ansible_check_mode": true, "_ansible_diff": true})));
    assert!(!check.failed(), "{}", check.stdout);
    assert!(check.changed());
    assert!(!dest.exists(), "check mode wrote {dest:?}");
    assert!(check.msg().starts_with("would download"), "{}", check.msg());
    assert_eq!(check.json["diff"]["before"]["exists"], false);

    let apply = run(args.clone());
    assert!(apply.changed(), "{}", apply.stdout);
    assert_eq!(std::fs::read(&dest).unwrap(), binary_for("v1.9.2"));
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert_eq!(apply.json["version"], "v1.9.2");
    assert_eq!(apply.json["size"], binary_for("v1.9.2").len());
    assert_eq!(
        apply.json["url"],
        format!("{}/v1.9.2/bin/linux/amd64/kubeadm", lab.base())
    );
    // 1.9 publishes only .sha1/.md5: the stronger of the two is used, with a warning saying so.
    assert_eq!(
        apply.json["checksum_source"],
        format!("{}/v1.9.2/bin/linux/amd64/kubeadm.sha1", lab.base())
    );
    assert!(apply.json["checksum"].as_str().unwrap().starts_with("sha1:"));
    assert!(
        apply.json["warnings"][0]
            .as_str()
            .unwrap()
            .contains("only .sha1/.md5"),
        "{}",
        apply.stdout
    );

    let recheck = run(with(json!({"_ansible_check_mode": true})));
    assert!(!recheck.changed(), "{}", recheck.stdout);
    let reapply = run(args);
    assert!(!reapply.changed(), "{}", reapply.stdout);
    assert!(!reapply.failed());
    assert_eq!(leftovers(lab.work.path(), &["kubeadm"]), Vec::<String>::new());
}

#[test]
fn channels_resolve_and_the_strongest_checksum_is_used() {
    let lab = Lab::start();
    let ran = run(json!({"version": "stable-1.9", "base_url": lab.base(), "dest": lab.dest("a")}));
    assert_eq!(ran.json["version"], "v1.9.3", "{}", ran.stdout);
    assert_eq!(std::fs::read(lab.dest("a")).unwrap(), binary_for("v1.9.3"));

    let ran = run(json!({"version": "stable", "base_url": lab.base(), "dest": lab.dest("b")}));
    assert_eq!(ran.json["version"], "v1.30.2", "{}", ran.stdout);
    assert!(ran.json["checksum_source"]
        .as_str()
        .unwrap()
        .ends_with("kubeadm.sha512"));
    assert!(
        ran.json.get("warnings").is_none(),
        "no warning for sha512: {}",
        ran.stdout
    );

    let ran = run(json!({"version": "1.12.0", "base_url": lab.base(), "dest": lab.dest("c")}));
    assert!(
        ran.json["checksum"].as_str().unwrap().starts_with("sha512:"),
        "{}",
        ran.stdout
    );

    let ran = run(json!({"version": "latest-1.7", "base_url": lab.base(), "dest": lab.dest("d")}));
    ran.assert_failed_saying(&["channel \"latest-1.7\" does not exist"]);
}

#[test]
fn pinned_and_present_makes_no_request() {
    let lab = Lab::start();
    let dest = lab.dest("kubeadm");
    let args = json!({"version": "1.30.2", "base_url": lab.base(), "dest": dest,
                      "checksum": lab.sha256_of("v1.30.2")});
    let first = run(args.clone());
    assert!(first.changed(), "{}", first.stdout);
    assert_eq!(first.json["checksum_source"], "pinned");
    let before = lab.requests();
    let second = run(args);
    assert!(!second.changed(), "{}", second.stdout);
    assert_eq!(lab.requests(), before, "an idempotent pinned run made a request");
}

#[test]
fn wrong_mode_is_fixed_without_downloading() {
    let lab = Lab::start();
    let dest = lab.dest("kubeadm");
    let args = json!({"version": "1.30.2", "base_url": lab.base(), "dest": dest,
                      "checksum": lab.sha256_of("v1.30.2"), "mode": "0700"});
    assert!(run(args.clone()).changed());
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = lab.requests();
    let fixed = run(args.clone());
    assert!(fixed.changed(), "{}", fixed.stdout);
    assert!(fixed.msg().contains("mode"), "{}", fixed.msg());
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    assert_eq!(lab.requests(), before);
    assert!(!run(args).changed());
}

/// Every way a download can go wrong leaves an existing dest byte-identical and no temp file.
#[test]
fn failed_downloads_leave_dest_untouched() {
    let lab = Lab::start();
    let dest = lab.dest("kubeadm");
    let old = b"#!/bin/sh\necho old kubeadm v1.8.3\n".to_vec();
    let cases = [
        ("truncate", 0, "truncated"),
        ("corrupt", 0, "checksum mismatch"),
        ("500", 1, "HTTP 500"),
        ("404", 0, "404"),
        ("slow", 0, "v1.9.2/bin/linux/amd64/kubeadm"),
    ];
    for (fault, retries, expect) in cases {
        std::fs::write(&dest, &old).unwrap();
        let ran = run(
            json!({"version": "v1.9.2", "base_url": format!("{}/_fault/{fault}", lab.base()),
                             "dest": dest, "retries": retries, "timeout": 2}),
        );
        assert!(ran.failed(), "{fault}: {}", ran.stdout);
        assert!(
            ran.msg().contains(expect),
            "{fault}: {:?} lacks {expect:?}",
            ran.msg()
        );
        assert!(ran.msg().contains("left untouched"), "{fault}: {}", ran.msg());
        assert_eq!(std::fs::read(&dest).unwrap(), old, "{fault} changed dest");
        assert_eq!(
            leftovers(lab.work.path(), &["kubeadm"]),
            Vec::<String>::new(),
            "{fault} left a temp file"
        );
    }
    // The 500 case was retried once before giving up.
    let ran = run(
        json!({"version": "v1.9.2", "base_url": format!("{}/_fault/500", lab.base()),
                         "dest": dest, "retries": 1}),
    );
    assert!(ran.msg().contains("gave up after 2 attempts"), "{}", ran.msg());
}

#[test]
fn corrupt_download_names_both_sums() {
    let lab = Lab::start();
    let ran = run(
        json!({"version": "v1.16.0", "base_url": format!("{}/_fault/corrupt", lab.base()),
                         "dest": lab.dest("k"), "retries": 0}),
    );
    assert!(ran.failed());
    let expected = ran.json["expected_checksum"].as_str().unwrap().to_string();
    let actual = ran.json["actual_checksum"].as_str().unwrap().to_string();
    assert_ne!(expected, actual);
    assert!(
        ran.msg().contains(&expected) && ran.msg().contains(&actual),
        "{}",
        ran.msg()
    );
    assert!(!lab.dest("k").exists());
}

#[test]
fn pinned_mismatch_fails_naming_both_sums() {
    let lab = Lab::start();
    let wrong = lab.sha256_of("v1.8.3");
    let ran =
        run(json!({"version": "v1.9.2", "base_url": lab.base(), "dest": lab.dest("k"), "checksum": wrong}));
    assert!(ran.failed());
    assert!(ran.msg().contains(&wrong), "{}", ran.msg());
    assert!(ran.msg().contains(&lab.sha256_of("v1.9.2")), "{}", ran.msg());
    assert!(!lab.dest("k").exists());
}

#[test]
fn transient_500_is_retried_and_redirects_are_followed() {
    let lab = Lab::start();
    let ran = run(
        json!({"version": "v1.9.2", "base_url": format!("{}/_fault/500once", lab.base()),
                         "dest": lab.dest("a"), "retries": 1}),
    );
    assert!(ran.changed(), "{}", ran.stdout);
    assert_eq!(std::fs::read(lab.dest("a")).unwrap(), binary_for("v1.9.2"));

    let ran = run(
        json!({"version": "stable-1.8", "base_url": format!("{}/_redirect", lab.base()),
                         "dest": lab.dest("b")}),
    );
    assert!(ran.changed(), "{}", ran.stdout);
    assert_eq!(ran.json["version"], "v1.8.3");
    assert_eq!(std::fs::read(lab.dest("b")).unwrap(), binary_for("v1.8.3"));
}

#[test]
fn symlink_and_directory_at_dest_are_refused() {
    let lab = Lab::start();
    let target = lab.dest("real");
    std::fs::write(&target, b"precious").unwrap();
    let link = lab.dest("kubeadm");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let ran = run(json!({"version": "v1.9.2", "base_url": lab.base(), "dest": link}));
    ran.assert_failed_saying(&["symbolic link"]);
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());

    let ran = run(json!({"version": "v1.9.2", "base_url": lab.base(), "dest": lab.work.path()}));
    ran.assert_failed_saying(&["not a regular file"]);

    let ran =
        run(json!({"version": "v1.9.2", "base_url": lab.base(), "dest": lab.dest("no/such/dir/kubeadm")}));
    ran.assert_failed_saying(&["no/such/dir"]);
}

#[test]
fn a_password_in_base_url_is_used_but_never_shown() {
    let lab = Lab::start();
    let base = lab.base().replacen("http://", "http://kup:s3cret-pw@", 1);
    let ran = run(json!({"version": "stable-1.9", "base_url": base, "dest": lab.dest("kubeadm")}));
    assert!(ran.changed(), "{}", ran.stdout);
    assert_eq!(std::fs::read(lab.dest("kubeadm")).unwrap(), binary_for("v1.9.3"));
    assert!(!ran.stdout.contains("s3cret-pw"), "{}", ran.stdout);
    let shown = lab.base().replacen("http://", "http://kup:***@", 1);
    assert_eq!(ran.json["url"], format!("{shown}/v1.9.3/bin/linux/amd64/kubeadm"));
    assert!(
        ran.json["checksum_source"].as_str().unwrap().starts_with(&shown),
        "{}",
        ran.stdout
    );
    assert!(ran.msg().contains("kubeadm v1.9.3"), "{}", ran.msg());
}

#[test]
fn diff_mode_reports_before_and_after() {
    let lab = Lab::start();
    let dest = lab.dest("kubeadm");
    std::fs::write(&dest, b"old").unwrap();
    let ran = run(json!({"version": "v1.30.2", "base_url": lab.base(), "dest": dest, "_ansible_diff": true}));
    assert!(ran.changed());
    let diff = &ran.json["diff"];
    assert_eq!(diff["before"]["exists"], true);
    assert_eq!(diff["before"]["size"], 3);
    assert_eq!(diff["after"]["version"], "v1.30.2");
    assert_eq!(diff["after"]["checksum"], ran.json["checksum"]);
    assert_ne!(diff["before"]["checksum"], diff["after"]["checksum"]);
}

#[test]
fn every_bad_parameter_is_named() {
    let cases = [
        (json!({}), "version"),
        (json!({"version": "1.9"}), "version"),
        (json!({"version": 1.9}), "version"),
        (json!({"version": "v1.9.2", "arch": "x86_64"}), "arch"),
        (json!({"version": "v1.9.2", "dest": "relative/kubeadm"}), "dest"),
        (
            json!({"version": "v1.9.2", "base_url": "ftp://mirror"}),
            "base_url",
        ),
        (json!({"version": "v1.9.2", "checksum": "sha256:xyz"}), "checksum"),
        (json!({"version": "v1.9.2", "checksum": "crc32:abcd"}), "checksum"),
        (json!({"version": "v1.9.2", "mode": "0999"}), "mode"),
        (json!({"version": "v1.9.2", "mode": true}), "mode"),
        (json!({"version": "v1.9.2", "timeout": "soon"}), "timeout"),
        (json!({"version": "v1.9.2", "timeout": 0}), "timeout"),
        (json!({"version": "v1.9.2", "retries": -1}), "retries"),
        (
            json!({"version": "v1.9.2", "destination": "/var/lib/kup/x"}),
            "destination",
        ),
    ];
    for (args, field) in cases {
        let ran = run(args.clone());
        assert!(ran.failed(), "{args} accepted: {}", ran.stdout);
        assert!(
            ran.msg().contains(field),
            "{args}: {:?} does not name {field}",
            ran.msg()
        );
    }
}

#[test]
fn junk_and_empty_input_fail_cleanly() {
    for input in [&b""[..], b"{", b"null", b"kubeadm please"] {
        let ran = module_kit::testkit::run_with_stdin(common::module(), input).unwrap();
        assert!(ran.failed(), "{input:?}");
        assert!(ran.msg().contains("kubeadm_download"), "{}", ran.msg());
    }
}

#[test]
fn unreachable_server_fails_with_the_url() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("kup-never-written");
    let ran = run(json!({"version": "v1.9.2", "base_url": base, "dest": dest, "retries": 0}));
    assert!(ran.failed());
    assert!(ran.msg().contains(&base), "{}", ran.msg());
    assert!(!dest.exists());
}
