//! The runbook, in order: preflight -> kubeadm on the first control plane (download, nodeName,
//! apply) -> each other control plane (apply retried, or `upgrade node` from 1.15) -> control-plane
//! nodes one by one (cordon, stop, pin, start, Ready, uncordon) -> workers in batches (drain ...) ->
//! verify. The first failure stops the rollout and says where, what and what to do.

use crate::inventory::{Host, Inventory};
use crate::journal::Journal;
use crate::report::{Reporter, StepEvent};
use crate::transport::Transport;
use kube_version::Version;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Options {
    pub target: String,
    pub workers_batch: usize,
    pub retry_delay: u64,
    pub base_url: String,
    pub cni_version: Option<String>,
    pub force_drain: bool,
    pub drain_timeout: u64,
    pub ready_timeout: u64,
}

/// Why a rollout stopped.
#[derive(Debug)]
pub enum Stop {
    Failed {
        host: String,
        step: String,
        msg: String,
        fix: String,
    },
    Interrupted,
    Setup(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Failed { host, step, msg, fix } => {
                write!(f, "{host}: step {step} failed: {msg}\n  what to do: {fix}")
            }
            Stop::Interrupted => write!(
                f,
                "interrupted: stopped after the current step; rerun the same command to resume"
            ),
            Stop::Setup(msg) => write!(f, "{msg}"),
        }
    }
}

pub struct Run<'a> {
    pub inventory: &'a Inventory,
    pub transport: &'a Transport,
    pub opts: Options,
    pub journal: Mutex<Journal>,
    pub reporter: &'a Reporter,
    pub interrupted: Arc<AtomicBool>,
}

const API_MODULES: &[&str] = &[
    "node_drain",
    "node_ready",
    "kubeadm_config_nodename",
    "cluster_survey",
];

