// Tests: a failed expectation is a failed test, so panicking is their job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The lab's package repositories, checked with the real package managers of this machine (apt-get
//! and dnf, each with private state in a temporary directory, nothing installed on the host): one
//! pkgs.k8s.io repository per minor, signatures verified, dependencies as the real packages declare.

use e2e::{dist_binary, output_text};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `kup-lab repo`: builds (once, in the shared cache) and describes the repositories.
fn repositories() -> Option<Value> {
    let kup_lab = dist_binary("kup-lab")?;
    let out = Command::new(kup_lab).arg("repo").output().expect("kup-lab repo");
    assert!(out.status.success(), "kup-lab repo:\n{}", output_text(&out));
    Some(serde_json::from_slice(&out.stdout).expect("kup-lab repo prints JSON"))
}

fn served(repos: &Value) -> PathBuf {
    PathBuf::from(repos["served"].as_str().unwrap())
}

/// A repository definition as nodes have it, pointed at the built tree instead of the node's mount
/// and at the built keyring instead of the node's copy.
fn on_host(repos: &Value, definition: &str) -> String {
    let text = definition.replace(repos["mount"].as_str().unwrap(), &served(repos).to_string_lossy());
    match text.find("signed-by=") {
        Some(_) => text.replace(
            &keyring_in(&text),
            &served(repos)
                .join("keys/kubernetes-apt-keyring.gpg")
                .to_string_lossy(),
        ),
        None => text,
    }
}

