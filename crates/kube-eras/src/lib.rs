//! How each era of Kubernetes upgrades a kubeadm cluster, as one table of data: kup follows it, and
//! `playbooks/vars/eras.yml` is this table written out (`kup eras`; a test keeps the file equal to
//! it), so the runner and the playbooks cannot drift. Each row holds from its minor until the next
//! row's, and names the upstream page it comes from.

use kube_version::Version;
use serde::Serialize;

/// Where the target's kubeadm comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KubeadmSource {
    /// The release binary (dl.k8s.io), before the packages: upgrading the kubeadm package before
    /// the control plane broke the upgrade.
    Download,
    /// The kubeadm package of the target, installed first on each node.
    Package,
}

/// What kube-system/kubeadm-config needs before `kubeadm upgrade apply` on another control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigEdit {
    /// `nodeName` of the v1alpha1 MasterConfiguration names the control plane being upgraded.
    NodeName,
    /// The 1.11 -> 1.12 HA page, before each control plane's apply: a stacked etcd's `extraArgs`
    /// at that control plane's own address, `initial-cluster` naming every control plane with
    /// `initial-cluster-state: existing`, the others in `ClusterStatus.apiEndpoints` and annotated
    /// with their CRI socket; an external etcd's `apply --config` with its own `advertiseAddress`.
    EtcdPerNode,
    /// The 1.12 -> 1.13 HA page, before the first apply: a stacked etcd's `etcd` section removed
    /// (kubeadm 1.13 writes each member's flags itself) and every control plane in
    /// `ClusterStatus.apiEndpoints`.
    EtcdSectionRemoved,
    None,
}

/// How the control planes after the first are upgraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OtherControlPlanes {
    /// `kubeadm upgrade apply` again.
    Apply,
    /// `kubeadm upgrade node experimental-control-plane`.
    ExperimentalControlPlane,
    /// `kubeadm upgrade node`.
    Node,
}

/// What rewrites a worker's kubelet configuration for the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkersKubelet {
    /// Nothing: the flags live in the package's drop-in.
    None,
    /// `kubeadm upgrade node config --kubelet-version V`.
    NodeConfig,
    /// `kubeadm upgrade node`.
    Node,
}

/// How a node is taken out of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TakeOut {
    Cordon,
    Drain,
}

/// What happens to the node's services around the packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Services {
    /// Stop keepalived, kubelet and the container runtime; start them in reverse order after.
    StopStart,
    /// `systemctl daemon-reload; systemctl restart kubelet` after the packages.
    RestartKubelet,
}

/// Where the node's Kubernetes packages come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Repository {
    /// apt.kubernetes.io / yum.kubernetes.io: one repository holds every version.
    Legacy,
    /// pkgs.k8s.io: one repository per minor, switched to the target's before its packages.
    PerMinor,
}

/// The procedure for targets from `minor` (1.`minor`) until the next row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Era {
    pub minor: u32,
    /// The upstream page (or source) this row follows.
    pub source: &'static str,
    pub kubeadm: KubeadmSource,
    pub config_edit: ConfigEdit,
    pub other_control_planes: OtherControlPlanes,
    pub workers_kubelet: WorkersKubelet,
    pub take_out_control_planes: TakeOut,
    pub take_out_workers: TakeOut,
    pub services: Services,
    pub repository: Repository,
    /// CoreDNS and kube-proxy move with the last control plane's `kubeadm upgrade node`, not with
    /// the first `apply` (kubernetes/kubernetes PR #116570).
    pub addons_at_last_control_plane: bool,
}

use ConfigEdit as Edit;
use KubeadmSource as Kubeadm;
use OtherControlPlanes as Others;
use WorkersKubelet as Workers;

