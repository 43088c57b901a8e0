//! `up`, `down`, `status`: the whole lab's life cycle, with a state file so that `down` works after
//! anything, including a crash half-way through `up`.

use crate::node::{self, Provision, RunningNode};
use crate::spec::{Flavour, LabSpec};
use crate::{base, repo, sh};
use lab_standin::api::Api;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Everything `down` needs to find again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    pub spec: LabSpec,
    pub nodes: Vec<RunningNode>,
    pub apiserver_pid: Option<u32>,
    pub release_pid: Option<u32>,
    /// The server of the lab's package repositories.
    #[serde(default)]
    pub repo_pid: Option<u32>,
    /// The API server as clients reach it: through the virtual address.
    pub api_url: String,
    /// The API server at its own address (the lab's side channel).
    #[serde(default)]
    pub direct_url: String,
    pub release_url: String,
}

/// Where a lab's files are, once it is up.
#[derive(Debug, Clone, Serialize)]
pub struct LabFiles {
    pub inventory_ini: PathBuf,
    pub inventory_yaml: PathBuf,
    /// The admin kubeconfig: through the virtual address, as kubeadm's admin.conf names the
    /// control-plane endpoint.
    pub kubeconfig: PathBuf,
    /// A kubeconfig for the API server's own address, whoever holds the virtual one (for the lab's
    /// own use: `kup-lab status`, the stand-ins reporting services, tests reading counts).
    pub direct_kubeconfig: PathBuf,
    pub ssh_key: PathBuf,
    pub api_url: String,
    pub release_url: String,
}

fn state_file(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

impl LabState {
    pub fn load(dir: &Path) -> Option<LabState> {
        serde_json::from_slice(&std::fs::read(state_file(dir)).ok()?).ok()
    }

    fn save(&self) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let tmp = self.spec.dir.join("state.json.tmp");
        sh::write(&tmp, text)?;
        std::fs::rename(&tmp, state_file(&self.spec.dir)).map_err(|e| format!("state file: {e}"))
    }

    pub fn files(&self) -> LabFiles {
        let dir = &self.spec.dir;
        LabFiles {
            inventory_ini: dir.join("inventory.ini"),
            inventory_yaml: dir.join("inventory.yml"),
            kubeconfig: dir.join("kubeconfig"),
            direct_kubeconfig: dir.join("direct.kubeconfig"),
            ssh_key: dir.join("ssh/id_ed25519"),
            api_url: self.api_url.clone(),
            release_url: self.release_url.clone(),
        }
    }

    /// An API client at the API server's own address (it answers while nobody holds the VIP).
    pub fn api(&self) -> Result<Api, String> {
        Api::from_kubeconfig(&self.files().direct_kubeconfig.to_string_lossy())
    }
}

const TOOLS: &[(&str, &str)] = &[
    ("systemd-nspawn", "systemd-container"),
    ("debootstrap", "debootstrap"),
    ("dpkg-deb", "dpkg"),
    ("dpkg-scanpackages", "dpkg-dev"),
    ("rpmbuild", "rpm"),
    ("createrepo_c", "createrepo-c"),
    ("nsenter", "util-linux"),
    ("ip", "iproute2"),
    ("ssh-keygen", "openssh-client"),
];

fn check_tools() -> Result<(), String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(tool, _)| !std::env::split_paths(&path).any(|d| d.join(tool).is_file()))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the lab needs these Debian packages: apt-get install {}",
            missing.join(" ")
        ))
    }
}

/// Brings a lab up; on failure tears down whatever it had started (the logs stay in DIR/logs).
/// The kernel's inotify instances per user (`fs.inotify.max_user_instances`, 128 by default) that a
/// lab of `nodes` needs: every node's systemd and journald take some (path units, the journal), and
/// past the limit a node's boot fails (at 17 nodes with 128). 16 a node, and the host's own 128.
fn inotify_needed(nodes: usize) -> u64 {
    128 + 16 * nodes as u64
}

/// Raises `fs.inotify.max_user_instances` when this lab needs more than the kernel allows, saying
/// so; never lowers it (other labs may be up).
fn raise_inotify(nodes: usize) -> Result<(), String> {
    const KNOB: &str = "/proc/sys/fs/inotify/max_user_instances";
    let needed = inotify_needed(nodes);
    let now: u64 = std::fs::read_to_string(KNOB)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(u64::MAX);
    if now >= needed {
        return Ok(());
    }
    std::fs::write(KNOB, needed.to_string()).map_err(|e| {
        format!("{nodes} nodes need fs.inotify.max_user_instances >= {needed} (it is {now}) and raising it failed: {e}")
    })?;
    sh::progress(&format!(
        "raised fs.inotify.max_user_instances from {now} to {needed} for {nodes} nodes' systemd"
    ));
    Ok(())
}

