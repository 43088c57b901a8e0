//! `kubeadm_download`: the runbook's "Preparation" step. Fetch `kubeadm` of a release (or the
//! release a channel names) for this host's architecture, verify it against a pinned checksum or the
//! strongest one published beside it, and install it atomically.
//!
//! Idempotent: when `dest` already holds a file with the expected checksum and mode, nothing is
//! downloaded (and with an exact version and a pinned checksum, no request is made at all).

mod checksum;
mod fetch;
mod install;
mod target;

use checksum::{Algo, Checksum};
use fetch::{FetchError, Http};
use install::{Existing, Staged};
use module_kit::{de, Context, Failure, Module, Outcome};
use serde::{Deserialize, Deserializer};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use target::{Arch, VersionSpec};

pub struct KubeadmDownload;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(deserialize_with = "version_spec")]
    version: VersionSpec,
    #[serde(default, deserialize_with = "arch")]
    arch: Option<Arch>,
    #[serde(default = "default_dest")]
    dest: PathBuf,
    #[serde(default = "default_base_url", deserialize_with = "base_url")]
    base_url: String,
    #[serde(default, deserialize_with = "checksum_spec")]
    checksum: Option<Checksum>,
    #[serde(default = "default_mode", deserialize_with = "de::file_mode")]
    mode: u32,
    #[serde(default = "default_timeout", deserialize_with = "de::int")]
    timeout: u32,
    #[serde(default = "default_retries", deserialize_with = "de::int")]
    retries: u32,
}

fn default_dest() -> PathBuf {
    PathBuf::from("/tmp/kubeadm")
}
fn default_base_url() -> String {
    "https://dl.k8s.io/release".to_string()
}
fn default_mode() -> u32 {
    0o755
}
fn default_timeout() -> u32 {
    300
}
fn default_retries() -> u32 {
    3
}

fn version_spec<'de, D: Deserializer<'de>>(d: D) -> Result<VersionSpec, D::Error> {
    VersionSpec::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn arch<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arch>, D::Error> {
    Arch::parse(&String::deserialize(d)?)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn base_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let url = String::deserialize(d)?;
    let trimmed = url.trim().trim_end_matches('/');
    let valid = ["http://", "https://"]
        .iter()
        .any(|scheme| trimmed.strip_prefix(scheme).is_some_and(|rest| !rest.is_empty()))
        && !trimmed.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(trimmed.to_string())
    } else {
        Err(serde::de::Error::custom(format!(
            "expected an http:// or https:// URL, got {url:?}"
        )))
    }
}

