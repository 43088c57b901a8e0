//! The lab: a real little HA cluster on one Linux machine, to rehearse an upgrade and to test every
//! path for real. Nodes are systemd-nspawn containers (real systemd, sshd, apt or dnf) on overlay
//! copies of one cached Debian tree, on a bridge of the lab's own subnet; beside them run the lab's
//! API server and release server.

pub mod base;
pub mod etcd;
pub mod lab;
pub mod node;
pub mod repo;
pub mod sh;
pub mod spec;

pub use lab::{down, publish, status, up, LabFiles, LabState};
pub use spec::{Flavour, LabSpec, NodePlan, Timing};
