#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! package_repo run as Ansible runs it, on repository files in a temporary directory: check mode
//! writes nothing, a run switches the file, a second run changes nothing, a key is installed only
//! with the pinned fingerprint. `update_cache` is off (no package manager is run here) except in
//! check mode, which never refreshes.

use module_kit::testkit::{merged, Intake};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const MODULE: Intake<package_repo::PackageRepo> = Intake::new(env!("CARGO_BIN_EXE_package_repo"));

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn fingerprint(name: &str) -> String {
    String::from_utf8(fixture(&format!("{name}.fingerprint")))
        .unwrap()
        .trim()
        .to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Check mode (diff), a run, a second run; each result, and the file after each.
fn three_runs(args: &Value, path: &Path) -> [(Value, String); 3] {
    let check = MODULE.run(merged(
        args,
        json!({"_ansible_check_mode": true, "_ansible_diff": true}),
    ));
    let after_check = read(path);
    let run = MODULE.run(merged(args, json!({"_ansible_diff": true})));
    let after_run = read(path);
    let again = MODULE.run(args.clone());
    [
        (check.json, after_check),
        (run.json, after_run),
        (again.json, read(path)),
    ]
}

const LIST: &str = "# Kubernetes\n\
                    deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n";
const SOURCES: &str = "Types: deb\nURIs: https://pkgs.k8s.io/core:/stable:/v1.30/deb/\nSuites: /\n\
                       Signed-By: /etc/apt/keyrings/kubernetes-apt-keyring.gpg\n";
const REPO: &str = "[kubernetes]\nname=Kubernetes\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/\n\
                    enabled=1\ngpgcheck=1\ngpgkey=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/repodata/repomd.xml.key\n";

#[test]
fn every_form_is_switched_once_and_check_mode_writes_nothing() {
    for (name, text, format, manager) in [
        ("kubernetes.list", LIST, "list", "apt"),
        ("kubernetes.sources", SOURCES, "deb822", "apt"),
        ("kubernetes.repo", REPO, "repo", "dnf"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), name, text);
        let args = json!({"version": "v1.31.2", "path": path, "update_cache": false, "manager": manager});
        let [(check, after_check), (run, after_run), (again, after_again)] = three_runs(&args, &path);
        let switched = text.replace("v1.30", "v1.31");

        assert_eq!(
            (check["changed"].clone(), check["failed"].clone()),
            (json!(true), json!(false)),
            "{check}"
        );
        assert_eq!(after_check, text, "check mode wrote {name}");
        assert_eq!(check["diff"]["before"], json!(text));
        assert_eq!(check["diff"]["after"], json!(switched));
        assert!(
            check["msg"].as_str().unwrap().starts_with("would switch "),
            "{check}"
        );

        assert_eq!(run["changed"], true, "{run}");
        assert_eq!(after_run, switched);
        assert_eq!(run["format"], format);
        assert_eq!(run["minor_before"], "v1.30");
        assert_eq!(run["minor_after"], "v1.31");
        assert_eq!(run["refreshed"], false);
        assert_eq!(
            run["msg"],
            format!("switched {} from v1.30 to v1.31", path.display())
        );

        assert_eq!(again["changed"], false, "{again}");
        assert_eq!(again["failed"], false, "{again}");
        assert_eq!(after_again, switched);
        assert_eq!(
            again["msg"],
            format!("{} already points at v1.31", path.display())
        );
        assert!(again.get("diff").is_none(), "diff outside diff mode: {again}");
    }
}

#[test]
fn check_mode_never_refreshes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "kubernetes.list", LIST);
    // update_cache is on by default: in check mode it is only said.
    let ran = MODULE.run(json!({"version": "1.31", "path": path, "_ansible_check_mode": true}));
    assert_eq!(ran.json["changed"], true, "{}", ran.stdout);
    assert!(
        ran.msg()
            .ends_with("would refresh that repository's index with apt-get update"),
        "{}",
        ran.msg()
    );
    assert_eq!(ran.json["refreshed"], false);
    assert_eq!(read(&path), LIST);
}