pub fn up(spec: &LabSpec) -> Result<LabFiles, String> {
    spec.validate()?;
    check_tools()?;
    if let Some(state) = LabState::load(&spec.dir) {
        let running =
            state.nodes.iter().any(|n| sh::alive(n.nspawn_pid)) || state.apiserver_pid.is_some_and(sh::alive);
        if running {
            return Err(format!(
                "a lab is already up in {}: run `kup-lab down` first",
                spec.dir.display()
            ));
        }
        sh::progress("cleaning up after a lab that did not shut down");
        down(&spec.dir, Some(&spec.bridge))?;
    }
    raise_inotify(spec.control_planes + spec.workers)?;
    let started = Instant::now();
    let mut state = LabState {
        spec: spec.clone(),
        nodes: Vec::new(),
        apiserver_pid: None,
        release_pid: None,
        repo_pid: None,
        api_url: format!("https://{}:{}", spec.vip(), spec.api_port()),
        direct_url: format!("https://{}:{}", spec.host_ip(), spec.api_port()),
        release_url: format!("http://{}:{}", spec.host_ip(), spec.release_port()),
    };
    std::fs::create_dir_all(spec.dir.join("logs")).map_err(|e| format!("{}: {e}", spec.dir.display()))?;
    state.save()?;
    match build(&mut state) {
        Ok(files) => {
            sh::progress(&format!("lab up in {:.0} s", started.elapsed().as_secs_f64()));
            Ok(files)
        }
        Err(err) => {
            sh::progress(&format!("up failed: {err}; tearing down what was started"));
            let _ = teardown(&spec.dir, Some(&spec.bridge), true);
            Err(err)
        }
    }
}

