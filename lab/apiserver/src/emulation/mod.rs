//! Which kube-apiserver release is emulated, and what that release does differently: one named
//! predicate per behaviour, with the upstream source of the release it changed in. What it serves
//! (API groups, discovery documents) is in `discovery`.

mod discovery;

pub use discovery::ResourceInfo;

/// An emulated Kubernetes release (`major` is always 1).
///
/// [`Emulation::V1_9`] and [`Emulation::V1_30`] are the two releases the lab is tested against;
/// other minors in 1.9..=1.35 are accepted and follow the same thresholds (which API groups exist,
/// which kubeadm-config format is stored), but are not checked against real clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Emulation {
    /// Minor version (9 for 1.9).
    pub minor: u32,
    /// Patch version reported by `/version` unless the seed overrides it.
    pub patch: u32,
}

/// What each release does differently is a named predicate below, with the upstream source of the
/// release it changed in (`k/k#N`: kubernetes/kubernetes pull request N; the deprecation guide:
/// kubernetes.io/docs/reference/using-api/deprecation-guide/). Where the lab's threshold differs from
/// upstream's, the comment says so: the thresholds are what the lab's tests and recordings expect.
impl Emulation {
    /// Kubernetes 1.9: evictions in policy/v1beta1, DaemonSets/ReplicaSets also under
    /// extensions/v1beta1 and apps/v1beta2, kubeadm-config `MasterConfiguration` with `nodeName`.
    pub const V1_9: Emulation = Emulation { minor: 9, patch: 11 };
    /// A modern release: policy/v1 and apps/v1 only, kubeadm-config `ClusterConfiguration`.
    pub const V1_30: Emulation = Emulation { minor: 30, patch: 14 };

    /// Parses `1.9`, `v1.9`, `1.30`, `v1.30.2` (a given patch is kept).
    pub fn parse(s: &str) -> Result<Emulation, String> {
        let t = s.trim().trim_start_matches('v');
        let mut parts = t.split('.');
        let major = parts.next().unwrap_or_default();
        let minor = parts.next().unwrap_or_default();
        if major != "1" {
            return Err(format!("unsupported emulated version {s:?}: expected 1.MINOR"));
        }
        let minor: u32 = minor
            .parse()
            .map_err(|_| format!("unsupported emulated version {s:?}: bad minor"))?;
        if !(9..=35).contains(&minor) {
            return Err(format!(
                "unsupported emulated version {s:?}: minors 9..=35 are emulated"
            ));
        }
        let patch = match parts.next() {
            Some(p) => p
                .parse()
                .map_err(|_| format!("unsupported emulated version {s:?}: bad patch"))?,
            None => match minor {
                9 => Emulation::V1_9.patch,
                30 => Emulation::V1_30.patch,
                _ => 0,
            },
        };
        Ok(Emulation { minor, patch })
    }

    /// `v1.9.11`.
    pub fn git_version(&self) -> String {
        format!("v1.{}.{}", self.minor, self.patch)
    }

