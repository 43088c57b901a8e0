//! The lab's stand-in for `https://dl.k8s.io/release`: a directory in the same layout, and an HTTP
//! server for it that can misbehave on request (5xx, truncated or slow or corrupt bodies, redirects).
//!
//! Layout (as the real one): `stable.txt`, `latest.txt`, `stable-1.9.txt`, `latest-1.9.txt`, and
//! `v1.9.2/bin/linux/<arch>/kubeadm` with exactly the checksum files that release really publishes:
//! `.md5` and `.sha1` before 1.12, `.sha512` from 1.12, `.sha256` from 1.16 (which dropped md5/sha1).

mod server;
mod tree;

pub use server::{serve, serve_limited, ReleaseServer, FAULTS};
pub use tree::{checksum_kinds, write_channels, write_release};
