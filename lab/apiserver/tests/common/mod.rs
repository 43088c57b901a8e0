//! Shared helpers of the integration tests: the harness's server, which kubectl binaries to use.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use lab_apiserver::testing::Lab;

/// `Some(path)` when available; `None` (with a notice) when not, unless `KUP_REQUIRE_ALL=1`,
/// which turns a missing client into a failure.
pub fn require(what: &str, path: Option<PathBuf>) -> Option<PathBuf> {
    match path.filter(|p| p.is_file()) {
        Some(p) => Some(p),
        None => {
            if std::env::var("KUP_REQUIRE_ALL").as_deref() == Ok("1") {
                panic!("{what} is required (KUP_REQUIRE_ALL=1) but missing");
            }
            println!("SKIPPED: {what} is not available; set it up to run this test");
            None
        }
    }
}

/// The newest kubectl of the Google Cloud SDK (`KUBECTL_MODERN` overrides).
pub fn modern_kubectl() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("KUBECTL_MODERN") {
        return require("KUBECTL_MODERN", Some(PathBuf::from(p)));
    }
    let dir = Path::new("/usr/lib/google-cloud-sdk/bin");
    let mut best: Option<(u32, PathBuf)> = None;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(minor) = name
                .strip_prefix("kubectl.1.")
                .and_then(|m| m.parse::<u32>().ok())
            {
                if best.as_ref().is_none_or(|(b, _)| minor > *b) {
                    best = Some((minor, e.path()));
                }
            }
        }
    }
    require(
        "Google Cloud SDK kubectl (/usr/lib/google-cloud-sdk/bin/kubectl.1.*)",
        best.map(|b| b.1),
    )
}

/// Debian's kubectl 1.20 from `KUBECTL_1_20` (see scripts/fetch-kubectl-1.20).
pub fn kubectl_1_20() -> Option<PathBuf> {
    require(
        "KUBECTL_1_20 (run scripts/fetch-kubectl-1.20 DIR and export KUBECTL_1_20=<printed path>)",
        std::env::var("KUBECTL_1_20").ok().map(PathBuf::from),
    )
}

/// Polls until `f` holds or the deadline passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}