    /// The group/version of the Eviction subresource (`policy/v1beta1` before 1.22).
    pub fn eviction_group_version(&self) -> &'static str {
        if self.serves_eviction_v1() {
            "policy/v1"
        } else {
            "policy/v1beta1"
        }
    }

    /// Whether the Eviction body may use the given apiVersion.
    pub fn accepts_eviction_version(&self, api_version: &str) -> bool {
        match api_version {
            // Still accepted as the body of pods/eviction after policy/v1beta1 stopped being
            // served (1.25), which is what lets old kubectl drain modern clusters.
            "policy/v1beta1" => true,
            "policy/v1" => self.serves_eviction_v1(),
            // The real server defaults a missing apiVersion to the URL's group/version.
            "" => true,
            _ => false,
        }
    }

    // ----- API groups and discovery ----------------------------------------------------------

    /// Whether objects carry `metadata.selfLink`: RemoveSelfLink on by default from 1.20 (KEP-1164).
    pub fn self_links(&self) -> bool {
        self.minor < 20
    }

    /// extensions/v1beta1 DaemonSets/ReplicaSets: no longer served from 1.16 (deprecation guide, #v1-16).
    pub fn serves_extensions_v1beta1(&self) -> bool {
        self.minor <= 15
    }

    /// apps/v1beta2: no longer served from 1.16 (deprecation guide, #v1-16).
    pub fn serves_apps_v1beta2(&self) -> bool {
        self.minor <= 15
    }

    /// PodDisruptionBudget in policy/v1: from 1.21 (k/k#99290, CHANGELOG-1.21).
    pub fn serves_policy_v1(&self) -> bool {
        self.minor >= 21
    }

    /// policy/v1beta1: no longer served from 1.25 (deprecation guide, #poddisruptionbudget-v125).
    pub fn serves_policy_v1beta1(&self) -> bool {
        self.minor <= 24
    }

    /// Eviction in policy/v1: from 1.22 (KEP-85, kubernetes/enhancements#85: "1.21 (PDB), 1.22 (Eviction)").
    pub fn serves_eviction_v1(&self) -> bool {
        self.minor >= 22
    }

    /// Lease in coordination.k8s.io/v1: from 1.14 (k/k#72239, CHANGELOG-1.14).
    pub fn serves_leases_v1(&self) -> bool {
        self.minor >= 14
    }

    /// coordination.k8s.io/v1beta1: 1.12 (k/k#64246) to 1.21 (deprecation guide, #lease-v122).
    pub fn serves_leases_v1beta1(&self) -> bool {
        (12..=21).contains(&self.minor)
    }

    /// Table in meta.k8s.io/v1 (v1beta1 before): from 1.15 (k/k#77136, CHANGELOG-1.15).
    pub fn serves_table_v1(&self) -> bool {
        self.minor >= 15
    }

    /// Built-in resources' discovery `singularName` set: from 1.27 (k/k#113542).
    pub fn discovery_singular_names(&self) -> bool {
        self.minor >= 27
    }

    // ----- OpenAPI and field validation -------------------------------------------------------

    /// `/openapi/v2` (JSON or protobuf by `Accept`): from 1.10 (k/k#59293, CHANGELOG-1.10).
    pub fn serves_openapi_v2(&self) -> bool {
        self.minor >= 10
    }

    /// `/swagger.json`, `/swagger-2.0.0.json`, `/swagger-2.0.0.pb-v1`: deprecated 1.10, removed 1.14 (k/k#59293).
    pub fn serves_legacy_swagger(&self) -> bool {
        self.minor <= 13
    }

    /// `/openapi/v3`: KEP-2896, alpha 1.23 (off), beta and on by default 1.24, GA 1.27.
    pub fn serves_openapi_v3(&self) -> bool {
        self.minor >= 24
    }

    /// The `fieldValidation` query parameter in the OpenAPI documents: CreateOptions, UpdateOptions,
    /// PatchOptions gained it in 1.23 (k/k#105916, KEP-2885 alpha), whether the gate is on or not.
    pub fn advertises_field_validation(&self) -> bool {
        self.minor >= 23
    }

    /// `fieldValidation=Strict|Warn` honoured, `Warn` the default: KEP-2885 ServerSideFieldValidation
    /// beta and on by default in 1.25, GA 1.27; with the gate off (1.23, 1.24) the server ignores it.
    pub fn honours_field_validation(&self) -> bool {
        self.minor >= 25
    }

    /// `preconditions.resourceVersion` of a delete: from 1.14 (k/k#74040); older servers ignore it.
    pub fn honours_delete_precondition_rv(&self) -> bool {
        self.minor >= 14
    }

    /// The Go release `/version` reports: the lab's stand-in values (1.9.11 was built with go1.9.3).
    pub fn go_version(&self) -> &'static str {
        match self.minor {
            ..=9 => "go1.9.3",
            30.. => "go1.22.12",
            _ => "go1.15.15",
        }
    }

    // ----- pods and controllers --------------------------------------------------------------

    /// The pod condition `ContainersReady`: from 1.11 (k/k#64646, Pod Ready++).
    pub fn pod_containers_ready_condition(&self) -> bool {
        self.minor >= 11
    }

    /// Dual-stack fields `status.podIPs` and node `spec.podCIDRs`: from 1.16 (k/k#73977, dual-stack phase 1).
    pub fn dual_stack_fields(&self) -> bool {
        self.minor >= 16
    }

    /// Controllers' ownerReferences name apps/v1 (extensions/v1beta1 on 1.9): the lab switches with 1.10.
    pub fn controllers_own_as_apps_v1(&self) -> bool {
        self.minor >= 10
    }

    /// Mirror pods owned by their Node: k/k#84485 (milestone 1.17); the lab does so from 1.19.
    pub fn mirror_pods_owned_by_node(&self) -> bool {
        self.minor >= 19
    }

    // ----- nodes -----------------------------------------------------------------------------

    /// `node.kubernetes.io/unreachable` taints: TaintBasedEvictions on by default from 1.13 (k/k#69533).
    pub fn taints_unreachable_nodes(&self) -> bool {
        self.minor >= 13
    }

    /// The namespace `kube-node-lease`: NodeLease on by default from 1.14 (k/k#72096).
    pub fn node_lease_namespace(&self) -> bool {
        self.minor >= 14
    }

    /// Node labels `kubernetes.io/os` and `kubernetes.io/arch`: GA from 1.14 (k/k#73333).
    pub fn node_ga_os_arch_labels(&self) -> bool {
        self.minor >= 14
    }

    /// Node condition `OutOfDisk`: not set by 1.13 kubelets (k/k#70111); the lab drops it from 1.12.
    pub fn node_out_of_disk_condition(&self) -> bool {
        self.minor <= 11
    }

    /// Node condition `PIDPressure`: added in 1.10 (k/k#57136), fixed in 1.14 (k/k#72844); lab: from 1.14.
    pub fn node_pid_pressure_condition(&self) -> bool {
        self.minor >= 14
    }

    /// Node `spec.externalID` (deprecated): the lab's threshold, set up to 1.15 (until the dual-stack ones).
    pub fn node_external_id(&self) -> bool {
        !self.dual_stack_fields()
    }

    /// The nodes' (OS image, runtime, kernel): the lab's choice, docker up to 1.15, containerd after.
    pub fn node_system(&self) -> (&'static str, &'static str, &'static str) {
        if self.minor <= 15 {
            ("Debian GNU/Linux 9 (stretch)", "docker://17.3.2", "4.9.0-8-amd64")
        } else {
            (
                "Debian GNU/Linux 12 (bookworm)",
                "containerd://1.7.13",
                "6.1.0-18-amd64",
            )
        }
    }

    // ----- kubeadm -----------------------------------------------------------------------------

    /// kubeadm's `node-role.kubernetes.io/master` label: removed in 1.24 (KEP-2067, CHANGELOG-1.24).
    pub fn kubeadm_master_label(&self) -> bool {
        self.minor < 24
    }

    /// kubeadm's `node-role.kubernetes.io/control-plane` label: added in 1.20 (KEP-2067, CHANGELOG-1.20).
    pub fn kubeadm_control_plane_label(&self) -> bool {
        self.minor >= 20
    }

    /// kubeadm's `exclude-from-external-load-balancers` label: k/k#98269 (1.21); the lab adds it from 1.20.
    pub fn kubeadm_exclude_from_lb_label(&self) -> bool {
        self.kubeadm_control_plane_label()
    }

    /// kubeadm's control-plane taint and role label key: `control-plane` from 1.24 (KEP-2067).
    pub fn control_plane_role_key(&self) -> &'static str {
        if self.kubeadm_master_label() {
            "node-role.kubernetes.io/master"
        } else {
            "node-role.kubernetes.io/control-plane"
        }
    }

    /// kubeadm's image registry: registry.k8s.io from 1.25 (k/k#109938); the older two are the lab's.
    pub fn image_registry(&self) -> &'static str {
        match self.minor {
            ..=11 => "gcr.io/google_containers",
            12..=24 => "k8s.gcr.io",
            25.. => "registry.k8s.io",
        }
    }

    /// A control-plane image: per-architecture names (`-amd64`) in the gcr.io/google_containers days.
    pub fn control_plane_image(&self, component: &str, version: &str) -> String {
        let registry = self.image_registry();
        if registry == "gcr.io/google_containers" {
            format!("{registry}/{component}-amd64:{version}")
        } else {
            format!("{registry}/{component}:{version}")
        }
    }

    /// The etcd image of the control plane (the lab's pick of a tag per registry).
    pub fn etcd_image(&self) -> &'static str {
        match self.image_registry() {
            "gcr.io/google_containers" => "gcr.io/google_containers/etcd-amd64:3.1.11",
            "k8s.gcr.io" => "k8s.gcr.io/etcd:3.4.13-0",
            _ => "registry.k8s.io/etcd:3.5.12-0",
        }
    }

    /// The kubeadm config API in `kubeadm-config` (kubernetes.io/docs/reference/config-api/kubeadm-config.*).
    pub fn kubeadm_config_api(&self) -> KubeadmConfigApi {
        match self.minor {
            ..=10 => KubeadmConfigApi::V1Alpha1,
            11 => KubeadmConfigApi::V1Alpha2,
            12 => KubeadmConfigApi::V1Alpha3,
            13..=14 => KubeadmConfigApi::V1Beta1,
            15..=21 => KubeadmConfigApi::V1Beta2,
            22..=30 => KubeadmConfigApi::V1Beta3,
            31.. => KubeadmConfigApi::V1Beta4,
        }
    }

    // ----- PodDisruptionBudgets and evictions --------------------------------------------------

    /// An empty PDB selector selects every pod of the namespace: policy/v1, 1.21 (k/k#99290).
    pub fn pdb_empty_selector_selects_all(&self) -> bool {
        self.serves_policy_v1()
    }

    /// No minAvailable/maxUnavailable means 1 healthy pod: policy/v1beta1 defaults, before 1.21 (k/k#99290).
    pub fn pdb_defaults_min_available_one(&self) -> bool {
        !self.serves_policy_v1()
    }

    /// PDB `status.conditions` (DisruptionAllowed): from 1.21 (k/k#98127).
    pub fn pdb_status_conditions(&self) -> bool {
        self.minor >= 21
    }

    /// Evicting a Pending/Succeeded/Failed pod skips its PDB: Pending since k/k#83906 (1.17); lab: from 1.13.
    pub fn eviction_ignores_pdb_of_idle_pods(&self) -> bool {
        self.minor >= 13
    }

    /// Unhealthy pods evictable while the PDB holds: k/k#94381 (1.20), named in k/k#113375 (1.26); lab: 1.26.
    pub fn eviction_if_healthy_budget(&self) -> bool {
        self.minor >= 26
    }

    /// A refused eviction's status names the budget (a DisruptionBudget cause): the lab's threshold, 1.16.
    pub fn eviction_budget_cause(&self) -> bool {
        self.minor >= 16
    }
}

