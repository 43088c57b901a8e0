//! The plan from an observed file: the rewritten text, the refresh command, the key, the message in
//! both tenses, the return values. Then `apply` on files in a temporary directory. No package
//! manager is run (the refresh is a stand-in command).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use module_kit::plan::Tense;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

fn params(args: Value) -> Params {
    module_kit::intake::<PackageRepo>(args).map(|(p, _)| p).unwrap()
}

const LIST: &str = "/etc/apt/sources.list.d/kubernetes.list";
const SOURCES: &str = "/etc/apt/sources.list.d/kubernetes.sources";
const REPO: &str = "/etc/yum.repos.d/kubernetes.repo";
const KEYRING: &str = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg";

fn observed(manager: Manager, path: &str, text: &str) -> Observed {
    Observed {
        manager,
        path: PathBuf::from(path),
        format: Format::of(Path::new(path), text).unwrap(),
        text: text.to_string(),
        owner: Regular {
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: text.len() as u64,
        },
        key: None,
        refreshed: false,
    }
}

fn plan(args: Value, seen: &Observed) -> Plan<Action> {
    PackageRepo::plan(&params(args), seen).unwrap()
}

fn refusal(args: Value, seen: &Observed) -> String {
    PackageRepo::plan(&params(args), seen).unwrap_err().msg
}

/// The text the plan writes, if it writes the file.
fn written(plan: &Plan<Action>) -> Option<&str> {
    plan.actions.iter().find_map(|a| match a {
        Action::File { text, .. } => Some(text.as_str()),
        _ => None,
    })
}

