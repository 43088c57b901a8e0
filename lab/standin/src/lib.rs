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
