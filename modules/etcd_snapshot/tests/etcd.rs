#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! etcd_snapshot against a real etcd (Debian's etcd-server, 3.4) on loopback with TLS and client
//! certificate authentication, certificates generated here: the module's facts are what
//! `etcdctl snapshot status` says of the same file, `etcdctl snapshot restore` restores it, a second
//! run changes nothing, check mode writes nothing, old snapshots beyond `keep` go (and nothing
//! else), a damaged copy is refused, and a wrong CA is a TLS error. Without etcd and etcdctl the
//! test is skipped with a notice, unless KUP_REQUIRE_ALL=1, which makes that a failure.

use module_kit::testkit::{merged, Intake, Ran};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const MODULE: Intake<etcd_snapshot::EtcdSnapshot> = Intake::new(env!("CARGO_BIN_EXE_etcd_snapshot"));

/// A program on PATH, or the skip/failure the repository's tests make for a missing prerequisite.
fn program(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("KUP_REQUIRE_ALL").as_deref() != Ok("1"),
            "{name} is required (KUP_REQUIRE_ALL=1) but missing (scripts/deps installs etcd-server etcd-client)"
        );
        eprintln!("SKIPPED: {name} is not installed (scripts/deps installs etcd-server etcd-client)");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA, a server certificate for 127.0.0.1 (server and client auth, as kubeadm's etcd/server has:
/// etcd's gateway dials etcd with it), and a client certificate, as PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    (params.self_signed(&key).unwrap(), key)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn pki(dir: &Path) -> Pki {
    let (ca_cert, ca_key) = ca("etcd-ca");
    let leaf = |names: Vec<String>, cn: &str, usages: Vec<ExtendedKeyUsagePurpose>| {
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = usages;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_pem, server_key) = leaf(
        vec!["127.0.0.1".into(), "localhost".into()],
        "etcd-server",
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    );
    let (client_pem, client_key) = leaf(
        Vec::new(),
        "kube-etcd-healthcheck-client",
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    );
    Pki {
        ca: write(dir, "ca.crt", &ca_cert.pem()),
        server_cert: write(dir, "server.crt", &server_pem),
        server_key: write(dir, "server.key", &server_key),
        client_cert: write(dir, "healthcheck-client.crt", &client_pem),
        client_key: write(dir, "healthcheck-client.key", &client_key),
    }
}