fn refresh_argv(plan: &Plan<Action>) -> Option<Vec<String>> {
    plan.actions.iter().find_map(|a| match a {
        Action::Refresh(c) => Some(c.argv()),
        _ => None,
    })
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn fingerprint(name: &str) -> String {
    String::from_utf8(fixture(&format!("{name}.fingerprint")))
        .unwrap()
        .trim()
        .to_string()
}

const APT_LINE: &str =
    "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n";

#[test]
fn a_list_file_is_switched_then_its_repository_refreshed() {
    let text = format!("# from kubernetes.io\n{APT_LINE}");
    let seen = observed(Manager::Apt, LIST, &text);
    let plan = plan(json!({"version": "v1.31.2", "timeout": 90}), &seen);
    assert!(plan.changed());
    assert_eq!(written(&plan), Some(text.replace("v1.30", "v1.31").as_str()));
    assert_eq!(
        refresh_argv(&plan).unwrap(),
        [
            "apt-get",
            "update",
            "-q",
            "-o",
            &format!("Dir::Etc::sourcelist={LIST}"),
            "-o",
            "Dir::Etc::sourceparts=-",
            "-o",
            "APT::Get::List-Cleanup=0"
        ]
    );
    let Some(Action::Refresh(command)) = plan.actions.last() else {
        panic!("{:?}", plan.actions);
    };
    assert_eq!(command.get_timeout(), std::time::Duration::from_secs(90));
    assert_eq!(
        plan.msg(Tense::Would),
        format!(
            "would switch {LIST} from v1.30 to v1.31, would refresh that repository's index with apt-get update"
        )
    );
    assert_eq!(
        plan.msg(Tense::Done),
        format!("switched {LIST} from v1.30 to v1.31, refreshed that repository's index with apt-get update")
    );
    let values = Value::Object(plan.values.clone());
    assert_eq!(
        values,
        json!({"path": LIST, "format": "list", "manager": "apt", "legacy": false, "minor_before": "v1.30",
               "minors_before": ["v1.30"], "minor_after": "v1.31", "refreshed": false, "key": null,
               "keyring": null, "key_fingerprint": null})
    );
    let diff = plan.diff.clone().unwrap();
    assert_eq!(diff.before, json!(text));
    assert_eq!(diff.after, json!(text.replace("v1.30", "v1.31")));
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
}

#[test]
fn without_update_cache_only_the_file_is_written() {
    let seen = observed(Manager::Apt, LIST, APT_LINE);
    let plan = plan(json!({"version": "1.31", "update_cache": false}), &seen);
    assert_eq!(plan.actions.len(), 1, "{:?}", plan.actions);
    assert!(refresh_argv(&plan).is_none());
    assert_eq!(
        plan.msg(Tense::Done),
        format!("switched {LIST} from v1.30 to v1.31")
    );
}

#[test]
fn a_deb822_file_is_refreshed_as_itself() {
    let text = format!(
        "Types: deb\nURIs: https://pkgs.k8s.io/core:/stable:/v1.29/deb/\nSuites: /\nSigned-By: {KEYRING}\n"
    );
    let seen = observed(Manager::Apt, SOURCES, &text);
    let plan = plan(json!({"version": "v1.31"}), &seen);
    assert_eq!(written(&plan), Some(text.replace("v1.29", "v1.31").as_str()));
    assert!(refresh_argv(&plan)
        .unwrap()
        .contains(&format!("Dir::Etc::sourcelist={SOURCES}")));
    assert_eq!(plan.values["format"], "deb822");
    assert_eq!(plan.values["minor_before"], "v1.29");
}

#[test]
fn a_repo_file_changes_baseurl_and_gpgkey_and_refreshes_its_ids() {
    let text =
        "[kubernetes]\nname=Kubernetes\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/\nenabled=1\n\
                gpgcheck=1\ngpgkey=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/repodata/repomd.xml.key\n\
                exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n";
    let seen = observed(Manager::Rpm("dnf"), REPO, text);
    let plan = plan(json!({"version": "1.31.0"}), &seen);
    let after = written(&plan).unwrap();
    assert_eq!(after, text.replace("v1.30", "v1.31"));
    assert_eq!(after.matches("v1.31").count(), 2);
    assert_eq!(
        refresh_argv(&plan).unwrap(),
        [
            "dnf",
            "-q",
            "makecache",
            "--disablerepo=*",
            "--enablerepo=kubernetes"
        ]
    );
    assert_eq!(
        plan.msg(Tense::Done),
        format!("switched {REPO} from v1.30 to v1.31, refreshed that repository's index with dnf makecache")
    );
    assert_eq!(plan.values["manager"], "dnf");
}

#[test]
fn several_minors_are_all_switched_and_reported() {
    let text = "[kubernetes]\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/\n\
                gpgkey=https://pkgs.k8s.io/core:/stable:/v1.29/rpm/repodata/repomd.xml.key\n\
                [kubernetes-next]\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/\n";
    let seen = observed(Manager::Rpm("yum"), REPO, text);
    let plan = plan(json!({"version": "1.31"}), &seen);
    assert_eq!(written(&plan).unwrap().matches("v1.31").count(), 3);
    assert_eq!(plan.values["minors_before"], json!(["v1.29", "v1.30", "v1.31"]));
    assert_eq!(plan.values["minor_before"], "v1.29, v1.30, v1.31");
    assert_eq!(
        plan.msg(Tense::Would),
        format!(
            "would switch {REPO} from v1.29, v1.30 to v1.31, would refresh that repository's index with yum makecache"
        )
    );
    assert_eq!(
        refresh_argv(&plan).unwrap(),
        [
            "yum",
            "-q",
            "makecache",
            "--disablerepo=*",
            "--enablerepo=kubernetes",
            "--enablerepo=kubernetes-next"
        ]
    );
}

#[test]
fn a_file_at_the_target_changes_nothing() {
    let text = APT_LINE.replace("v1.30", "v1.31");
    let seen = observed(Manager::Apt, LIST, &text);
    let plan = plan(json!({"version": "v1.31.4"}), &seen);
    assert!(!plan.changed());
    assert!(plan.actions.is_empty());
    assert_eq!(plan.msg(Tense::Would), format!("{LIST} already points at v1.31"));
    assert_eq!(plan.values["minor_before"], "v1.31");
    let diff = plan.diff.unwrap();
    assert_eq!(diff.before, diff.after);
}

#[test]
fn legacy_repositories_are_left_alone() {
    for (manager, path, text) in [
        (
            Manager::Apt,
            LIST,
            "deb https://apt.kubernetes.io/ kubernetes-xenial main\n",
        ),
        (
            Manager::Rpm("yum"),
            REPO,
            "[kubernetes]\nbaseurl=https://packages.cloud.google.com/yum/repos/kubernetes-el7-x86_64\n",
        ),
        (
            Manager::Rpm("yum"),
            REPO,
            "[kubernetes]\nbaseurl=https://yum.kubernetes.io/repos/kubernetes-el7-x86_64\n",
        ),
    ] {
        let seen = observed(manager, path, text);
        let plan = plan(json!({"version": "1.31"}), &seen);
        assert!(!plan.changed(), "{text}");
        assert!(plan.actions.is_empty());
        assert_eq!(plan.values["legacy"], true);
        assert_eq!(plan.values["minor_after"], Value::Null);
        assert_eq!(plan.values["minor_before"], Value::Null);
        let msg = plan.msg(Tense::Would);
        assert!(
            msg.starts_with(&format!("{path} names the legacy Kubernetes repository (")),
            "{msg}"
        );
        assert!(msg.contains("which holds every version"), "{msg}");
        assert!(msg.contains("frozen since 2023-09"), "{msg}");
    }
}

#[test]
fn legacy_lines_beside_per_minor_ones_are_kept_with_a_warning() {
    let text = format!("deb https://apt.kubernetes.io/ kubernetes-xenial main\n{APT_LINE}");
    let seen = observed(Manager::Apt, LIST, &text);
    let plan = plan(json!({"version": "1.31"}), &seen);
    let after = written(&plan).unwrap();
    assert!(after.starts_with("deb https://apt.kubernetes.io/ kubernetes-xenial main\n"));
    assert!(after.contains("/v1.31/"));
    assert_eq!(plan.values["legacy"], false);
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
    assert!(plan.warnings[0].contains("also names the legacy Kubernetes repository"));
}

#[test]
fn a_file_without_a_kubernetes_repository_is_refused() {
    for (manager, path, text, expected) in [
        (
            Manager::Apt,
            LIST,
            "deb https://deb.debian.org/debian bookworm main\n",
            "deb [signed-by=",
        ),
        (
            Manager::Apt,
            SOURCES,
            "Types: deb\nURIs: https://deb.debian.org/debian\n",
            "URIs: https://pkgs.k8s.io",
        ),
        (
            Manager::Rpm("dnf"),
            REPO,
            "[epel]\nbaseurl=https://dl.fedoraproject.org/pub/epel/9/\n",
            "baseurl=",
        ),
        (Manager::Apt, LIST, "", "deb [signed-by="),
    ] {
        let msg = refusal(json!({"version": "1.31"}), &observed(manager, path, text));
        assert!(
            msg.starts_with(&format!(
                "{path} defines no Kubernetes package repository: expected "
            )),
            "{msg}"
        );
        assert!(msg.contains(expected), "{msg}");
    }
}

#[test]
fn pkgs_k8s_io_has_no_minor_before_1_24_but_a_mirror_may() {
    let seen = observed(Manager::Apt, LIST, APT_LINE);
    let msg = refusal(json!({"version": "1.9.2"}), &seen);
    assert!(
        msg.starts_with("parameter `version`: pkgs.k8s.io publishes v1.24 and later, not v1.9"),
        "{msg}"
    );
    let mirror = observed(
        Manager::Apt,
        LIST,
        "deb [trusted=yes] http://10.0.0.1/k8s/core:/stable:/v1.8/deb/ /\n",
    );
    let plan = plan(json!({"version": "1.9.2"}), &mirror);
    assert_eq!(
        written(&plan),
        Some("deb [trusted=yes] http://10.0.0.1/k8s/core:/stable:/v1.9/deb/ /\n")
    );
}

/// `seen` with the key fixture `name` given, going to `dest` which holds `existing`.
fn with_key(mut seen: Observed, name: &str, dest: Option<&str>, existing: Option<Vec<u8>>) -> Observed {
    seen.key = Some(KeySeen {
        source: fixture(name),
        dest: dest.map(PathBuf::from),
        existing,
        dir_missing: false,
    });
    seen
}

fn key_args(fingerprint: &str) -> Value {
    json!({"version": "1.31", "key_path": "/root/k8s.asc", "key_fingerprint": fingerprint})
}

#[test]
fn a_key_with_the_pinned_fingerprint_is_installed_dearmored_for_apt() {
    let fpr = fingerprint("key-a");
    let seen = with_key(
        observed(Manager::Apt, LIST, APT_LINE),
        "key-a.asc",
        Some(KEYRING),
        None,
    );
    // Pinned as gpg prints it: lower case, in groups.
    let spaced: String = fpr
        .to_ascii_lowercase()
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let plan = plan(key_args(&spaced), &seen);
    assert_eq!(
        plan.actions[0],
        Action::Key {
            path: PathBuf::from(KEYRING),
            bytes: fixture("key-a.gpg"),
            create_dir: false
        }
    );
    assert!(matches!(plan.actions[1], Action::File { .. }));
    assert!(matches!(plan.actions[2], Action::Refresh(_)));
    assert_eq!(
        plan.msg(Tense::Done),
        format!(
            "installed signing key {fpr} at {KEYRING}, switched {LIST} from v1.30 to v1.31, refreshed that \
             repository's index with apt-get update"
        )
    );
    assert_eq!(plan.values["key"], "installed");
    assert_eq!(plan.values["keyring"], KEYRING);
    assert_eq!(plan.values["key_fingerprint"], json!(fpr));

    // Once there, and the file switched: nothing to do.
    let done = with_key(
        observed(Manager::Apt, LIST, &APT_LINE.replace("v1.30", "v1.31")),
        "key-a.asc",
        Some(KEYRING),
        Some(fixture("key-a.gpg")),
    );
    let again = tests_plan(key_args(&fpr), &done);
    assert!(!again.changed());
    assert_eq!(again.values["key"], "unchanged");
    assert_eq!(
        again.msg(Tense::Would),
        format!("{LIST} already points at v1.31 (signing key {fpr} in place at {KEYRING})")
    );
    // The key alone differs: only the key is written.
    let stale = with_key(
        observed(Manager::Apt, LIST, &APT_LINE.replace("v1.30", "v1.31")),
        "key-a.asc",
        Some(KEYRING),
        Some(b"old".to_vec()),
    );
    let key_only = tests_plan(key_args(&fpr), &stale);
    assert_eq!(key_only.actions.len(), 1);
    assert_eq!(
        key_only.msg(Tense::Done),
        format!("{LIST} already points at v1.31; installed signing key {fpr} at {KEYRING}")
    );
}

#[test]
fn another_key_is_refused_naming_both_fingerprints() {
    let seen = with_key(
        observed(Manager::Apt, LIST, APT_LINE),
        "key-b.asc",
        Some(KEYRING),
        None,
    );
    let pinned = fingerprint("key-a");
    let msg = refusal(key_args(&pinned), &seen);
    assert_eq!(
        msg,
        format!(
            "refusing the signing key /root/k8s.asc: its fingerprint is {}, not the pinned {pinned}",
            fingerprint("key-b")
        )
    );
    let junk = with_key(
        observed(Manager::Apt, LIST, APT_LINE),
        "README.md",
        Some(KEYRING),
        None,
    );
    let msg = refusal(key_args(&pinned), &junk);
    assert!(
        msg.starts_with("/root/k8s.asc is not a usable signing key: "),
        "{msg}"
    );
}

#[test]
fn rpm_keys_are_verified_or_written_armored() {
    let text = "[kubernetes]\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/\n";
    let fpr = fingerprint("key-a");
    let seen = with_key(observed(Manager::Rpm("dnf"), REPO, text), "key-a.gpg", None, None);
    let plan = plan(key_args(&fpr), &seen);
    assert!(!plan.changed());
    assert_eq!(plan.values["key"], "verified");
    assert_eq!(plan.values["keyring"], Value::Null);
    assert!(plan
        .msg(Tense::Would)
        .ends_with(&format!("(signing key {fpr} verified, not installed)")));

    let dest = "/etc/pki/rpm-gpg/kubernetes.asc";
    let seen = with_key(
        observed(Manager::Rpm("dnf"), REPO, text),
        "key-a.gpg",
        Some(dest),
        None,
    );
    let plan = tests_plan(key_args(&fpr), &seen);
    let Action::Key { bytes, .. } = &plan.actions[0] else {
        panic!("{:?}", plan.actions);
    };
    assert_eq!(bytes, &fixture("key-a.asc"));
}

#[test]
fn an_apt_keyring_named_asc_gets_the_armored_key() {
    let line =
        "deb [signed-by=/etc/apt/keyrings/kubernetes.asc] https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /\n";
    let seen = with_key(
        observed(Manager::Apt, LIST, line),
        "key-a.gpg",
        Some("/etc/apt/keyrings/kubernetes.asc"),
        None,
    );
    let plan = plan(key_args(&fingerprint("key-a")), &seen);
    let Action::Key { bytes, .. } = &plan.actions[0] else {
        panic!("{:?}", plan.actions);
    };
    assert_eq!(bytes, &fixture("key-a.asc"));
}

#[test]
fn the_keyring_is_the_one_every_entry_names() {
    let dest = |manager, path: &str, text: &str, given: Option<&str>| {
        let found = sources::scan(Format::of(Path::new(path), text).unwrap(), text, 0);
        key_dest(given.map(Path::new), manager, &found).map_err(|f| f.msg)
    };
    assert_eq!(
        dest(Manager::Apt, LIST, APT_LINE, None),
        Ok(Some(PathBuf::from(KEYRING)))
    );
    let two = format!("{APT_LINE}{}", APT_LINE.replace("deb ", "deb-src "));
    assert_eq!(
        dest(Manager::Apt, LIST, &two, None),
        Ok(Some(PathBuf::from(KEYRING)))
    );
    let unsigned = "deb https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n";
    let msg = dest(Manager::Apt, LIST, unsigned, None).unwrap_err();
    assert!(msg.contains("names no signed-by keyring"), "{msg}");
    let mixed = format!("{APT_LINE}{unsigned}");
    let msg = dest(Manager::Apt, LIST, &mixed, None).unwrap_err();
    assert!(msg.contains(&format!("they name: {KEYRING}")), "{msg}");
    let other = APT_LINE.replace("kubernetes-apt-keyring", "other");
    let msg = dest(Manager::Apt, LIST, &format!("{APT_LINE}{other}"), None).unwrap_err();
    assert!(
        msg.contains("/etc/apt/keyrings/kubernetes-apt-keyring.gpg, /etc/apt/keyrings/other.gpg"),
        "{msg}"
    );
    assert_eq!(
        dest(Manager::Apt, LIST, &mixed, Some("/k.gpg")),
        Ok(Some(PathBuf::from("/k.gpg")))
    );
    assert_eq!(
        dest(
            Manager::Rpm("dnf"),
            REPO,
            "[k]\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/\n",
            None
        ),
        Ok(None)
    );
}

#[test]
fn versions_name_their_minor() {
    for (v, m) in [
        ("v1.31.2", Some(31)),
        ("1.31.2", Some(31)),
        ("1.31", Some(31)),
        ("v1.31", Some(31)),
        (" 1.9 ", Some(9)),
        ("1.30.2-1.1", Some(30)),
        ("v1.31.0-alpha.1", Some(31)),
        ("2.0", None),
        ("1", None),
        ("1.", None),
        ("1.31-rc", None),
        ("1.31.", None),
        ("1.31.2 --force", None),
        ("v1.31.2\n1", None),
        ("stable-1.31", None),
        ("1.99999", None),
    ] {
        assert_eq!(minor(v), m, "{v:?}");
    }
}

// --- apply, on real files ---

fn temp_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn observe(args: &Value) -> Observed {
    PackageRepo::observe(&params(args.clone()), &Context::default()).unwrap()
}

#[test]
fn apply_writes_the_file_keeping_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_file(dir.path(), "kubernetes.list", APT_LINE, 0o640);
    let args = json!({"version": "1.31", "path": path, "update_cache": false});
    let seen = observe(&args);
    let plan = PackageRepo::plan(&params(args.clone()), &seen).unwrap();
    PackageRepo::apply(&params(args.clone()), seen, &plan).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        APT_LINE.replace("v1.30", "v1.31")
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o640
    );
}

