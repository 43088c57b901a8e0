//! The one test harness of the lab API server (feature `testing`): a server on loopback on a
//! runtime of its own (either emulated release, HTTP or HTTPS with a token), its kubeconfig, real
//! kubectl against it, and running a module binary against it. Used by this crate's tests and by
//! the API modules' tests.
// Test support: a failed expectation here is a failed test, so panicking is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::Kind;
use crate::{Cluster, Emulation, FaultSpec, Handle, ServerConfig};
use module_kit::testkit::{run_with_args_file, Ran};
use serde_json::Value;
use std::process::{Command, Output};

pub struct Lab {
    pub rt: tokio::runtime::Runtime,
    pub handle: Option<Handle>,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub emu: Emulation,
}

/// The four ways the modules are tested: 1.9 and 1.30, each over HTTP and over HTTPS + token.
pub fn matrix() -> Vec<(Emulation, bool)> {
    vec![
        (Emulation::V1_9, false),
        (Emulation::V1_9, true),
        (Emulation::V1_30, false),
        (Emulation::V1_30, true),
    ]
}

impl Lab {
    pub fn start(emu: Emulation, tls: bool, cluster: Cluster) -> Lab {
        Lab::start_with(emu, tls, cluster, |_| {})
    }

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
        let handle = rt.block_on(crate::start(cfg)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        handle.write_kubeconfig(&kubeconfig).unwrap();
        Lab {
            rt,
            handle: Some(handle),
            dir,
            kubeconfig,
            emu,
        }
    }

    pub fn handle(&self) -> &Handle {
        self.handle.as_ref().unwrap()
    }

    pub fn inject(&self, f: FaultSpec) {
        self.handle().inject(f).unwrap();
    }

    /// The object as the server stores it, if there is one (`namespace` "" for cluster-scoped kinds).
    pub fn stored(&self, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        self.handle()
            .with_store(|s| s.get(kind, namespace, name).cloned())
    }

    /// `kube-system/kubeadm-config` as stored; a test that asks for it expects it to be there.
    pub fn kubeadm_config(&self) -> Value {
        self.stored(Kind::ConfigMap, "kube-system", "kubeadm-config")
            .expect("kube-system/kubeadm-config is stored")
    }

    /// The Node `name` as stored; a test that asks for it expects it to be there.
    pub fn node(&self, name: &str) -> Value {
        self.stored(Kind::Node, "", name)
            .unwrap_or_else(|| panic!("node {name} is stored"))
    }

    /// Runs the module with `args` plus this lab's kubeconfig.
    pub fn run(&self, bin: &Path, mut args: Value) -> Ran {
        args.as_object_mut()
            .unwrap()
            .insert("kubeconfig".into(), self.kubeconfig.display().to_string().into());
        run_with_args_file(bin, &args).unwrap()
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

    pub fn label(&self) -> String {
        format!(
            "{} over {}",
            self.emu.git_version(),
            if self.handle().ca_pem().is_some() {
                "https"
            } else {
                "http"
            }
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.rt.block_on(h.stop());
        }
    }
}

/// `args` with `extra`'s keys added.
pub fn with(args: &Value, extra: Value) -> Value {
    let mut a = args.clone();
    a.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    a
}

/// The pods the server has on `node` (its store, as a field selector `spec.nodeName` lists them).
pub fn pods_on(lab: &Lab, node: &str) -> Vec<Value> {
    lab.handle().with_store(|s| {
        let f =
            crate::selector::FieldSelector::parse(&format!("spec.nodeName={node}"), Kind::Pod.field_labels())
                .unwrap();
        let (items, _) = s
            .list(Kind::Pod, None, &Default::default(), &f, None, None)
            .unwrap();
        items.into_iter().cloned().collect()
    })
}
