//! The lab's package repositories as users have them: the legacy apt.kubernetes.io / yum.kubernetes.io
//! repositories (one repository, every version, up to 1.23 in the lab) and pkgs.k8s.io's one repository
//! per minor (from 1.24), signed with a lab key for real, holding stand-in kubelet, kubeadm, kubectl,
//! kubernetes-cni and cri-tools packages with the dependencies the real packages declare.

mod build;
pub mod packages;
mod publish;
mod sign;
pub mod sources;

pub use build::{ensure, ensure_sized, write_releases, Built};
pub use publish::{lab_copy, publish};

/// Where the stand-in binary lives inside nodes (copied there at provisioning).
pub const STANDIN: &str = "/usr/local/lib/kup-lab/standin";

/// A Kubernetes release the lab has packages for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    pub version: &'static str,
    /// The kubernetes-cni version published beside it (and installed with it at provisioning).
    pub cni: &'static str,
    /// The cri-tools version published beside it (none before kubeadm depended on crictl, 1.11).
    pub cri_tools: Option<&'static str>,
    /// What its packages declare.
    pub needs: Needs,
}

/// The dependencies a release's packages declare. The legacy repositories took them from the build
/// tool's constants on the day each patch was built, so they are data per release, not per minor
/// (kubernetes/release debian/build.go, rpm/kubelet.spec, packages/rpm/kubelet.spec changelogs;
/// pkgs.k8s.io: cmd/krel/templates/latest/metadata.yaml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// kubelet's `kubernetes-cni` requirement: `= 0.5.1` before 1.9, `>= X` after.
    pub cni: Cni,
    /// kubeadm's `kubelet (>= X), kubectl (>= X)`; None from 1.30 (kubernetes/release PR #3481).
    pub kube: Option<&'static str>,
    /// kubeadm's `cri-tools (>= X)`, from 1.11 (kubernetes/kubernetes PR #65313).
    pub cri_tools: Option<&'static str>,
    /// Whether kubeadm also requires kubernetes-cni (dropped from 1.30 with the others).
    pub kubeadm_cni: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cni {
    /// `kubernetes-cni (= X)`: kubelet < 1.9 (kubernetes/kubernetes issue #57334).
    Exactly(&'static str),
    AtLeast(&'static str),
}

impl Release {
    pub fn minor(&self) -> u32 {
        crate::spec::minor_of(self.version)
    }

    /// Packages from the legacy Google-hosted repositories (`1.9.2-00`, `1.9.2-0`), else pkgs.k8s.io.
    /// pkgs.k8s.io publishes v1.24 and newer; the legacy repositories were frozen on 2023-09-13
    /// (kubernetes.io/blog/2023/08/15/pkgs-k8s-io-introduction).
    pub fn legacy(&self) -> bool {
        self.minor() <= 23
    }
}

const fn legacy(
    version: &'static str,
    cni: &'static str,
    cri_tools: Option<&'static str>,
    needs_cni: Cni,
    kube: &'static str,
) -> Release {
    Release {
        version,
        cni,
        cri_tools,
        needs: Needs {
            cni: needs_cni,
            kube: Some(kube),
            cri_tools,
            kubeadm_cni: true,
        },
    }
}

/// A pkgs.k8s.io release: (kubelet's CNI floor, kubeadm's kube floor, kubeadm's cri-tools floor).
const fn stable(
    version: &'static str,
    cni: &'static str,
    cri_tools: &'static str,
    floors: (&'static str, Option<&'static str>, &'static str),
) -> Release {
    let (cni_floor, kube, cri_floor) = floors;
    Release {
        version,
        cni,
        cri_tools: Some(cri_tools),
        needs: Needs {
            cni: Cni::AtLeast(cni_floor),
            kube,
            cri_tools: Some(cri_floor),
            kubeadm_cni: kube.is_some(),
        },
    }
}

use Cni::{AtLeast, Exactly};

/// metadata.yaml: 1.25.1-1.27 (`kubernetes-cni >= 1.1.1`, `cri-tools >= 1.25.0`).
const PKGS_1_24: (&str, Option<&str>, &str) = ("1.1.1", Some("1.19.0"), "1.25.0");
/// metadata.yaml: 1.28-1.29 (`kubernetes-cni >= 1.2.0`, `cri-tools >= 1.28.0`).
const PKGS_1_28: (&str, Option<&str>, &str) = ("1.2.0", Some("1.19.0"), "1.28.0");
/// metadata.yaml: from 1.30 kubeadm needs only `cri-tools >= 1.30.0` (1.32+ too, until PR #4387).
const PKGS_1_30: (&str, Option<&str>, &str) = ("1.2.0", None, "1.30.0");

/// The lab's releases, with the CNI and cri-tools versions published beside each.
pub const RELEASES: &[Release] = &[
    legacy("1.8.3", "0.5.1", None, Exactly("0.5.1"), "1.6.0"),
    legacy("1.9.2", "0.6.0", None, AtLeast("0.6.0"), "1.6.0"),
    legacy("1.9.3", "0.6.0", None, AtLeast("0.6.0"), "1.6.0"),
    legacy("1.10.13", "0.6.0", None, AtLeast("0.6.0"), "1.6.0"),
    // Built 2019-03: CNI 0.7.5 ("Bump CNI version to v0.7.5"), cri-tools 1.12.0 (>= 1.12.1 builds).
    legacy("1.11.10", "0.7.5", Some("1.12.0"), AtLeast("0.7.5"), "1.6.0"),
    // Built before kubernetes/release PR #738 (2019-06-20): kubelet/kubectl >= 1.6.0, kubernetes-cni
    // >= 0.7.5, cri-tools 1.12.0 (kubernetes/kubeadm issue #1481's `yum deplist` of a 2019-04 build).
    legacy("1.12.9", "0.7.5", Some("1.12.0"), AtLeast("0.7.5"), "1.6.0"),
    // Built after 2019-06 ("Bump minimum versions": kubelet/kubectl/cri-tools >= 1.13.0).
    legacy("1.12.10", "0.7.5", Some("1.13.0"), AtLeast("0.7.5"), "1.13.0"),
    legacy("1.13.12", "0.7.5", Some("1.13.0"), AtLeast("0.7.5"), "1.13.0"),
    legacy("1.14.10", "0.7.5", Some("1.13.0"), AtLeast("0.7.5"), "1.13.0"),
    legacy("1.15.12", "0.7.5", Some("1.13.0"), AtLeast("0.7.5"), "1.13.0"),
    // Built 2023-01: CNI 1.2.0, cri-tools 1.26.0 (kubernetes/release issue #2866).
    legacy("1.23.17", "1.2.0", Some("1.26.0"), AtLeast("1.2.0"), "1.19.0"),
    stable("1.24.17", "1.1.1", "1.25.0", PKGS_1_24),
    stable("1.25.16", "1.1.1", "1.25.0", PKGS_1_24),
    stable("1.26.15", "1.2.0", "1.26.0", PKGS_1_24),
    // The v1.27 repository had no cri-tools 1.27 (kubernetes/release issue #3218).
    stable("1.27.16", "1.2.0", "1.26.0", PKGS_1_24),
    stable("1.28.15", "1.2.0", "1.28.0", PKGS_1_28),
    stable("1.29.6", "1.3.0", "1.29.0", PKGS_1_28),
    stable("1.30.2", "1.4.0", "1.30.0", PKGS_1_30),
    stable("1.31.9", "1.5.1", "1.31.1", PKGS_1_30),
    stable("1.32.5", "1.6.0", "1.32.0", PKGS_1_30),
    stable("1.33.1", "1.6.0", "1.33.0", PKGS_1_30),
    stable("1.34.2", "1.7.1", "1.34.0", PKGS_1_30),
    stable("1.35.0", "1.8.0", "1.35.0", PKGS_1_30),
    stable("1.35.1", "1.8.0", "1.35.0", PKGS_1_30),
];

pub fn release(version: &str) -> Option<Release> {
    RELEASES
        .iter()
        .copied()
        .find(|r| r.version == version.trim_start_matches('v'))
}

pub fn versions() -> String {
    RELEASES.iter().map(|r| r.version).collect::<Vec<_>>().join(", ")
}

/// `1.9.2-00` (legacy apt), `1.30.2-1.1` (pkgs.k8s.io apt).
pub fn deb_version(version: &str, legacy: bool) -> String {
    if legacy {
        format!("{version}-00")
    } else {
        format!("{version}-1.1")
    }
}

/// The rpm Release field: `0` (legacy yum), `150500.1.1` (pkgs.k8s.io).
pub fn rpm_release(legacy: bool) -> &'static str {
    if legacy {
        "0"
    } else {
        "150500.1.1"
    }
}

/// The pkgs.k8s.io minors the lab publishes, oldest first (`v1.24`, ...).
pub fn stable_minors() -> Vec<u32> {
    let mut minors: Vec<u32> = RELEASES
        .iter()
        .filter(|r| !r.legacy())
        .map(Release::minor)
        .collect();
    minors.dedup();
    minors
}