fn build(state: &mut LabState) -> Result<LabFiles, String> {
    let spec = state.spec.clone();
    // Labs built at the same time share the cache: one builds, the others wait for it.
    let (base, built) = {
        let _lock = sh::lock(&spec.cache)?;
        (
            base::ensure(&spec.cache, spec.mirror.as_deref())?,
            repo::ensure_sized(&spec.cache, &spec.realistic_minors())?,
        )
    };
    // The lab's own copy, so that a held-back patch can be published to this lab alone later.
    let repo = repo::lab_copy(&built, &spec.dir, &spec.withhold)?;
    let releases = spec.dir.join("releases");
    repo::write_releases(&releases)?;
    let files = state.files();
    let key = ensure_ssh_key(&files.ssh_key)?;

    sh::progress(&format!("bridge {} at {}/24", spec.bridge, spec.host_ip()));
    make_bridge(&spec)?;

    sh::progress("starting the API server and the release server");
    let seed = spec.dir.join("cluster.json");
    sh::write(&seed, cluster_seed(&spec).to_string())?;
    let listen = format!("{}:{}", spec.host_ip(), spec.api_port());
    let vip = format!("{}:{}", spec.vip(), spec.api_port());
    let emulate = emulated_release(&spec.from);
    let kubeconfig = files.kubeconfig.to_string_lossy().into_owned();
    let direct_kubeconfig = files.direct_kubeconfig.to_string_lossy().into_owned();
    state.apiserver_pid = Some(spawn_server(
        &spec,
        "apiserver",
        &[
            "apiserver",
            "--emulate",
            &emulate,
            "--cluster",
            &seed.to_string_lossy(),
            "--listen",
            &listen,
            "--tls",
            "--kubeconfig",
            &kubeconfig,
            "--vip",
            &vip,
            "--direct-kubeconfig",
            &direct_kubeconfig,
            "--time-factor",
            &spec.time_factor.to_string(),
            "--node-grace",
            &spec.node_grace.to_string(),
        ],
    )?);
    let release_listen = format!("{}:{}", spec.host_ip(), spec.release_port());
    state.release_pid = Some(spawn_server(
        &spec,
        "release-server",
        &[
            "release-server",
            "--root",
            &releases.to_string_lossy(),
            "--listen",
            &release_listen,
        ],
    )?);
    // The lab's repositories over HTTP, as users reach pkgs.k8s.io: a node's index is its own copy
    // and goes stale when a patch is published (`kup-lab publish`).
    let repo_listen = format!("{}:{}", spec.host_ip(), spec.repo_port());
    let repo_root = repo.to_string_lossy().into_owned();
    let mut repo_args = vec!["release-server", "--root", &repo_root, "--listen", &repo_listen];
    // A limited link (`up --bandwidth`, or realistic timing's default), shared by every node.
    let bandwidth = spec.served_bandwidth().map(|b| b.to_string());
    if let Some(bandwidth) = &bandwidth {
        repo_args.extend(["--bandwidth", bandwidth]);
    }
    state.repo_pid = Some(spawn_server(&spec, "repo-server", &repo_args)?);
    state.save()?;
    let apiserver_pid = state.apiserver_pid;
    let log = spec.dir.join("logs/apiserver.log");
    let api = wait_for(Duration::from_secs(30), "the API server", || {
        if apiserver_pid.is_some_and(|pid| !sh::alive(pid)) {
            // It exited (an address in use, say): no point in waiting; its log says why below.
            return Some(None);
        }
        // Nobody holds the virtual address before the nodes' keepalived runs: the lab's own address.
        let api = Api::from_kubeconfig(&direct_kubeconfig).ok()?;
        api.get("/version").ok().map(|_| Some(api))
    })?
    .ok_or_else(|| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        format!(
            "the API server exited: {}",
            text.lines().last().unwrap_or("(no log)")
        )
    })?;
    // Each server must be the one answering: one that could not listen (an address still taken)
    // has exited, and whatever answers there is not this lab's.
    for (what, listen, pid) in [
        ("the release server", &release_listen, state.release_pid),
        ("the repository server", &repo_listen, state.repo_pid),
    ] {
        wait_for(Duration::from_secs(30), what, || {
            std::net::TcpStream::connect(listen).ok()
        })?;
        if pid.is_some_and(|pid| !sh::alive(pid)) {
            return Err(format!(
                "{what} exited (is {listen} taken?); see {}",
                spec.dir.join("logs").display()
            ));
        }
    }

    let hosts: String = spec
        .nodes()
        .iter()
        .map(|n| format!("{} {}\n", n.address, n.name))
        .collect();
    let kubeconfig_text =
        std::fs::read_to_string(&files.kubeconfig).map_err(|e| format!("kubeconfig: {e}"))?;
    let direct_text =
        std::fs::read_to_string(&files.direct_kubeconfig).map_err(|e| format!("direct kubeconfig: {e}"))?;
    let etcd_ca = crate::etcd::Ca::for_lab(&spec)?;
    let provision = Provision {
        spec: &spec,
        base: &base,
        repo: &repo,
        authorized_key: &key,
        kubeconfig: &kubeconfig_text,
        direct_kubeconfig: &direct_text,
        hosts: &hosts,
        etcd_ca: Some(&etcd_ca),
    };
    for plan in spec.nodes() {
        sh::progress(&format!("booting {} ({})", plan.name, plan.address));
        let dir = node::prepare(&plan, &provision)?;
        let running = node::boot(&plan, &dir, &spec);
        match running {
            Ok(n) => state.nodes.push(n),
            Err(e) => {
                state.save()?;
                return Err(e);
            }
        }
        state.save()?;
    }

    sh::progress(&format!(
        "installing Kubernetes {} packages on every node",
        spec.from
    ));
    let spec_ref = &spec;
    std::thread::scope(|scope| {
        let mut jobs: Vec<_> = state
            .nodes
            .iter()
            .map(|n| scope.spawn(move || node::install_packages(n, spec_ref)))
            .collect();
        // Meanwhile, the control planes' etcd members form their cluster (external members are
        // started now, on every control plane at once): healthy (a quorum read on each) and seeded
        // before the lab says it is up.
        let (topology, bootstrap) = (etcd_ca.topology(), etcd_ca.bootstrap());
        let members: Vec<&RunningNode> = state.nodes.iter().filter(|n| n.plan.control_plane).collect();
        jobs.push(scope.spawn(move || {
            crate::etcd::wait_and_seed(topology, bootstrap, &members, Duration::from_secs(60))
        }));
        jobs.into_iter()
            .map(|j| {
                j.join()
                    .unwrap_or_else(|_| Err("package installation crashed".into()))
            })
            .collect::<Result<Vec<()>, String>>()
    })?;

    sh::progress("waiting until every node is Ready and every control plane serves");
    let want = format!("v{}", spec.from.trim_start_matches('v'));
    wait_for(
        Duration::from_secs(120),
        "every node Ready and every control plane serving",
        || {
            let nodes = api.get("/api/v1/nodes").ok()?;
            let items = nodes["items"].as_array()?;
            let all = items.len() == spec.nodes().len()
                && items
                    .iter()
                    .all(|n| node_ready(n) && n["status"]["nodeInfo"]["kubeletVersion"] == want.as_str());
            // A freshly booted control plane's static pods are up once its runtime reported them and
            // its kubelet's first start is over: a cluster handed over before that fails preflights
            // (`control_plane: not Running/Ready`), which a real, settled cluster would not.
            let planes = api.get("/_lab/control-planes").ok()?;
            let serving = planes["controlPlanes"].as_array().is_none_or(|cps| {
                cps.iter()
                    .all(|cp| cp["available"] == true && cp["staticPods"] != "restarting")
            });
            (all && serving).then_some(())
        },
    )?;
    write_inventories(state, &files)?;
    Ok(files)
}