#[test]
fn the_mode_of_the_file_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "kubernetes.repo", REPO);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ran = MODULE.run(json!({"version": "1.31", "path": path, "update_cache": false}));
    assert_eq!(
        ran.json["manager"].as_str().map(|m| m == "dnf" || m == "yum"),
        Some(true),
        "{}",
        ran.stdout
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["kubernetes.repo"], "a temporary file was left behind");
}

#[test]
fn legacy_and_unrecognised_files_are_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = "deb https://apt.kubernetes.io/ kubernetes-xenial main\n";
    let path = write(dir.path(), "kubernetes.list", legacy);
    let ran = MODULE.run(json!({"version": "1.31", "path": path}));
    assert!(!ran.failed() && !ran.changed(), "{}", ran.stdout);
    assert_eq!(ran.json["legacy"], true);
    assert!(ran.msg().contains("holds every version"), "{}", ran.msg());
    assert_eq!(read(&path), legacy);

    let other = "deb https://deb.debian.org/debian bookworm main\n";
    let path = write(dir.path(), "debian.list", other);
    let ran = MODULE.run(json!({"version": "1.31", "path": path}));
    ran.assert_failed_saying(&[
        &path.display().to_string(),
        "defines no Kubernetes package repository: expected a line such as `deb [signed-by=",
    ]);
    assert_eq!(read(&path), other);
}

#[test]
fn missing_files_and_other_managers_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("kubernetes.list");
    MODULE
        .run(json!({"version": "1.31", "path": missing}))
        .assert_failed_saying(&[&format!("{} does not exist", missing.display())]);
    let path = write(dir.path(), "kubernetes.repo", REPO);
    MODULE
        .run(json!({"version": "1.31", "path": path, "manager": "apt"}))
        .assert_failed_saying(&["is a repo file, which apt does not read"]);
    assert_eq!(read(&path), REPO);
    // Nor through a symbolic link, nor in a directory others may write to.
    let link = dir.path().join("link.repo");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    MODULE
        .run(json!({"version": "1.31", "path": link}))
        .assert_failed_saying(&["is a symbolic link"]);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    MODULE
        .run(json!({"version": "1.31", "path": path, "_ansible_check_mode": true}))
        .assert_failed_saying(&["refusing to rewrite", "mode 0777"]);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn the_pinned_key_is_installed_once_and_another_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("kubernetes-apt-keyring.gpg");
    let list = LIST.replace(
        "/etc/apt/keyrings/kubernetes-apt-keyring.gpg",
        &keyring.display().to_string(),
    );
    let path = write(dir.path(), "kubernetes.list", &list);
    let key = write(
        dir.path(),
        "release.asc",
        &String::from_utf8(fixture("key-a.asc")).unwrap(),
    );
    let args = json!({"version": "1.31", "path": path, "update_cache": false, "key_path": key,
                      "key_fingerprint": fingerprint("key-a").to_lowercase()});

    let check = MODULE.run(merged(&args, json!({"_ansible_check_mode": true})));
    assert_eq!(check.json["key"], "installed", "{}", check.stdout);
    assert!(!keyring.exists(), "check mode wrote the key");

    let run = MODULE.run(args.clone());
    assert_eq!(run.json["key"], "installed", "{}", run.stdout);
    assert_eq!(run.json["keyring"], json!(keyring));
    assert_eq!(run.json["key_fingerprint"], json!(fingerprint("key-a")));
    assert_eq!(std::fs::read(&keyring).unwrap(), fixture("key-a.gpg"));
    assert_eq!(
        std::fs::metadata(&keyring).unwrap().permissions().mode() & 0o7777,
        0o644
    );

    let again = MODULE.run(args.clone());
    assert_eq!(
        (again.changed(), again.json["key"].clone()),
        (false, json!("unchanged")),
        "{}",
        again.stdout
    );

    // Another key under the same pin: refused, nothing touched.
    std::fs::write(&key, fixture("key-b.asc")).unwrap();
    let before = read(&path);
    let ran = MODULE.run(args);
    ran.assert_failed_saying(&[
        &fingerprint("key-a"),
        &fingerprint("key-b"),
        "refusing the signing key",
    ]);
    assert_eq!(std::fs::read(&keyring).unwrap(), fixture("key-a.gpg"));
    assert_eq!(read(&path), before);
}
