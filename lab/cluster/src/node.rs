//! One node: an overlay on the base tree, provisioned with its identity, keys, kubeconfig, stand-in
//! units and (for control planes) static pod manifests; booted with systemd-nspawn on the bridge;
//! then its Kubernetes packages installed at the starting version with its own package manager.

use crate::repo::sources::{self, AptForm};
use crate::repo::{self, STANDIN};
use crate::sh;
use crate::spec::{Flavour, LabSpec, NodePlan};
use lab_standin::kubelet_files;
use serde::{Deserialize, Serialize};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Both one-line and deb822 definitions occur in the wild: every second node gets the deb822 form.
fn apt_form(plan: &NodePlan, spec: &LabSpec) -> AptForm {
    let position = spec.nodes().iter().position(|n| n == plan).unwrap_or(0);
    if position % 2 == 1 {
        AptForm::Deb822
    } else {
        AptForm::OneLine
    }
}

/// A node that has been started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunningNode {
    pub plan: NodePlan,
    pub dir: PathBuf,
    /// The systemd-nspawn process.
    pub nspawn_pid: u32,
}

impl RunningNode {
    pub fn merged(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// The container's PID 1 (systemd), the target for nsenter.
    pub fn init_pid(&self) -> Option<u32> {
        child_of(self.nspawn_pid)
    }

    pub fn exec(&self, args: &[&str], timeout: Duration) -> Result<String, String> {
        let pid = self
            .init_pid()
            .ok_or_else(|| format!("{} is not running", self.plan.name))?;
        sh::in_node(pid, args, timeout).map_err(|e| format!("{}: {e}", self.plan.name))
    }
}

/// What provisioning needs besides the plan.
pub struct Provision<'a> {
    pub spec: &'a LabSpec,
    pub base: &'a Path,
    pub repo: &'a Path,
    pub authorized_key: &'a str,
    pub kubeconfig: &'a str,
    /// The lab's side channel to the API server's own address (the stand-in services' reports).
    pub direct_kubeconfig: &'a str,
    pub hosts: &'a str,
    /// The lab's etcd CA, of its topology (its control planes run real etcd).
    pub etcd_ca: Option<&'a crate::etcd::Ca>,
}

