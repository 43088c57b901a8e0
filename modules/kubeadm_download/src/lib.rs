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

pub use checksum::{Algo, Checksum};
use fetch::{FetchError, Http};
use install::{DirProblem, Existing};
use module_kit::file::Staged;
use module_kit::{de, shown, Context, Failure, FilePath, Module, Outcome, Retries, Seconds};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Value};
use std::path::Path;
pub use target::{Arch, VersionSpec};

pub struct KubeadmDownload;

#[derive(Debug, Clone, Deserialize, Serialize, module_kit::Params)]
pub struct Params {
    #[serde(deserialize_with = "version_spec", serialize_with = "as_text")]
    pub version: VersionSpec,
    #[serde(
        default,
        deserialize_with = "arch",
        serialize_with = "opt_as_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub arch: Option<Arch>,
    #[serde(default = "default_dest")]
    pub dest: FilePath,
    #[serde(default = "default_base_url", deserialize_with = "base_url")]
    pub base_url: String,
    #[serde(
        default,
        deserialize_with = "checksum_spec",
        serialize_with = "opt_as_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub checksum: Option<Checksum>,
    #[serde(default = "default_mode", deserialize_with = "de::file_mode")]
    pub mode: u32,
    #[serde(default = "default_timeout")]
    pub timeout: Seconds,
    #[serde(default = "default_retries")]
    pub retries: Retries,
}

impl Params {
    /// `version` from the default release server to the default `dest`, everything else at its
    /// default (for callers such as kup).
    pub fn new(version: VersionSpec) -> Params {
        Params {
            version,
            arch: None,
            dest: default_dest(),
            base_url: default_base_url(),
            checksum: None,
            mode: default_mode(),
            timeout: default_timeout(),
            retries: default_retries(),
        }
    }
}

/// The default directory: only root (or whoever runs the module) may write to it, unlike /tmp, where
/// any local user could plant a `kubeadm` for the upgrade to run as root. Created 0700 when missing.
pub const DEFAULT_DIR: &str = "/var/lib/kup";

fn default_dest() -> FilePath {
    FilePath::from_static("/var/lib/kup/kubeadm")
}
fn default_base_url() -> String {
    "https://dl.k8s.io/release".to_string()
}
fn default_mode() -> u32 {
    0o755
}
fn default_timeout() -> Seconds {
    Seconds::of(300)
}
fn default_retries() -> Retries {
    Retries::of(3)
}

/// A value that is written as its text (`Display`), as `version`, `arch` and `checksum` are given.
fn as_text<S: Serializer>(value: &impl std::fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn opt_as_text<S: Serializer, T: std::fmt::Display>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
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
            "expected an http:// or https:// URL, got {}",
            shown(&Userinfo::redact_in(&url))
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
        // A password in base_url is used, never shown: not in msg, warnings or any value.
        let hide = Userinfo::of(&p.base_url);
        let result = install_kubeadm(p, ctx);
        match hide {
            Some(hide) => hide.redact_result(result),
            None => result,
        }
    }
}

fn install_kubeadm(p: Params, ctx: &Context) -> Result<Outcome, Failure> {
    let arch = match p.arch {
        Some(arch) => arch,
        None => Arch::host().map_err(|e| Failure::param("arch", e))?,
    };
    let existing = install::inspect(&p.dest).map_err(Failure::new)?;
    let (dir, create_dir) = install::check_parent(&p.dest, Path::new(DEFAULT_DIR)).map_err(|problem| match problem {
        DirProblem::Unusable(why) => Failure::param("dest", why),
        DirProblem::Untrusted(why) => Failure::param(
            "dest",
            format!(
                "refusing to install kubeadm at {}: {why}, so another local user could replace it before it runs \
                 as root; use a directory only root (or this user) can write to, such as {DEFAULT_DIR} (the \
                 default), or make it one (chown root, chmod go-w, and not a symbolic link)",
                p.dest.display()
            ),
        ),
    })?;
    if create_dir && !ctx.check_mode {
        module_kit::trust::ensure_private_dir(&dir).map_err(Failure::new)?;
    }

    // Built on first use only, so that an idempotent pinned run costs no network and no TLS setup.
    let http = std::cell::OnceCell::new();
    let client = || -> Result<&Http, Failure> {
        if http.get().is_none() {
            let built = Http::new(p.timeout.duration(), p.retries.get()).map_err(Failure::new)?;
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
        let mkdir = if create_dir {
            format!(" (creating {}, mode 0700)", dir.display())
        } else {
            String::new()
        };
        (
            true,
            None,
            format!("would download kubeadm {version} ({arch}) from {url} to {dest}{mkdir}"),
        )
    } else {
        let size = download(client()?, &url, &p.dest, &expected, p.mode)?;
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

/// The `user:password@` of a URL, to keep out of everything the module reports.
#[derive(Debug, Clone)]
struct Userinfo {
    /// As it appears in the URL: `user:password@`.
    raw: String,
    /// What is shown instead: `user:***@`.
    masked: String,
}

impl Userinfo {
    /// The userinfo of `url` when it holds a password.
    fn of(url: &str) -> Option<Userinfo> {
        let (_, rest) = url.split_once("://")?;
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        let (userinfo, _host) = authority.rsplit_once('@')?;
        let (user, _password) = userinfo.split_once(':')?;
        Some(Userinfo {
            raw: format!("{userinfo}@"),
            masked: format!("{user}:***@"),
        })
    }

    /// `url` (or any text holding it) with its password masked.
    fn redact_in(text: &str) -> String {
        match Userinfo::of(text) {
            Some(u) => u.redact(text),
            None => text.to_string(),
        }
    }

    fn redact(&self, text: &str) -> String {
        text.replace(&self.raw, &self.masked)
    }

    fn redact_value(&self, value: &mut Value) {
        match value {
            Value::String(s) if s.contains(&self.raw) => *s = self.redact(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_value(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.redact_value(v)),
            _ => {}
        }
    }

    fn redact_result(&self, result: Result<Outcome, Failure>) -> Result<Outcome, Failure> {
        match result {
            Ok(mut o) => {
                o.msg = self.redact(&o.msg);
                o.warnings = o.warnings.iter().map(|w| self.redact(w)).collect();
                o.values.values_mut().for_each(|v| self.redact_value(v));
                if let Some(diff) = o.diff.as_mut() {
                    self.redact_value(&mut diff.before);
                    self.redact_value(&mut diff.after);
                }
                Ok(o)
            }
            Err(mut f) => {
                f.msg = self.redact(&f.msg);
                f.warnings = f.warnings.iter().map(|w| self.redact(w)).collect();
                f.values.values_mut().for_each(|v| self.redact_value(v));
                if let Some(command) = f.command.as_mut() {
                    command.stdout = self.redact(&command.stdout);
                    command.stderr = self.redact(&command.stderr);
                }
                Err(f)
            }
        }
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
fn download(http: &Http, url: &str, dest: &Path, expected: &Checksum, mode: u32) -> Result<u64, Failure> {
    let mut staged = Staged::beside(dest).map_err(Failure::new)?;
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
    staged.install(dest, mode, None).map_err(Failure::new)?;
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