const RUNBOOK: Era = Era {
    minor: 8,
    source: "kubernetes.io \"Upgrading kubeadm HA clusters from 1.8.x to 1.9.x\" (the runbook): download \
             kubeadm, nodeName in kubeadm-config, apply on every master, cordon masters and drain nodes, \
             stop keepalived/kubelet/docker, install pinned packages, start in reverse",
    kubeadm: Kubeadm::Download,
    config_edit: Edit::NodeName,
    other_control_planes: Others::Apply,
    workers_kubelet: Workers::None,
    take_out_control_planes: TakeOut::Cordon,
    take_out_workers: TakeOut::Drain,
    services: Services::StopStart,
    repository: Repository::Legacy,
    addons_at_last_control_plane: false,
};

const V1_11: Era = Era {
    minor: 11,
    source: "kubernetes.io kubeadm-upgrade-1-11: drain every host, upgrade the packages, \
             `kubeadm upgrade node config --kubelet-version` on the others, restart the kubelet; \
             kubeadm 1.11 still reads 1.10's v1alpha1 `nodeName` (apis/kubeadm/v1alpha1/conversion.go) \
             and waits for that node's static pods (phases/upgrade/staticpods.go), so the first apply \
             needs it pointed at its node; the config it uploads has no node name (uploadconfig.go)",
    config_edit: Edit::NodeName,
    workers_kubelet: Workers::NodeConfig,
    take_out_control_planes: TakeOut::Drain,
    services: Services::RestartKubelet,
    ..RUNBOOK
};

const V1_12: Era = Era {
    minor: 12,
    source: "kubernetes.io kubeadm-upgrade-1-12: upgrade the kubeadm package first, then apply; \
             kubeadm-upgrade-ha-1-12: kubeadm-config edited before each control plane's apply \
             (stacked etcd: extraArgs, initial-cluster, apiEndpoints, cri-socket; external etcd: \
             `apply --config` with the node's advertiseAddress)",
    kubeadm: Kubeadm::Package,
    config_edit: Edit::EtcdPerNode,
    ..V1_11
};

const V1_13: Era = Era {
    minor: 13,
    source: "kubernetes.io kubeadm-upgrade-ha-1-13: `kubeadm upgrade node experimental-control-plane` \
             on the other control planes; stacked etcd: the etcd section removed and every control \
             plane in ClusterStatus.apiEndpoints before the first apply",
    other_control_planes: Others::ExperimentalControlPlane,
    config_edit: Edit::EtcdSectionRemoved,
    ..V1_12
};

const V1_14: Era = Era {
    minor: 14,
    source: "kubernetes.io kubeadm-upgrade-1-14: `kubeadm upgrade node experimental-control-plane` \
             on the other control planes, kubeadm-config as 1.13 left it",
    config_edit: Edit::None,
    ..V1_13
};

const V1_15: Era = Era {
    minor: 15,
    source: "kubernetes.io kubeadm-upgrade-1-15: `kubeadm upgrade node` on the other control planes and \
             on workers (kubernetes/kubernetes PR #78408)",
    other_control_planes: Others::Node,
    workers_kubelet: Workers::Node,
    ..V1_14
};

const V1_24: Era = Era {
    minor: 24,
    source: "kubernetes.io \"Changing The Kubernetes Package Repository\": pkgs.k8s.io has one \
             repository per minor, from v1.24",
    repository: Repository::PerMinor,
    ..V1_15
};

const V1_28: Era = Era {
    minor: 28,
    source: "kubernetes/kubernetes PR #116570 (1.28): the addons move once every control plane runs \
             the target, with the last control plane's `kubeadm upgrade node`",
    addons_at_last_control_plane: true,
    ..V1_24
};

/// Every era, oldest first.
pub const ERAS: &[Era] = &[RUNBOOK, V1_11, V1_12, V1_13, V1_14, V1_15, V1_24, V1_28];

/// The era of an upgrade to `target`.
pub fn for_target(target: Version) -> &'static Era {
    ERAS.iter()
        .rev()
        .find(|e| target.major > 1 || target.minor >= e.minor)
        .unwrap_or(&ERAS[0])
}