fn node_ready(node: &Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Polls `probe` until it gives a value or the time is up.
fn wait_for<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> Result<T, String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "timed out after {} s waiting for {what}",
                limit.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The releases before 1.10 are emulated as 1.9 (the discovery of 1.8 and 1.9 is alike for our needs).
pub fn emulated_release(from: &str) -> String {
    let minor = crate::spec::minor_of(from);
    format!("1.{}", minor.max(9))
}

fn ensure_ssh_key(path: &Path) -> Result<String, String> {
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        sh::run(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "kup-lab",
                "-f",
                &path.to_string_lossy(),
            ],
        )?;
    }
    std::fs::read_to_string(path.with_extension("pub")).map_err(|e| format!("ssh key: {e}"))
}

fn make_bridge(spec: &LabSpec) -> Result<(), String> {
    if Path::new("/sys/class/net").join(&spec.bridge).exists() {
        let _ = sh::run("ip", &["link", "del", &spec.bridge]);
    }
    sh::run("ip", &["link", "add", &spec.bridge, "type", "bridge"])?;
    sh::run(
        "ip",
        &[
            "addr",
            "add",
            &format!("{}/24", spec.host_ip()),
            "dev",
            &spec.bridge,
        ],
    )?;
    // The virtual address on the bridge, so that the nodes and the host reach it; the API server
    // listens there only while some keepalived holds it (lab/apiserver src/vip.rs).
    sh::run(
        "ip",
        &["addr", "add", &format!("{}/32", spec.vip()), "dev", &spec.bridge],
    )?;
    sh::run("ip", &["link", "set", &spec.bridge, "up"])?;
    Ok(())
}

/// Starts `kup-lab ARGS` detached, logging to DIR/logs/NAME.log.
fn spawn_server(spec: &LabSpec, name: &str, args: &[&str]) -> Result<u32, String> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::File::create(spec.dir.join("logs").join(format!("{name}.log")))
        .map_err(|e| e.to_string())?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let child = std::process::Command::new(&spec.kup_lab)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {} {name}: {e}", spec.kup_lab.display()))?;
    Ok(child.id())
}

/// The API server's seed: the lab's nodes (their kubelets report for real) and workloads like a
/// small production cluster's: a replicated app with a PodDisruptionBudget, an app with emptyDir,
/// kube-proxy as a DaemonSet, and a bare pod on the first control plane.
fn cluster_seed(spec: &LabSpec) -> Value {
    let version = format!("v{}", spec.from.trim_start_matches('v'));
    let nodes: Vec<Value> = spec
        .nodes()
        .iter()
        .map(|n| {
            json!({
                "name": n.name,
                "roles": [if n.control_plane { "control-plane" } else { "worker" }],
                "kubeletVersion": version,
                "address": n.address.to_string(),
                "ready": false,
                "kubelet": "external",
            })
        })
        .collect();
    let first = spec.nodes().first().map(|n| n.name.clone()).unwrap_or_default();
    let workers = spec.workers.max(1) as u32;
    let kube_proxy_image = lab_apiserver::Emulation::parse(&emulated_release(&spec.from))
        .map(|emu| emu.control_plane_image("kube-proxy", &version))
        .unwrap_or_else(|_| format!("registry.k8s.io/kube-proxy:{version}"));
    // CoreDNS as kubeadm of the release deployed it (kube-dns before 1.11: not simulated).
    let minor = crate::spec::minor_of(&spec.from);
    let registry = lab_apiserver::Emulation::parse(&emulated_release(&spec.from))
        .map(|emu| emu.image_registry())
        .unwrap_or("registry.k8s.io");
    let deployments: Vec<Value> = lab_standin::coredns::image(registry, minor)
        .map(|image| {
            json!({"name": "coredns", "namespace": "kube-system", "replicas": 2,
            "labels": {"k8s-app": "kube-dns"}, "image": image})
        })
        .into_iter()
        .collect();
    // An external etcd (the older eras) as kubeadm-config names it: its members and the client
    // certificate kubeadm init was given (lab/cluster src/etcd.rs).
    let members: Vec<crate::NodePlan> = spec.nodes().into_iter().filter(|n| n.control_plane).collect();
    let external_etcd = crate::etcd::kubeadm_config(crate::etcd::Topology::of(spec), &members);
    // A stacked etcd of the 1.11 HA guide's (1.11 and 1.12 labs, `--etcd stacked`): kubeadm-config
    // keeps the guide's `etcd.local.extraArgs` (lab/apiserver src/store/kubeadm_config.rs).
    let guide = crate::etcd::Bootstrap::of(spec) == crate::etcd::Bootstrap::OneByOne;
    let stacked_etcd = guide.then(|| json!({"members": members.iter().map(|m| &m.name).collect::<Vec<_>>()}));
    // The cri-socket annotation kubeadm reads from 1.12 (`kubeadm.alpha.kubernetes.io/cri-socket`):
    // 1.11's `kubeadm init` put it on its own node only, the guide's other control planes were made
    // with `kubeadm alpha phase` commands (the 1.11 -> 1.12 HA page: "Add an annotation for the
    // cri-socket to the current node" on each additional one); a 1.12 lab's were all annotated then.
    let mut node_annotations = serde_json::Map::new();
    if guide {
        let annotated = if crate::spec::minor_of(&spec.from) == 11 {
            1
        } else {
            members.len()
        };
        for m in members.iter().take(annotated) {
            node_annotations.insert(
                m.name.clone(),
                json!({lab_standin::CRI_SOCKET_ANNOTATION: lab_standin::DOCKERSHIM_SOCKET}),
            );
        }
    }
    json!({
        "kubernetesVersion": version,
        "externalEtcd": external_etcd,
        "stackedEtcd": stacked_etcd,
        "nodeAnnotations": node_annotations,
        // The control-plane endpoint kubeadm init was given: the virtual address (kubeadm HA guide,
        // kubernetes.io/docs/setup/production-environment/tools/kubeadm/high-availability/).
        "controlPlaneEndpoint": format!("{}:{}", spec.vip(), spec.api_port()),
        "deployments": deployments,
        "nodes": nodes,
        "replicaSets": [
            {"name": "web", "replicas": 2 * workers, "terminationGracePeriodSeconds": 10},
            {"name": "cache", "replicas": workers, "emptyDir": true, "terminationGracePeriodSeconds": 5},
        ],
        // kube-proxy with the image kubeadm of the release deployed (the addon version kubeadm's
        // upgrades move).
        "daemonSets": [
            {"name": "kube-proxy", "namespace": "kube-system", "terminationGracePeriodSeconds": 5,
             "image": kube_proxy_image},
        ],
        "pods": [
            {"name": "admin-debug", "node": first, "terminationGracePeriodSeconds": 1},
        ],
        "pdbs": [
            {"name": "web", "selector": {"app": "web"}, "maxUnavailable": 1},
        ],
    })
}

