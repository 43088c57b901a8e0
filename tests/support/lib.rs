// Test support: a failed expectation here is a failed test, so panicking is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Shared helpers for the end-to-end tests: where the release binaries are, and whether a missing
//! prerequisite is a skip (a developer's quick run) or a failure (`KUP_REQUIRE_ALL=1`, as the test
//! command and CI set it).

pub mod lab;
pub mod schema;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `dist/`, where `scripts/build` puts every release binary.
pub fn dist() -> PathBuf {
    root().join("dist")
}

/// Whether the slow runs (the era hops and playbook runs CI leaves out) are wanted:
/// `KUP_ERA_HOPS=1` (README "Tests"); else the test says it skipped.
pub fn slow_runs_wanted() -> bool {
    let wanted = std::env::var("KUP_ERA_HOPS").is_ok_and(|v| v == "1");
    if !wanted {
        eprintln!("SKIPPED: a slow run; run it with KUP_ERA_HOPS=1");
    }
    wanted
}

/// True when every prerequisite must be present (the full suite); false allows skipping.
pub fn require_all() -> bool {
    std::env::var("KUP_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// Returns the path if it exists; otherwise fails under `KUP_REQUIRE_ALL=1`, or returns None
/// after saying on stderr what was skipped and why.
pub fn prerequisite(path: PathBuf, what: &str, how: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    let message = format!("{what} not found at {} ({how})", path.display());
    assert!(!require_all(), "{message}");
    eprintln!("SKIPPED: {message}");
    None
}

/// The bin directory of the Ansible venv (`.venv`, made by scripts/deps), if it holds
/// ansible-playbook (see [`prerequisite`] for what its absence means).
pub fn ansible_venv_bin() -> Option<PathBuf> {
    let playbook = prerequisite(
        root().join(".venv/bin/ansible-playbook"),
        "ansible-playbook",
        "scripts/deps creates .venv",
    )?;
    Some(playbook.parent().unwrap().to_path_buf())
}

/// A release binary of dist/, if `scripts/build` made it (see [`prerequisite`]).
pub fn dist_binary(name: &str) -> Option<PathBuf> {
    prerequisite(dist().join(name), &format!("dist/{name}"), "run scripts/build")
}

/// Runs dist/kup with `args` on `inventory` (`-i`), stdin closed, and waits for it.
pub fn kup(inventory: &Path, args: &[&str]) -> Output {
    Command::new(dist().join("kup"))
        .args(args)
        .arg("-i")
        .arg(inventory)
        .stdin(Stdio::null())
        .output()
        .expect("kup")
}

/// A finished command's stdout and stderr, as one text for assertions and their messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `kup upgrade --to <to> --retry-delay 1 --cni-version <cni_version> --yes`: how the labs are
/// upgraded (the retry delay short, no question asked); callers add options of their own.
pub fn kup_upgrade_args<'a>(to: &'a str, cni_version: &'a str) -> Vec<&'a str> {
    vec![
        "upgrade",
        "--to",
        to,
        "--retry-delay",
        "1",
        "--cni-version",
        cni_version,
        "--yes",
    ]
}