/// `auto` (None: use the strongest checksum file published) or a pinned `algo:hex`.
fn checksum_spec<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Checksum>, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim() == "auto" {
        return Ok(None);
    }
    Checksum::parse_pinned(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

impl Module for KubeadmDownload {
    const NAME: &'static str = "kubeadm_download";
    const DOCS: &'static str = include_str!("../kubeadm_download.yml");
    type Params = Params;

    fn run(p: Params, ctx: &Context) -> Result<Outcome, Failure> {
        if !p.dest.is_absolute() {
            return Err(Failure::param(
                "dest",
                format!("must be an absolute path, got {:?}", p.dest),
            ));
        }
        if p.timeout == 0 {
            return Err(Failure::param("timeout", "must be at least 1 second"));
        }
        let arch = match p.arch {
            Some(arch) => arch,
            None => Arch::host().map_err(|e| Failure::param("arch", e))?,
        };
        let existing = install::inspect(&p.dest).map_err(Failure::new)?;
        let dir = install::check_parent(&p.dest).map_err(Failure::new)?;

        // Built on first use only, so that an idempotent pinned run costs no network and no TLS setup.
        let http = std::cell::OnceCell::new();
        let client = || -> Result<&Http, Failure> {
            if http.get().is_none() {
                let built =
                    Http::new(Duration::from_secs(p.timeout.into()), p.retries).map_err(Failure::new)?;
                let _ = http.set(built);
            }
            http.get().ok_or_else(|| Failure::new("HTTP client unavailable"))
        };

        let version = match &p.version {
            VersionSpec::Exact(v) => v.clone(),
            VersionSpec::Channel(channel) => resolve_channel(client()?, &p.base_url, channel)?,
        };
        let url = format!("{}/{version}/bin/linux/{arch}/kubeadm", p.base_url);
        let mut warnings = Vec::new();
        let (expected, source) = match &p.checksum {
            Some(pinned) => (pinned.clone(), "pinned".to_string()),
            None => published_checksum(client()?, &url, &version)?,
        };
        if expected.algo.is_weak() {
            warnings.push(if source == "pinned" {
                format!(
                    "the pinned checksum is {}: it detects a corrupt download but not a forged one; \
                     prefer sha256 or sha512",
                    expected.algo.name()
                )
            } else {
                format!(
                    "{version} publishes only .sha1/.md5 checksums, so the download was verified with {}: \
                     that detects corruption but not tampering. Pin a stronger one with \
                     checksum=sha256:<hex> if you have it",
                    expected.algo.name()
                )
            });
        }

        let current = match existing {
            Existing::File { .. } => Some(
                checksum::of_file(&p.dest, expected.algo)
                    .map_err(|e| Failure::new(format!("cannot read {}: {e}", p.dest.display())))?,
            ),
            Existing::Missing => None,
        };
        let content_ok = current.as_ref() == Some(&expected);
        let mode_ok = matches!(existing, Existing::File { mode, .. } if mode == p.mode);
        let dest = p.dest.display().to_string();
        let before = match (&existing, &current) {
            (Existing::File { mode, size }, Some(sum)) => {
                json!({ "path": dest, "exists": true, "checksum": sum.to_string(), "mode": octal(*mode), "size": size })
            }
            _ => json!({ "path": dest, "exists": false }),
        };
        let after = json!({ "path": dest, "exists": true, "version": version, "checksum": expected.to_string(),
                            "mode": octal(p.mode) });

        let (changed, size, msg) = if content_ok && mode_ok {
            let size = file_size(&existing);
            (
                false,
                size,
                format!(
                    "{dest} is already kubeadm {version} ({arch}), verified {}",
                    expected.algo.name()
                ),
            )
        } else if content_ok {
            if !ctx.check_mode {
                install::set_mode(&p.dest, p.mode).map_err(Failure::new)?;
            }
            let verb = if ctx.check_mode { "would set" } else { "set" };
            (
                true,
                file_size(&existing),
                format!(
                    "{dest} is already kubeadm {version}; {verb} its mode to {}",
                    octal(p.mode)
                ),
            )
        } else if ctx.check_mode {
            (
                true,
                None,
                format!("would download kubeadm {version} ({arch}) from {url} to {dest}"),
            )
        } else {
            let size = download(client()?, &url, &p.dest, &dir, &expected, p.mode)?;
            let how = match source.as_str() {
                "pinned" => format!("the pinned {}", expected.algo.name()),
                file => format!("{} from {file}", expected.algo.name()),
            };
            (
                true,
                Some(size),
                format!("downloaded kubeadm {version} ({arch}) to {dest}, verified with {how}"),
            )
        };

        let mut outcome = if changed {
            Outcome::changed(msg)
        } else {
            Outcome::unchanged(msg)
        };
        outcome.warnings = warnings;
        Ok(outcome
            .with("version", &version)
            .with("arch", arch.to_string())
            .with("url", &url)
            .with("dest", &dest)
            .with("checksum", expected.to_string())
            .with("checksum_source", &source)
            .with("mode", octal(p.mode))
            .with("size", size)
            .with_diff(before, after))
    }
}

fn resolve_channel(http: &Http, base_url: &str, channel: &str) -> Result<String, Failure> {
    let url = format!("{base_url}/{channel}.txt");
    let text = http.text(&url).map_err(|e| match e {
        FetchError::NotFound(_) => Failure::new(format!("channel {channel:?} does not exist: {e}")),
        other => Failure::new(format!("cannot resolve channel {channel:?}: {other}")),
    })?;
    target::normalize_version(&text).ok_or_else(|| {
        Failure::new(format!(
            "{url} does not hold a release version: {:?}",
            truncate(&text, 80)
        ))
    })
}

/// The strongest checksum file published next to the binary, and its URL.
fn published_checksum(http: &Http, url: &str, version: &str) -> Result<(Checksum, String), Failure> {
    for algo in Algo::BY_STRENGTH {
        let file_url = format!("{url}.{}", algo.name());
        match http.text(&file_url) {
            Ok(text) => {
                let sum = Checksum::parse_file(algo, &text).ok_or_else(|| {
                    Failure::new(format!(
                        "{file_url} is not a {} checksum: {:?}",
                        algo.name(),
                        truncate(&text, 80)
                    ))
                })?;
                return Ok((sum, file_url));
            }
            Err(FetchError::NotFound(_)) => continue,
            Err(other) => return Err(Failure::new(format!("cannot fetch the checksum: {other}"))),
        }
    }
    Err(Failure::new(format!(
        "no checksum file (.sha512, .sha256, .sha1, .md5) is published for {url}: is {version} a real release \
         on this mirror? Pin one with checksum=sha256:<hex> to proceed"
    )))
}

/// Downloads into a temporary file beside `dest`, verifies, then renames over `dest`.
/// Any failure leaves `dest` exactly as it was.
fn download(
    http: &Http,
    url: &str,
    dest: &Path,
    dir: &Path,
    expected: &Checksum,
    mode: u32,
) -> Result<u64, Failure> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kubeadm".into());
    let mut staged = Staged::create(dir, &name).map_err(Failure::new)?;
    let (got, size) = http
        .download(url, staged.file().map_err(Failure::new)?, expected.algo)
        .map_err(|e| Failure::new(format!("{e}; {} was left untouched", dest.display())))?;
    if &got != expected {
        return Err(Failure::new(format!(
            "checksum mismatch for {url}: expected {expected}, got {got}; {} was left untouched",
            dest.display()
        ))
        .with("expected_checksum", expected.to_string())
        .with("actual_checksum", got.to_string()));
    }
    staged.install(dest, mode).map_err(Failure::new)?;
    Ok(size)
}

fn file_size(existing: &Existing) -> Option<u64> {
    match existing {
        Existing::File { size, .. } => Some(*size),
        Existing::Missing => None,
    }
}

fn octal(mode: u32) -> String {
    format!("{mode:04o}")
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
