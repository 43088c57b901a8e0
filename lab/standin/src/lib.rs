//! The lab's stand-ins as a library: the small API client (also used by `kup-lab` to watch the lab
//! come up) and the kubelet's files per release (what kubeadm writes, what each kubelet accepts),
//! which the lab's provisioning and the stand-ins share. Versions are `kube_version::Version`.

pub mod api;
pub mod coredns;
pub mod kubelet_files;
pub mod timing;

/// The kubeconfig the stand-in services (keepalived, the container runtime) report with: the API
/// server's own address, a side channel of the lab's that bypasses the virtual address (no real
/// daemon of theirs talks to the API server).
pub const LAB_KUBECONFIG: &str = "/etc/kup-lab/lab.conf";

/// The node annotation kubeadm 1.12 to 1.23 reads the node's CRI socket from
/// (cmd/kubeadm/app/constants `AnnotationKubeadmCRISocket`; the 1.11 -> 1.12 HA upgrade page:
/// `kubectl annotate node <nodename> kubeadm.alpha.kubernetes.io/cri-socket=/var/run/dockershim.sock`).
pub const CRI_SOCKET_ANNOTATION: &str = "kubeadm.alpha.kubernetes.io/cri-socket";
/// The CRI socket of docker's dockershim, the value that page gives for docker.
pub const DOCKERSHIM_SOCKET: &str = "/var/run/dockershim.sock";