/// A one-member etcd on loopback; killed when dropped.
struct Etcd {
    child: Child,
    endpoint: String,
    etcdctl: PathBuf,
    pki: Pki,
    log: PathBuf,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Etcd {
    fn start(etcd: &Path, etcdctl: &Path, dir: &Path) -> Etcd {
        let pki = pki(dir);
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("https://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = dir.join("etcd.log");
        let child = Command::new(etcd)
            .args(["--name", "m0", "--data-dir"])
            .arg(dir.join("data"))
            .args([
                "--listen-client-urls",
                &endpoint,
                "--advertise-client-urls",
                &endpoint,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("m0={peer_url}")])
            .arg("--client-cert-auth")
            .arg("--trusted-ca-file")
            .arg(&pki.ca)
            .arg("--cert-file")
            .arg(&pki.server_cert)
            .arg("--key-file")
            .arg(&pki.server_key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let etcd = Etcd {
            child,
            endpoint,
            etcdctl: etcdctl.to_path_buf(),
            pki,
            log,
        };
        // Ready when it answers; a generous bound only so that a broken etcd fails the test.
        let until = Instant::now() + Duration::from_secs(60);
        while !etcd.ctl(&["endpoint", "health"]).status.success() {
            assert!(
                Instant::now() < until,
                "etcd did not come up: {}",
                etcd.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        etcd
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// etcdctl (v3 API) with the client certificate.
    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(&self.etcdctl)
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(&self.endpoint)
            .arg("--cacert")
            .arg(&self.pki.ca)
            .arg("--cert")
            .arg(&self.pki.client_cert)
            .arg("--key")
            .arg(&self.pki.client_key)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn put(&self, key: &str, value: &str) {
        let out = self.ctl(&["put", key, value]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    fn args(&self, dest: &Path) -> Value {
        json!({
            "target_version": "v1.31.2",
            "endpoint": self.endpoint,
            "cacert": self.pki.ca,
            "cert": self.pki.client_cert,
            "key": self.pki.client_key,
            "dest_dir": dest,
        })
    }
}

/// What `etcdctl snapshot status -w json` says of `path` (no endpoint involved).
fn etcdctl_status(etcdctl: &Path, path: &Path) -> Value {
    let out = Command::new(etcdctl)
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status", "-w", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn restore(etcdctl: &Path, path: &Path, data_dir: &Path) -> Output {
    Command::new(etcdctl)
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "restore"])
        .arg(path)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn ok(ran: &Ran) -> &Value {
    assert!(!ran.failed(), "{}", ran.stdout);
    &ran.json
}

#[test]
fn snapshots_of_a_real_etcd_verify_restore_and_agree_with_etcdctl() {
    let (Some(etcd_bin), Some(etcdctl)) = (program("etcd"), program("etcdctl")) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(&etcd_bin, &etcdctl, work.path());
    for i in 0..200 {
        etcd.put(
            &format!("/registry/pods/default/pod-{i:03}"),
            &format!("{{\"n\":{i}}}"),
        );
    }
    etcd.put("/registry/pods/default/pod-007", "changed");
    // A value of many pages: bbolt stores it in overflow pages.
    etcd.put("/registry/configmaps/default/big", &"0123456789".repeat(10_000));
    assert!(etcd
        .ctl(&["del", "/registry/pods/default/pod-008"])
        .status
        .success());

    let dest = work.path().join("state/etcd-snapshots");
    let args = etcd.args(&dest);

    // Check mode: where it would go and how large the database is; nothing is created.
    let check = MODULE.run(merged(
        &args,
        json!({"_ansible_check_mode": true, "_ansible_diff": true}),
    ));
    let r = ok(&check);
    assert_eq!(r["changed"], true, "{r}");
    assert!(r["db_size"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["etcd_version"].as_str().unwrap().split('.').next(), Some("3"));
    assert!(r["path"].as_str().unwrap().starts_with(dest.to_str().unwrap()));
    assert_eq!(r["diff"]["before"], json!({"snapshots": []}));
    assert!(
        r["msg"]
            .as_str()
            .unwrap()
            .starts_with("would take an etcd snapshot"),
        "{r}"
    );
    assert!(!dest.exists(), "check mode created {}", dest.display());
    assert!(!work.path().join("state").exists());

    // The snapshot: 0600 in a 0700 directory, its facts those etcdctl reports.
    let first = MODULE.run(args.clone());
    let r = ok(&first).clone();
    assert_eq!(
        (r["changed"].clone(), r["taken"].clone()),
        (json!(true), json!(true)),
        "{r}"
    );
    let path = PathBuf::from(r["path"].as_str().unwrap());
    assert_eq!(path.parent(), Some(dest.as_path()));
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    for d in [&dest, &work.path().join("state")] {
        assert_eq!(std::fs::metadata(d).unwrap().permissions().mode() & 0o777, 0o700);
    }
    assert_eq!(files(&dest), [path.file_name().unwrap().to_string_lossy()]);
    let status = etcdctl_status(&etcdctl, &path);
    assert_eq!(r["hash"], status["hash"], "{r} vs {status}");
    assert_eq!(r["revision"], status["revision"]);
    assert_eq!(r["total_key"], status["totalKey"]);
    assert_eq!(r["total_size"], status["totalSize"]);
    assert_eq!(
        r["size"].as_u64(),
        Some(status["totalSize"].as_u64().unwrap() + 32)
    );
    assert!(r["revision"].as_i64().unwrap() >= 202, "{r}");
    for field in ["sha256", "db_sha256"] {
        assert_eq!(r[field].as_str().unwrap().len(), 64, "{r}");
    }
    assert!(r["duration"].as_f64().is_some(), "{r}");
    assert!(!first.stdout.contains("PRIVATE KEY"), "{}", first.stdout);

    // The same file taken by etcdctl verifies to the same database facts.
    let by_etcdctl = work.path().join("etcdctl.db");
    let saved = etcd.ctl(&["snapshot", "save", by_etcdctl.to_str().unwrap()]);
    assert!(
        saved.status.success(),
        "{}",
        String::from_utf8_lossy(&saved.stderr)
    );
    let theirs = etcd_snapshot::verify(&by_etcdctl).unwrap();
    assert_eq!(theirs.revision, r["revision"].as_i64().unwrap());
    assert_eq!(theirs.total_key, r["total_key"].as_u64().unwrap());

    // etcdctl restores it (checking the sha256), with the keys in it.
    let restored = work.path().join("restored");
    let out = restore(&etcdctl, &path, &restored);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(restored.join("member/snap/db").is_file());

    // A second run for the same target changes nothing.
    let again = MODULE.run(merged(&args, json!({"_ansible_diff": true})));
    let r2 = ok(&again);
    assert_eq!(
        (r2["changed"].clone(), r2["taken"].clone()),
        (json!(false), json!(false)),
        "{r2}"
    );
    assert_eq!(r2["path"], r["path"]);
    assert_eq!(r2["hash"], r["hash"]);
    assert_eq!(r2["diff"]["before"], r2["diff"]["after"]);
    assert_eq!(files(&dest).len(), 1);

    // A damaged copy: the module's verification refuses it, and so does etcdctl's restore.
    let damaged_dir = work.path().join("damaged");
    std::fs::create_dir(&damaged_dir).unwrap();
    let damaged = damaged_dir.join(path.file_name().unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&damaged, &bytes).unwrap();
    let err = etcd_snapshot::verify(&damaged).unwrap_err();
    assert!(err.contains("is damaged: etcd appended sha256"), "{err}");
    let out = restore(&etcdctl, &damaged, &work.path().join("restored-damaged"));
    assert!(!out.status.success(), "etcdctl restored a damaged snapshot");

    // In the module's directory as the target's snapshot, it is not counted: a new one is taken.
    std::fs::set_permissions(&damaged_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let run = MODULE.run(merged(&etcd.args(&damaged_dir), json!({"keep": 5})));
    let r3 = ok(&run);
    assert_eq!(r3["taken"], true, "{r3}");
    let warnings = r3["warnings"].to_string();
    assert!(
        warnings.contains("is damaged") && warnings.contains("not counted"),
        "{r3}"
    );
    assert_eq!(files(&damaged_dir).len(), 2);

    // Another target: check mode writes nothing; force retakes; keep removes the oldest of ours only.
    std::fs::write(dest.join("operator-notes.db"), "mine").unwrap();
    let other = merged(&args, json!({"target_version": "1.32.0", "keep": 2}));
    let before = files(&dest);
    let r4 = MODULE.run(merged(&other, json!({"_ansible_check_mode": true})));
    assert_eq!(ok(&r4)["changed"], true);
    assert_eq!(files(&dest), before, "check mode wrote");
    assert_eq!(ok(&MODULE.run(other.clone()))["taken"], true);
    etcd.put("/registry/after", "x");
    // A partial snapshot left by a run that was killed long ago goes too; a fresh one (a live run's)
    // stays.
    let stale = dest.join(".etcd-snapshot-v1.30.0-20200101T000000.000Z.db.part");
    let fresh = dest.join(".etcd-snapshot-v1.32.0-20991231T000000.000Z.db.part");
    for part in [&stale, &fresh] {
        std::fs::write(part, "partial").unwrap();
    }
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000))
        .unwrap();
    let forced = MODULE.run(merged(&other, json!({"force": true})));
    let r5 = ok(&forced);
    assert_eq!(r5["taken"], true, "{r5}");
    assert!(
        r5["msg"]
            .as_str()
            .unwrap()
            .contains("(left by an interrupted run)"),
        "{r5}"
    );
    assert!(!stale.exists() && fresh.exists());
    std::fs::remove_file(&fresh).unwrap();
    assert_eq!(
        r5["removed"],
        json!([path.file_name().unwrap().to_string_lossy()]),
        "{r5}"
    );
    let left = files(&dest);
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.contains(&"operator-notes.db".to_string()), "{left:?}");
    assert!(
        left.iter()
            .filter(|n| n.starts_with("etcd-snapshot-v1.32.0-"))
            .count()
            == 2,
        "{left:?}"
    );
    assert!(r5["revision"].as_i64().unwrap() > r["revision"].as_i64().unwrap());

    // A CA that did not sign etcd's certificate: TLS refuses, nothing is written.
    let (wrong_ca, wrong_key) = ca("some-other-ca");
    let wrong = write(work.path(), "wrong-ca.crt", &wrong_ca.pem());
    let refused = MODULE.run(merged(
        &args,
        json!({"cacert": wrong, "force": true, "dest_dir": work.path().join("never")}),
    ));
    refused.assert_failed_saying(&[
        "cannot reach etcd at",
        "UnknownIssuer",
        "etcd's serving certificate is not signed by the CA of cacert",
    ]);
    assert!(!work.path().join("never").exists());
    // A client certificate etcd does not trust: etcd refuses it.
    let stranger_key = write(work.path(), "stranger.key", &wrong_key.serialize_pem());
    let refused = MODULE.run(merged(
        &args,
        json!({"cert": wrong, "key": stranger_key, "force": true, "dest_dir": work.path().join("never")}),
    ));
    refused.assert_failed_saying(&["etcd refused the client certificate"]);
    assert!(!refused.stdout.contains("PRIVATE KEY"));
    assert!(!work.path().join("never").exists());

    // A directory others can write to is refused before etcd is asked anything.
    let open = work.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    MODULE
        .run(etcd.args(&open))
        .assert_failed_saying(&["refusing dest_dir", "writable by its group or by everyone"]);
    assert!(files(&open).is_empty());
}
