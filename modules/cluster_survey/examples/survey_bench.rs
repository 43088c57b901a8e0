//! Benchmark (not a test): `cluster_survey` against a lab API server with NODES nodes and PODS
//! pods (default 2,000 / 60,000, as `lab-apiserver-bench` generates them, plus BARE bare pods that
//! block drains and one PodDisruptionBudget that allows no disruption), run in this process on
//! loopback. The module runs as a child process, as Ansible or kup would run it; for each run it
//! prints the wall time and the survey's counts, then the child's peak RSS.
//!
//! cargo build --release -p cluster_survey
//! cargo run --release -p cluster_survey --example survey_bench -- \
//!     --module target/x86_64-unknown-linux-gnu/release/cluster_survey \
//!     [--nodes 2000] [--pods 60000] [--bare 20] [--runs 3] [--emulation 1.30] [--page-size 500]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use lab_apiserver::cluster::{IntOrPercent, PodSeed};
use lab_apiserver::{Cluster, Emulation, ServerConfig};
use nix::sys::resource::{getrusage, UsageWho};
use serde_json::{json, Value};

struct Opts {
    module: PathBuf,
    emulation: Emulation,
    nodes: usize,
    pods: usize,
    bare: usize,
    runs: usize,
    page_size: u32,
}

fn opts() -> Opts {
    let mut o = Opts {
        module: PathBuf::from("target/x86_64-unknown-linux-gnu/release/cluster_survey"),
        emulation: Emulation::V1_30,
        nodes: 2000,
        pods: 60_000,
        bare: 20,
        runs: 3,
        page_size: 500,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--module" => o.module = v.into(),
            "--emulation" => o.emulation = Emulation::parse(&v).unwrap(),
            "--nodes" => o.nodes = v.parse().unwrap(),
            "--pods" => o.pods = v.parse().unwrap(),
            "--bare" => o.bare = v.parse().unwrap(),
            "--runs" => o.runs = v.parse().unwrap(),
            "--page-size" => o.page_size = v.parse().unwrap(),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

fn cluster(o: &Opts) -> Cluster {
    let mut c = Cluster::generate(o.nodes, o.pods);
    let workers = o.nodes.saturating_sub(3).max(1);
    for i in 0..o.bare {
        c.pods.push(PodSeed {
            name: format!("debug-{i}"),
            namespace: "default".into(),
            node: format!("node-{:05}", (i * 97) % workers + 1),
            labels: [("run".to_string(), format!("debug-{i}"))].into(),
            termination_grace_period_seconds: 30,
            empty_dir: false,
            mirror: false,
        });
    }
    // One budget that allows no disruption: its pods are reported as waits.
    if let Some(pdb) = c.pdbs.first_mut() {
        pdb.max_unavailable = None;
        pdb.min_available = Some(IntOrPercent::Str("100%".into()));
    }
    c
}

fn main() {
    let o = opts();
    assert!(o.module.is_file(), "no module binary at {}", o.module.display());
    // The children are started before the server grows: a child spawned (vfork + exec) by a large
    // process has that process's RSS high-water mark charged to its own ru_maxrss. They wait for
    // their arguments on stdin.
    let mut children: Vec<Child> = (0..o.runs)
        .map(|_| {
            Command::new(&o.module)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start the module")
        })
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let seeding = Instant::now();
    let mut cfg = ServerConfig::new(o.emulation, cluster(&o));
    // Like the lab's kubectl tests: HTTPS + token for the modern release, HTTP for 1.9.
    cfg.tls = o.emulation.minor >= 22;
    cfg.time_factor = 0.0;
    cfg.pod_startup_seconds = 0.0;
    cfg.seed = Some(1);
    let handle = rt.block_on(lab_apiserver::start(cfg)).unwrap();
    let seeded = seeding.elapsed().as_secs_f64();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    handle.write_kubeconfig(&kubeconfig).unwrap();
    let args = json!({"kubeconfig": kubeconfig.display().to_string(), "ignore_daemonsets": true,
                      "delete_emptydir_data": true, "page_size": o.page_size, "timeout": 300});

    println!(
        "server: {} over {}, {} nodes, {} pods requested, seeded in {seeded:.1} s; module {}",
        o.emulation.git_version(),
        if o.emulation.minor >= 22 {
            "HTTPS + token"
        } else {
            "HTTP"
        },
        o.nodes,
        o.pods + o.bare,
        o.module.display()
    );
    println!("| run | wall s | nodes | pods | PDBs | pod pages | blocked nodes | PDB waits |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut walls = Vec::new();
    for (i, mut child) in children.drain(..).enumerate() {
        let start = Instant::now();
        {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(args.to_string().as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let wall = start.elapsed().as_secs_f64();
        let survey: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        assert!(
            out.status.success() && survey["failed"] == false,
            "run {}: {}{}",
            i + 1,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let waits: usize = survey["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["pdb_waits"].as_array().map_or(0, Vec::len))
            .sum();
        let c = &survey["counts"];
        println!(
            "| {} | {wall:.2} | {} | {} | {} | {} | {} | {waits} |",
            i + 1,
            c["nodes"],
            c["pods"],
            c["pdbs"],
            c["pod_pages"],
            survey["blocked_nodes"].as_array().map_or(0, Vec::len)
        );
        walls.push(wall);
    }
    // ru_maxrss of the children waited for: the largest peak of any run, in KiB.
    let peak_mib = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss() as f64 / 1024.0;
    walls.sort_by(f64::total_cmp);
    let median = walls[walls.len() / 2];
    let worst = walls[walls.len() - 1];
    println!(
        "\nwall: median {median:.2} s, worst {worst:.2} s (target <= 10 s: {}); peak RSS of the module (max over runs): \
         {peak_mib:.1} MiB (target <= 200 MB: {})",
        if worst <= 10.0 { "met" } else { "missed" },
        if peak_mib * 1.048_576 <= 200.0 { "met" } else { "missed" }
    );
    rt.block_on(handle.stop());
}
