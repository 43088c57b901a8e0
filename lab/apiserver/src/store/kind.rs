//! The kinds of objects served, and what the API calls them.

/// The kinds of objects served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// v1 Node
    Node,
    /// v1 Pod
    Pod,
    /// v1 ConfigMap
    ConfigMap,
    /// v1 Namespace
    Namespace,
    /// policy PodDisruptionBudget
    Pdb,
    /// apps DaemonSet
    DaemonSet,
    /// apps ReplicaSet
    ReplicaSet,
    /// apps Deployment (kube-system/coredns: the addon version kubeadm's upgrades move)
    Deployment,
    /// coordination.k8s.io Lease
    Lease,
}

impl Kind {
    /// Resource name (`pods`).
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Node => "nodes",
            Kind::Pod => "pods",
            Kind::ConfigMap => "configmaps",
            Kind::Namespace => "namespaces",
            Kind::Pdb => "poddisruptionbudgets",
            Kind::DaemonSet => "daemonsets",
            Kind::ReplicaSet => "replicasets",
            Kind::Deployment => "deployments",
            Kind::Lease => "leases",
        }
    }

    /// Kind name (`Pod`).
    pub fn kind(self) -> &'static str {
        match self {
            Kind::Node => "Node",
            Kind::Pod => "Pod",
            Kind::ConfigMap => "ConfigMap",
            Kind::Namespace => "Namespace",
            Kind::Pdb => "PodDisruptionBudget",
            Kind::DaemonSet => "DaemonSet",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::Deployment => "Deployment",
            Kind::Lease => "Lease",
        }
    }

    /// The canonical group (for error messages).
    pub fn group(self) -> &'static str {
        match self {
            Kind::Pdb => "policy",
            Kind::DaemonSet | Kind::ReplicaSet | Kind::Deployment => "apps",
            Kind::Lease => "coordination.k8s.io",
            _ => "",
        }
    }

    /// Namespaced?
    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::Node | Kind::Namespace)
    }

    /// From a URL's group and resource.
    pub fn from_resource(group: &str, resource: &str) -> Option<Kind> {
        Some(match (group, resource) {
            ("", "nodes") => Kind::Node,
            ("", "pods") => Kind::Pod,
            ("", "configmaps") => Kind::ConfigMap,
            ("", "namespaces") => Kind::Namespace,
            ("policy", "poddisruptionbudgets") => Kind::Pdb,
            ("apps" | "extensions", "daemonsets") => Kind::DaemonSet,
            ("apps" | "extensions", "replicasets") => Kind::ReplicaSet,
            ("apps" | "extensions", "deployments") => Kind::Deployment,
            ("coordination.k8s.io", "leases") => Kind::Lease,
            _ => return None,
        })
    }

    /// Field selectors the real server accepts for the kind.
    pub fn field_labels(self) -> &'static [&'static str] {
        match self {
            Kind::Pod => &[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ],
            Kind::Node => &["metadata.name", "spec.unschedulable"],
            Kind::Namespace => &["metadata.name", "status.phase"],
            _ => &["metadata.name", "metadata.namespace"],
        }
    }

    pub(super) const ALL: [Kind; 9] = [
        Kind::Node,
        Kind::Pod,
        Kind::ConfigMap,
        Kind::Namespace,
        Kind::Pdb,
        Kind::DaemonSet,
        Kind::ReplicaSet,
        Kind::Deployment,
        Kind::Lease,
    ];
}
