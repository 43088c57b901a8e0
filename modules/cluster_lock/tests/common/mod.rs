//! The shared lab API server harness (crates/api-testkit).
#![allow(dead_code)]

pub use api_testkit::*;
