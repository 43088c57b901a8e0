//! The lab's stand-ins as a library: the small API client (also used by `kup-lab` to watch the lab
//! come up). Versions are `kube_version::Version`.

pub mod api;