/// Mounts the overlay and writes everything the node needs before it boots.
pub fn prepare(plan: &NodePlan, p: &Provision<'_>) -> Result<PathBuf, String> {
    let dir = p.spec.dir.join("nodes").join(&plan.name);
    let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("root"));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        p.base.display(),
        upper.display(),
        work.display()
    );
    sh::run(
        "mount",
        &[
            "-t",
            "overlay",
            "overlay",
            "-o",
            &options,
            &merged.to_string_lossy(),
        ],
    )?;
    let at = |path: &str| merged.join(path.trim_start_matches('/'));
    let spec = p.spec;

    sh::write(&at("/etc/hostname"), format!("{}\n", plan.name))?;
    sh::write(&at("/etc/hosts"), format!("127.0.0.1 localhost\n{}", p.hosts))?;
    sh::write(
        &at("/etc/systemd/network/10-host0.network"),
        format!(
            "[Match]\nName=host0\n\n[Network]\nAddress={}/24\nLinkLocalAddressing=no\n",
            plan.address
        ),
    )?;
    sh::write_mode(
        &at("/root/.ssh/authorized_keys"),
        format!("{}\n", p.authorized_key.trim()),
        0o600,
    )?;
    std::fs::set_permissions(
        at("/root/.ssh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .map_err(|e| e.to_string())?;
    let standin = std::fs::read(&spec.standin).map_err(|e| format!("{}: {e}", spec.standin.display()))?;
    sh::write_mode(&at(STANDIN), standin, 0o755)?;
    // The kubelet reaches the control plane at the virtual address: "The kube-apiserver is exposed
    // to worker nodes using a load balancer" (kubernetes.io/docs/setup/production-environment/tools/kubeadm/ha-topology/).
    sh::write_mode(&at("/etc/kubernetes/kubelet.conf"), p.kubeconfig, 0o600)?;
    std::fs::create_dir_all(at("/etc/kup-lab")).map_err(|e| e.to_string())?;
    // What keepalived and the container runtime stand-ins report the node's services with: no real
    // daemon talks to the API server, so this side channel bypasses the virtual address.
    sh::write_mode(&at(lab_standin::LAB_KUBECONFIG), p.direct_kubeconfig, 0o600)?;
    // Realistic timing: the stand-ins read it (default labs have no such file).
    if spec.timing == crate::spec::Timing::Realistic {
        sh::write(
            &at(lab_standin::timing::FILE),
            lab_standin::timing::render(spec.time_factor),
        )?;
    }
    // Units a container does not need and that fail now and then under load (nspawn mounted the
    // root already; the kernel command line is the host's): masked, so boots are not "degraded".
    for unit in ["systemd-remount-fs.service", "systemd-network-generator.service"] {
        let mask = at(&format!("/etc/systemd/system/{unit}"));
        let _ = std::fs::remove_file(&mask);
        std::os::unix::fs::symlink("/dev/null", &mask).map_err(|e| format!("{}: {e}", mask.display()))?;
    }

    // The container runtime and (control planes) keepalived: stand-in units run by the stand-in
    // binary (lab/standin services.rs), each with its real unit's KillMode so that systemd decides
    // what survives a stop. The runtime directory exists exactly while the daemon runs; the kubelet
    // stand-in needs the runtime's.
    let runtime = spec.runtime();
    let mut units = vec![(runtime, runtime_unit(runtime))];
    if plan.control_plane {
        units.push(("keepalived", keepalived_unit()));
    }
    // Real etcd, a member on every control plane, one cluster (lab/cluster src/etcd.rs): stacked
    // (kubeadm's default HA topology in today's docs) on pkgs.k8s.io-era labs, external on the older
    // ones, as the 1.8 -> 1.9 HA runbook has it. An external member's unit is started once every
    // control plane is up, a stacked one of a 1.11/1.12 lab once added to the cluster
    // (`etcd::Ca::starts_at_boot`).
    let etcd = match p.etcd_ca {
        Some(ca) if plan.control_plane => {
            let members: Vec<NodePlan> = spec.nodes().into_iter().filter(|n| n.control_plane).collect();
            let member = ca.member(plan, &members)?;
            for (path, text, mode) in &member.files {
                sh::write_mode(&at(path), text, *mode)?;
            }
            let (file, text) = member.unit;
            let name = file.trim_end_matches(".service");
            if ca.starts_at_boot(plan, &members) {
                units.push((name, text));
            } else {
                sh::write(&at(&format!("/etc/systemd/system/{file}")), text)?;
            }
            member.static_pod
        }
        _ => None,
    };
    for (unit, text) in &units {
        sh::write(&at(&format!("/etc/systemd/system/{unit}.service")), text)?;
        let wants = at(&format!(
            "/etc/systemd/system/multi-user.target.wants/{unit}.service"
        ));
        std::fs::create_dir_all(at("/etc/systemd/system/multi-user.target.wants"))
            .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(&wants);
        std::os::unix::fs::symlink(format!("/etc/systemd/system/{unit}.service"), &wants)
            .map_err(|e| format!("{}: {e}", wants.display()))?;
    }

    if plan.control_plane {
        sh::write_mode(&at("/etc/kubernetes/admin.conf"), p.kubeconfig, 0o600)?;
        // The images kubeadm of that release wrote (the emulation knows the registry per era).
        let emulation = lab_apiserver::Emulation::parse(&crate::lab::emulated_release(&spec.from))?;
        let version = format!("v{}", spec.from);
        // The static pod kubeadm wrote for the member lab-etcd.service runs (real etcd owns
        // /var/lib/etcd); an external etcd has none.
        if let Some(command) = &etcd {
            sh::write(
                &at("/etc/kubernetes/manifests/etcd.yaml"),
                crate::etcd::manifest(emulation.etcd_image(), command),
            )?;
        }
        for component in ["kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
            sh::write(
                &at(&format!("/etc/kubernetes/manifests/{component}.yaml")),
                format!(
                    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {component}\n  namespace: kube-system\n\
                     spec:\n  hostNetwork: true\n  containers:\n  - name: {component}\n    \
                     image: {}\n    command:\n    - {component}\n",
                    emulation.control_plane_image(component, &version)
                ),
            )?;
        }
    }

    // What `kubeadm init/join` of the starting release left for the kubelet (from 1.11 the drop-in
    // reads them; before, every flag was in the drop-in itself).
    let minor = crate::spec::minor_of(&spec.from);
    if minor >= 11 {
        sh::write(&at(kubelet_files::CONFIG), kubelet_files::config_yaml(minor))?;
        sh::write(
            &at(kubelet_files::FLAGS_ENV),
            kubelet_files::flags_env(&kubelet_files::init_flags(minor)),
        )?;
        if let Some(endpoint) = kubelet_files::init_instance_endpoint(minor) {
            sh::write(
                &at(kubelet_files::INSTANCE_CONFIG),
                kubelet_files::instance_config_yaml(endpoint),
            )?;
        }
    }
    let release = repo::release(&spec.from).ok_or_else(|| format!("no packages for {}", spec.from))?;
    match spec.flavour {
        Flavour::Apt => {
            let (path, definition, keyring) = sources::apt(&release, apt_form(plan, spec), &spec.repo_url());
            sh::write(&at(path), definition)?;
            let key = p.repo.join("keys/kubernetes-apt-keyring.gpg");
            let key = std::fs::read(&key).map_err(|e| format!("{}: {e}", key.display()))?;
            sh::write_mode(&at(keyring), key, 0o644)?;
        }
        Flavour::Rpm => {
            sh::write(&at(sources::YUM_REPO), sources::yum(&release, &spec.repo_url()))?;
            sh::write(&at("/etc/dnf/vars/releasever"), "7\n")?;
            // What the node says it is, so package-manager detection is tested.
            sh::write(
                &at("/etc/os-release"),
                "NAME=\"CentOS Linux\"\nVERSION=\"7 (lab)\"\nID=\"centos\"\nID_LIKE=\"rhel fedora\"\n\
                 VERSION_ID=\"7\"\nPRETTY_NAME=\"CentOS Linux 7 (kup-lab: Debian userland with dnf)\"\n",
            )?;
        }
    }
    Ok(dir)
}

/// The container runtime's unit. `KillMode=process` as in the real units (containerd/containerd
/// containerd.service; moby contrib/init/systemd/docker.service: "kill only the docker process, not
/// all processes in the cgroup"): stopping the daemon leaves its containers' processes to what the
/// daemon's own shutdown does, which `ExecStopPost` plays (dockerd stops them, containerd does not).
fn runtime_unit(runtime: &str) -> String {
    // RestartSec as the real units: 2 s (docker.service), 5 s (containerd.service).
    let restart = if runtime == "docker" { 2 } else { 5 };
    format!(
        "[Unit]\nDescription={runtime} (lab stand-in)\nAfter=network.target\n\n[Service]\n\
         RuntimeDirectory={runtime}\nExecStart={STANDIN} runtime {runtime}\n\
         ExecStopPost={STANDIN} runtime {runtime} --stopped\nKillMode=process\nRestart=always\n\
         RestartSec={restart}\n\n[Install]\nWantedBy=multi-user.target\n"
    )
}

/// keepalived's unit (keepalived/keepalived keepalived/keepalived.service.in: `KillMode=process`);
/// `ExecStopPost` tells the lab API server, as the stopping master's priority-0 advertisement tells
/// the backups (RFC 3768 section 6.4.3).
fn keepalived_unit() -> String {
    format!(
        "[Unit]\nDescription=LVS and VRRP High Availability Monitor (lab stand-in)\n\
         After=network-online.target\n\n[Service]\nRuntimeDirectory=keepalived\n\
         ExecStart={STANDIN} keepalived\nExecStopPost={STANDIN} keepalived --stopped\n\
         KillMode=process\n\n[Install]\nWantedBy=multi-user.target\n"
    )
}

/// Boots the node in the background and waits until systemd says it is up.
pub fn boot(plan: &NodePlan, dir: &Path, spec: &LabSpec) -> Result<RunningNode, String> {
    let console = spec.dir.join("logs").join(format!("{}.console.log", plan.name));
    let log = std::fs::File::create(&console).map_err(|e| format!("{}: {e}", console.display()))?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let merged = dir.join("root");
    // A node killed outright (SIGKILL) leaves its veth behind, and nspawn then refuses to start a
    // machine of the same name ("Failed to add new veth interfaces: File exists"): the name is
    // this lab's own, so whatever holds it is a leftover of this lab's.
    let veth = format!("vb-{}", machine_name(&spec.bridge, plan));
    if Path::new("/sys/class/net").join(&veth).exists() {
        let _ = sh::run("ip", &["link", "del", &veth]);
    }
    let child = std::process::Command::new("systemd-nspawn")
        .args(["-b", "-D"])
        .arg(&merged)
        // Machine names must be unique on the host (they name the veth): the bridge names the lab.
        .arg(format!("--machine={}", machine_name(&spec.bridge, plan)))
        .args(["--register=no", "--keep-unit", "--console=passive"])
        .arg(format!("--network-bridge={}", spec.bridge))
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start systemd-nspawn: {e}"))?;
    let node = RunningNode {
        plan: plan.clone(),
        dir: dir.to_path_buf(),
        nspawn_pid: child.id(),
    };
    // The nspawn process outlives us on purpose: `kup-lab down` stops it.
    drop(child);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(pid) = node.init_pid() {
            let state = module_kit::command::Command::new("nsenter")
                .args([
                    "-t",
                    &pid.to_string(),
                    "-a",
                    "--",
                    "systemctl",
                    "is-system-running",
                    "--wait",
                ])
                .timeout(Duration::from_secs(60))
                .run();
            if let Ok(out) = state {
                match out.stdout.trim() {
                    "running" => return Ok(node),
                    "degraded" => {
                        // What the lab needs must run; a stray failed unit elsewhere is only reported.
                        let failed = node
                            .exec(&["systemctl", "--failed", "--no-legend"], Duration::from_secs(10))
                            .unwrap_or_default();
                        let essential = ["ssh.service", "systemd-networkd.service", "dbus.service"];
                        let mut check = vec!["systemctl", "is-active"];
                        check.extend(essential);
                        if node.exec(&check, Duration::from_secs(10)).is_err() {
                            return Err(format!("{} booted degraded: {failed}", plan.name));
                        }
                        sh::progress(&format!(
                            "{} booted with a failed unit (ignored): {}",
                            plan.name,
                            failed.trim()
                        ));
                        return Ok(node);
                    }
                    _ => {}
                }
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} did not boot within 90 s; see {}",
                plan.name,
                console.display()
            ));
        }
        if !sh::alive(node.nspawn_pid) {
            return Err(format!(
                "systemd-nspawn for {} exited; see {}",
                plan.name,
                console.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// kubelet, kubeadm, kubectl (at the release's version) and kubernetes-cni (at its CNI version),
/// each as `pin(name, version)` writes a package pinned to a version.
fn pinned_packages(release: &repo::Release, pin: impl Fn(&str, &str) -> String) -> [String; 4] {
    [
        pin("kubelet", release.version),
        pin("kubeadm", release.version),
        pin("kubectl", release.version),
        pin("kubernetes-cni", release.cni),
    ]
}

/// `command` followed by `packages`.
fn with_packages<'a>(command: &[&'a str], packages: &'a [String]) -> Vec<&'a str> {
    command
        .iter()
        .copied()
        .chain(packages.iter().map(String::as_str))
        .collect()
}

/// Installs (and, as the real setup guides say, holds) the starting version's packages, then starts
/// the kubelet.
pub fn install_packages(node: &RunningNode, spec: &LabSpec) -> Result<(), String> {
    let release = repo::release(&spec.from).ok_or_else(|| format!("no packages for {}", spec.from))?;
    let long = Duration::from_secs(300);
    wait_for_repository(node, spec)?;
    match spec.flavour {
        Flavour::Apt => {
            let pin = |name: &str, v: &str| format!("{name}={}", repo::deb_version(v, release.legacy()));
            // Any index that cannot be fetched fails the lab (apt-get update alone exits 0 then).
            node.exec(&["apt-get", "update", "-qq", "--error-on=any"], long)?;
            let install = [
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get",
                "install",
                "-y",
                "-qq",
            ];
            node.exec(&with_packages(&install, &pinned_packages(&release, pin)), long)?;
            node.exec(
                &[
                    "apt-mark",
                    "hold",
                    "kubelet",
                    "kubeadm",
                    "kubectl",
                    "kubernetes-cni",
                ],
                long,
            )?;
        }
        Flavour::Rpm => {
            let r = repo::rpm_release(release.legacy());
            let pin = |name: &str, v: &str| format!("{name}-{v}-{r}");
            let install = ["dnf", "install", "-y", "-q", "--disableexcludes=kubernetes"];
            node.exec(&with_packages(&install, &pinned_packages(&release, pin)), long)?;
        }
    }
    node.exec(&["systemctl", "daemon-reload"], long)?;
    node.exec(&["systemctl", "enable", "--now", "kubelet.service"], long)?;
    Ok(())
}

/// Waits until the node reaches its lab's repository server: systemd says the node is up before
/// networkd has always set its address, and the package managers must not meet that window.
fn wait_for_repository(node: &RunningNode, spec: &LabSpec) -> Result<(), String> {
    let probe = format!("exec 3<>/dev/tcp/{}/{}", spec.host_ip(), spec.repo_port());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match node.exec(&["bash", "-c", &probe], Duration::from_secs(5)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(format!(
                    "{} cannot reach {}: {e}",
                    node.plan.name,
                    spec.repo_url()
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// `kuplab0-11`: the lab's bridge and the node's host number.
pub fn machine_name(bridge: &str, plan: &NodePlan) -> String {
    format!("{bridge}-{}", plan.address.octets()[3])
}

/// Stops a node: asks systemd-nspawn to shut the container down, then kills what remains.
pub fn stop(nspawn_pid: u32) {
    if !sh::alive(nspawn_pid) {
        return;
    }
    let pid = nspawn_pid.to_string();
    let _ = sh::run("kill", &["-TERM", &pid]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while sh::alive(nspawn_pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if sh::alive(nspawn_pid) {
        // nspawn killed outright leaves the container's init running (reparented to the host's,
        // the overlay still mounted in its namespace): it goes too, and with it every process of
        // its PID namespace (pid_namespaces(7)). Found while nspawn still holds it as its child.
        let init = child_of(nspawn_pid);
        let _ = sh::run("kill", &["-KILL", &pid]);
        if let Some(init) = init {
            let _ = sh::run("kill", &["-KILL", &init.to_string()]);
        }
    }
}

/// The first child process of `pid` (found through /proc, which every kernel has).
fn child_of(pid: u32) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok())
        .find_map(|entry| {
            let candidate: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{candidate}/stat")).ok()?;
            // The command name may hold spaces and parentheses: the fields start after the last ')'.
            let ppid: u32 = stat.rsplit(')').next()?.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == pid).then_some(candidate)
        })
}
