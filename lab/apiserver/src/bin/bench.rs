//! Load benchmark of the lab API server on a generated cluster (default 2,000 nodes / 60,000
//! pods): pod lists by node (fieldSelector), full paginated pod lists, node lists, evictions, and
//! the process's memory. Plain HTTP on loopback with keep-alive connections.
//!
//! `cargo run --release -p lab-apiserver --bin lab-apiserver-bench -- [--nodes N] [--pods N]
//! [--seconds S] [--concurrency C]`

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lab_apiserver::store::Kind;
use lab_apiserver::{Cluster, Emulation, ServerConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Conn {
    r: BufReader<TcpStream>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Conn, String> {
        let s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let _ = s.set_nodelay(true);
        Ok(Conn { r: BufReader::new(s) })
    }

    /// One request; returns the status code and the body length.
    async fn call(&mut self, method: &str, path: &str, body: &str) -> Result<(u16, usize), String> {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.r
            .get_mut()
            .write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.r.read_line(&mut line).await.map_err(|e| e.to_string())?;
        let code: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or("bad status line")?;
        let mut len = 0usize;
        loop {
            line.clear();
            self.r.read_line(&mut line).await.map_err(|e| e.to_string())?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().map_err(|_| "bad content-length")?;
                }
            }
        }
        let mut buf = vec![0u8; len];
        self.r.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        Ok((code, len))
    }
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

struct Outcome {
    requests: u64,
    errors: u64,
    bytes: u64,
    p50: Duration,
    p99: Duration,
    elapsed: Duration,
}

/// Runs `conc` keep-alive clients for `secs` seconds; `next(i)` gives request i's method, path, body.
async fn load<F>(addr: SocketAddr, conc: usize, secs: f64, max: usize, next: F) -> Result<Outcome, String>
where
    F: Fn(usize) -> (String, String, String) + Send + Sync + 'static,
{
    let next = Arc::new(next);
    let counter = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (next, counter, errors, bytes) = (next.clone(), counter.clone(), errors.clone(), bytes.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut c = Conn::open(addr).await?;
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if i >= max {
                    break;
                }
                let (m, p, b) = next(i);
                let t = Instant::now();
                let (code, len) = c.call(&m, &p, &b).await?;
                lat.push(t.elapsed());
                bytes.fetch_add(len as u64, Ordering::Relaxed);
                if code >= 300 {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<Vec<Duration>, String>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| e.to_string())??);
    }
    let elapsed = start.elapsed();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Outcome {
        requests: all.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        bytes: bytes.load(Ordering::Relaxed),
        p50: pct(0.50),
        p99: pct(0.99),
        elapsed,
    })
}

