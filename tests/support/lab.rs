//! A real lab for a test: `dist/kup-lab up` in a temporary directory on a bridge of its own, torn
//! down (and checked to leave nothing behind) when dropped. Helpers reach nodes over real ssh and the
//! API server with real kubectl.

use crate::{dist, require_all};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct TestLab {
    pub dir: PathBuf,
    pub bridge: String,
    _tmp: tempfile::TempDir,
    pub inventory: PathBuf,
    /// The admin kubeconfig: through the cluster's virtual address (keepalived's).
    pub kubeconfig: PathBuf,
    /// The API server at its own address, whoever holds the virtual one (the lab's side channel).
    pub direct_kubeconfig: PathBuf,
    pub key: PathBuf,
    pub subnet: String,
    /// `apt` or `rpm`.
    pub flavour: String,
    /// Control planes and workers: nodes 1..=node_count.
    pub node_count: u8,
}

pub struct LabOptions<'a> {
    pub flavour: &'a str,
    pub from: &'a str,
    pub control_planes: usize,
    pub workers: usize,
    /// Distinct per concurrently running lab: bridge `kupt<id>`, subnet `10.213.<100+id>`.
    pub id: u8,
}

const SSH_OPTS: &[&str] = &[
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=10",
];

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

impl TestLab {
    /// Brings a lab up, or returns None (skipped) when this machine cannot run one and the full
    /// suite was not asked for.
    pub fn up(opts: LabOptions<'_>) -> Option<TestLab> {
        TestLab::up_with(opts, &[])
    }

