#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every release binary in dist/ is statically linked, and within its size budget.

use e2e::{dist, prerequisite};
use std::process::Command;

/// Size budgets (bytes) from the issues; binaries not listed only need to be static.
const BUDGETS: &[(&str, u64)] = &[
    ("kubeadm_download", 4_500_000),
    // Modules that do not talk HTTP.
    ("kubeadm_upgrade", 2_000_000),
    ("package_pin", 2_000_000),
    ("service_state", 2_000_000),
    // Modules on the Kubernetes API (kube client, rustls).
    ("node_drain", 6_000_000),
    ("node_ready", 6_000_000),
    ("kubeadm_config_nodename", 6_000_000),
    ("cluster_survey", 6_000_000),
    ("cluster_lock", 6_000_000),
];

#[test]
fn every_release_binary_is_static_and_within_budget() {
    let Some(dist) = prerequisite(dist(), "dist/", "run scripts/build first") else {
        return;
    };
    let mut seen = 0;
    for entry in std::fs::read_dir(&dist).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".new") {
            continue;
        }
        seen += 1;
        let out = Command::new("file")
            .arg("-b")
            .arg(&path)
            .output()
            .expect("the `file` command");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("statically linked") || text.contains("static-pie linked"),
            "{name} is not static: {text}"
        );
        assert!(!text.contains("dynamically linked"), "{name}: {text}");
        if let Some((_, budget)) = BUDGETS.iter().find(|(n, _)| *n == name) {
            let size = std::fs::metadata(&path).unwrap().len();
            assert!(
                size <= *budget,
                "{name} is {size} bytes, over its budget of {budget}"
            );
        }
    }
    for (name, _) in BUDGETS {
        assert!(dist.join(name).exists(), "dist/{name} is missing");
    }
    assert!(seen > 0, "dist/ is empty");
}