#[test]
fn a_failed_refresh_puts_the_file_back_and_says_what_apt_said() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_file(dir.path(), "kubernetes.list", APT_LINE, 0o644);
    let args = json!({"version": "1.31", "path": path});
    let seen = observe(&args);
    let mut plan = PackageRepo::plan(&params(args.clone()), &seen).unwrap();
    // apt-get update as it fails on a minor that is not published.
    let stand_in = Command::new("sh").args([
        "-c",
        "echo 'Err:1 https://pkgs.k8s.io/core:/stable:/v1.31/deb  InRelease'; \
         echo 'E: Failed to fetch https://pkgs.k8s.io/core:/stable:/v1.31/deb/InRelease  403  Forbidden' >&2; exit 100",
    ]);
    let Some(last) = plan.actions.last_mut() else {
        panic!("no actions");
    };
    assert!(matches!(last, Action::Refresh(_)));
    *last = Action::Refresh(stand_in);
    let failure = PackageRepo::apply(&params(args), seen, &plan).unwrap_err();
    assert!(
        failure.msg.starts_with("refreshing the index with `sh -c"),
        "{}",
        failure.msg
    );
    assert!(
        failure
            .msg
            .contains(&format!("({} was put back as it was)", path.display())),
        "{}",
        failure.msg
    );
    assert!(
        failure
            .msg
            .ends_with("exit code 100: E: Failed to fetch https://pkgs.k8s.io/core:/stable:/v1.31/deb/InRelease  403  Forbidden"),
        "{}",
        failure.msg
    );
    assert_eq!(failure.command.as_ref().map(|o| o.rc), Some(100));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), APT_LINE);
}