/// The table as `playbooks/vars/eras.yml` holds it (for `vars_files`), laid out as ansible-lint wants
/// YAML (indented lists, lines of at most 160 characters: each source is folded).
pub fn to_yaml() -> String {
    let mut out = String::from(
        "---\n# GENERATED by `kup eras` from crates/kube-eras (the one table of the procedure per Kubernetes\n\
         # era, which kup follows too); a test keeps this file equal to it. Each row holds for targets from\n\
         # 1.<minor> until the next row's minor.\nkup_eras:\n",
    );
    for era in ERAS {
        let row = serde_norway::to_string(&Era { source: "", ..*era }).unwrap_or_default();
        for (i, line) in row.lines().enumerate() {
            if line.starts_with("source:") {
                out.push_str("    source: >-\n");
                out.push_str(&fold(era.source, 100, "      "));
            } else {
                out.push_str(if i == 0 { "  - " } else { "    " });
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// `text` in lines of at most about `width` characters, each starting with `indent` (a YAML folded
/// scalar joins them again with spaces).
fn fold(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            out.push_str(&format!("{indent}{line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&format!("{indent}{line}\n"));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn era(v: &str) -> &'static Era {
        for_target(Version::parse(v).unwrap())
    }

    #[test]
    fn rows_are_in_order_and_name_their_source() {
        assert!(ERAS.windows(2).all(|w| w[0].minor < w[1].minor));
        assert!(ERAS.iter().all(|e| e.source.len() > 20));
    }

    #[test]
    fn each_target_gets_its_eras_procedure() {
        assert_eq!(era("v1.9.2").config_edit, ConfigEdit::NodeName);
        assert_eq!(era("v1.9.2").services, Services::StopStart);
        assert_eq!(era("v1.9.2").take_out_control_planes, TakeOut::Cordon);
        assert_eq!(era("v1.11.10").workers_kubelet, WorkersKubelet::NodeConfig);
        assert_eq!(era("v1.11.10").kubeadm, KubeadmSource::Download);
        // 1.11's first apply still reads 1.10's nodeName; 1.12 stores no nodeName at all.
        assert_eq!(era("v1.11.10").config_edit, ConfigEdit::NodeName);
        assert_eq!(era("v1.12.10").config_edit, ConfigEdit::EtcdPerNode);
        assert_eq!(era("v1.13.12").config_edit, ConfigEdit::EtcdSectionRemoved);
        assert_eq!(era("v1.14.10").config_edit, ConfigEdit::None);
        assert_eq!(
            era("v1.14.10").other_control_planes,
            OtherControlPlanes::ExperimentalControlPlane
        );
        assert_eq!(era("v1.12.10").kubeadm, KubeadmSource::Package);
        assert_eq!(
            era("v1.13.12").other_control_planes,
            OtherControlPlanes::ExperimentalControlPlane
        );
        assert_eq!(era("v1.15.12").other_control_planes, OtherControlPlanes::Node);
        assert_eq!(era("v1.23.17").repository, Repository::Legacy);
        assert_eq!(era("v1.24.17").repository, Repository::PerMinor);
        assert!(!era("v1.27.16").addons_at_last_control_plane);
        assert!(era("v1.35.1").addons_at_last_control_plane);
        assert_eq!(era("v1.35.1").take_out_control_planes, TakeOut::Drain);
        assert_eq!(era("v1.35.1").services, Services::RestartKubelet);
    }

    #[test]
    fn the_yaml_holds_every_row() {
        let yaml = to_yaml();
        assert_eq!(yaml.matches("  - minor:").count(), ERAS.len(), "{yaml}");
        assert!(yaml.lines().all(|l| l.len() <= 160), "{yaml}");
        assert!(
            yaml.contains("other_control_planes: experimental_control_plane"),
            "{yaml}"
        );
    }
}

#[cfg(test)]
mod the_playbooks_table {
    /// playbooks/vars/eras.yml is this table: regenerate it with `kup eras > playbooks/vars/eras.yml`.
    #[test]
    fn is_the_same_as_kups() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../playbooks/vars/eras.yml");
        let file = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            file == super::to_yaml(),
            "{} differs from kup's table: run `kup eras > playbooks/vars/eras.yml`",
            path.display()
        );
    }
}
