//! The kubelet stand-in: while it runs (and a container runtime is up), it reports its node Ready at
//! its own version to the API server every two seconds; when it stops, the node goes NotReady after
//! the server's grace period, as with a real kubelet.

use crate::{hostname, now_rfc3339, say, FAULT_DIR};
use kube_version::Version;
use lab_standin::api::Api;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const RUNTIMES: &[&str] = &["/run/docker", "/run/containerd"];

pub fn main(version: Version, args: &[String]) -> Result<(), String> {
    let mut kubeconfig = "/etc/kubernetes/kubelet.conf".to_string();
    let mut node = hostname();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--version" => {
                say(&format!("Kubernetes {version}"));
                return Ok(());
            }
            "--kubeconfig" => kubeconfig = it.next().cloned().ok_or("--kubeconfig needs a path")?,
            "--hostname-override" => node = it.next().cloned().ok_or("--hostname-override needs a name")?,
            other => {
                if let Some(path) = other.strip_prefix("--kubeconfig=") {
                    kubeconfig = path.to_string();
                } else if let Some(name) = other.strip_prefix("--hostname-override=") {
                    node = name.to_string();
                }
                // Other kubelet flags (from drop-ins) are accepted and ignored.
            }
        }
    }
    if Path::new(FAULT_DIR).join("kubelet-broken").exists() {
        return Err(format!(
            "failed to run Kubelet: lab fault {FAULT_DIR}/kubelet-broken is set (remove it to repair this node)"
        ));
    }
    let api = Api::from_kubeconfig(&kubeconfig)?;
    say(&format!("kubelet {version} (lab stand-in) reporting node {node}"));
    loop {
        if !RUNTIMES.iter().any(|r| Path::new(r).exists()) {
            return Err(format!(
                "failed to run Kubelet: cannot connect to the container runtime (none of {} exists)",
                RUNTIMES.join(", ")
            ));
        }
        let now = now_rfc3339();
        let status = json!({"status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": now, "lastTransitionTime": now}],
            "nodeInfo": {"kubeletVersion": version.to_string(), "kubeProxyVersion": version.to_string()}
        }});
        if let Err(err) = api.merge_patch(&format!("/api/v1/nodes/{node}/status"), &status) {
            // A real kubelet keeps trying while the API server is away.
            eprintln!("unable to update node status: {err}");
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}
