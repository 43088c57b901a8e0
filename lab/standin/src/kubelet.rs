//! The kubelet stand-in: while it runs (and a container runtime is up), it reports its node Ready at
//! its own version to the API server every two seconds; when it stops, the node goes NotReady after
//! the server's grace period, as with a real kubelet.

use crate::{hostname, now_rfc3339, say, FAULT_DIR};
use kube_version::Version;
use lab_standin::api::Api;
use lab_standin::kubelet_files;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const RUNTIMES: &[&str] = &["/run/docker", "/run/containerd"];
/// The version of the kubelet that last started on this node (the lab's own file).
const LAST_VERSION: &str = "/var/lib/kubelet/kup-lab-last-version";
const APISERVER_MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
/// Simulated seconds a control plane's static pods take to come back after a restart.
const STATIC_POD_RESTART_SECONDS: f64 = 10.0;

pub fn main(version: Version, args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "--version") {
        say(&format!("Kubernetes {version}"));
        return Ok(());
    }
    let flags = Flags::parse(version, args).map_err(|e| failed(version, &e))?;
    let node = flags.hostname_override.unwrap_or_else(hostname);
    let kubeconfig = flags
        .kubeconfig
        .unwrap_or_else(|| "/etc/kubernetes/kubelet.conf".to_string());
    // From 1.11 kubeadm's drop-in passes --config (kubernetes/release build/debs/10-kubeadm.conf);
    // the lab refuses to start without it, stricter than a kubelet that would fall back to defaults.
    if version.minor >= 11 {
        let config = flags
            .config
            .ok_or_else(|| failed(version, "failed to load kubelet config file: no --config given"))?;
        load_config(&config).map_err(|e| failed(version, &e))?;
    }
    if Path::new(FAULT_DIR).join("kubelet-broken").exists() {
        return Err(format!(
            "failed to run Kubelet: lab fault {FAULT_DIR}/kubelet-broken is set (remove it to repair this node)"
        ));
    }
    let api = Api::from_kubeconfig(&kubeconfig)?;
    // The version skew policy: "kubelet must not be newer than kube-apiserver"
    // (kubernetes.io/releases/version-skew-policy). A real kubelet would try; the lab refuses.
    if let Some(server) = api
        .get("/version")
        .ok()
        .and_then(|v| v["gitVersion"].as_str().and_then(Version::parse_reported))
    {
        if version.minor_release() > server.minor_release() {
            return Err(failed(
                version,
                &format!(
                    "kubelet {version} is newer than the API server {server}: the version skew policy \
                     does not allow a kubelet newer than kube-apiserver"
                ),
            ));
        }
    }
    // The restart is the container runtime's doing, reported through the lab's side channel (the
    // virtual address may be unheld while a control plane's services come back).
    let lab_api = Path::new(lab_standin::LAB_KUBECONFIG)
        .exists()
        .then(|| Api::from_kubeconfig(lab_standin::LAB_KUBECONFIG).ok())
        .flatten();
    restart_static_pods_after_a_minor_change(lab_api.as_ref().unwrap_or(&api), &node, version);
    // Realistic labs: no status until the node would be Ready (it keeps what it last reported).
    crate::realistic_wait("kubelet ready", lab_standin::timing::KUBELET_READY_SECONDS);
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

/// The flags the stand-in reads; every other flag is checked against its release and ignored.
#[derive(Default)]
struct Flags {
    kubeconfig: Option<String>,
    config: Option<String>,
    hostname_override: Option<String>,
}

impl Flags {
    /// `--name=value` or `--name value`, as pflag reads them; a flag the release does not have is
    /// refused with the real kubelet's words.
    fn parse(version: Version, args: &[String]) -> Result<Flags, String> {
        let mut flags = Flags::default();
        let mut it = args.iter().peekable();
        while let Some(arg) = it.next() {
            if !arg.starts_with("--") {
                return Err(format!("unknown command {arg:?} for \"kubelet\""));
            }
            if let Some(why) = kubelet_files::refusal(version.minor, arg) {
                return Err(why);
            }
            let (name, value) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => {
                    let value = it.next_if(|next| !next.starts_with("--")).cloned();
                    (arg.as_str(), value)
                }
            };
            match name {
                "--kubeconfig" => flags.kubeconfig = value,
                "--config" => flags.config = value,
                "--hostname-override" => flags.hostname_override = value,
                _ => {}
            }
        }
        Ok(flags)
    }
}

/// The kubelet's configuration file must be there and be a KubeletConfiguration.
fn load_config(path: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "failed to load kubelet config file, path: {path}, error: failed to load Kubelet config file \
             {path}, error failed to read kubelet config file \"{path}\", error: {e}"
        )
    })?;
    if !text.lines().any(|l| l.trim() == "kind: KubeletConfiguration") {
        return Err(format!(
            "failed to load kubelet config file, path: {path}, error: no kind \"KubeletConfiguration\" in it"
        ));
    }
    Ok(())
}

/// How the kubelet reports a fatal error: `Error: ...` until 1.24, klog's `"command failed"` after
/// (component-base/cli run.go).
fn failed(version: Version, why: &str) -> String {
    if version.minor >= 25 {
        format!("E0000 00:00:00.000000       1 run.go:74] \"command failed\" err=\"{why}\"")
    } else {
        format!("Error: {why}")
    }
}

/// Whether a kubelet of `now` starting where one of `before` ran restarts the node's containers: it
/// does across minors, because the container hash the kubelet compares changes between releases
/// ("No running containers are supported while upgrading kubelets across minor versions":
/// kubernetes.io/releases/version-skew-policy; kubernetes/kubernetes issues #53644, #129385).
fn restarts_containers(before: Option<Version>, now: Version) -> bool {
    before.is_some_and(|b| b.minor_release() != now.minor_release())
}

/// On a control plane, tells the API server its static pods restart (down for a few simulated
/// seconds) when this kubelet's minor differs from the last one's; remembers this version.
fn restart_static_pods_after_a_minor_change(api: &Api, node: &str, version: Version) {
    let before = std::fs::read_to_string(LAST_VERSION)
        .ok()
        .and_then(|t| Version::parse(t.trim()));
    if restarts_containers(before, version) && Path::new(APISERVER_MANIFEST).exists() {
        say(&format!(
            "kubelet {version}: the static pods' containers changed since kubelet {} and are restarted",
            before.map(|b| b.to_string()).unwrap_or_default()
        ));
        let path = format!("/_lab/nodes/{node}/static-pods-restart");
        if let Err(err) = api.post(&path, &json!({"seconds": STATIC_POD_RESTART_SECONDS})) {
            eprintln!("cannot report the static pods' restart: {err}");
        }
    }
    if let Err(err) = std::fs::write(LAST_VERSION, format!("{version}\n")) {
        eprintln!("{LAST_VERSION}: {err}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_a_new_minor_restarts_the_containers() {
        let v = |s| Version::parse(s).unwrap();
        assert!(!restarts_containers(None, v("v1.29.6")));
        assert!(!restarts_containers(Some(v("v1.29.6")), v("v1.29.9")));
        assert!(restarts_containers(Some(v("v1.29.6")), v("v1.30.2")));
        assert!(restarts_containers(Some(v("v1.30.2")), v("v1.29.6")));
    }
}
