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

/// How long the stand-ins take (`kup-lab up --timing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Timing {
    /// As fast as the lab goes: kubeadm and the kubelet answer at once, packages are a few KB.
    #[default]
    Default,
    /// As long as real ones take (scaled by the time factor): kubeadm's apply and node, the
    /// kubelet's first Ready, packages of real sizes served at a limited bandwidth.
    Realistic,
}

impl Timing {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "default" | "fast" => Ok(Timing::Default),
            "realistic" | "real" => Ok(Timing::Realistic),
            other => Err(format!("unknown timing {other:?}: use default or realistic")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Timing::Default => "default",
            Timing::Realistic => "realistic",
        }
    }
}

/// The repository server's bandwidth in realistic mode when `--bandwidth` is not given: 20 MB/s
/// (an estimate of a node's share of a data-centre link to a package mirror, not a measurement).
pub const REALISTIC_BANDWIDTH: u64 = 20_000_000;

/// `20MB/s`, `20M`, `500KB/s`, `1G`, `1500000` (bytes per second; K/M/G are powers of 1000, KiB/MiB/GiB
/// of 1024; `Mbit/s` and `Mbps` are bits).
pub fn parse_bandwidth(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t.strip_suffix("/s").or_else(|| t.strip_suffix("ps")).unwrap_or(t);
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("bad bandwidth {text:?}: use e.g. 20MB/s"))?;
    let scale = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KB" | "k" | "kB" => 1e3,
        "M" | "MB" => 1e6,
        "G" | "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "Kbit" | "Kb" | "kbit" => 1e3 / 8.0,
        "Mbit" | "Mb" => 1e6 / 8.0,
        "Gbit" | "Gb" => 1e9 / 8.0,
        other => {
            return Err(format!(
                "bad bandwidth unit {other:?} in {text:?}: use e.g. 20MB/s"
            ))
        }
    };
    let bytes = number * scale;
    if !(bytes >= 1.0 && bytes.is_finite()) {
        return Err(format!("bandwidth {text:?} must be at least 1 byte/s"));
    }
    Ok(bytes as u64)
}

/// `20 MB/s`.
pub fn show_bandwidth(bytes: f64) -> String {
    if bytes >= 1e6 {
        format!("{:.1} MB/s", bytes / 1e6)
    } else {
        format!("{:.1} KB/s", bytes / 1e3)
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
    /// How long the stand-ins take: default (at once) or realistic (scaled by `time_factor`).
    #[serde(default)]
    pub timing: Timing,
    /// The repository server's bandwidth, bytes per simulated second (None: unlimited); served at
    /// this divided by the time factor in real time.
    #[serde(default)]
    pub bandwidth: Option<u64>,
    /// How the control planes run etcd (`--etcd`); None: the era's (stacked from 1.24, external
    /// before, [`crate::etcd::Topology::of`]).
    #[serde(default)]
    pub etcd: Option<crate::etcd::Topology>,
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

    /// The bandwidth the repository server really serves at, bytes per real second: the simulated
    /// bandwidth scaled by the time factor (a factor of 0: unlimited).
    pub fn served_bandwidth(&self) -> Option<u64> {
        let bandwidth = self.bandwidth? as f64;
        (self.time_factor > 0.0).then(|| (bandwidth / self.time_factor).max(1.0) as u64)
    }

    /// The minors whose kubelet/kubeadm/kubectl packages get realistic sizes: none by default (the
    /// repositories stay small and shared); in realistic mode the lab's own minor and the next one
    /// (what an upgrade downloads), in a repository cache of their own.
    pub fn realistic_minors(&self) -> Vec<u32> {
        match self.timing {
            Timing::Default => Vec::new(),
            Timing::Realistic => {
                let minor = minor_of(&self.from);
                vec![minor, minor + 1]
            }
        }
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
        let first = crate::etcd::FIRST_STACKED_MINOR;
        if self.etcd == Some(crate::etcd::Topology::Stacked) && minor_of(&self.from) < first {
            return Err(format!(
                "--etcd stacked needs a lab from 1.{first} on, not {}: kubeadm's HA guide stacks etcd on \
                 the control planes from 1.{first} (\"Stacked control plane nodes\"); before, its etcd is \
                 external (use --etcd external, the default before 1.24)",
                self.from
            ));
        }
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

/// A lab from `from` with 2 control planes and a worker, for unit tests.
#[cfg(test)]
pub(crate) fn test_spec(from: &str) -> LabSpec {
    LabSpec {
        dir: "/nonexistent/lab".into(),
        cache: "/nonexistent/cache".into(),
        control_planes: 2,
        workers: 1,
        flavour: Flavour::Apt,
        from: from.into(),
        bridge: "kuptest".into(),
        subnet: [10, 213, 0],
        mirror: None,
        standin: "/nonexistent/standin".into(),
        kup_lab: "/nonexistent/kup-lab".into(),
        time_factor: 1.0,
        node_grace: 1.0,
        withhold: Vec::new(),
        timing: Timing::Default,
        bandwidth: None,
        etcd: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn bandwidths_read_as_people_write_them() {
        assert_eq!(parse_bandwidth("20MB/s").unwrap(), 20_000_000);
        assert_eq!(parse_bandwidth("20M").unwrap(), 20_000_000);
        assert_eq!(parse_bandwidth("500KB/s").unwrap(), 500_000);
        assert_eq!(parse_bandwidth("1MiB/s").unwrap(), 1_048_576);
        assert_eq!(parse_bandwidth("100Mbit/s").unwrap(), 12_500_000);
        assert_eq!(parse_bandwidth("1500").unwrap(), 1500);
        assert!(parse_bandwidth("fast").is_err());
        assert!(parse_bandwidth("0MB/s").is_err());
        assert!(parse_bandwidth("20 parsecs").is_err());
        assert_eq!(show_bandwidth(20e6), "20.0 MB/s");
    }

    #[test]
    fn stacked_etcd_is_refused_before_1_11_with_a_reason() {
        let mut spec = test_spec("1.10.13");
        spec.etcd = Some(crate::etcd::Topology::Stacked);
        let refused = spec.validate().unwrap_err();
        assert!(
            refused.contains("--etcd stacked needs a lab from 1.11 on, not 1.10.13"),
            "{refused}"
        );
        spec.etcd = Some(crate::etcd::Topology::External);
        assert_eq!(spec.validate(), Ok(()));
        let mut spec = test_spec("1.11.10");
        spec.etcd = Some(crate::etcd::Topology::Stacked);
        assert_eq!(spec.validate(), Ok(()));
        // A state file written before `--etcd` existed reads as the era's choice.
        let mut old = serde_json::to_value(test_spec("1.8.3")).unwrap();
        old.as_object_mut().unwrap().remove("etcd");
        let read: LabSpec = serde_json::from_value(old).unwrap();
        assert_eq!(read.etcd, None);
    }

    #[test]
    fn timing_names_round_trip() {
        for t in [Timing::Default, Timing::Realistic] {
            assert_eq!(Timing::parse(t.name()).unwrap(), t);
        }
        assert!(Timing::parse("slow").is_err());
    }
}