impl Run<'_> {
    fn primary(&self) -> &Host {
        &self.inventory.control_plane[0]
    }

    /// Where a module runs: API modules on this machine when the inventory gives a kubeconfig,
    /// else on the first control plane (its admin.conf); host modules on their host.
    fn place<'h>(&'h self, module: &str, host: &'h Host) -> (Option<&'h Host>, Option<String>) {
        if API_MODULES.contains(&module) {
            match self.inventory.var("kubeconfig") {
                Some(kubeconfig) => (None, Some(kubeconfig)),
                None => (Some(self.primary()), None),
            }
        } else {
            (Some(host), None)
        }
    }

    /// Runs one module for `host` unless the journal has it; records it when done.
    fn step(
        &self,
        host: &Host,
        step: &str,
        module: &str,
        mut args: Value,
        journaled: bool,
    ) -> Result<Value, Stop> {
        let key = format!("{}/{step}", host.name);
        if journaled && self.journal.lock().map(|j| j.is_done(&key)).unwrap_or(false) {
            self.reporter.step(StepEvent::skipped(&host.name, step, module));
            return Ok(Value::Null);
        }
        if self.interrupted.load(Ordering::SeqCst) {
            return Err(Stop::Interrupted);
        }
        let (run_on, kubeconfig) = self.place(module, host);
        if let (Some(k), Some(obj)) = (kubeconfig, args.as_object_mut()) {
            obj.insert("kubeconfig".into(), json!(k));
        }
        self.reporter.running(&host.name, step);
        let started = Instant::now();
        let result = self
            .transport
            .run(run_on, module, &args)
            .map_err(|msg| Stop::Failed {
                host: host.name.clone(),
                step: step.to_string(),
                msg,
                fix: "check that the host is reachable over ssh, then rerun the same command".into(),
            })?;
        let seconds = started.elapsed().as_secs_f64();
        let failed = result["failed"].as_bool().unwrap_or(true);
        self.reporter
            .step(StepEvent::ran(&host.name, step, module, &result, seconds));
        if failed {
            return Err(Stop::Failed {
                host: host.name.clone(),
                step: step.to_string(),
                msg: result["msg"].as_str().unwrap_or("no message").to_string(),
                fix: fix_for(step),
            });
        }
        if journaled {
            let mut journal = self
                .journal
                .lock()
                .map_err(|_| Stop::Setup("journal lock poisoned".into()))?;
            journal.mark(&key).map_err(Stop::Setup)?;
        }
        Ok(result)
    }

    /// The target version, resolving a channel (`stable-1.9`) with the release server.
    pub fn resolve_target(&self) -> Result<Version, Stop> {
        if let Some(v) = Version::parse(&self.opts.target) {
            return Ok(v);
        }
        let primary = self.primary();
        let args =
            json!({"version": self.opts.target, "base_url": self.opts.base_url, "_ansible_check_mode": true});
        let result = self.step(primary, "resolve-channel", "kubeadm_download", args, false)?;
        result["version"]
            .as_str()
            .and_then(Version::parse)
            .ok_or_else(|| {
                Stop::Setup(format!(
                    "channel {} did not resolve to a version",
                    self.opts.target
                ))
            })
    }

    pub fn preflight(&self, target: Version) -> Result<(), Stop> {
        let primary = self.primary();
        // kubeadm is not downloaded yet; kubeadm_upgrade checks it before it runs.
        self.step(
            primary,
            "preflight",
            "upgrade_preflight",
            json!({"version": target.to_string(), "skip": ["kubeadm"]}),
            false,
        )?;
        // The other hosts' local checks are read-only and independent: all at once (this is also
        // each host's first contact: the ssh master and the copy of kup).
        let local_only = json!({"version": target.to_string(),
                                "skip": ["kubeadm", "version_skew", "api", "nodes_ready", "control_plane"]});
        let others: Vec<&Host> = self.inventory.all_hosts().skip(1).collect();
        self.on_each(&others, |host| {
            self.step(host, "preflight", "upgrade_preflight", local_only.clone(), false)
                .map(|_| ())
        })
    }

    /// Runs `job` for every host concurrently; the first failure in inventory order wins.
    fn on_each<F>(&self, hosts: &[&Host], job: F) -> Result<(), Stop>
    where
        F: Fn(&Host) -> Result<(), Stop> + Sync,
    {
        let results: Vec<Result<(), Stop>> = std::thread::scope(|scope| {
            let job = &job;
            let running: Vec<_> = hosts.iter().map(|h| scope.spawn(move || job(h))).collect();
            running
                .into_iter()
                .map(|r| {
                    r.join()
                        .unwrap_or_else(|_| Err(Stop::Setup("a host's thread crashed".into())))
                })
                .collect()
        });
        results.into_iter().collect()
    }

    pub fn control_plane_kubeadm(&self, target: Version) -> Result<(), Stop> {
        let uses_node = (target.major, target.minor) >= (1, 15);
        for (i, host) in self.inventory.control_plane.iter().enumerate() {
            let download = json!({"version": target.to_string(), "base_url": self.opts.base_url, "dest": "/tmp/kubeadm"});
            self.step(host, "kubeadm-download", "kubeadm_download", download, true)?;
            let apply = i == 0 || !uses_node;
            if apply && !uses_node {
                let nodename = json!({"node_name": host.node_name()});
                self.step(
                    host,
                    "kubeadm-config-nodename",
                    "kubeadm_config_nodename",
                    nodename,
                    true,
                )?;
            }
            let args = if apply {
                json!({"action": "apply", "version": target.to_string(), "retries": 1, "retry_delay": self.opts.retry_delay})
            } else {
                json!({"action": "node", "version": target.to_string(), "retries": 1, "retry_delay": self.opts.retry_delay})
            };
            self.step(
                host,
                if apply { "kubeadm-apply" } else { "kubeadm-node" },
                "kubeadm_upgrade",
                args,
                true,
            )?;
        }
        Ok(())
    }

    /// One node's package upgrade, with cordon (control plane) or drain (worker) around it.
    /// Skipped when the node already runs the target with the packages pinned.
    pub fn upgrade_node(&self, host: &Host, target: Version, worker: bool) -> Result<(), Stop> {
        let node = host.node_name();
        let pin = {
            let mut args = json!({"version": target.to_string().trim_start_matches('v')});
            if let Some(cni) = &self.opts.cni_version {
                args["cni_version"] = json!(cni);
            }
            if let Some(manager) = host.var("package_manager") {
                args["manager"] = json!(manager);
            }
            args
        };
        // A node this rollout already began on is finished, never skipped: it may still be cordoned.
        let begun = self
            .journal
            .lock()
            .map(|j| {
                ["cordon", "drain"]
                    .iter()
                    .any(|s| j.is_done(&format!("{}/{s}", host.name)))
            })
            .unwrap_or(false);
        if !begun {
            let mut check = pin.clone();
            check["_ansible_check_mode"] = json!(true);
            let pinned = self.step(host, "packages-check", "package_pin", check, false)?;
            let ready = json!({"names": [node], "kubelet_version": target.to_string(), "timeout": 0});
            let at_target = self.step_quiet(host, "node_ready", ready);
            if pinned["changed"] == false && at_target {
                self.reporter
                    .note(&host.name, &format!("already at {target}: nothing to do"));
                return Ok(());
            }
        }
        let units = json!([
            "keepalived",
            "kubelet",
            host.var("container_runtime").unwrap_or_else(|| "docker".into())
        ]);
        if worker {
            let drain = json!({"name": node, "state": "drain", "ignore_daemonsets": true, "delete_emptydir_data": true,
                               "force": self.opts.force_drain, "timeout": self.opts.drain_timeout});
            self.step(host, "drain", "node_drain", drain, true)?;
        } else {
            self.step(
                host,
                "cordon",
                "node_drain",
                json!({"name": node, "state": "cordon"}),
                true,
            )?;
        }
        self.step(
            host,
            "stop-services",
            "service_state",
            json!({"units": units, "state": "stopped"}),
            true,
        )?;
        self.step(host, "packages", "package_pin", pin, true)?;
        self.step(
            host,
            "start-services",
            "service_state",
            json!({"units": units, "state": "started"}),
            true,
        )?;
        let ready = json!({"names": [node], "kubelet_version": target.to_string(), "timeout": self.opts.ready_timeout, "interval": 1});
        self.step(host, "node-ready", "node_ready", ready, true)?;
        self.step(
            host,
            "uncordon",
            "node_drain",
            json!({"name": node, "state": "uncordon"}),
            true,
        )?;
        Ok(())
    }

    /// One module in check mode, for `kup plan` (never journaled).
    pub fn check(&self, host: &Host, module: &str, mut args: Value) -> Result<Value, Stop> {
        args["_ansible_check_mode"] = json!(true);
        self.step(host, module, module, args, false)
    }

    /// A read-only probe: true when the module succeeds (no failure is reported for it).
    fn step_quiet(&self, host: &Host, module: &str, mut args: Value) -> bool {
        let (run_on, kubeconfig) = self.place(module, host);
        if let (Some(k), Some(obj)) = (kubeconfig, args.as_object_mut()) {
            obj.insert("kubeconfig".into(), json!(k));
        }
        self.transport
            .run(run_on, module, &args)
            .is_ok_and(|r| r["failed"] == false)
    }

    pub fn nodes(&self, target: Version) -> Result<(), Stop> {
        for host in &self.inventory.control_plane {
            self.upgrade_node(host, target, false)?;
        }
        for batch in self.inventory.workers.chunks(self.opts.workers_batch.max(1)) {
            let batch: Vec<&Host> = batch.iter().collect();
            self.on_each(&batch, |host| self.upgrade_node(host, target, true))?;
        }
        Ok(())
    }

    pub fn verify(&self, target: Version) -> Result<(), Stop> {
        let names: Vec<String> = self.inventory.all_hosts().map(Host::node_name).collect();
        let args = json!({"names": names, "kubelet_version": target.to_string(), "timeout": self.opts.ready_timeout, "interval": 1});
        self.step(self.primary(), "verify", "node_ready", args, false)
            .map(|_| ())
    }
}

fn fix_for(step: &str) -> String {
    match step {
        "preflight" => "fix what the failed checks say, then rerun".into(),
        "kubeadm-download" => "check base_url (--base-url) and the target version, then rerun".into(),
        "kubeadm-apply" | "kubeadm-node" => {
            "read kubeadm's error above (the runbook: a secondary often succeeds when retried after a minute); rerun to resume".into()
        }
        "drain" => "a PodDisruptionBudget or a pod without a controller blocks the drain: fix it (or --force-drain for bare pods), then rerun".into(),
        "node-ready" | "start-services" => {
            "the node's kubelet did not come back: look at `systemctl status kubelet` and `journalctl -u kubelet` on it, repair it, then rerun to resume".into()
        }
        _ => "fix the cause above, then rerun the same command to resume".into(),
    }
}
