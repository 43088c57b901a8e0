//! The lab's stand-ins as a library: the small API client (also used by `kup-lab` to watch the lab
//! come up) and the kubelet's files per release (what kubeadm writes, what each kubelet accepts),
//! which the lab's provisioning and the stand-ins share. Versions are `kube_version::Version`.

pub mod api;
pub mod kubelet_files;
