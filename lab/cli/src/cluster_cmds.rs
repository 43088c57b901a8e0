//! `kup-lab up | down | status | release-server`: the nspawn lab's life cycle (lab/cluster)
//! and the release server its nodes download kubeadm from (lab/release).

use lab_cluster::{Flavour, LabSpec};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// The lab's directory: state, node overlays, ssh key, kubeconfig, inventories, logs.
    #[arg(long, default_value = ".lab")]
    pub dir: PathBuf,
    /// Cache for the debootstrapped base tree and the package repositories (built once).
    #[arg(long, default_value = "/var/cache/kup-lab")]
    pub cache: PathBuf,
    /// Control-plane nodes (the first is the primary).
    #[arg(long, default_value_t = 3)]
    pub control_planes: usize,
    /// Worker nodes.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Package flavour of the nodes: apt (Debian) or rpm (dnf/yum, says it is CentOS).
    #[arg(long, default_value = "apt", value_parser = Flavour::parse)]
    pub flavour: Flavour,
    /// The Kubernetes version the cluster starts at (`kup-lab repo` lists them); it picks the era's
    /// repository layout: the legacy apt/yum repository up to 1.23, pkgs.k8s.io's per minor after.
    #[arg(long, default_value = "1.8.3")]
    pub from: String,
    /// The lab bridge's name.
    #[arg(long, default_value = "kuplab0")]
    pub bridge: String,
    /// The lab's /24 as A.B.C (host .1, nodes from .11).
    #[arg(long, default_value = "10.213.0", value_parser = parse_subnet)]
    pub subnet: [u8; 3],
    /// Debian mirror for the base tree (default: the host's apt source).
    #[arg(long)]
    pub mirror: Option<String>,
    /// The stand-in binary for kubelet/kubeadm/kubectl (default: kup-standin beside kup-lab).
    #[arg(long)]
    pub standin: Option<PathBuf>,
    /// Real seconds per simulated second for pod termination grace periods.
    #[arg(long, default_value_t = 0.2)]
    pub time_factor: f64,
    /// Seconds without kubelet heartbeats before a node turns NotReady.
    #[arg(long, default_value_t = 8.0)]
    pub node_grace: f64,
    /// Hold a pkgs.k8s.io release (e.g. 1.35.1) back from this lab's repositories until
    /// `kup-lab publish` (repeatable): a patch published after the nodes were provisioned, which
    /// they see only after refreshing their package index.
    #[arg(long)]
    pub withhold: Vec<String>,
    /// How long the stand-ins take: default (at once, small packages) or realistic (kubeadm's
    /// upgrade apply/node and the kubelet's Ready as long as real ones, scaled by --time-factor;
    /// kubelet/kubeadm/kubectl packages of real sizes, served at --bandwidth).
    #[arg(long, default_value = "default", value_parser = lab_cluster::Timing::parse)]
    pub timing: lab_cluster::Timing,
    /// The repository server's bandwidth, shared by all nodes, per simulated second (e.g. 20MB/s,
    /// 100Mbit/s; served at this divided by --time-factor). Realistic timing: 20MB/s unless given;
    /// default timing: unlimited unless given.
    #[arg(long, value_parser = lab_cluster::spec::parse_bandwidth)]
    pub bandwidth: Option<u64>,
    /// How the control planes run etcd: stacked (kubeadm's local etcd, a member per control plane;
    /// from 1.11, whose HA guide stacks it; on 1.11 and 1.12 as that guide set it up, its
    /// etcd.local.extraArgs in kubeadm-config) or external (the 1.9 HA guide's etcd on the
    /// masters). Default: stacked from 1.24, external before.
    #[arg(long, value_parser = lab_cluster::etcd::Topology::parse)]
    pub etcd: Option<lab_cluster::etcd::Topology>,
}

#[derive(clap::Args, Debug)]
pub struct PublishArgs {
    /// The lab's directory.
    #[arg(long, default_value = ".lab")]
    pub dir: PathBuf,
    /// The release held back at `up --withhold` to publish now, e.g. 1.35.1.
    pub version: String,
}

pub fn publish(args: PublishArgs) -> Result<(), String> {
    lab_cluster::publish(&absolute(args.dir)?, &args.version)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "published {}: nodes see it after `apt-get update` / `dnf makecache`",
        args.version
    )
    .map_err(|e| e.to_string())
}

