//! The node services the lab runs besides the kubelet, reporting to the lab API server through the
//! lab's side channel (`/etc/kup-lab/lab.conf`, the server's own address, not the virtual one):
//!
//! - `runtime docker|containerd`: the container runtime. The daemon starts a `--containers` child
//!   standing for its containers (a control plane's static pods) unless one still runs; the child
//!   reports them running. The unit has the real unit's `KillMode=process`, so stopping the daemon
//!   leaves the child alone; the unit's `ExecStopPost` runs `--stopped`, which does what the real
//!   daemon's shutdown does to its containers (dockerd stops them, containerd leaves them to their
//!   shims) and reports what is left.
//! - `keepalived`: reports itself running every few seconds; `keepalived --stopped` (the unit's
//!   `ExecStopPost`) reports it stopped, as keepalived's priority-0 advertisement tells the backups.

use crate::{hostname, say};
use lab_standin::api::Api;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lab's side channel to the API server (its own address, not the virtual one): keepalived
/// must report while nobody holds the address; a node provisioned before it existed falls back to
/// the kubelet's kubeconfig.
fn kubeconfig() -> &'static str {
    if Path::new(lab_standin::LAB_KUBECONFIG).exists() {
        lab_standin::LAB_KUBECONFIG
    } else {
        "/etc/kubernetes/kubelet.conf"
    }
}
const APISERVER_MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
const STATE_DIR: &str = "/run/kup-lab";
const REPORT_EVERY: Duration = Duration::from_secs(2);

/// What a runtime does to its containers when the daemon stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Docker,
    Containerd,
}

impl Runtime {
    pub fn parse(name: &str) -> Result<Runtime, String> {
        match name {
            "docker" => Ok(Runtime::Docker),
            "containerd" => Ok(Runtime::Containerd),
            other => Err(format!(
                "unknown container runtime {other:?}: docker or containerd"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
        }
    }

    /// Whether stopping the daemon stops its containers.
    /// - dockerd: "By default, when the Docker daemon terminates, it shuts down running containers"
    ///   (docs.docker.com/engine/daemon/live-restore/; live-restore is off by default), although
    ///   docker.service has `KillMode=process` (moby contrib/init/systemd/docker.service);
    /// - containerd: containers run under their shims, which containerd.service's `KillMode=process`
    ///   leaves running (containerd/containerd containerd.service), as does containerd's shutdown.
    pub fn stop_stops_containers(self) -> bool {
        self == Runtime::Docker
    }

    fn pid_file(self) -> PathBuf {
        Path::new(STATE_DIR).join(format!("{}-containers.pid", self.name()))
    }
}

pub fn runtime(args: &[String]) -> Result<(), String> {
    let (name, flag) = match args {
        [name] => (name, None),
        [name, flag] => (name, Some(flag.as_str())),
        _ => return Err("usage: kup-standin runtime docker|containerd [--containers|--stopped]".into()),
    };
    let runtime = Runtime::parse(name)?;
    match flag {
        None => daemon(runtime),
        Some("--containers") => containers(runtime),
        Some("--stopped") => stopped(runtime),
        Some(other) => Err(format!("unknown flag {other:?}")),
    }
}

/// The process whose pid `file` names, if it still runs (a zombie does not) and is ours.
fn live_pid(file: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit(')').next()?.split_whitespace().next()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let ours = String::from_utf8_lossy(&cmdline).contains("--containers");
    (state != "Z" && ours).then_some(pid)
}

fn daemon(runtime: Runtime) -> Result<(), String> {
    match live_pid(&runtime.pid_file()) {
        Some(pid) => say(&format!(
            "{} (lab stand-in): containers still running (pid {pid}), not starting them again",
            runtime.name()
        )),
        None => {
            let me = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
            let child = std::process::Command::new(me)
                .args(["runtime", runtime.name(), "--containers"])
                .stdin(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start the containers: {e}"))?;
            say(&format!(
                "{} (lab stand-in): started the containers (pid {})",
                runtime.name(),
                child.id()
            ));
        }
    }
    // The daemon itself only has to run: the kubelet looks for its runtime directory.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn report_static_pods(api: &Api, runtime: Runtime, running: bool) -> Result<(), String> {
    api.post(
        &format!("/_lab/nodes/{}/static-pods", hostname()),
        &json!({"runtime": runtime.name(), "running": running}),
    )
    .map(|_| ())
}

/// The containers: on a control plane, its static pods, reported running while this process lives.
fn containers(runtime: Runtime) -> Result<(), String> {
    std::fs::create_dir_all(STATE_DIR).map_err(|e| format!("{STATE_DIR}: {e}"))?;
    let file = runtime.pid_file();
    std::fs::write(&file, std::process::id().to_string()).map_err(|e| format!("{}: {e}", file.display()))?;
    let api = Api::from_kubeconfig(kubeconfig())?;
    loop {
        if Path::new(APISERVER_MANIFEST).exists() {
            if let Err(err) = report_static_pods(&api, runtime, true) {
                eprintln!("cannot report the static pods: {err}");
            }
        }
        std::thread::sleep(REPORT_EVERY);
    }
}

/// After the daemon stopped (the unit's ExecStopPost): its shutdown's effect on the containers, then
/// a report of what is left.
fn stopped(runtime: Runtime) -> Result<(), String> {
    let file = runtime.pid_file();
    if runtime.stop_stops_containers() {
        if let Some(pid) = live_pid(&file) {
            say(&format!(
                "{} (lab stand-in): stopping the containers (pid {pid}) as the daemon's shutdown does",
                runtime.name()
            ));
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while live_pid(&file).is_some() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    let left = live_pid(&file).is_some();
    if !left {
        let _ = std::fs::remove_file(&file);
    }
    say(&format!(
        "{} (lab stand-in): stopped; containers {}",
        runtime.name(),
        if left { "still running" } else { "stopped" }
    ));
    if Path::new(APISERVER_MANIFEST).exists() {
        let api = Api::from_kubeconfig(kubeconfig())?;
        report_static_pods(&api, runtime, left)?;
    }
    Ok(())
}

pub fn keepalived(args: &[String]) -> Result<(), String> {
    let api = Api::from_kubeconfig(kubeconfig())?;
    let path = format!("/_lab/nodes/{}/keepalived", hostname());
    match args {
        [] => {
            say("keepalived (lab stand-in): VRRP instance for the control plane's virtual address");
            loop {
                if let Err(err) = api.post(&path, &json!({"running": true})) {
                    eprintln!("cannot report to the lab API server: {err}");
                }
                std::thread::sleep(REPORT_EVERY);
            }
        }
        [flag] if flag == "--stopped" => api.post(&path, &json!({"running": false})).map(|_| ()),
        _ => Err("usage: kup-standin keepalived [--stopped]".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dockers_shutdown_stops_the_containers() {
        assert_eq!(Runtime::parse("docker"), Ok(Runtime::Docker));
        assert!(Runtime::Docker.stop_stops_containers());
        assert!(!Runtime::Containerd.stop_stops_containers());
        assert!(Runtime::parse("cri-o").is_err());
    }

    #[test]
    fn a_pid_file_naming_another_process_is_not_the_containers() {
        let dir = std::env::temp_dir().join(format!("kup-standin-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let file = dir.join("pid");
        // This test process is alive but is not a `--containers` child.
        std::fs::write(&file, std::process::id().to_string()).ok();
        assert_eq!(live_pid(&file), None);
        std::fs::write(&file, "not a pid").ok();
        assert_eq!(live_pid(&file), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