/// A kubeadm configuration API, in release order; what `kubeadm-config` holds follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KubeadmConfigApi {
    /// 1.9, 1.10: `MasterConfiguration` with `nodeName`, no apiVersion in the stored document.
    V1Alpha1,
    /// 1.11: `MasterConfiguration` with `nodeRegistration`.
    V1Alpha2,
    /// 1.12: `ClusterConfiguration` + `ClusterStatus` from here on.
    V1Alpha3,
    /// 1.13, 1.14.
    V1Beta1,
    /// 1.15 to 1.21.
    V1Beta2,
    /// 1.22 to 1.30: no `ClusterStatus`, no `dns.type`.
    V1Beta3,
    /// 1.31 on: `extraArgs` as a list of name/value pairs.
    V1Beta4,
}

impl KubeadmConfigApi {
    /// `v1beta3`.
    pub fn version(self) -> &'static str {
        match self {
            KubeadmConfigApi::V1Alpha1 => "v1alpha1",
            KubeadmConfigApi::V1Alpha2 => "v1alpha2",
            KubeadmConfigApi::V1Alpha3 => "v1alpha3",
            KubeadmConfigApi::V1Beta1 => "v1beta1",
            KubeadmConfigApi::V1Beta2 => "v1beta2",
            KubeadmConfigApi::V1Beta3 => "v1beta3",
            KubeadmConfigApi::V1Beta4 => "v1beta4",
        }
    }

    /// The `MasterConfiguration` kind of kubeadm before 1.12 (v1alpha3 split it up).
    pub fn master_configuration(self) -> bool {
        self <= KubeadmConfigApi::V1Alpha2
    }

    /// `ClusterStatus` (the API endpoints of the control planes): removed in v1beta3 (1.22).
    pub fn cluster_status(self) -> bool {
        self < KubeadmConfigApi::V1Beta3
    }

    /// `dns.type`: removed in v1beta3 (CoreDNS only).
    pub fn dns_type(self) -> bool {
        self < KubeadmConfigApi::V1Beta3
    }

    /// `extraArgs` as a list of `{name, value}` (a map before v1beta4).
    pub fn extra_args_list(self) -> bool {
        self >= KubeadmConfigApi::V1Beta4
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::ops::RangeInclusive;

    fn release(minor: u32) -> Emulation {
        Emulation { minor, patch: 0 }
    }

    /// Each predicate over every emulated release: the minors it holds for, as documented on it.
    #[test]
    fn predicates_per_release() {
        type Predicate = fn(&Emulation) -> bool;
        // `predicate: the minors it holds for`.
        macro_rules! holds {
            ($($predicate:ident: $minors:expr),* $(,)?) => {
                [$((stringify!($predicate), Emulation::$predicate as Predicate, $minors)),*]
            };
        }
        let table: &[(&str, Predicate, RangeInclusive<u32>)] = &holds![
            self_links: 9..=19,
            serves_extensions_v1beta1: 9..=15,
            serves_apps_v1beta2: 9..=15,
            serves_policy_v1: 21..=35,
            serves_policy_v1beta1: 9..=24,
            serves_eviction_v1: 22..=35,
            serves_leases_v1: 14..=35,
            serves_leases_v1beta1: 12..=21,
            serves_table_v1: 15..=35,
            discovery_singular_names: 27..=35,
            serves_openapi_v2: 10..=35,
            serves_legacy_swagger: 9..=13,
            serves_openapi_v3: 24..=35,
            advertises_field_validation: 23..=35,
            honours_field_validation: 25..=35,
            honours_delete_precondition_rv: 14..=35,
            pod_containers_ready_condition: 11..=35,
            dual_stack_fields: 16..=35,
            controllers_own_as_apps_v1: 10..=35,
            mirror_pods_owned_by_node: 19..=35,
            taints_unreachable_nodes: 13..=35,
            node_lease_namespace: 14..=35,
            node_ga_os_arch_labels: 14..=35,
            node_out_of_disk_condition: 9..=11,
            node_pid_pressure_condition: 14..=35,
            node_external_id: 9..=15,
            kubeadm_master_label: 9..=23,
            kubeadm_control_plane_label: 20..=35,
            kubeadm_exclude_from_lb_label: 20..=35,
            pdb_empty_selector_selects_all: 21..=35,
            pdb_defaults_min_available_one: 9..=20,
            pdb_status_conditions: 21..=35,
            eviction_ignores_pdb_of_idle_pods: 13..=35,
            eviction_if_healthy_budget: 26..=35,
            eviction_budget_cause: 16..=35,
        ];
        for (name, predicate, holds) in table {
            for minor in 9..=35 {
                assert_eq!(
                    predicate(&release(minor)),
                    holds.contains(&minor),
                    "{name} on 1.{minor}"
                );
            }
        }
    }

    /// The values that change with the release, at each release they change in.
    #[test]
    fn values_per_release() {
        use KubeadmConfigApi::*;
        let table = [
            (
                9,
                "node-role.kubernetes.io/master",
                "gcr.io/google_containers",
                V1Alpha1,
                "go1.9.3",
            ),
            (
                10,
                "node-role.kubernetes.io/master",
                "gcr.io/google_containers",
                V1Alpha1,
                "go1.15.15",
            ),
            (
                11,
                "node-role.kubernetes.io/master",
                "gcr.io/google_containers",
                V1Alpha2,
                "go1.15.15",
            ),
            (
                12,
                "node-role.kubernetes.io/master",
                "k8s.gcr.io",
                V1Alpha3,
                "go1.15.15",
            ),
            (
                13,
                "node-role.kubernetes.io/master",
                "k8s.gcr.io",
                V1Beta1,
                "go1.15.15",
            ),
            (
                15,
                "node-role.kubernetes.io/master",
                "k8s.gcr.io",
                V1Beta2,
                "go1.15.15",
            ),
            (
                21,
                "node-role.kubernetes.io/master",
                "k8s.gcr.io",
                V1Beta2,
                "go1.15.15",
            ),
            (
                22,
                "node-role.kubernetes.io/master",
                "k8s.gcr.io",
                V1Beta3,
                "go1.15.15",
            ),
            (
                24,
                "node-role.kubernetes.io/control-plane",
                "k8s.gcr.io",
                V1Beta3,
                "go1.15.15",
            ),
            (
                25,
                "node-role.kubernetes.io/control-plane",
                "registry.k8s.io",
                V1Beta3,
                "go1.15.15",
            ),
            (
                30,
                "node-role.kubernetes.io/control-plane",
                "registry.k8s.io",
                V1Beta3,
                "go1.22.12",
            ),
            (
                31,
                "node-role.kubernetes.io/control-plane",
                "registry.k8s.io",
                V1Beta4,
                "go1.22.12",
            ),
        ];
        for (minor, role, registry, api, go) in table {
            let emu = release(minor);
            assert_eq!(emu.control_plane_role_key(), role, "1.{minor}");
            assert_eq!(emu.image_registry(), registry, "1.{minor}");
            assert_eq!(emu.kubeadm_config_api(), api, "1.{minor}");
            assert_eq!(emu.go_version(), go, "1.{minor}");
            assert!(emu.etcd_image().starts_with(registry), "1.{minor}");
        }
        assert_eq!(
            release(9).control_plane_image("kube-apiserver", "v1.9.11"),
            "gcr.io/google_containers/kube-apiserver-amd64:v1.9.11"
        );
        assert_eq!(
            release(30).control_plane_image("kube-apiserver", "v1.30.14"),
            "registry.k8s.io/kube-apiserver:v1.30.14"
        );
        assert_eq!(release(15).node_system().1, "docker://17.3.2");
        assert_eq!(release(16).node_system().1, "containerd://1.7.13");
        // What the config API version implies for the stored document.
        assert!(V1Alpha2.master_configuration() && !V1Alpha3.master_configuration());
        assert!(V1Beta2.cluster_status() && !V1Beta3.cluster_status());
        assert!(V1Beta2.dns_type() && !V1Beta3.dns_type());
        assert!(!V1Beta3.extra_args_list() && V1Beta4.extra_args_list());
        assert_eq!(V1Beta3.version(), "v1beta3");
    }

    #[test]
    fn parse_versions() {
        assert_eq!(Emulation::parse("1.9"), Ok(Emulation::V1_9));
        assert_eq!(Emulation::parse("v1.30"), Ok(Emulation::V1_30));
        assert_eq!(Emulation::parse("1.30.2"), Ok(Emulation { minor: 30, patch: 2 }));
        assert!(Emulation::parse("2.0").is_err());
        assert!(Emulation::parse("1.8").is_err());
    }
}