fn definition(repos: &Value, version: &str, key: &str) -> String {
    let release = repos["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == version)
        .unwrap_or_else(|| panic!("the lab has no {version}"));
    on_host(repos, release[key].as_str().unwrap())
}

/// apt-get with every directory of its own (sources, lists, cache, dpkg status).
struct Apt {
    dir: tempfile::TempDir,
}

/// The system packages the kubelet package depends on, as a dpkg status file lists them installed.
const SYSTEM: &[&str] = &[
    "iptables",
    "iproute2",
    "socat",
    "util-linux",
    "mount",
    "ethtool",
    "conntrack",
    "ebtables",
];

impl Apt {
    fn new(sources: &str, installed: &[(&str, &str, bool)]) -> Apt {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["parts", "state/lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let apt = Apt { dir };
        apt.set_sources(sources);
        let mut status: String = SYSTEM
            .iter()
            .map(|p| format!("Package: {p}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 9.9\nDescription: system\n\n"))
            .collect();
        for (name, version, held) in installed {
            let want = if *held { "hold" } else { "install" };
            status.push_str(&format!(
                "Package: {name}\nStatus: {want} ok installed\nArchitecture: amd64\nVersion: {version}\nDescription: installed\n\n"
            ));
        }
        std::fs::write(apt.dir.path().join("status"), status).unwrap();
        apt
    }

    fn set_sources(&self, sources: &str) {
        std::fs::write(self.dir.path().join("sources.list"), sources).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        let at = |p: &str| self.dir.path().join(p).to_string_lossy().into_owned();
        let options = [
            format!("Dir::Etc::sourcelist={}", at("sources.list")),
            format!("Dir::Etc::sourceparts={}", at("parts")),
            format!("Dir::State={}", at("state")),
            format!("Dir::State::status={}", at("status")),
            format!("Dir::Cache={}", at("cache")),
            "APT::Sandbox::User=root".to_string(),
        ];
        let mut command = Command::new("apt-get");
        for option in &options {
            command.args(["-o", option]);
        }
        command.args(args).env("LC_ALL", "C").output().expect("apt-get")
    }
}

fn has_apt() -> bool {
    Command::new("apt-get")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn apt_sees_the_next_minor_only_after_the_repository_switch_and_an_update() {
    let Some(repos) = repositories() else { return };
    assert!(has_apt(), "apt-get is needed");
    let apt = Apt::new(&definition(&repos, "1.34.2", "apt_source"), &[]);
    let update = apt.run(&["update"]);
    assert!(update.status.success(), "{}", output_text(&update));

    let next = [
        "-s",
        "install",
        "kubelet=1.35.1-1.1",
        "kubeadm=1.35.1-1.1",
        "kubectl=1.35.1-1.1",
    ];
    let before = apt.run(&next);
    assert!(!before.status.success(), "1.35 seen in the v1.34 repository");
    assert!(
        output_text(&before).contains("Version '1.35.1-1.1' for 'kubelet' was not found"),
        "{}",
        output_text(&before)
    );
    let same_minor = apt.run(&["-s", "install", "kubelet=1.34.2-1.1", "kubeadm=1.34.2-1.1"]);
    assert!(same_minor.status.success(), "{}", output_text(&same_minor));

    apt.set_sources(&definition(&repos, "1.35.1", "apt_source"));
    let stale = apt.run(&next);
    assert!(
        !stale.status.success(),
        "the index changed without apt-get update"
    );
    let update = apt.run(&["update"]);
    assert!(update.status.success(), "{}", output_text(&update));
    let after = apt.run(&next);
    let text = output_text(&after);
    assert!(after.status.success(), "{text}");
    // The dependencies come from the repository: cri-tools (kubeadm) and kubernetes-cni (kubelet).
    assert!(text.contains("Inst cri-tools (1.35.0-1.1"), "{text}");
    assert!(text.contains("Inst kubernetes-cni (1.8.0-1.1"), "{text}");
}

#[test]
fn apt_refuses_an_unsigned_or_wrongly_signed_repository() {
    let Some(repos) = repositories() else { return };
    let signed = definition(&repos, "1.31.9", "apt_source");
    let unsigned = signed.replace(&format!("[signed-by={}] ", keyring_in(&signed)), "");
    assert_ne!(signed, unsigned);
    let apt = Apt::new(&unsigned, &[]);
    let update = apt.run(&["update"]);
    let text = output_text(&update);
    assert!(
        !update.status.success(),
        "an unsigned repository was accepted:\n{text}"
    );
    assert!(text.contains("is not signed"), "{text}");

    // Signed by a key apt was not told to trust: another key in signed-by.
    let other = tempfile::tempdir().unwrap();
    let (keyring, _) = other_key(other.path());
    let apt = Apt::new(
        &signed.replace(&keyring_in(&signed), &keyring.to_string_lossy()),
        &[],
    );
    let update = apt.run(&["update"]);
    let text = output_text(&update);
    assert!(!update.status.success(), "a wrong key was accepted:\n{text}");
    assert!(text.contains("NO_PUBKEY"), "{text}");
    let install = apt.run(&["-s", "install", "kubelet=1.31.9-1.1"]);
    assert!(!install.status.success(), "{}", output_text(&install));
}

fn keyring_in(definition: &str) -> String {
    let start = definition.find("signed-by=").unwrap() + "signed-by=".len();
    definition[start..].split(']').next().unwrap().to_string()
}

/// A freshly made key that signed nothing of the lab's: (binary keyring, ASCII-armored key).
fn other_key(dir: &Path) -> (PathBuf, PathBuf) {
    let home = dir.join("gnupg");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(&home)
            .args([
                "--batch",
                "--yes",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .output()
            .expect("gpg");
        assert!(out.status.success(), "gpg {args:?}: {}", output_text(&out));
    };
    gpg(&[
        "--quick-gen-key",
        "someone else <else@localhost>",
        "rsa2048",
        "sign",
        "never",
    ]);
    let keyring = dir.join("other.gpg");
    gpg(&[
        "--output",
        &keyring.to_string_lossy(),
        "--export",
        "else@localhost",
    ]);
    let armored = dir.join("other.asc");
    gpg(&[
        "--armor",
        "--output",
        &armored.to_string_lossy(),
        "--export",
        "else@localhost",
    ]);
    let _ = Command::new("gpgconf")
        .arg("--homedir")
        .arg(&home)
        .args(["--kill", "all"])
        .output();
    (keyring, armored)
}

#[test]
fn apt_resolves_dependencies_as_the_real_legacy_packages_declared_them() {
    let Some(repos) = repositories() else { return };
    let sources = definition(&repos, "1.8.3", "apt_source");
    // A fresh 1.8 install without pinning kubernetes-cni fails as it did upstream
    // (kubernetes/kubernetes issue #57334): kubelet 1.8 wants exactly 0.5.1, apt picks the newest.
    let fresh = Apt::new(&sources, &[]);
    assert!(fresh.run(&["update"]).status.success());
    let unpinned = fresh.run(&["-s", "install", "kubelet=1.8.3-00"]);
    let text = output_text(&unpinned);
    assert!(!unpinned.status.success(), "{text}");
    assert!(
        text.contains("kubelet : Depends: kubernetes-cni (= 0.5.1)"),
        "{text}"
    );

    // A 1.8 node with its packages held: 1.9's kubelet needs kubernetes-cni >= 0.6.0, so
    // upgrading kubelet/kubeadm/kubectl alone fails until kubernetes-cni moves with them.
    let node = Apt::new(
        &sources,
        &[
            ("kubelet", "1.8.3-00", true),
            ("kubeadm", "1.8.3-00", true),
            ("kubectl", "1.8.3-00", true),
            ("kubernetes-cni", "0.5.1-00", true),
        ],
    );
    assert!(node.run(&["update"]).status.success());
    let three = [
        "-s",
        "install",
        "--allow-change-held-packages",
        "kubelet=1.9.2-00",
        "kubeadm=1.9.2-00",
        "kubectl=1.9.2-00",
    ];
    let without_cni = node.run(&three);
    let text = output_text(&without_cni);
    assert!(!without_cni.status.success(), "{text}");
    assert!(
        text.contains("kubelet : Depends: kubernetes-cni (>= 0.6.0) but 0.5.1-00 is to be installed"),
        "{text}"
    );
    let with_cni = node.run(&[&three[..], &["kubernetes-cni=0.6.0-00"]].concat());
    assert!(with_cni.status.success(), "{}", output_text(&with_cni));
}

/// dnf with an install root of its own; installs for real into it (its own rpm database).
struct Dnf {
    root: tempfile::TempDir,
}

impl Dnf {
    fn new(repo: &str) -> Dnf {
        let dnf = Dnf {
            root: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(dnf.root.path().join("etc/yum.repos.d")).unwrap();
        dnf.set_repo(repo);
        dnf
    }

    fn set_repo(&self, repo: &str) {
        std::fs::write(self.root.path().join("etc/yum.repos.d/kubernetes.repo"), repo).unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        let root = self.root.path().to_string_lossy().into_owned();
        Command::new("dnf")
            .args(["-y", "--disableplugin=local", "--releasever=7"])
            .arg(format!("--installroot={root}"))
            .arg(format!("--setopt=reposdir={root}/etc/yum.repos.d"))
            .arg(format!("--setopt=cachedir={root}/var/cache/dnf"))
            .args(args)
            .env("LC_ALL", "C")
            .output()
            .expect("dnf")
    }

    fn installed(&self) -> String {
        let out = Command::new("rpm")
            .arg("--root")
            .arg(self.root.path())
            .args(["-qa", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}\\n"])
            .output()
            .expect("rpm");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn has_dnf() -> bool {
    Command::new("dnf")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn dnf_sees_the_next_minor_only_after_the_switch_and_verifies_signatures() {
    let Some(repos) = repositories() else { return };
    assert!(has_dnf(), "dnf is needed (scripts/deps installs it)");
    let dnf = Dnf::new(&definition(&repos, "1.34.2", "yum_repo"));
    let packages = [
        "--disableexcludes=kubernetes",
        "install",
        "kubelet-1.35.0",
        "kubeadm-1.35.0",
    ];
    let before = dnf.run(&packages);
    assert!(
        !before.status.success(),
        "1.35 installed from the v1.34 repository"
    );
    assert!(
        output_text(&before).contains("No match for argument: kubelet-1.35.0"),
        "{}",
        output_text(&before)
    );
    // The repository excludes its own packages: without --disableexcludes nothing is offered.
    let excluded = dnf.run(&["install", "kubelet-1.34.2"]);
    assert!(!excluded.status.success(), "{}", output_text(&excluded));

    dnf.set_repo(&definition(&repos, "1.35.0", "yum_repo"));
    let after = dnf.run(&packages);
    assert!(after.status.success(), "{}", output_text(&after));
    let installed = dnf.installed();
    for want in [
        "kubelet-1.35.0-150500.1.1",
        "kubeadm-1.35.0-150500.1.1",
        "cri-tools-1.35.0-150500.1.1",
        "kubernetes-cni-1.8.0-150500.1.1",
    ] {
        assert!(installed.contains(want), "{want} not installed:\n{installed}");
    }

    // The same repository with another key as its gpgkey: the packages' signatures fail.
    let other = tempfile::tempdir().unwrap();
    let (_, armored) = other_key(other.path());
    let repo = definition(&repos, "1.35.0", "yum_repo");
    let wrong = repo
        .lines()
        .map(|l| {
            if l.starts_with("gpgkey=") {
                format!("gpgkey=file://{}", armored.display())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let dnf = Dnf::new(&wrong);
    let refused = dnf.run(&packages);
    let text = output_text(&refused);
    assert!(!refused.status.success(), "a wrong key was accepted:\n{text}");
    assert!(text.contains("GPG check FAILED"), "{text}");
    assert!(!dnf.installed().contains("kubelet"), "{}", dnf.installed());
}
