//! The lab's Kubernetes API server: a faithful, version-emulating subset of kube-apiserver.
//!
//! ```no_run
//! # async fn demo() -> Result<(), String> {
//! use lab_apiserver::{start, Cluster, Emulation, FaultSpec, ServerConfig};
//! let mut cfg = ServerConfig::new(Emulation::V1_9, Cluster::sample(None));
//! cfg.tls = true; // generated CA + bearer token, both written into the kubeconfig
//! cfg.time_factor = 0.02; // a 30 s grace period takes 0.6 s
//! let handle = start(cfg).await?; // 127.0.0.1 and a free port by default
//! handle.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig"))?;
//! handle.inject(FaultSpec::evictions_429(2))?;
//! assert!(handle.pdb_violations().is_empty());
//! handle.stop().await;
//! # Ok(()) }
//! ```
//!
//! Served: discovery (`/version`, `/api`, `/api/v1`, `/apis`, `/apis/G`, `/apis/G/V`) as the
//! emulated release has it; nodes (+`/status`), pods (+`/status`, `/eviction`), configmaps,
//! namespaces, daemonsets, replicasets and deployments (per release under extensions/v1beta1, apps/v1beta2,
//! apps/v1), poddisruptionbudgets (policy/v1beta1 and/or policy/v1), leases (coordination.k8s.io
//! v1beta1 and/or v1, from 1.12): get, list (label and field selectors, `limit`/`continue`),
//! create, update (409 on a stale resourceVersion), merge/strategic/JSON patch, delete (UID and,
//! from 1.14, resourceVersion preconditions). Tables for `kubectl get` with the real printers'
//! columns. The OpenAPI documents of the release ([`openapi`]: v2 from 1.10, the legacy
//! `/swagger*` names up to 1.13, v3 from 1.24) and `?fieldValidation=` on writes from 1.25, so
//! `kubectl apply`/`create`/`explain` work with validation on. No watch. The admin endpoints under
//! `/_lab/` are described in [`server`].

pub mod cluster;
pub mod emulation;
pub mod error;
pub mod openapi;
pub mod patch;
pub mod selector;
pub mod store;
pub mod util;

pub use cluster::Cluster;
pub use emulation::Emulation;
pub mod faults;
pub mod server;
pub mod table;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;
mod vip;

pub use faults::FaultSpec;
pub use server::{start, Handle, ServerConfig};
