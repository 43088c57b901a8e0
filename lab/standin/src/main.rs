//! `kup-standin`: what the lab's kubelet, kubeadm and kubectl packages run.
//!
//! Each package installs a wrapper such as `exec /usr/local/lib/kup-lab/standin kubelet v1.9.2 "$@"`,
//! so the version a node runs is the version of the package installed there, exactly as with the real
//! packages. The stand-ins talk to the lab API server with the node's kubeconfig. The lab's own
//! units run `runtime docker|containerd` and `keepalived` (see `services`).

mod addons;
mod kubeadm;
mod kubeadm_etcd;
mod kubeadm_node;
mod kubelet;
mod services;

use kube_version::Version;
use std::io::Write;
use std::process::ExitCode;

/// Where the lab puts switches that make a stand-in misbehave, for rehearsing failures.
pub const FAULT_DIR: &str = "/etc/kup-lab";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        // The services the lab's units run (lab/cluster node.rs): no package, no version.
        [tool, rest @ ..] if tool == "runtime" => services::runtime(rest),
        [tool, rest @ ..] if tool == "keepalived" => services::keepalived(rest),
        // The version the package's wrapper passes (`v1.9.2`), checked as strictly as any input.
        [tool, version, rest @ ..] => match Version::parse(version) {
            Some(v) => match tool.as_str() {
                "kubelet" => kubelet::main(v, rest),
                "kubeadm" => kubeadm::main(v, rest),
                "kubectl" => kubectl(v, rest),
                other => Err(format!("unknown stand-in {other:?}")),
            },
            None => Err(format!("bad stand-in version {version:?}")),
        },
        _ => Err("usage: kup-standin kubelet|kubeadm|kubectl VERSION [ARGS...] | runtime docker|containerd | keepalived".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Prints to stdout, ignoring a closed pipe (the caller went away; nothing to tell it).
pub fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

fn kubectl(v: Version, args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("version") => {
            say(&format!("Client Version: {v}"));
            Ok(())
        }
        _ => Err(format!("kubectl {v} (lab stand-in) only implements `version`")),
    }
}

/// In a realistic lab (`kup-lab up --timing realistic`), says how long `step` takes as a real one
/// does and waits that long, scaled by the lab's time factor; at once otherwise.
pub fn realistic_wait(step: &str, simulated: f64) {
    if let Some(wait) = lab_standin::timing::plan(step, simulated) {
        say(&format!(
            "[lab/timing] {step}: {simulated} s as a real one takes, {:.2} s at time factor {}",
            wait.real, wait.factor
        ));
        std::thread::sleep(std::time::Duration::from_secs_f64(wait.real.max(0.0)));
    }
}

/// This machine's name, as the node is called.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Now, as RFC 3339 UTC (what Kubernetes timestamps look like).
pub fn now_rfc3339() -> String {
    module_kit::time::now()
}
