//! The modules linked into kup (the multicall entry `kup module NAME`), and what `kup plan` asks
//! each host in check mode.

use crate::inventory::Host;
use crate::procedure::Run;
use kube_version::Version;
use serde_json::{json, Value};
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

pub const NAMES: &[&str] = &[
    "kubeadm_download",
    "kubeadm_config_nodename",
    "kubeadm_upgrade",
    "package_pin",
    "service_state",
    "node_drain",
    "node_ready",
    "upgrade_preflight",
];

/// Runs module `name` as its own binary would (never returns for a known module).
pub fn run(name: &str, args: Vec<OsString>) -> ExitCode {
    let args = args.into_iter();
    match name {
        "kubeadm_download" => module_kit::main_with_args::<kubeadm_download::KubeadmDownload>(args),
        "kubeadm_config_nodename" => {
            module_kit::main_with_args::<kubeadm_config_nodename::KubeadmConfigNodename>(args)
        }
        "kubeadm_upgrade" => module_kit::main_with_args::<kubeadm_upgrade::KubeadmUpgrade>(args),
        "package_pin" => module_kit::main_with_args::<package_pin::PackagePin>(args),
        "service_state" => module_kit::main_with_args::<service_state::ServiceState>(args),
        "node_drain" => module_kit::main_with_args::<node_drain::NodeDrain>(args),
        "node_ready" => module_kit::main_with_args::<node_ready::NodeReady>(args),
        "upgrade_preflight" => module_kit::main_with_args::<upgrade_preflight::UpgradePreflight>(args),
        other => {
            let failure = json!({"failed": true, "changed": false,
                                 "msg": format!("no module {other:?}; kup has: {}", NAMES.join(", "))});
            let _ = writeln!(std::io::stdout(), "{failure}");
            ExitCode::FAILURE
        }
    }
}

/// What `kup plan` runs in check mode for one host.
pub fn plan_steps(run: &Run<'_>, host: &Host, target: Version, worker: bool) -> Vec<(&'static str, Value)> {
    let mut steps = Vec::new();
    let version = target.to_string();
    if !worker {
        steps.push((
            "kubeadm_download",
            json!({"version": version, "base_url": run.opts.base_url}),
        ));
        steps.push(("kubeadm_upgrade", json!({"action": "apply", "version": version})));
    }
    let mut pin = json!({"version": version.trim_start_matches('v')});
    if let Some(cni) = &run.opts.cni_version {
        pin["cni_version"] = json!(cni);
    }
    steps.push(("package_pin", pin));
    let node = host.node_name();
    if worker {
        steps.push((
            "node_drain",
            json!({"name": node, "state": "drain", "ignore_daemonsets": true, "delete_emptydir_data": true}),
        ));
    } else {
        steps.push(("node_drain", json!({"name": node, "state": "cordon"})));
    }
    steps
}