#[derive(clap::Args, Debug)]
pub struct RepoArgs {
    /// Cache for the package repositories (the same as `up --cache`).
    #[arg(long, default_value = "/var/cache/kup-lab")]
    pub cache: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct DirArgs {
    /// The lab's directory.
    #[arg(long, default_value = ".lab")]
    pub dir: PathBuf,
    /// The bridge to remove even if the state file is gone (down only).
    #[arg(long)]
    pub bridge: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ReleaseServerArgs {
    /// The release tree (the layout of https://dl.k8s.io/release).
    #[arg(long)]
    pub root: PathBuf,
    /// Address to listen on (loopback or the lab bridge's address).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Send every body through one link of this many bytes per second (all downloads share it).
    #[arg(long)]
    pub bandwidth: Option<u64>,
}

fn parse_subnet(text: &str) -> Result<[u8; 3], String> {
    let parts: Vec<u8> = text
        .split('.')
        .map(|p| p.parse::<u8>())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    match parts.as_slice() {
        [10, b, c] => Ok([10, *b, *c]),
        [192, 168, c] => Ok([192, 168, *c]),
        [172, b, c] if (16..32).contains(b) => Ok([172, *b, *c]),
        _ => Err(format!(
            "{text:?} is not a private A.B.C prefix (10.x.y, 172.16-31.y, 192.168.y)"
        )),
    }
}

fn absolute(path: PathBuf) -> Result<PathBuf, String> {
    std::path::absolute(&path).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn up(args: UpArgs) -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find kup-lab itself: {e}"))?;
    let standin = match args.standin {
        Some(path) => absolute(path)?,
        None => me.with_file_name("kup-standin"),
    };
    if !standin.is_file() {
        return Err(format!(
            "{} is missing: build it (scripts/build) or pass --standin",
            standin.display()
        ));
    }
    let spec = LabSpec {
        dir: absolute(args.dir)?,
        cache: absolute(args.cache)?,
        control_planes: args.control_planes,
        workers: args.workers,
        flavour: args.flavour,
        from: args.from.trim_start_matches('v').to_string(),
        bridge: args.bridge,
        subnet: args.subnet,
        mirror: args.mirror,
        standin,
        kup_lab: me,
        time_factor: args.time_factor,
        node_grace: args.node_grace,
        withhold: args.withhold,
        timing: args.timing,
        bandwidth: args.bandwidth.or(match args.timing {
            lab_cluster::Timing::Realistic => Some(lab_cluster::spec::REALISTIC_BANDWIDTH),
            lab_cluster::Timing::Default => None,
        }),
        etcd: args.etcd,
    };
    let files = lab_cluster::up(&spec)?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "lab is up ({} control planes, {} workers, {:?}, Kubernetes {}, {} etcd, {} timing)\n  inventory   {}\n  inventory   {}\n  \
         kubeconfig  {}\n  ssh key     {}\n  api server  {}\n  releases    {}\ntry: kubectl --kubeconfig {} get nodes",
        spec.control_planes,
        spec.workers,
        spec.flavour,
        spec.from,
        lab_cluster::etcd::Topology::of(&spec).name(),
        spec.timing.name(),
        files.inventory_ini.display(),
        files.inventory_yaml.display(),
        files.kubeconfig.display(),
        files.ssh_key.display(),
        files.api_url,
        files.release_url,
        files.kubeconfig.display(),
    );
    Ok(())
}

pub fn down(args: DirArgs) -> Result<(), String> {
    let dir = absolute(args.dir)?;
    lab_cluster::down(&dir, args.bridge.as_deref())?;
    let _ = writeln!(std::io::stdout(), "lab in {} is down", dir.display());
    Ok(())
}

pub fn status(args: DirArgs) -> Result<(), String> {
    let text = lab_cluster::status(&absolute(args.dir)?)?;
    let _ = write!(std::io::stdout(), "{text}");
    Ok(())
}

pub fn release_server(args: ReleaseServerArgs) -> Result<(), String> {
    let server = lab_release::ReleaseServer::start_limited(&args.root, args.listen, args.bandwidth)
        .map_err(|e| format!("cannot serve {} on {}: {e}", args.root.display(), args.listen))?;
    eprintln!(
        "kup-lab release-server: serving {} at {}",
        args.root.display(),
        server.base_url()
    );
    loop {
        std::thread::park();
    }
}

pub fn repo(args: RepoArgs) -> Result<(), String> {
    let built = {
        let _lock = lab_cluster::sh::lock(&args.cache)?;
        lab_cluster::repo::ensure(&args.cache)?
    };
    let releases: Vec<serde_json::Value> = lab_cluster::repo::RELEASES
        .iter()
        .map(|r| {
            serde_json::json!({
                "version": r.version,
                "legacy": r.legacy(),
                "deb": lab_cluster::repo::deb_version(r.version, r.legacy()),
                "rpm": format!("{}-{}", r.version, lab_cluster::repo::rpm_release(r.legacy())),
                "cni": r.cni,
                "cri_tools": r.cri_tools,
                "apt_source": lab_cluster::repo::sources::apt(
                    r,
                    lab_cluster::repo::sources::AptForm::OneLine,
                    lab_cluster::repo::sources::FILE_BASE
                ).1.trim(),
                "yum_repo": lab_cluster::repo::sources::yum(r, lab_cluster::repo::sources::FILE_BASE),
            })
        })
        .collect();
    let out = serde_json::json!({
        "served": built.served,
        "mount": lab_cluster::repo::sources::FILE_BASE.trim_start_matches("file://"),
        "fingerprint": built.fingerprint,
        "releases": releases,
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{out:#}").map_err(|e| e.to_string())
}