fn write_inventories(state: &LabState, files: &LabFiles) -> Result<(), String> {
    let spec = &state.spec;
    let key = files.ssh_key.display();
    let kubeconfig = files.kubeconfig.display();
    let manager = match spec.flavour {
        Flavour::Apt => "apt",
        Flavour::Rpm => "dnf",
    };
    let (cps, workers): (Vec<_>, Vec<_>) = spec.nodes().into_iter().partition(|n| n.control_plane);
    // An external etcd's member and client certificate per control plane, for the etcd snapshot
    // before the first apply (none for stacked etcd: kubeadm's certificates are the default).
    let topology = crate::etcd::Topology::of(spec);
    let ini_hosts = |list: &[crate::NodePlan]| -> String {
        list.iter()
            .map(|n| {
                let vars: String = crate::etcd::inventory_vars(topology, n)
                    .iter()
                    .map(|(k, v)| format!(" {k}={v}"))
                    .collect();
                format!("{} ansible_host={}{vars}\n", n.name, n.address)
            })
            .collect()
    };
    let common = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR";
    let ini = format!(
        "# Written by kup-lab up: the lab in {dir}\n[control_plane]\n{cp}\n[workers]\n{w}\n[all:vars]\n\
         ansible_user=root\nansible_ssh_private_key_file={key}\nansible_ssh_common_args='{common}'\n\
         ansible_python_interpreter=/usr/bin/python3\nkubeconfig={kubeconfig}\nkubeadm_base_url={rel}\n\
         package_manager={manager}\ncontainer_runtime={rt}\n",
        dir = spec.dir.display(),
        cp = ini_hosts(&cps),
        w = ini_hosts(&workers),
        rel = state.release_url,
        rt = spec.runtime(),
    );
    sh::write(&files.inventory_ini, ini)?;
    let yaml_hosts = |list: &[crate::NodePlan]| -> String {
        if list.is_empty() {
            return "      hosts: {}\n".into();
        }
        let hosts: String = list
            .iter()
            .map(|n| {
                let vars: String = crate::etcd::inventory_vars(topology, n)
                    .iter()
                    .map(|(k, v)| format!("          {k}: {v}\n"))
                    .collect();
                format!(
                    "        {}:\n          ansible_host: {}\n{vars}",
                    n.name, n.address
                )
            })
            .collect();
        format!("      hosts:\n{hosts}")
    };
    let yaml = format!(
        "# Written by kup-lab up: the lab in {dir}\nall:\n  vars:\n    ansible_user: root\n    \
         ansible_ssh_private_key_file: {key}\n    ansible_ssh_common_args: \"{common}\"\n    \
         ansible_python_interpreter: /usr/bin/python3\n    kubeconfig: {kubeconfig}\n    \
         kubeadm_base_url: {rel}\n    package_manager: {manager}\n    container_runtime: {rt}\n  children:\n    \
         control_plane:\n{cp}    workers:\n{w}",
        dir = spec.dir.display(),
        cp = yaml_hosts(&cps),
        w = yaml_hosts(&workers),
        rel = state.release_url,
        rt = spec.runtime(),
    );
    sh::write(&files.inventory_yaml, yaml)
}

