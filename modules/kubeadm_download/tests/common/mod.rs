//! A real release server on loopback, serving the dl.k8s.io layout for a handful of releases.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kube_version::Version;
use lab_release::{write_channels, write_release, ReleaseServer};
use module_kit::testkit::{run_with_args_file, Ran};
use serde_json::Value;
use std::path::{Path, PathBuf};

pub const RELEASES: &[&str] = &["v1.8.3", "v1.9.2", "v1.9.3", "v1.12.0", "v1.16.0", "v1.30.2"];

pub struct Lab {
    pub server: ReleaseServer,
    pub root: tempfile::TempDir,
    pub work: tempfile::TempDir,
}

/// Distinct, incompressible-looking content per release, large enough to be streamed in pieces.
pub fn binary_for(version: &str) -> Vec<u8> {
    let mut state: u64 = version.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    let mut data = format!("#!/bin/sh\necho 'kubeadm {version} (lab stand-in)'\nexit 0\n").into_bytes();
    while data.len() < 300 * 1024 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data
}

impl Lab {
    pub fn start() -> Lab {
        let root = tempfile::tempdir().unwrap();
        for v in RELEASES {
            write_release(root.path(), Version::parse(v).unwrap(), "amd64", &binary_for(v)).unwrap();
        }
        write_channels(root.path()).unwrap();
        let server = ReleaseServer::start(root.path()).unwrap();
        Lab {
            server,
            root,
            work: tempfile::tempdir().unwrap(),
        }
    }

    pub fn base(&self) -> String {
        self.server.base_url()
    }

    pub fn dest(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// How many requests the server has answered.
    pub fn requests(&self) -> u64 {
        let body = reqwest::blocking::get(format!("{}/_stats", self.base()))
            .unwrap()
            .text()
            .unwrap();
        serde_json::from_str::<Value>(&body).unwrap()["requests"]
            .as_u64()
            .unwrap()
    }

    pub fn sha256_of(&self, version: &str) -> String {
        use sha2::Digest;
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(binary_for(version)))
        )
    }
}

pub fn module() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kubeadm_download"))
}

pub fn run(args: Value) -> Ran {
    run_with_args_file(module(), &args).unwrap()
}

/// Files in `dir` other than those named: a failed download must leave no temporary file behind.
pub fn leftovers(dir: &Path, expected: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !expected.contains(&n.as_str()))
        .collect()
}
