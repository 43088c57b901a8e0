#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `stage: true` with the real apt of this machine against a local signed repository (gpg-signed
//! `InRelease`, pkgs.k8s.io's per-minor layout under `file:`), with every apt and dpkg directory
//! private to the test (`APT_CONFIG`, `DPKG_ADMINDIR`): nothing on the host is read or changed.
//! The packages are empty (no files), so installing them writes only the private dpkg database.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_package_pin");
const PACKAGES: [&str; 3] = ["kubelet", "kubeadm", "kubectl"];

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A node's apt, private: sources, lists, cache, dpkg database; a signed repository per minor.
struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    /// `None` when this machine cannot run the test (not root, no apt or repository tools).
    fn new() -> Option<Node> {
        let root = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&root.stdout).trim() != "0" {
            eprintln!("skipped: needs root (apt's cache must be root-owned)");
            return None;
        }
        for tool in ["apt-get", "dpkg-deb", "dpkg-scanpackages", "gpg"] {
            if !have(tool) {
                eprintln!("skipped: no {tool}");
                return None;
            }
        }
        let node = Node {
            dir: tempfile::tempdir().unwrap(),
        };
        let t = node.path().to_path_buf();
        for sub in [
            "state/lists/partial",
            "cache/archives/partial",
            "dpkg/info",
            "dpkg/updates",
            "root",
            "parts",
            "log",
            "build",
            "staged",
        ] {
            std::fs::create_dir_all(t.join(sub)).unwrap();
        }
        for file in ["dpkg/status", "dpkg/available"] {
            std::fs::write(t.join(file), "").unwrap();
        }
        let d = t.display();
        std::fs::write(
            t.join("apt.conf"),
            format!(
                "Dir::State \"{d}/state\";\nDir::State::status \"{d}/dpkg/status\";\nDir::Cache \"{d}/cache\";\n\
                 Dir::Etc::sourcelist \"{d}/kubernetes.list\";\nDir::Etc::sourceparts \"-\";\n\
                 Dir::Etc::parts \"{d}/parts\";\nDir::Etc::preferencesparts \"{d}/parts\";\nDir::Log \"{d}/log\";\n\
                 APT::Sandbox::User \"root\";\n\
                 DPkg::Options {{ \"--root={d}/root\"; \"--admindir={d}/dpkg\"; \"--force-not-root\"; \"--force-script-chrootless\"; \"--log={d}/log/dpkg.log\"; }};\n"
            ),
        )
        .unwrap();
        // The signing key, and the keyring the repository file names.
        let gnupg = t.join("gnupg");
        std::fs::create_dir(&gnupg).unwrap();
        std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        node.gpg(&[
            "--quick-gen-key",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "kup stage test <stage@example.invalid>",
            "rsa2048",
            "sign",
            "never",
        ]);
        let key = node.gpg(&["--export"]);
        std::fs::write(t.join("keyring.gpg"), key).unwrap();
        node.publish("1.30", "1.30.2-1.1");
        // The node still points at v1.29 (which does not even exist here): staging must read the
        // repository switched to the target's minor.
        node.set_minor("1.29");
        Some(node)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn gpg(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("gpg")
            .env("GNUPGHOME", self.path().join("gnupg"))
            .args(["--batch", "--quiet", "--yes"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn repo(&self, minor: &str) -> PathBuf {
        self.path().join(format!("repo/core:/stable:/v{minor}/deb"))
    }

    /// Empty packages kubelet, kubeadm, kubectl at `version` in minor's repository, indexed and signed.
    fn publish(&self, minor: &str, version: &str) {
        let repo = self.repo(minor);
        std::fs::create_dir_all(&repo).unwrap();
        for p in PACKAGES {
            let build = self.path().join("build").join(p);
            std::fs::create_dir_all(build.join("DEBIAN")).unwrap();
            std::fs::write(
                build.join("DEBIAN/control"),
                format!("Package: {p}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.invalid>\nDescription: test {p}\n"),
            )
            .unwrap();
            let out = Command::new("dpkg-deb")
                .arg("--build")
                .arg(&build)
                .arg(repo.join(format!("{p}_{version}_all.deb")))
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        let out = Command::new("dpkg-scanpackages")
            .args(["-m", ".", "/dev/null"])
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(out.status.success());
        std::fs::write(repo.join("Packages"), &out.stdout).unwrap();
        let release = format!(
            "Origin: test\nLabel: test\nSuite: ./\nDate: Thu, 01 Jan 2026 00:00:00 UTC\nSHA256:\n {} {} Packages\n",
            sha256(&repo.join("Packages")),
            out.stdout.len()
        );
        std::fs::write(repo.join("Release"), release).unwrap();
        let (rel, inrel) = (repo.join("Release"), repo.join("InRelease"));
        self.gpg(&[
            "--clearsign",
            "-o",
            inrel.to_str().unwrap(),
            rel.to_str().unwrap(),
        ]);
    }

    fn list(&self) -> PathBuf {
        self.path().join("kubernetes.list")
    }

    fn set_minor(&self, minor: &str) {
        let text = format!(
            "deb [signed-by={}] file:{}/repo/core:/stable:/v{minor}/deb/ /\n",
            self.path().join("keyring.gpg").display(),
            self.path().display()
        );
        std::fs::write(self.list(), text).unwrap();
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("APT_CONFIG", self.path().join("apt.conf"))
            .env("DPKG_ADMINDIR", self.path().join("dpkg"));
    }

    fn archives(&self) -> PathBuf {
        self.path().join("cache/archives")
    }

    fn staged_root(&self) -> PathBuf {
        self.path().join("staged")
    }

    /// The `.deb`s in apt's cache.
    fn cached(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.archives())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".deb"))
            .collect();
        names.sort();
        names
    }

    fn apt_get(&self, args: &[&str]) {
        let mut cmd = Command::new("apt-get");
        self.env(&mut cmd);
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "apt-get {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn installed(&self) -> String {
        let mut cmd = Command::new("dpkg-query");
        self.env(&mut cmd);
        let out = cmd.args(["-W", "-f", "${Package}=${Version} "]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs the module with `args` (plus the node's repository file and staging root).
    fn run(&self, args: Value) -> Value {
        let mut args = args;
        args["manager"] = json!("apt");
        args["stage_dir"] = json!(self.staged_root());
        if args.get("repo_path").is_none() {
            args["repo_path"] = json!(self.list());
        }
        let file = self.path().join("args.json");
        std::fs::write(&file, args.to_string()).unwrap();
        let mut cmd = Command::new(BIN);
        self.env(&mut cmd);
        let out = cmd.arg(&file).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim()).unwrap_or_else(|_| panic!("not one JSON object: {text}"))
    }
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

fn ok(r: &Value) -> &Value {
    assert_ne!(r["failed"], json!(true), "{r:#}");
    r
}

const DEBS: [&str; 3] = [
    "kubeadm_1.30.2-1.1_all.deb",
    "kubectl_1.30.2-1.1_all.deb",
    "kubelet_1.30.2-1.1_all.deb",
];

#[test]
fn apt_stages_the_transaction_then_installs_it_from_the_cache() {
    let Some(node) = Node::new() else { return };
    let list_before = std::fs::read(node.list()).unwrap();
    let stage = json!({"version": "1.30.2", "stage": true, "hold": false});

    // Check mode: says what it would download, downloads nothing.
    let r = node
        .run(json!({"version": "1.30.2", "stage": true, "_ansible_check_mode": true, "_ansible_diff": true}));
    ok(&r);
    assert_eq!(r["changed"], json!(true), "{r:#}");
    assert_eq!(names(&r["staged"]), DEBS, "{r:#}");
    assert!(r["bytes"].as_u64().unwrap() > 0, "{r:#}");
    assert!(
        node.cached().is_empty(),
        "check mode downloaded {:?}",
        node.cached()
    );
    assert!(!node.staged_root().join("1.30.2").exists());

    // Staging: exactly the transaction's files, in apt's cache, byte for byte the repository's.
    let r = node.run(stage.clone());
    ok(&r);
    assert_eq!(r["changed"], json!(true), "{r:#}");
    assert_eq!(names(&r["staged"]), DEBS);
    assert_eq!(names(&r["downloaded"]), DEBS);
    assert_eq!(node.cached(), DEBS);
    for deb in DEBS {
        assert_eq!(
            sha256(&node.archives().join(deb)),
            sha256(&node.repo("1.30").join(deb))
        );
    }
    let manifest = std::fs::read_to_string(node.staged_root().join("1.30.2/apt-archives")).unwrap();
    assert_eq!(manifest.lines().count(), 3, "{manifest}");
    // Nothing installed, the node's repository file untouched.
    assert_eq!(node.installed(), "");
    assert_eq!(std::fs::read(node.list()).unwrap(), list_before);

    // Again: everything is staged already.
    let r = node.run(stage.clone());
    ok(&r);
    assert_eq!(r["changed"], json!(false), "{r:#}");
    assert_eq!(names(&r["staged"]), DEBS);

    // A cached file of the right size but the wrong content is not taken for staged: apt itself
    // would use it on its size alone.
    let tampered = node.archives().join(DEBS[2]);
    let mut bytes = std::fs::read(&tampered).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&tampered, &bytes).unwrap();
    let r = node.run(stage.clone());
    ok(&r);
    assert_eq!(r["changed"], json!(true), "{r:#}");
    assert_eq!(names(&r["downloaded"]), [DEBS[2]]);
    assert_eq!(sha256(&tampered), sha256(&node.repo("1.30").join(DEBS[2])));

    // The real switch and refresh; then the repository cannot serve the packages any more: the
    // install takes them from the cache.
    node.set_minor("1.30");
    node.apt_get(&["update", "-q"]);
    for deb in DEBS {
        std::fs::remove_file(node.repo("1.30").join(deb)).unwrap();
    }
    let r = node.run(json!({"version": "1.30.2", "hold": false}));
    ok(&r);
    assert_eq!(r["changed"], json!(true), "{r:#}");
    assert_eq!(
        node.installed(),
        "kubeadm=1.30.2-1.1 kubectl=1.30.2-1.1 kubelet=1.30.2-1.1"
    );
    // Cleanup: our files out of apt's cache, the version's staging directory gone.
    assert!(node.cached().is_empty(), "{:?}", node.cached());
    assert!(!node.staged_root().join("1.30.2").exists());
    assert!(r["staged_removed"].is_string(), "{r:#}");
}

#[test]
fn apt_unsafe_directories_are_refused_naming_them() {
    use std::os::unix::fs::PermissionsExt;
    let Some(node) = Node::new() else { return };
    let stage = json!({"version": "1.30.2", "stage": true});

    // apt's cache writable by everyone.
    std::fs::set_permissions(node.archives(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let r = node.run(stage.clone());
    assert_eq!(r["failed"], json!(true), "{r:#}");
    let msg = r["msg"].as_str().unwrap();
    assert!(msg.contains(&node.archives().display().to_string()), "{msg}");
    assert!(msg.contains("writable by everyone"), "{msg}");
    assert!(node.cached().is_empty());
    std::fs::set_permissions(node.archives(), std::fs::Permissions::from_mode(0o755)).unwrap();

    // The staging root writable by its group, then owned by someone else.
    std::fs::set_permissions(node.staged_root(), std::fs::Permissions::from_mode(0o770)).unwrap();
    let r = node.run(stage.clone());
    assert_eq!(r["failed"], json!(true), "{r:#}");
    let msg = r["msg"].as_str().unwrap();
    assert!(msg.contains(&node.staged_root().display().to_string()), "{msg}");
    assert!(node.cached().is_empty());
    std::fs::set_permissions(node.staged_root(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(node.staged_root(), Some(65534), None).unwrap();
    let r = node.run(stage.clone());
    assert_eq!(r["failed"], json!(true), "{r:#}");
    assert!(r["msg"].as_str().unwrap().contains("not root"), "{r:#}");

    // A version directory that is a symbolic link.
    std::os::unix::fs::chown(node.staged_root(), Some(0), None).unwrap();
    let elsewhere = node.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, node.staged_root().join("1.30.2")).unwrap();
    let r = node.run(stage);
    assert_eq!(r["failed"], json!(true), "{r:#}");
    assert!(r["msg"].as_str().unwrap().contains("symbolic link"), "{r:#}");
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
}