/// Removes every container, mount, bridge and process the lab in `dir` made, and the directory.
/// Idempotent, and safe after a crash (it also looks for leftovers the state file does not name).
pub fn down(dir: &Path, bridge: Option<&str>) -> Result<(), String> {
    teardown(dir, bridge, false)
}

fn teardown(dir: &Path, bridge: Option<&str>, keep_logs: bool) -> Result<(), String> {
    let state = LabState::load(dir);
    let dir_text = dir.to_string_lossy().into_owned();
    // Nodes: those the state names, and any nspawn still running on a tree under dir.
    let mut nspawns: Vec<u32> = state
        .iter()
        .flat_map(|s| s.nodes.iter().map(|n| n.nspawn_pid))
        .collect();
    nspawns.extend(processes_mentioning(&dir_text, "systemd-nspawn", &[]));
    nspawns.sort_unstable();
    nspawns.dedup();
    std::thread::scope(|scope| {
        for pid in &nspawns {
            if cmdline(*pid).contains(&dir_text) {
                scope.spawn(move || node::stop(*pid));
            }
        }
    });
    // A container whose nspawn went away outright (killed under load, say) keeps running on its
    // own, its root this lab's overlay: its init goes, and with it its whole PID namespace.
    for pid in orphaned_containers(dir) {
        let _ = sh::run("kill", &["-KILL", &pid.to_string()]);
    }
    // Servers: only processes whose command line names this lab's directory.
    let mut servers: Vec<u32> = state
        .iter()
        .flat_map(|s| [s.apiserver_pid, s.release_pid, s.repo_pid])
        .flatten()
        .collect();
    servers.extend(processes_mentioning(
        &dir_text,
        "kup-lab",
        &["apiserver", "release-server"],
    ));
    let mut ending = Vec::new();
    for pid in servers {
        if sh::alive(pid) && cmdline(pid).contains(&dir_text) {
            let _ = sh::run("kill", &["-TERM", &pid.to_string()]);
            ending.push(pid);
        }
    }
    // Gone before this returns: the next lab on the same addresses must be able to listen there.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ending.iter().any(|pid| sh::alive(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in ending.into_iter().filter(|pid| sh::alive(*pid)) {
        let _ = sh::run("kill", &["-KILL", &pid.to_string()]);
    }
    for mount in mounts_under(dir).into_iter().rev() {
        if sh::run("umount", &[&mount]).is_err() {
            sh::run("umount", &["-l", &mount])?;
        }
    }
    let bridge = bridge
        .map(str::to_string)
        .or_else(|| state.as_ref().map(|s| s.spec.bridge.clone()));
    if let Some(bridge) = bridge {
        if Path::new("/sys/class/net").join(&bridge).exists() {
            sh::run("ip", &["link", "del", &bridge])?;
        }
    }
    let left = mounts_under(dir);
    if !left.is_empty() {
        return Err(format!(
            "still mounted, not removing {}: {}",
            dir.display(),
            left.join(", ")
        ));
    }
    if keep_logs {
        for sub in ["nodes", "releases", "state.json"] {
            let path = dir.join(sub);
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    } else if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    Ok(())
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Processes running `program` whose command line mentions `text` (never this process itself).
fn processes_mentioning(text: &str, program: &str, subcommands: &[&str]) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let line = cmdline(*pid);
            let mut words = line.split_whitespace();
            line.contains(text)
                && words.next().is_some_and(|argv0| argv0.ends_with(program))
                && (subcommands.is_empty() || words.next().is_some_and(|w| subcommands.contains(&w)))
        })
        .collect()
}

/// The init processes of containers whose root is an overlay of this lab's nodes (`DIR/nodes/...`)
/// and whose nspawn is gone (their parent is the host's init).
fn orphaned_containers(dir: &Path) -> Vec<u32> {
    let upper = format!("upperdir={}/nodes/", dir.to_string_lossy().trim_end_matches('/'));
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat.rsplit(')').next().and_then(|s| s.split_whitespace().nth(1));
            ppid == Some("1")
                && std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
                    .unwrap_or_default()
                    .lines()
                    .any(|l| l.split_whitespace().nth(4) == Some("/") && l.contains(&upper))
        })
        .collect()
}

/// Mount points under `dir`, in mount order.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.to_string_lossy().trim_end_matches('/'));
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

