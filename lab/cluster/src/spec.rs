//! What lab to build: topology, flavour, starting version, where things live.

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// How nodes install packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    /// Debian with apt (`1.9.2-00`, `1.30.2-1.1`).
    Apt,
    /// dnf/yum nodes that say they are CentOS (`1.9.2-0`, `1.30.2-150500.1.1`).
    Rpm,
}

impl Flavour {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "apt" | "deb" => Ok(Flavour::Apt),
            "rpm" | "yum" | "dnf" => Ok(Flavour::Rpm),
            other => Err(format!("unknown flavour {other:?}: use apt or rpm")),
        }
    }
}

/// A lab to bring up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabSpec {
    /// Where this lab keeps its state, nodes, keys, inventory and logs.
    pub dir: PathBuf,
    /// Where built things are cached across labs (the base tree, the package repositories).
    pub cache: PathBuf,
    pub control_planes: usize,
    pub workers: usize,
    pub flavour: Flavour,
    /// The Kubernetes version the cluster starts at, e.g. `1.8.3`.
    pub from: String,
    /// The bridge's name, and its /24: the host is `.1`, nodes from `.11`.
    pub bridge: String,
    pub subnet: [u8; 3],
    /// Debian mirror for building the base tree (default: the host's apt source, else deb.debian.org).
    pub mirror: Option<String>,
    /// The stand-in binary the kubelet/kubeadm/kubectl packages run.
    pub standin: PathBuf,
    /// `kup-lab` itself, to run the API and release servers as background processes.
    pub kup_lab: PathBuf,
    /// Seconds of simulated grace per real second, for pod terminations.
    pub time_factor: f64,
    /// Seconds without kubelet heartbeats before a node turns NotReady.
    pub node_grace: f64,
    /// pkgs.k8s.io releases held back from the lab's repositories until `kup-lab publish`.
    #[serde(default)]
    pub withhold: Vec<String>,
}

impl LabSpec {
    pub fn host_ip(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 1)
    }

    /// The cluster's virtual address, held by keepalived on the control planes: `.10` of the lab's
    /// /24 (the host is `.1`, nodes from `.11`). The lab puts it on the bridge beside the host's.
    pub fn vip(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 10)
    }

    pub fn api_port(&self) -> u16 {
        6443
    }

    pub fn release_port(&self) -> u16 {
        8080
    }

    /// Where the lab's package repositories are served (HTTP, like pkgs.k8s.io).
    pub fn repo_port(&self) -> u16 {
        8081
    }

    /// The base URL of the lab's package repositories, as nodes reach them.
    pub fn repo_url(&self) -> String {
        format!("http://{}:{}", self.host_ip(), self.repo_port())
    }

    /// The nodes, control planes first: (name, role, address).
    pub fn nodes(&self) -> Vec<NodePlan> {
        let [a, b, c] = self.subnet;
        let control = (1..=self.control_planes).map(|i| (format!("lab-cp{i}"), true));
        let workers = (1..=self.workers).map(|i| (format!("lab-w{i}"), false));
        control
            .chain(workers)
            .enumerate()
            .map(|(i, (name, control_plane))| NodePlan {
                name,
                control_plane,
                address: Ipv4Addr::new(a, b, c, 11 + i as u8),
            })
            .collect()
    }

    /// Old clusters ran docker; from 1.24 (dockershim gone) containerd.
    pub fn runtime(&self) -> &'static str {
        if minor_of(&self.from) < 24 {
            "docker"
        } else {
            "containerd"
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.control_planes == 0 {
            return Err("a lab needs at least one control-plane node".into());
        }
        if self.control_planes + self.workers > 60 {
            return Err("at most 60 nodes".into());
        }
        // The nodes' veths are named vb-<bridge>-<n>: interface names have 15 characters at most.
        if self.bridge.is_empty()
            || self.bridge.len() > 9
            || !self.bridge.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(format!(
                "bridge name {:?} must be 1-9 letters and digits",
                self.bridge
            ));
        }
        crate::repo::release(&self.from).ok_or_else(|| {
            format!(
                "no lab packages for {}: choose one of {}",
                self.from,
                crate::repo::versions()
            )
        })?;
        Ok(())
    }
}

/// One node of the lab.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodePlan {
    pub name: String,
    pub control_plane: bool,
    pub address: Ipv4Addr,
}

pub fn minor_of(version: &str) -> u32 {
    version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}
