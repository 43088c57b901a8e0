//! Shared helpers of the integration tests: a server on loopback, kubectl binaries.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use lab_apiserver::{Cluster, Emulation, Handle, ServerConfig};

/// A server running on its own runtime, so tests can block on kubectl meanwhile.
pub struct Lab {
    pub rt: tokio::runtime::Runtime,
    pub handle: Option<Handle>,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

impl Lab {
    pub fn start(emu: Emulation, tls: bool, cluster: Cluster) -> Lab {
        Lab::start_with(emu, tls, cluster, |_| {})
    }

    /// Like `start`, with the server's configuration adjusted by `tweak` first.
    pub fn start_with(
        emu: Emulation,
        tls: bool,
        cluster: Cluster,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Lab {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut cfg = ServerConfig::new(emu, cluster);
        cfg.tls = tls;
        // client-go does not send bearer tokens over plain HTTP: a token only with TLS.
        cfg.token = tls.then(|| "lab-test-token".to_string());
        cfg.time_factor = 0.02;
        cfg.pod_startup_seconds = 1.0;
        cfg.node_grace = Duration::from_millis(600);
        tweak(&mut cfg);
        let handle = rt.block_on(lab_apiserver::start(cfg)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        handle.write_kubeconfig(&kubeconfig).unwrap();
        Lab {
            rt,
            handle: Some(handle),
            dir,
            kubeconfig,
        }
    }

    pub fn handle(&self) -> &Handle {
        self.handle.as_ref().unwrap()
    }

    /// Runs kubectl with this lab's kubeconfig and a private HOME (its discovery cache).
    pub fn kubectl(&self, bin: &Path, args: &[&str]) -> Output {
        Command::new(bin)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    }

    /// kubectl that must succeed; returns stdout.
    pub fn kubectl_ok(&self, bin: &Path, args: &[&str]) -> String {
        let out = self.kubectl(bin, args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        );
        stdout
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.stop());
        }
    }
}

/// `Some(path)` when available; `None` (with a notice) when not, unless `KUP_REQUIRE_ALL=1`,
/// which turns a missing client into a failure.
pub fn require(what: &str, path: Option<PathBuf>) -> Option<PathBuf> {
    match path.filter(|p| p.is_file()) {
        Some(p) => Some(p),
        None => {
            if std::env::var("KUP_REQUIRE_ALL").as_deref() == Ok("1") {
                panic!("{what} is required (KUP_REQUIRE_ALL=1) but missing");
            }
            println!("SKIPPED: {what} is not available; set it up to run this test");
            None
        }
    }
}

/// The newest kubectl of the Google Cloud SDK (`KUBECTL_MODERN` overrides).
pub fn modern_kubectl() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("KUBECTL_MODERN") {
        return require("KUBECTL_MODERN", Some(PathBuf::from(p)));
    }
    let dir = Path::new("/usr/lib/google-cloud-sdk/bin");
    let mut best: Option<(u32, PathBuf)> = None;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(minor) = name
                .strip_prefix("kubectl.1.")
                .and_then(|m| m.parse::<u32>().ok())
            {
                if best.as_ref().is_none_or(|(b, _)| minor > *b) {
                    best = Some((minor, e.path()));
                }
            }
        }
    }
    require(
        "Google Cloud SDK kubectl (/usr/lib/google-cloud-sdk/bin/kubectl.1.*)",
        best.map(|b| b.1),
    )
}

/// Debian's kubectl 1.20 from `KUBECTL_1_20` (see scripts/fetch-kubectl-1.20).
pub fn kubectl_1_20() -> Option<PathBuf> {
    require(
        "KUBECTL_1_20 (run scripts/fetch-kubectl-1.20 DIR and export KUBECTL_1_20=<printed path>)",
        std::env::var("KUBECTL_1_20").ok().map(PathBuf::from),
    )
}

/// Polls until `f` holds or the deadline passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}