/// Publishes a release the lab held back (`up --withhold`): its packages appear in the lab's
/// repositories, with new signed indexes; the nodes see them after `apt-get update` / `dnf makecache`.
pub fn publish(dir: &Path, version: &str) -> Result<(), String> {
    let state = LabState::load(dir).ok_or_else(|| format!("no lab in {}", dir.display()))?;
    let built = {
        let _lock = sh::lock(&state.spec.cache)?;
        repo::ensure_sized(&state.spec.cache, &state.spec.realistic_minors())?
    };
    repo::publish(
        &built,
        &state.spec.dir.join("repo"),
        version.trim_start_matches('v'),
    )
}

/// The Kubernetes repository a node's package manager is pointed at, as its definition file says:
/// `v1.34` (pkgs.k8s.io), `legacy`, or `none`.
fn repository_of(node: &crate::node::RunningNode) -> String {
    use crate::repo::sources;
    [sources::APT_LIST, sources::APT_SOURCES, sources::YUM_REPO]
        .iter()
        .find_map(|path| std::fs::read_to_string(node.merged().join(path.trim_start_matches('/'))).ok())
        .map(|text| match sources::minor_in(&text) {
            Some(minor) => format!("v1.{minor}"),
            None => "legacy".to_string(),
        })
        .unwrap_or_else(|| "none".to_string())
}

/// One line per node (name, address, container, Ready, kubelet version, repository minor) and the
/// servers.
pub fn status(dir: &Path) -> Result<String, String> {
    let state = LabState::load(dir).ok_or_else(|| format!("no lab in {}", dir.display()))?;
    let api = state.api().ok();
    let reported = api.as_ref().and_then(|a| a.get("/api/v1/nodes").ok());
    let mut out = format!(
        "lab in {} ({} nodes, {:?}, from {})\n",
        dir.display(),
        state.nodes.len(),
        state.spec.flavour,
        state.spec.from
    );
    out.push_str(&format!(
        "api server {} (its own address {}) {}\nrelease server {} {}\n",
        state.api_url,
        state.direct_url,
        if state.apiserver_pid.is_some_and(sh::alive) {
            "running"
        } else {
            "DOWN"
        },
        state.release_url,
        if state.release_pid.is_some_and(sh::alive) {
            "running"
        } else {
            "DOWN"
        },
    ));
    out.push_str(&format!(
        "repository server {} {}\n{}",
        state.spec.repo_url(),
        if state.repo_pid.is_some_and(sh::alive) {
            "running"
        } else {
            "DOWN"
        },
        timing_lines(&state.spec),
    ));
    for n in &state.nodes {
        let item = reported
            .as_ref()
            .and_then(|r| r["items"].as_array())
            .and_then(|items| {
                items
                    .iter()
                    .find(|i| i["metadata"]["name"] == n.plan.name.as_str())
            });
        let ready = item
            .map(|i| if node_ready(i) { "Ready" } else { "NotReady" })
            .unwrap_or("unknown");
        let version = item
            .and_then(|i| i["status"]["nodeInfo"]["kubeletVersion"].as_str())
            .unwrap_or("?");
        out.push_str(&format!(
            "{:<10} {:<15} {:<8} {:<9} {:<9} repo {}\n",
            n.plan.name,
            n.plan.address,
            if sh::alive(n.nspawn_pid) {
                "running"
            } else {
                "stopped"
            },
            ready,
            version,
            repository_of(n)
        ));
    }
    if let Some(services) = api.as_ref().and_then(|a| a.get("/_lab/control-planes").ok()) {
        out.push_str(&services_lines(&services));
    }
    Ok(out)
}

/// The lab's timing and the repository server's bandwidth (`up --timing`, `--bandwidth`).
fn timing_lines(spec: &LabSpec) -> String {
    let bandwidth = match (spec.bandwidth, spec.served_bandwidth()) {
        (Some(simulated), Some(real)) => format!(
            "bandwidth {} (served at {} real)",
            crate::spec::show_bandwidth(simulated as f64),
            crate::spec::show_bandwidth(real as f64)
        ),
        (Some(simulated), None) => format!(
            "bandwidth {} (unlimited at time factor 0)",
            crate::spec::show_bandwidth(simulated as f64)
        ),
        (None, _) => "bandwidth unlimited".to_string(),
    };
    format!(
        "timing {} (time factor {}), repository {bandwidth}\n",
        spec.timing.name(),
        spec.time_factor
    )
}

