//! The lab's Kubernetes API server: a faithful, version-emulating subset of kube-apiserver.
//!
//! See `crates/lab-apiserver/README` section in the module docs of [`server`].

pub mod cluster;
pub mod emulation;
pub mod error;
pub mod patch;
pub mod selector;
pub mod store;
pub mod util;

pub use cluster::Cluster;
pub use emulation::Emulation;
pub mod faults;
pub mod server;
pub mod table;
pub mod tls;

pub use faults::FaultSpec;
pub use server::{start, Handle, ServerConfig};
