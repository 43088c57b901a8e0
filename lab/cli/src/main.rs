//! `kup-lab`: a local cluster to rehearse upgrades and to test against.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

mod cluster_cmds;

use clap::{Parser, Subcommand};
use lab_apiserver::{Cluster, Emulation, FaultSpec, ServerConfig};

#[derive(Parser, Debug)]
#[command(
    name = "kup-lab",
    version,
    about = "A local cluster to rehearse Kubernetes upgrades"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the lab's simulated kube-apiserver until interrupted.
    Apiserver(ApiserverArgs),
    /// Build (once) and boot the lab: nspawn nodes with real systemd, sshd and apt or dnf, the API
    /// server and the release server; wait until every node is Ready; write inventories.
    Up(cluster_cmds::UpArgs),
    /// Remove every container, mount, bridge and process the lab made (idempotent, safe after a crash).
    Down(cluster_cmds::DirArgs),
    /// Show the lab's nodes (container, Ready, kubelet version) and servers.
    Status(cluster_cmds::DirArgs),
    /// Serve a release tree (the dl.k8s.io layout) until interrupted.
    ReleaseServer(cluster_cmds::ReleaseServerArgs),
    /// Build (once) the signed package repositories and print, as JSON, the directory nodes mount
    /// (`served`), the signing key's fingerprint and how each release's repository is reached.
    Repo(cluster_cmds::RepoArgs),
    /// Publish a release held back at `up --withhold` in the lab's repositories (signed anew).
    Publish(cluster_cmds::PublishArgs),
}

#[derive(clap::Args, Debug)]
struct ApiserverArgs {
    /// Release to emulate: 1.9 or 1.30 (other minors in 1.9..=1.35 approximately).
    #[arg(long, default_value = "1.30")]
    emulate: String,
    /// Cluster description (YAML or JSON); default: a sample 3+3-node cluster.
    #[arg(long)]
    cluster: Option<PathBuf>,
    /// Generate a large cluster instead: NODES,PODS (e.g. 2000,60000).
    #[arg(long, conflicts_with = "cluster")]
    generate: Option<String>,
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Serve HTTPS with a generated CA (the kubeconfig carries the CA and a bearer token).
    #[arg(long)]
    tls: bool,
    /// Bearer token to require (generated with --tls when absent).
    #[arg(long)]
    token: Option<String>,
    /// Write a kubeconfig for clients here (through --vip when given).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The cluster's virtual address (keepalived's), e.g. 10.213.0.10:6443: a listener there forwards
    /// to this server while some keepalived holds the address (refused otherwise); the certificate
    /// and the --kubeconfig name it.
    #[arg(long)]
    vip: Option<SocketAddr>,
    /// Write a kubeconfig that reaches this server at --listen, whoever holds the virtual address
    /// (the lab's own side channel).
    #[arg(long)]
    direct_kubeconfig: Option<PathBuf>,
    /// Real seconds per simulated second of grace periods (0.01 = 100x faster).
    #[arg(long, default_value_t = 1.0)]
    time_factor: f64,
    /// Seconds without heartbeats before an externally reported node turns NotReady.
    #[arg(long, default_value_t = 40.0)]
    node_grace: f64,
    /// Simulated seconds a new pod takes to become Ready.
    #[arg(long, default_value_t = 2.0)]
    pod_startup: f64,
    /// A fault rule as JSON (repeatable), e.g. '{"method":"POST","path_contains":"/eviction","status":429,"count":2}'.
    #[arg(long = "fault")]
    faults: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Apiserver(args) => run_apiserver(args),
        Command::Up(args) => cluster_cmds::up(args),
        Command::Down(args) => cluster_cmds::down(args),
        Command::Status(args) => cluster_cmds::status(args),
        Command::ReleaseServer(args) => cluster_cmds::release_server(args),
        Command::Repo(args) => cluster_cmds::repo(args),
        Command::Publish(args) => cluster_cmds::publish(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kup-lab: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_apiserver(args: ApiserverArgs) -> Result<(), String> {
    let emu = Emulation::parse(&args.emulate)?;
    let cluster = match (&args.cluster, &args.generate) {
        (Some(path), _) => Cluster::from_file(path)?,
        (None, Some(spec)) => {
            let (n, p) = spec
                .split_once(',')
                .ok_or_else(|| format!("--generate wants NODES,PODS, got {spec:?}"))?;
            let n: usize = n.trim().parse().map_err(|_| format!("bad node count {n:?}"))?;
            let p: usize = p.trim().parse().map_err(|_| format!("bad pod count {p:?}"))?;
            Cluster::generate(n, p)
        }
        (None, None) => Cluster::sample(None),
    };
    if !(args.time_factor >= 0.0 && args.time_factor.is_finite()) {
        return Err(format!("--time-factor must be >= 0, got {}", args.time_factor));
    }
    let mut cfg = ServerConfig::new(emu, cluster);
    cfg.listen = args.listen;
    // Clients on the lab bridge reach the server by its address: the certificate must name it.
    cfg.extra_sans.push(args.listen.ip().to_string());
    // kubeadm puts the control-plane endpoint in the API server's certificate SANs
    // (cmd/kubeadm/app/util/pkiutil GetAPIServerAltNames): clients verify the VIP by name.
    if let Some(vip) = args.vip {
        cfg.extra_sans.push(vip.ip().to_string());
    }
    cfg.vip = args.vip;
    cfg.tls = args.tls;
    cfg.token = args.token;
    cfg.time_factor = args.time_factor;
    cfg.node_grace = Duration::from_secs_f64(args.node_grace.max(0.0));
    cfg.pod_startup_seconds = args.pod_startup.max(0.0);
    for f in &args.faults {
        let spec: FaultSpec = serde_json::from_str(f).map_err(|e| format!("--fault {f:?}: {e}"))?;
        cfg.faults.push(spec);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let handle = lab_apiserver::start(cfg).await?;
        if let Some(path) = &args.kubeconfig {
            handle.write_kubeconfig(path)?;
        }
        if let Some(path) = &args.direct_kubeconfig {
            handle.write_direct_kubeconfig(path)?;
        }
        eprintln!(
            "kup-lab apiserver: emulating {} at {}{}",
            emu.git_version(),
            handle.client_url(),
            args.kubeconfig
                .as_ref()
                .map(|p| format!(", kubeconfig {}", p.display()))
                .unwrap_or_default()
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| format!("cannot install a signal handler: {e}"))?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        handle.stop().await;
        Ok(())
    })
}