/// The control planes' availability and the virtual address, as the API server counts them.
fn services_lines(services: &Value) -> String {
    let mut out = String::new();
    for cp in services["controlPlanes"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "control plane {:<10} {:<11} static pods {:<10} runtime {:<10} interruptions {}\n",
            cp["node"].as_str().unwrap_or("?"),
            if cp["available"] == true {
                "available"
            } else {
                "UNAVAILABLE"
            },
            cp["staticPods"].as_str().unwrap_or("?"),
            cp["runtime"].as_str().unwrap_or("-"),
            cp["interruptions"]
        ));
    }
    let vip = &services["vip"];
    let running: Vec<&str> = vip["keepalived"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    out.push_str(&format!(
        "virtual address held by {}{} (keepalived on {}), moves {}, interruptions {}\n",
        vip["holder"].as_str().unwrap_or("nobody"),
        if vip["failingOver"] == true {
            ", failing over"
        } else {
            ""
        },
        if running.is_empty() {
            "none".to_string()
        } else {
            running.join(", ")
        },
        vip["moves"],
        vip["interruptions"]
    ));
    out
}

#[cfg(test)]
mod services_tests {
    use super::*;

    #[test]
    fn a_large_lab_needs_more_inotify_instances_than_the_kernels_default() {
        // The default 128 held 16 nodes and failed the 17th's boot: 3 + 2 fit, 3 + 20 need more.
        assert!(inotify_needed(5) <= 256);
        assert!(inotify_needed(23) > 128 + 16 * 17);
        assert_eq!(inotify_needed(0), 128);
    }

    #[test]
    fn the_seed_names_an_external_etcd_on_old_eras_only_and_the_api_server_reads_it() {
        let old: lab_apiserver::Cluster =
            serde_json::from_value(cluster_seed(&crate::spec::test_spec("1.8.3"))).unwrap();
        let etcd = old.external_etcd.expect("an external etcd");
        assert_eq!(
            etcd.endpoints,
            ["https://10.213.0.11:2379", "https://10.213.0.12:2379"],
            "the control planes' members, not the worker"
        );
        assert_eq!(etcd.cert_file, "/etc/kubernetes/pki/etcd/client.pem");
        let new: lab_apiserver::Cluster =
            serde_json::from_value(cluster_seed(&crate::spec::test_spec("1.34.2"))).unwrap();
        assert_eq!(new.external_etcd, None);
        assert_eq!(new.stacked_etcd, None);
        assert!(new.node_annotations.is_empty());
    }

    #[test]
    fn a_stacked_1_11_or_1_12_lab_seeds_the_guides_etcd_and_the_cri_socket_annotations() {
        let annotation = |c: &lab_apiserver::Cluster, node: &str| {
            c.node_annotations
                .get(node)
                .and_then(|a| a.get("kubeadm.alpha.kubernetes.io/cri-socket"))
                .cloned()
        };
        for (from, annotated) in [("1.11.10", 1), ("1.12.10", 2)] {
            let mut spec = crate::spec::test_spec(from);
            spec.etcd = Some(crate::etcd::Topology::Stacked);
            let seed: lab_apiserver::Cluster = serde_json::from_value(cluster_seed(&spec)).unwrap();
            assert_eq!(seed.external_etcd, None, "{from}");
            let stacked = seed.stacked_etcd.clone().expect("the guide's stacked etcd");
            assert_eq!(
                stacked.members,
                ["lab-cp1", "lab-cp2"],
                "{from}: the control planes only"
            );
            assert_eq!(
                annotation(&seed, "lab-cp1").as_deref(),
                Some("/var/run/dockershim.sock")
            );
            assert_eq!(annotation(&seed, "lab-cp2").is_some(), annotated == 2, "{from}");
            assert_eq!(annotation(&seed, "lab-w1"), None);
        }
        // From 1.13 a stacked lab's kubeadm-config has no extraArgs (kubeadm computes the flags).
        let mut spec = crate::spec::test_spec("1.13.12");
        spec.etcd = Some(crate::etcd::Topology::Stacked);
        let seed: lab_apiserver::Cluster = serde_json::from_value(cluster_seed(&spec)).unwrap();
        assert_eq!((seed.external_etcd, seed.stacked_etcd), (None, None));
    }

    #[test]
    fn status_shows_each_control_planes_interruptions_and_the_address() {
        let text = services_lines(&json!({
            "controlPlanes": [
                {"node": "lab-cp1", "available": false, "staticPods": "stopped", "runtime": "docker", "interruptions": 2},
                {"node": "lab-cp2", "available": true, "staticPods": "running", "runtime": "docker", "interruptions": 0},
            ],
            "vip": {"holder": "lab-cp2", "keepalived": ["lab-cp2"], "failingOver": false, "moves": 1, "interruptions": 1},
        }));
        assert!(
            text.contains("lab-cp1    UNAVAILABLE static pods stopped"),
            "{text}"
        );
        assert!(text.contains("interruptions 2"), "{text}");
        assert!(
            text.contains(
                "virtual address held by lab-cp2 (keepalived on lab-cp2), moves 1, interruptions 1"
            ),
            "{text}"
        );
    }
}