#[test]
fn a_refresh_that_works_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = temp_file(
        dir.path(),
        "kubernetes.repo",
        "[k]\nbaseurl=file:///srv/core:/stable:/v1.30/rpm/\n",
        0o644,
    );
    let args = json!({"version": "1.31", "path": path, "manager": "dnf"});
    let seen = observe(&args);
    let mut plan = PackageRepo::plan(&params(args.clone()), &seen).unwrap();
    assert_eq!(
        refresh_argv(&plan).unwrap(),
        ["dnf", "-q", "makecache", "--disablerepo=*", "--enablerepo=k"]
    );
    if let Some(last) = plan.actions.last_mut() {
        *last = Action::Refresh(Command::new("true"));
    }
    let applied = PackageRepo::apply(&params(args), seen, &plan).unwrap();
    assert_eq!(applied.values["refreshed"], true);
    assert!(std::fs::read_to_string(&path).unwrap().contains("/v1.31/"));
}

#[test]
fn a_missing_keyring_directory_is_created_0755() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = dir.path().join("keyrings").join("kubernetes-apt-keyring.gpg");
    let line = APT_LINE.replace(KEYRING, &keyring.display().to_string());
    let path = temp_file(dir.path(), "kubernetes.list", &line, 0o644);
    let key = temp_file(
        dir.path(),
        "release.asc",
        &String::from_utf8(fixture("key-a.asc")).unwrap(),
        0o600,
    );
    let args = json!({"version": "1.31", "path": path, "update_cache": false, "key_path": key,
                      "key_fingerprint": fingerprint("key-a")});
    let seen = observe(&args);
    let plan = PackageRepo::plan(&params(args.clone()), &seen).unwrap();
    assert!(matches!(plan.actions[0], Action::Key { create_dir: true, .. }));
    PackageRepo::apply(&params(args.clone()), seen, &plan).unwrap();
    assert_eq!(std::fs::read(&keyring).unwrap(), fixture("key-a.gpg"));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&keyring), 0o644);
    assert_eq!(mode(keyring.parent().unwrap()), 0o755);
    // The second run finds both in place.
    let again = PackageRepo::plan(&params(args.clone()), &observe(&args)).unwrap();
    assert!(!again.changed(), "{:?}", again.actions);
}

/// The same as [`plan`]: for tests that shadow the name with a local.
fn tests_plan(args: Value, seen: &Observed) -> Plan<Action> {
    plan(args, seen)
}