    /// [`TestLab::up`] with more `kup-lab up` arguments (e.g. `--withhold 1.35.1`).
    pub fn up_with(opts: LabOptions<'_>, extra: &[&str]) -> Option<TestLab> {
        let kup_lab = dist().join("kup-lab");
        if !kup_lab.exists() || !is_root() {
            let why = format!(
                "a lab needs root and dist/kup-lab (scripts/build); root={}",
                is_root()
            );
            assert!(!require_all(), "{why}");
            eprintln!("SKIPPED: {why}");
            return None;
        }
        let tmp = tempfile::Builder::new()
            .prefix("kup-lab-test-")
            .tempdir()
            .expect("temp dir");
        let dir = tmp.path().join("lab");
        let bridge = format!("kupt{}", opts.id);
        let subnet = format!("10.213.{}", 100 + u32::from(opts.id));
        let out = Command::new(&kup_lab)
            .args(["up", "--dir"])
            .arg(&dir)
            .args(["--flavour", opts.flavour, "--from", opts.from])
            .args([
                "--control-planes",
                &opts.control_planes.to_string(),
                "--workers",
                &opts.workers.to_string(),
            ])
            .args(["--bridge", &bridge, "--subnet", &subnet])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .expect("kup-lab up");
        assert!(
            out.status.success(),
            "kup-lab up failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(TestLab {
            inventory: dir.join("inventory.ini"),
            kubeconfig: dir.join("kubeconfig"),
            direct_kubeconfig: dir.join("direct.kubeconfig"),
            key: dir.join("ssh/id_ed25519"),
            dir,
            bridge,
            subnet,
            flavour: opts.flavour.to_string(),
            node_count: u8::try_from(opts.control_planes + opts.workers).expect("at most 255 nodes"),
            _tmp: tmp,
        })
    }

    /// The address of the n-th node (1-based, control planes first).
    pub fn address(&self, n: u8) -> String {
        format!("{}.{}", self.subnet, 10 + n)
    }

    /// The cluster's virtual address (`.10` of the lab's subnet).
    pub fn vip(&self) -> String {
        format!("{}.10", self.subnet)
    }

    pub fn release_url(&self) -> String {
        format!("http://{}.1:8080", self.subnet)
    }

    /// Runs a command line on a node over real ssh.
    pub fn ssh(&self, node: u8, command: &str) -> Output {
        Command::new("ssh")
            .args(SSH_OPTS)
            .arg("-i")
            .arg(&self.key)
            .arg(format!("root@{}", self.address(node)))
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .expect("ssh")
    }

    /// Like `ssh`, but the command must succeed; returns its stdout.
    pub fn ssh_ok(&self, node: u8, command: &str) -> String {
        let out = self.ssh(node, command);
        assert!(
            out.status.success(),
            "`{command}` on node {node} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Copies release binaries from dist/ to /tmp/kup/ on a node.
    pub fn install_modules(&self, node: u8, modules: &[&str]) {
        self.ssh_ok(node, "mkdir -p /tmp/kup");
        let mut cmd = Command::new("scp");
        cmd.args(SSH_OPTS).arg("-q").arg("-i").arg(&self.key);
        for m in modules {
            cmd.arg(dist().join(m));
        }
        let out = cmd
            .arg(format!("root@{}:/tmp/kup/", self.address(node)))
            .output()
            .expect("scp");
        assert!(
            out.status.success(),
            "scp: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs a module on a node with JSON on stdin (as kup does); returns its result.
    pub fn module(&self, node: u8, module: &str, args: &Value) -> Value {
        self.module_with_env(node, module, "", args)
    }

    /// Like `module`, with environment assignments (`NAME=value ...`, test constants only).
    pub fn module_with_env(&self, node: u8, module: &str, env: &str, args: &Value) -> Value {
        let mut child = Command::new("ssh")
            .args(SSH_OPTS)
            .arg("-i")
            .arg(&self.key)
            .arg(format!("root@{}", self.address(node)))
            .arg(format!("{env} /tmp/kup/{module}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ssh");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(args.to_string().as_bytes()).expect("write args");
        }
        let out = child.wait_with_output().expect("ssh");
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim()).unwrap_or_else(|e| {
            panic!(
                "{module} on node {node}: not one JSON object ({e}): {text:?} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// Real kubectl with `kubeconfig`, whatever its outcome.
    pub fn kubectl_with(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        Command::new(kubectl())
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("kubectl")
    }

    /// Real kubectl against the API server's own address (answers while nobody holds the VIP).
    pub fn kubectl_direct(&self, args: &[&str]) -> String {
        let out = self.kubectl_with(&self.direct_kubeconfig, args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Real kubectl against the lab's API server, through the virtual address as users reach it.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_with(&self.kubeconfig, args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The nodes as the API server reports them: name -> (Ready, kubelet version).
    pub fn nodes(&self) -> Vec<(String, bool, String)> {
        let list: Value =
            serde_json::from_str(&self.kubectl(&["get", "nodes", "-o", "json"])).expect("node list");
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                let ready = n["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                (
                    n["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    ready,
                    n["status"]["nodeInfo"]["kubeletVersion"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect()
    }

    /// True when `node` is cordoned (`spec.unschedulable`) as real kubectl sees it.
    pub fn unschedulable(&self, node: &str) -> bool {
        self.kubectl(&["get", "node", node, "-o", "jsonpath={.spec.unschedulable}"])
            .trim()
            == "true"
    }

    /// How many evictions the lab API server let violate a PodDisruptionBudget.
    pub fn pdb_violations(&self) -> u64 {
        let v: Value = serde_json::from_str(&self.kubectl(&["get", "--raw", "/_lab/pdb-violations"]))
            .expect("pdb violations");
        v["count"].as_u64().expect("a count")
    }

    /// Every node Ready at `version` and the API server at `version`, as real kubectl sees them.
    pub fn assert_all_at(&self, version: &str) {
        let nodes = self.nodes();
        assert!(!nodes.is_empty());
        for (name, ready, v) in &nodes {
            assert!(
                *ready && v == version,
                "{name}: ready={ready} kubelet={v}, wanted {version}"
            );
        }
        let server: Value =
            serde_json::from_str(&self.kubectl(&["version", "-o", "json"])).expect("kubectl version");
        assert_eq!(server["serverVersion"]["gitVersion"], version, "{server}");
    }

    /// kube-system/kubeadm-config's documents, by key (`ClusterConfiguration`, `ClusterStatus`, ...),
    /// from the API server's own address (whoever holds the virtual one).
    pub fn kubeadm_config(&self) -> Value {
        let text = self.kubectl_direct(&[
            "-n",
            "kube-system",
            "get",
            "configmap",
            "kubeadm-config",
            "-o",
            "json",
        ]);
        serde_json::from_str::<Value>(&text).expect("kubeadm-config as JSON")["data"].clone()
    }

    /// What an upgrade to `to` (`1.27.16`) must leave on every node, whoever ran it: kubelet, kubeadm
    /// and kubectl at `to` and held (apt-mark hold, dnf versionlock), no kubelet flag `to`'s kubelet
    /// refuses left in `kubeadm-flags.env`, and from pkgs.k8s.io (1.24) the repository at `to`'s minor.
    pub fn assert_packages_at(&self, to: &str) {
        let minor: u32 = to
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .expect("a version like 1.27.16");
        for node in 1..=self.node_count {
            let (versions, holds) = if self.flavour == "apt" {
                (
                    self.ssh_ok(node, "dpkg-query -W -f '${Version} ' kubelet kubeadm kubectl"),
                    self.ssh_ok(node, "apt-mark showhold"),
                )
            } else {
                (
                    self.ssh_ok(node, "rpm -q --qf '%{VERSION} ' kubelet kubeadm kubectl"),
                    self.ssh_ok(node, "dnf -q versionlock list"),
                )
            };
            assert_eq!(
                versions.split_whitespace().filter(|v| v.starts_with(to)).count(),
                3,
                "node {node}: {versions}"
            );
            for package in ["kubelet", "kubeadm", "kubectl"] {
                assert!(
                    holds.contains(package),
                    "node {node}: {package} not held: {holds}"
                );
            }
            let flags = self.ssh_ok(node, "cat /var/lib/kubelet/kubeadm-flags.env 2>/dev/null || true");
            for flag in lab_standin::kubelet_files::parse_flags_env(&flags) {
                assert_eq!(
                    lab_standin::kubelet_files::refusal(minor, &flag),
                    None,
                    "node {node} keeps {flag}"
                );
            }
            if minor >= 24 {
                let definition = self.ssh_ok(
                    node,
                    "cat /etc/apt/sources.list.d/kubernetes.* /etc/yum.repos.d/kubernetes.repo 2>/dev/null || true",
                );
                assert!(
                    definition.contains(&format!("core:/stable:/v1.{minor}/")),
                    "node {node}: {definition}"
                );
            }
        }
    }

    /// Waits until `node` is Ready at `version` as real kubectl sees it.
    pub fn wait_node(&self, node: &str, version: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let nodes = self.nodes();
            if nodes
                .iter()
                .any(|(n, ready, v)| n == node && *ready && v == version)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{node} not Ready at {version} within {limit:?}: {nodes:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The kubectl tests use: `$KUBECTL` or the one on PATH.
pub fn kubectl() -> PathBuf {
    std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("kubectl"))
}

impl Drop for TestLab {
    fn drop(&mut self) {
        let _ = Command::new(dist().join("kup-lab"))
            .args(["down", "--dir"])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output();
    }
}

/// What a lab in `dir` on `bridge` may have left: processes, mounts, the bridge, the directory.
pub fn leftovers(dir: &Path, bridge: &str) -> Vec<String> {
    let mut found = Vec::new();
    let dir_text = dir.to_string_lossy();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(dir_text.as_ref()) && !cmdline.contains("cargo") {
                found.push(format!(
                    "process {}: {cmdline}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    found.extend(
        mounts
            .lines()
            .filter(|l| l.contains(dir_text.as_ref()))
            .map(|l| format!("mount: {l}")),
    );
    if Path::new("/sys/class/net").join(bridge).exists() {
        found.push(format!("bridge {bridge}"));
    }
    if dir.exists() {
        found.push(format!("directory {}", dir.display()));
    }
    found
}
