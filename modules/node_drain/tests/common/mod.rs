//! The shared lab API server harness (`lab_apiserver::testing`, `pods_on` among it), plus what only
//! the drain tests need.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub use lab_apiserver::testing::*;

pub fn pod_names_on(lab: &Lab, node: &str) -> Vec<String> {
    let mut v: Vec<String> = pods_on(lab, node)
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

pub fn unschedulable(lab: &Lab, name: &str) -> bool {
    lab.node(name)["spec"]["unschedulable"].as_bool().unwrap_or(false)
}