fn arg(args: &[String], name: &str, default: f64) -> Result<f64, String> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a number")),
        None => Ok(default),
    }
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lab-apiserver-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let nodes = arg(&args, "--nodes", 2000.0)? as usize;
    let pods = arg(&args, "--pods", 60_000.0)? as usize;
    let secs = arg(&args, "--seconds", 5.0)?;
    let conc = arg(&args, "--concurrency", 8.0)? as usize;
    let only_evict = args.iter().any(|a| a == "--only-evictions");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let mut out = std::io::stdout().lock();
        let rss0 = rss_mib();
        let t = Instant::now();
        let cluster = Cluster::generate(nodes, pods);
        let mut cfg = ServerConfig::new(Emulation::V1_30, cluster);
        cfg.time_factor = 0.0;
        cfg.pod_startup_seconds = 0.0;
        cfg.seed = Some(1);
        let handle = lab_apiserver::start(cfg).await?;
        let seed_time = t.elapsed();
        let addr = handle.addr();
        let (n_nodes, n_pods) = handle.with_store(|s| (s.count(Kind::Node), s.count(Kind::Pod)));
        let rss_seeded = rss_mib();
        let w = |out: &mut std::io::StdoutLock<'_>, s: String| {
            let _ = writeln!(out, "{s}");
        };
        w(&mut out, format!("cluster: {n_nodes} nodes, {n_pods} pods; seeded in {:.2} s; RSS {:.0} MiB (before seeding {:.0} MiB)", seed_time.as_secs_f64(), rss_seeded, rss0));
        w(&mut out, format!("load: {conc} keep-alive connections, {secs} s per scenario, plain HTTP on loopback, 2 server worker threads"));
        w(&mut out, "| scenario | requests | req/s | p50 ms | p99 ms | non-2xx | avg body KiB |".into());
        w(&mut out, "|---|---:|---:|---:|---:|---:|---:|".into());
        let report = |out: &mut std::io::StdoutLock<'_>, name: &str, o: &Outcome| {
            let rps = o.requests as f64 / o.elapsed.as_secs_f64();
            let _ = writeln!(out, "| {name} | {} | {rps:.0} | {:.2} | {:.2} | {} | {:.1} |", o.requests,
                o.p50.as_secs_f64() * 1e3, o.p99.as_secs_f64() * 1e3, o.errors,
                o.bytes as f64 / o.requests.max(1) as f64 / 1024.0);
        };
        let workers = n_nodes.saturating_sub(3).max(1);
        if !only_evict {
        let o = load(addr, conc, secs, usize::MAX, move |i| {
            let n = (i * 7919) % workers + 1;
            ("GET".into(), format!("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-{n:05}"), String::new())
        }).await?;
        report(&mut out, "list pods of one node (fieldSelector spec.nodeName)", &o);
        let o = load(addr, conc, secs, usize::MAX, move |i| {
            let ns = i % 10;
            let app = (i * 31) % 2800;
            ("GET".into(), format!("/api/v1/namespaces/team-{ns:02}/pods?labelSelector=app%3Dapp-{app:05}"), String::new())
        }).await?;
        report(&mut out, "list pods by label in a namespace (labelSelector)", &o);
        let o = load(addr, conc, secs, usize::MAX, move |i| {
            let n = (i * 7919) % workers + 1;
            ("GET".into(), format!("/api/v1/nodes/node-{n:05}"), String::new())
        }).await?;
        report(&mut out, "get one node", &o);
        let o = load(addr, 2, secs, usize::MAX, |_| ("GET".into(), "/api/v1/nodes".into(), String::new())).await?;
        report(&mut out, "list all nodes", &o);
        let o = load(addr, 2, secs, usize::MAX, |i| {
            ("GET".into(), format!("/api/v1/pods?limit=500&labelSelector=k8s-app%3Dkube-proxy&x={i}"), String::new())
        }).await?;
        report(&mut out, "list pods, cluster-wide label scan (limit 500)", &o);
        let t = Instant::now();
        let mut c = Conn::open(addr).await?;
        let (code, len) = c.call("GET", "/api/v1/pods", "").await?;
        w(&mut out, format!("\nfull unpaginated pod list: HTTP {code}, {:.1} MiB in {:.0} ms", len as f64 / 1048576.0, t.elapsed().as_secs_f64() * 1e3));
        }
        // Evictions: one pod of each ReplicaSet (each has a PDB maxUnavailable 1), so every
        // eviction is allowed; the ReplicaSet controller creates a replacement each time.
        let victims: Vec<(String, String)> = handle.with_store(|s| {
            let (items, _) = s.list(Kind::Pod, None, &Default::default(), &Default::default(), None, None).unwrap_or_default();
            let mut seen = std::collections::HashSet::new();
            items.iter().filter_map(|p| {
                let app = p.pointer("/metadata/labels/app")?.as_str()?;
                if !seen.insert(app.to_string()) { return None; }
                Some((p.pointer("/metadata/namespace")?.as_str()?.to_string(), p.pointer("/metadata/name")?.as_str()?.to_string()))
            }).collect()
        });
        let n_victims = victims.len();
        let victims = Arc::new(victims);
        let v2 = victims.clone();
        let o = load(addr, conc, secs, n_victims, move |i| {
            let (ns, name) = v2.get(i).cloned().unwrap_or_default();
            ("POST".into(), format!("/api/v1/namespaces/{ns}/pods/{name}/eviction"),
             format!("{{\"apiVersion\":\"policy/v1\",\"kind\":\"Eviction\",\"metadata\":{{\"name\":\"{name}\",\"namespace\":\"{ns}\"}}}}"))
        }).await?;
        w(&mut out, "\n| scenario | requests | req/s | p50 ms | p99 ms | non-2xx | avg body KiB |".into());
        w(&mut out, "|---|---:|---:|---:|---:|---:|---:|".into());
        report(&mut out, "evict (allowed by the PDB; replacement pod created)", &o);
        let violations = handle.pdb_violations().len();
        let (pods_after, rss_end) = (handle.with_store(|s| s.count(Kind::Pod)), rss_mib());
        w(&mut out, format!("\nafter the run: {pods_after} pods, RSS {rss_end:.0} MiB, PDB violations recorded: {violations}"));
        handle.stop().await;
        Ok::<(), String>(())
    })
}
