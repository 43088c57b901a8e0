// Test support: a failed expectation here is a failed test, so panicking is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Shared helpers for the end-to-end tests: where the release binaries are, and whether a missing
//! prerequisite is a skip (a developer's quick run) or a failure (`KUP_REQUIRE_ALL=1`, as the test
//! command and CI set it).

pub mod lab;

use std::path::{Path, PathBuf};

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
