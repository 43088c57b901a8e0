//! The shared lab API server harness (`lab_apiserver::testing`).
#![allow(dead_code)]

pub use lab_apiserver::testing::*;
