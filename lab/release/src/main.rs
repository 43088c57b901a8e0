//! `lab-release`: serve a dl.k8s.io-style release tree on loopback for the lab and the demo.
//!
//! lab-release --root DIR [--seed] [--listen 127.0.0.1:0] [--url-file FILE]

use kube_version::Version;
use lab_release::{write_channels, write_release, ReleaseServer};
use std::io::Write;
use std::path::PathBuf;

/// The releases `--seed` writes: the runbook's 1.8 -> 1.9 path and a modern pair.
const SEED: &[&str] = &[
    "v1.8.3", "v1.9.2", "v1.9.3", "v1.10.13", "v1.11.10", "v1.29.6", "v1.30.2",
];

const USAGE: &str = "usage: lab-release --root DIR [--seed] [--listen ADDR] [--url-file FILE]

Serves DIR (the layout of https://dl.k8s.io/release) over HTTP until interrupted.
  --root DIR       the release tree
  --seed           first write stand-in kubeadm binaries and checksum files for the lab's releases
                   (v1.8.3 v1.9.2 v1.9.3 v1.10.13 v1.11.10 v1.29.6 v1.30.2) and the channel files
  --listen ADDR    loopback address to listen on (default 127.0.0.1:0: a free port)
  --url-file FILE  write the base URL there once listening (for scripts)
Faults for rehearsals: prefix paths with /_fault/<404|500|500once|truncate|corrupt|slow>/ or /_redirect/.";

fn main() {
    if let Err(err) = run() {
        eprintln!("lab-release: {err}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut root = None;
    let mut seed = false;
    let mut listen = "127.0.0.1:0".to_string();
    let mut url_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--root" => root = args.next().map(PathBuf::from),
            "--seed" => seed = true,
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            "--url-file" => url_file = args.next().map(PathBuf::from),
            "-h" | "--help" => {
                let _ = writeln!(std::io::stdout(), "{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let root = root.ok_or(format!("--root is required\n{USAGE}"))?;
    let addr: std::net::SocketAddr = listen.parse().map_err(|e| format!("--listen {listen:?}: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("--listen {addr}: the lab serves loopback only"));
    }
    if seed {
        for v in SEED {
            let version = Version::parse(v).ok_or(format!("bad seed version {v}"))?;
            let stand_in = format!("#!/bin/sh\n# lab stand-in\necho 'kubeadm version: {v}'\n");
            write_release(&root, version, "amd64", stand_in.as_bytes()).map_err(|e| e.to_string())?;
        }
    }
    write_channels(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let server = ReleaseServer::start_on(&root, addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    if let Some(file) = url_file {
        std::fs::write(&file, server.base_url()).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let _ = writeln!(
        std::io::stdout(),
        "serving {} at {}",
        root.display(),
        server.base_url()
    );
    loop {
        std::thread::park();
    }
}
