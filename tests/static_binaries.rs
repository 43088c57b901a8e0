#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every release binary in dist/ is statically linked, and every module within its size budget.

use e2e::{dist, prerequisite};
use std::path::Path;
use std::process::Command;

/// Size budgets (bytes) from the issues, by what a module links; binaries that are not modules only
/// need to be static.
fn budget(links: &str) -> u64 {
    match links {
        // Modules that do not talk HTTP.
        "std" => 2_000_000,
        // An HTTPS client (rustls): kubeadm_download.
        "https" => 4_500_000,
        // The Kubernetes client (kube, rustls): the API modules and upgrade_preflight.
        "kube" => 6_000_000,
        other => panic!("kup module --list: unknown link kind {other:?}"),
    }
}

/// The modules, as kup lists the ones it carries (`kup module --list`: NAME api|host LINKS), from
/// the kup of dist/: the same list kup's multicall entry and playbooks/build-collection use.
fn modules(dist: &Path) -> Vec<(String, u64)> {
    let out = Command::new(dist.join("kup"))
        .args(["module", "--list"])
        .output()
        .expect("dist/kup module --list");
    assert!(
        out.status.success(),
        "dist/kup module --list failed (a dist/ built before the list? run scripts/build): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<(String, u64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let [name, _place, links] = words[..] else {
                panic!("kup module --list: unexpected line {line:?}");
            };
            (name.to_string(), budget(links))
        })
        .collect();
    assert!(!list.is_empty(), "kup module --list lists nothing");
    list
}

#[test]
fn every_release_binary_is_static_and_within_budget() {
    let Some(dist) = prerequisite(dist(), "dist/", "run scripts/build first") else {
        return;
    };
    let budgets = modules(&dist);
    let mut seen = 0;
    for entry in std::fs::read_dir(&dist).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // Unfinished copies, and the modules' sidecar docs beside them.
        if name.ends_with(".new") || name.ends_with(".yml") {
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
        if let Some((_, budget)) = budgets.iter().find(|(n, _)| *n == name) {
            let size = std::fs::metadata(&path).unwrap().len();
            assert!(
                size <= *budget,
                "{name} is {size} bytes, over its budget of {budget}"
            );
        }
    }
    for (name, _) in &budgets {
        assert!(dist.join(name).exists(), "dist/{name} is missing");
    }
    assert!(seen > 0, "dist/ is empty");
}
