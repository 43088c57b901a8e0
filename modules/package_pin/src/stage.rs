//! Staging (issue #15): the packages of the transaction downloaded before the node is taken out of
//! service, so that its out-of-service window holds only the install from local files.
//!
//! - apt: `apt-get install --download-only` in package_repo's switched view (a private copy of the
//!   repository at the target's minor, its own index and cache), each `.deb` then placed in apt's
//!   own cache (`Dir::Cache::archives`). The real install, after the real switch and `apt-get
//!   update`, finds them there; apt uses a cached `.deb` only when its size and hash are the ones
//!   the signed index names. The names placed are kept in a manifest under the staging directory,
//!   so that the cleanup after the install removes only ours.
//! - dnf/yum: `dnf install --downloadonly --destdir` in the view, into a root-only staging directory
//!   per version. The install then passes those files to dnf (signatures checked with
//!   `localpkg_gpgcheck`) when every package of its transaction is there at exactly the version it
//!   chose and `rpm -K` accepts it, and removes the directory once installed.
//!
//! Nothing here touches the node's repository file, its index or its holds.

use crate::manager::{Manager, Options};
use module_kit::command::{Command, Output};
use module_kit::Failure;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where staged files (rpm) and the manifest of placed `.deb`s (apt) are kept, one directory per
/// version.
pub const DEFAULT_ROOT: &str = "/var/lib/kubeadm-ha-upgrade/staged";

/// The manifest (in a version's staging directory) naming the `.deb`s staging placed in apt's cache.
pub const MANIFEST: &str = "apt-archives";

const QUERY_TIMEOUT: Duration = Duration::from_secs(120);

/// One file of the transaction as apt would fetch it (`apt-get --print-uris`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// Where apt fetches it from.
    pub uri: String,
    /// The file name in apt's cache (`kubelet_1.30.2-1.1_amd64.deb`).
    pub name: String,
    pub size: Option<u64>,
    /// Lower-case hex.
    pub sha256: Option<String>,
}

/// A staged rpm, as its header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedRpm {
    pub path: PathBuf,
    pub name: String,
    /// `version-release`, the form the index queries give.
    pub version: String,
    pub arch: String,
    /// `None`: `rpm -K` accepts it (digests and signature, with the imported keys); else why not.
    pub refused: Option<String>,
}

impl StagedRpm {
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// The version's staging directory under `root` (the version as given, without a leading `v`).
pub fn version_dir(root: &Path, version: &str) -> PathBuf {
    root.join(version.trim().trim_start_matches('v'))
}

/// A file name apt or dnf gave, safe to join to a directory: no separator, not hidden.
pub fn plain_name(name: &str, suffix: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains('/')
        && !name.contains('\0')
        && name.ends_with(suffix)
        && name.len() > suffix.len()
}

/// Refuses a directory that is a symbolic link, not a directory, not owned by root, or writable by
/// others (by its group too unless `group_ok`).
pub fn check_dir(path: &Path, group_ok: bool) -> Result<(), Failure> {
    let shown = path.display();
    let meta =
        std::fs::symlink_metadata(path).map_err(|e| Failure::new(format!("cannot read {shown}: {e}")))?;
    if meta.file_type().is_symlink() {
        return Err(Failure::new(format!(
            "{shown} is a symbolic link: refusing to stage through it"
        )));
    }
    if !meta.is_dir() {
        return Err(Failure::new(format!("{shown} is not a directory")));
    }
    judge_owner(&shown.to_string(), meta.uid(), meta.mode(), group_ok)
}

/// [`check_dir`]'s rule on owner and mode.
pub fn judge_owner(shown: &str, uid: u32, mode: u32, group_ok: bool) -> Result<(), Failure> {
    if uid != 0 {
        return Err(Failure::new(format!(
            "{shown} is owned by uid {uid}, not root: refusing to stage there"
        )));
    }
    let writable = if group_ok { 0o002 } else { 0o022 };
    if mode & writable != 0 {
        return Err(Failure::new(format!(
            "{shown} is writable by {} (mode {:o}): refusing to stage there",
            if mode & 0o002 != 0 {
                "everyone"
            } else {
                "its group"
            },
            mode & 0o7777
        )));
    }
    Ok(())
}

/// The version's staging directory, made (0700, parents too) when missing, and checked.
pub fn ensure_dir(root: &Path, version: &str) -> Result<PathBuf, Failure> {
    let made = |what: &Path, e: std::io::Error| Failure::new(format!("cannot make {}: {e}", what.display()));
    if std::fs::symlink_metadata(root).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| made(root, e))?;
    }
    check_dir(root, false)?;
    let dir = version_dir(root, version);
    if std::fs::symlink_metadata(&dir).is_err() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| made(&dir, e))?;
    }
    check_dir(&dir, false)?;
    Ok(dir)
}

/// The version's staging directory when it exists (checked), `None` when it does not.
pub fn existing_dir(root: &Path, version: &str) -> Result<Option<PathBuf>, Failure> {
    let dir = version_dir(root, version);
    if std::fs::symlink_metadata(&dir).is_err() {
        return Ok(None);
    }
    check_dir(root, false)?;
    check_dir(&dir, false)?;
    Ok(Some(dir))
}

// ---- apt ----

/// `apt-get install` in the view, downloading only (`print_uris`: only saying what it would fetch).
pub fn apt_download(
    view: &[String],
    pins: &[(String, String)],
    allow_downgrade: bool,
    print_uris: bool,
    timeout: Duration,
) -> Command {
    let mut cmd = Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(view)
        .args([
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "--allow-change-held-packages",
        ])
        .arg(if print_uris {
            "--print-uris"
        } else {
            "--download-only"
        });
    if allow_downgrade {
        cmd = cmd.arg("--allow-downgrades");
    }
    cmd.args(pins.iter().map(|(name, version)| format!("{name}={version}")))
        .timeout(timeout)
}

/// The files of `apt-get --print-uris`: `'URI' name size SHA256:hex`.
pub fn parse_uris(stdout: &str) -> Result<Vec<Fetch>, Failure> {
    let mut fetches = Vec::new();
    for line in stdout.lines() {
        let line = line.trim();
        if !line.starts_with('\'') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let [uri, name, rest @ ..] = words.as_slice() else {
            continue;
        };
        if !plain_name(name, ".deb") {
            return Err(Failure::new(format!(
                "apt-get would fetch {}, not a plain .deb file name",
                module_kit::shown(name)
            )));
        }
        let size = rest.first().and_then(|s| s.parse::<u64>().ok());
        let sha256 = rest
            .iter()
            .find_map(|w| w.strip_prefix("SHA256:"))
            .filter(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
            .map(|h| h.to_ascii_lowercase());
        fetches.push(Fetch {
            uri: uri.trim_matches('\'').to_string(),
            name: name.to_string(),
            size,
            sha256,
        });
    }
    Ok(fetches)
}

/// `kubelet_1%3a1.30.2-1.1_amd64.deb` to `(kubelet, 1:1.30.2-1.1, amd64)`.
pub fn deb_name_parts(name: &str) -> Option<(String, String, String)> {
    let stem = name.strip_suffix(".deb")?;
    let mut parts = stem.split('_');
    let (package, version, arch) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || package.is_empty() || version.is_empty() || arch.is_empty() {
        return None;
    }
    Some((
        package.into(),
        version.replace("%3a", ":").replace("%3A", ":"),
        arch.into(),
    ))
}

/// The index records of the files to fetch, with the view's configuration: apt-get's
/// `--print-uris` names an MD5 sum only, the records have the SHA256.
pub fn apt_records(view: &[String], fetches: &[Fetch]) -> Command {
    Command::new("apt-cache")
        .args(view)
        .args(["show", "--no-all-versions"])
        .args(
            fetches
                .iter()
                .filter_map(|f| deb_name_parts(&f.name))
                .map(|(package, version, _)| format!("{package}={version}")),
        )
        .timeout(QUERY_TIMEOUT)
}

/// Sets each fetch's size and SHA256 from the index records (`apt-cache show`); a file the records
/// give no SHA256 for is refused, as staging could not tell it from another of its size.
pub fn with_hashes(fetches: &mut [Fetch], records: &str) -> Result<(), Failure> {
    for fetch in fetches.iter_mut() {
        let Some((package, version, arch)) = deb_name_parts(&fetch.name) else {
            return Err(Failure::new(format!(
                "{} is not a package file name apt gives",
                module_kit::shown(&fetch.name)
            )));
        };
        let found = records.split("\n\n").find_map(|record| {
            let field = |key: &str| {
                record
                    .lines()
                    .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(':')))
                    .map(str::trim)
            };
            (field("Package") == Some(&package)
                && field("Version") == Some(&version)
                && field("Architecture") == Some(&arch))
            .then(|| {
                (
                    field("SHA256").map(str::to_ascii_lowercase),
                    field("Size").and_then(|s| s.parse::<u64>().ok()),
                )
            })
        });
        match found {
            Some((Some(sha), size)) if sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()) => {
                fetch.sha256 = Some(sha);
                fetch.size = size.or(fetch.size);
            }
            _ => {
                return Err(Failure::new(format!(
                    "the index names no SHA256 for {package} {version} ({arch}): refusing to stage it"
                )))
            }
        }
    }
    Ok(())
}

/// apt's cache of downloaded packages (`Dir::Cache::archives`), as apt-config says with `options`.
pub fn apt_archives(options: &[String]) -> Result<PathBuf, Failure> {
    let out = Command::new("apt-config")
        .args(options)
        .args(["shell", "ARCHIVES", "Dir::Cache::archives/d"])
        .timeout(QUERY_TIMEOUT)
        .run_checked()
        .map_err(Failure::from)?;
    parse_apt_config(&out.stdout).ok_or_else(|| {
        Failure::new(format!(
            "apt-config gave no usable Dir::Cache::archives: {}",
            module_kit::shown(out.stdout.trim())
        ))
    })
}

/// `ARCHIVES='/var/cache/apt/archives/'` to the path (quotes inside refused).
pub fn parse_apt_config(stdout: &str) -> Option<PathBuf> {
    let line = stdout.lines().find_map(|l| l.trim().strip_prefix("ARCHIVES="))?;
    let inner = line.strip_prefix('\'')?.strip_suffix('\'')?;
    (inner.starts_with('/') && !inner.contains('\'')).then(|| PathBuf::from(inner))
}

/// Whether `dir` holds `fetch` already: a regular file (not a link) of its size and hash.
pub fn holds(dir: &Path, fetch: &Fetch) -> bool {
    is_fetched(&dir.join(&fetch.name), fetch)
}

/// Whether `path` is a regular file (not a link) of `fetch`'s size and hash.
pub fn is_fetched(path: &Path, fetch: &Fetch) -> bool {
    let path = path.to_path_buf();
    let Ok(meta) = std::fs::symlink_metadata(&path) else {
        return false;
    };
    if !meta.file_type().is_file() {
        return false;
    }
    if fetch.size.is_some_and(|s| s != meta.len()) {
        return false;
    }
    match &fetch.sha256 {
        Some(want) => sha256(&path).is_ok_and(|got| got == *want),
        // No hash to compare with: never assume it is the same file.
        None => false,
    }
}

/// Where apt left a downloaded file: its cache, or (a `file:` repository, which apt reads in place)
/// the repository's own file.
pub fn downloaded(cache: &Path, fetch: &Fetch) -> Option<PathBuf> {
    let cached = cache.join(&fetch.name);
    if is_fetched(&cached, fetch) {
        return Some(cached);
    }
    let local = PathBuf::from(percent_decoded(fetch.uri.strip_prefix("file:")?));
    is_fetched(&local, fetch).then_some(local)
}

/// `%3a` and the like decoded (apt quotes URIs so).
pub fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn sha256(path: &Path) -> std::io::Result<String> {
    let mut file = open_nofollow(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn open_nofollow(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NOFOLLOW: a link in place of the file is an error, never followed.
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(0o400000)
        .open(path)
}

/// Copies `src` into `dir` as `name`: a new file of a random name in `dir` (created exclusively,
/// never through a link), synced, then renamed over `name`. Returns its size.
pub fn place(src: &Path, dir: &Path, name: &str) -> Result<u64, Failure> {
    let fail = |what: &str, e: std::io::Error| {
        Failure::new(format!("cannot {what} {} in {}: {e}", name, dir.display()))
    };
    let mut from = open_nofollow(src).map_err(|e| fail("read the downloaded", e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".kup-staging-")
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(|e| fail("make a file for", e))?;
    let size = std::io::copy(&mut from, tmp.as_file_mut()).map_err(|e| fail("copy", e))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(|e| fail("set the mode of", e))?;
    tmp.as_file().sync_all().map_err(|e| fail("sync", e))?;
    tmp.persist(dir.join(name))
        .map_err(|e| fail("rename into place", e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(size)
}

/// The names in a version's manifest (none when there is no manifest).
pub fn read_manifest(dir: &Path) -> Vec<String> {
    let Ok(file) = open_nofollow(&dir.join(MANIFEST)) else {
        return Vec::new();
    };
    let mut text = String::new();
    if file.take(1 << 20).read_to_string(&mut text).is_err() {
        return Vec::new();
    }
    text.lines()
        .map(str::trim)
        .filter(|n| plain_name(n, ".deb"))
        .map(String::from)
        .collect()
}

/// Writes the manifest whole (a new file renamed over the old one).
pub fn write_manifest(dir: &Path, names: &[String]) -> Result<(), Failure> {
    let fail =
        |e: std::io::Error| Failure::new(format!("cannot write {}: {e}", dir.join(MANIFEST).display()));
    let mut tmp = tempfile::Builder::new()
        .prefix(".manifest-")
        .tempfile_in(dir)
        .map_err(fail)?;
    let text: String = names.iter().map(|n| format!("{n}\n")).collect();
    std::io::Write::write_all(tmp.as_file_mut(), text.as_bytes()).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(dir.join(MANIFEST)).map_err(|e| fail(e.error))?;
    Ok(())
}

/// Where staged files are, for [`clean`].
pub enum Placed<'a> {
    /// apt's cache; the manifest in the version's directory names ours.
    Apt(&'a Path),
    /// The rpms in the version's directory (as [`staged_rpms`] read them).
    Rpm(&'a [StagedRpm]),
}

/// Removes what staging left for a version once these `packages` are installed: their `.deb`s the
/// manifest names from apt's cache, or their rpms in `dir`; the version's directory
/// goes with the last of them. A transaction of some of the packages (a worker's kubeadm before
/// its kubelet) leaves the others staged for the next. Returns what could not be removed.
pub fn clean(dir: &Path, placed: Placed<'_>, packages: &[String]) -> Vec<String> {
    let mut left = Vec::new();
    let ours = |name: &str| packages.iter().any(|p| p == name);
    let mut remove = |path: &Path| match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => {
            if let Err(e) = std::fs::remove_file(path) {
                left.push(format!("{}: {e}", path.display()));
            }
        }
        _ => {}
    };
    let remaining = match placed {
        Placed::Apt(archives) => {
            // `name_version_arch.deb` (apt's cache names; `_` never appears in a package name).
            let (done, kept): (Vec<String>, Vec<String>) = read_manifest(dir)
                .into_iter()
                .partition(|file| ours(file.split('_').next().unwrap_or("")));
            for file in &done {
                remove(&archives.join(file));
            }
            if !kept.is_empty() {
                if let Err(e) = write_manifest(dir, &kept) {
                    left.push(e.msg);
                }
            }
            kept.len()
        }
        Placed::Rpm(staged) => {
            let (done, kept): (Vec<&StagedRpm>, Vec<&StagedRpm>) = staged.iter().partition(|f| ours(&f.name));
            for file in done {
                remove(&file.path);
            }
            kept.len()
        }
    };
    if remaining == 0 {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            left.push(format!("{}: {e}", dir.display()));
        }
    }
    left
}

// ---- dnf/yum ----

/// Downloads the transaction's packages into `dest` with the view's configuration (the holds'
/// versionlock left out, as the install releases them first).
pub fn rpm_download(
    program: &str,
    pins: &[(String, String)],
    downgrade: bool,
    opts: &Options<'_>,
    dest: &Path,
) -> Command {
    let verb = if downgrade { "downgrade" } else { "install" };
    let mut cmd =
        Command::new(program).args([verb, "-y", "-q", "--downloadonly", "--disableplugin=versionlock"]);
    cmd = cmd.arg(format!("--destdir={}", dest.display()));
    crate::manager::with_repo_options(cmd, opts)
        .args(opts.view)
        .args(pins.iter().map(|(name, version)| format!("{name}-{version}")))
        .timeout(opts.timeout)
}

/// What the index says of the packages: `name version-release arch downloadsize`.
pub fn rpm_sizes(program: &str, pins: &[(String, String)], opts: &Options<'_>) -> Command {
    crate::manager::with_repo_options(
        Command::new(program).args([
            "-q",
            "repoquery",
            "--qf",
            "%{name} %{version}-%{release} %{arch} %{downloadsize}\n",
        ]),
        opts,
    )
    .args(opts.view)
    .args(pins.iter().map(|(name, version)| format!("{name}-{version}")))
    .timeout(QUERY_TIMEOUT)
}

/// `(file name, size)` per package of `rpm_sizes`' output, for the pinned versions.
pub fn parse_rpm_sizes(stdout: &str, pins: &[(String, String)]) -> Vec<(String, Option<u64>)> {
    let mut found: Vec<(String, Option<u64>)> = Vec::new();
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [name, version, arch, size] = words.as_slice() {
            let version = version.strip_prefix("0:").unwrap_or(version);
            if pins.iter().any(|(n, v)| n == name && v == version) {
                let file = format!("{name}-{version}.{arch}.rpm");
                if !found.iter().any(|(f, _)| *f == file) {
                    found.push((file, size.parse().ok()));
                }
            }
        }
    }
    found
}

/// The rpms in `dir`, each with what its header says and whether `rpm -K` accepts it.
pub fn staged_rpms(dir: &Path) -> Result<Vec<StagedRpm>, Failure> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Failure::new(format!("cannot read {}: {e}", dir.display())))?;
    let mut found = Vec::new();
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| plain_name(&n.to_string_lossy(), ".rpm"))
        })
        .collect();
    paths.sort();
    for path in paths {
        let out = Command::new("rpm")
            .args([
                "-qp",
                "--nosignature",
                "--nodigest",
                "--qf",
                "%{NAME} %{VERSION}-%{RELEASE} %{ARCH}\n",
            ])
            .arg(&path)
            .timeout(QUERY_TIMEOUT)
            .run()
            .map_err(Failure::from)?;
        let Some((name, version, arch)) = header(&out) else {
            continue;
        };
        let check = Command::new("rpm")
            .arg("-K")
            .arg(&path)
            .timeout(QUERY_TIMEOUT)
            .run()
            .map_err(Failure::from)?;
        let refused = signature_refused(&check);
        found.push(StagedRpm {
            path,
            name,
            version,
            arch,
            refused,
        });
    }
    Ok(found)
}

fn header(out: &Output) -> Option<(String, String, String)> {
    if !out.success() {
        return None;
    }
    let line = out.stdout.lines().next()?;
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [name, version, arch] => Some((name.to_string(), version.to_string(), arch.to_string())),
        _ => None,
    }
}

/// Why `rpm -K` does not accept a package (`None`: digests and signature OK).
pub fn signature_refused(out: &Output) -> Option<String> {
    let said = out.stdout.trim();
    if out.success() && said.ends_with("OK") && !said.contains("NOT OK") {
        return None;
    }
    let why = if said.is_empty() { out.stderr.trim() } else { said };
    Some(module_kit::echo::bounded(why.to_string()))
}

/// The staged file of each package to install, when every one is staged at exactly the version
/// chosen (and, when `verified`, accepted by `rpm -K`); else what is missing.
pub fn matching(
    to_install: &[(String, String)],
    staged: &[StagedRpm],
    verified: bool,
) -> Result<Vec<PathBuf>, String> {
    let mut paths = Vec::new();
    let mut missing = Vec::new();
    for (name, version) in to_install {
        let same: Vec<&StagedRpm> = staged
            .iter()
            .filter(|s| s.name == *name && s.version == *version)
            .collect();
        match same.iter().find(|s| !verified || s.refused.is_none()) {
            Some(s) => paths.push(s.path.clone()),
            None => match same.first() {
                Some(s) => missing.push(format!(
                    "{} fails rpm's signature check ({})",
                    s.file_name(),
                    s.refused.as_deref().unwrap_or("")
                )),
                None => missing.push(format!("{name}-{version} is not staged")),
            },
        }
    }
    if missing.is_empty() {
        Ok(paths)
    } else {
        Err(missing.join(", "))
    }
}

/// The install of staged files: the paths in place of the names, signatures checked.
pub fn rpm_install_files(
    manager: Manager,
    files: &[PathBuf],
    downgrade: bool,
    opts: &Options<'_>,
) -> Option<Command> {
    let Manager::Rpm(program) = manager else {
        return None;
    };
    let verb = if downgrade { "downgrade" } else { "install" };
    Some(
        crate::manager::with_repo_options(
            Command::new(program).args([verb, "-y", "-q", "--setopt=localpkg_gpgcheck=True"]),
            opts,
        )
        .args(files)
        .timeout(opts.timeout),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn words(cmd: &Command) -> String {
        cmd.argv().join(" ")
    }

    fn pins() -> Vec<(String, String)> {
        vec![
            ("kubelet".into(), "1.30.2-1.1".into()),
            ("kubeadm".into(), "1.30.2-1.1".into()),
        ]
    }

    #[test]
    fn apt_downloads_only_in_the_view() {
        let view = vec!["-o".to_string(), "Dir::Cache=/v/cache".to_string()];
        let cmd = apt_download(&view, &pins(), true, false, Duration::from_secs(5));
        assert_eq!(
            words(&cmd),
            "apt-get -o Dir::Cache=/v/cache install -y -q --no-install-recommends --allow-change-held-packages \
             --download-only --allow-downgrades kubelet=1.30.2-1.1 kubeadm=1.30.2-1.1"
        );
        let cmd = apt_download(&view, &pins(), false, true, Duration::from_secs(5));
        assert!(words(&cmd).contains(" --print-uris kubelet="), "{}", words(&cmd));
    }

    #[test]
    fn print_uris_and_records_give_names_sizes_and_sha256() {
        let out = "Need to get 10 kB\n'http://x/pool/kubelet_1%3a1.30.2-1.1_amd64.deb' kubelet_1%3a1.30.2-1.1_amd64.deb 1234 MD5Sum:00\n";
        let mut f = parse_uris(out).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].name, "kubelet_1%3a1.30.2-1.1_amd64.deb");
        assert_eq!(f[0].size, Some(1234));
        assert_eq!(f[0].sha256, None);
        assert_eq!(
            deb_name_parts(&f[0].name).unwrap(),
            ("kubelet".into(), "1:1.30.2-1.1".into(), "amd64".into())
        );
        let sha = "a".repeat(64);
        let records = format!(
            "Package: kubelet\nVersion: 1:1.30.2-1.1\nArchitecture: amd64\nSize: 1234\nSHA256: {sha}\n\n\
             Package: kubelet\nVersion: 1:1.30.2-1.1\nArchitecture: arm64\nSHA256: {}\n",
            "b".repeat(64)
        );
        with_hashes(&mut f, &records).unwrap();
        assert_eq!(f[0].sha256.as_deref(), Some(sha.as_str()));
        // No SHA256 in the index: refused.
        let err = with_hashes(
            &mut f,
            "Package: kubelet\nVersion: 1:1.30.2-1.1\nArchitecture: amd64\n",
        )
        .unwrap_err();
        assert!(err.msg.contains("no SHA256"), "{}", err.msg);
        // A name that is not a plain file name: refused.
        assert!(parse_uris("'http://x/a' ../evil.deb 1 SHA256:00\n").is_err());
        assert!(parse_uris("'http://x/a' .hidden.deb 1 SHA256:00\n").is_err());
    }

    #[test]
    fn apt_config_and_uris_are_decoded() {
        assert_eq!(
            parse_apt_config("ARCHIVES='/var/cache/apt/archives/'\n"),
            Some(PathBuf::from("/var/cache/apt/archives/"))
        );
        assert_eq!(parse_apt_config("ARCHIVES='relative/'\n"), None);
        assert_eq!(percent_decoded("/r/core%3a/stable:/x%2"), "/r/core:/stable:/x%2");
    }

    #[test]
    fn owners_and_modes_are_judged() {
        assert!(judge_owner("/d", 0, 0o40700, false).is_ok());
        assert!(judge_owner("/d", 0, 0o40755, true).is_ok());
        assert!(judge_owner("/d", 0, 0o40775, true).is_ok());
        let e = judge_owner("/d", 0, 0o40770, false).unwrap_err();
        assert!(e.msg.contains("/d is writable by its group"), "{}", e.msg);
        let e = judge_owner("/d", 0, 0o41777, true).unwrap_err();
        assert!(e.msg.contains("everyone"), "{}", e.msg);
        let e = judge_owner("/d", 1000, 0o40700, false).unwrap_err();
        assert!(e.msg.contains("uid 1000, not root"), "{}", e.msg);
    }

    fn rpm(name: &str, version: &str, refused: Option<&str>) -> StagedRpm {
        StagedRpm {
            path: PathBuf::from(format!("/s/{name}-{version}.x86_64.rpm")),
            name: name.into(),
            version: version.into(),
            arch: "x86_64".into(),
            refused: refused.map(String::from),
        }
    }

    #[test]
    fn staged_rpms_are_used_only_when_every_package_matches_exactly() {
        let all = [
            rpm("kubelet", "1.30.2-1.1", None),
            rpm("kubeadm", "1.30.2-1.1", None),
        ];
        assert_eq!(
            matching(&pins(), &all, true).unwrap(),
            [
                PathBuf::from("/s/kubelet-1.30.2-1.1.x86_64.rpm"),
                PathBuf::from("/s/kubeadm-1.30.2-1.1.x86_64.rpm")
            ]
        );
        let other = [
            rpm("kubelet", "1.30.2-1.1", None),
            rpm("kubeadm", "1.30.1-1.1", None),
        ];
        let why = matching(&pins(), &other, true).unwrap_err();
        assert!(why.contains("kubeadm-1.30.2-1.1 is not staged"), "{why}");
        let bad = [
            rpm("kubelet", "1.30.2-1.1", None),
            rpm("kubeadm", "1.30.2-1.1", Some("digests SIGNATURES NOT OK")),
        ];
        let why = matching(&pins(), &bad, true).unwrap_err();
        assert!(why.contains("fails rpm's signature check"), "{why}");
        // Staging itself judges by version only (the key may be imported by the install).
        assert!(matching(&pins(), &bad, false).is_ok());
    }

    #[test]
    fn rpm_commands() {
        let opts = Options {
            allow_downgrade: false,
            disable_excludes: Some("kubernetes"),
            repo: None,
            timeout: Duration::from_secs(5),
            view: &["--setopt=reposdir=/v/repos".to_string()],
        };
        assert_eq!(
            words(&rpm_download("dnf", &pins(), false, &opts, Path::new("/s/.d"))),
            "dnf install -y -q --downloadonly --disableplugin=versionlock --destdir=/s/.d \
             --disableexcludes=kubernetes --setopt=reposdir=/v/repos kubelet-1.30.2-1.1 kubeadm-1.30.2-1.1"
        );
        let files = [PathBuf::from("/s/kubelet-1.30.2-1.1.x86_64.rpm")];
        assert_eq!(
            words(&rpm_install_files(Manager::Rpm("dnf"), &files, true, &opts).unwrap()),
            "dnf downgrade -y -q --setopt=localpkg_gpgcheck=True --disableexcludes=kubernetes \
             /s/kubelet-1.30.2-1.1.x86_64.rpm"
        );
        assert!(rpm_install_files(Manager::Apt, &files, false, &opts).is_none());
        let sizes = parse_rpm_sizes(
            "kubelet 0:1.30.2-1.1 x86_64 9000\nkubeadm 1.30.2-1.1 x86_64 800\nkubectl 1.30.2-1.1 x86_64 7\n",
            &pins(),
        );
        assert_eq!(
            sizes,
            [
                ("kubelet-1.30.2-1.1.x86_64.rpm".to_string(), Some(9000)),
                ("kubeadm-1.30.2-1.1.x86_64.rpm".to_string(), Some(800))
            ]
        );
    }

    #[test]
    fn placing_replaces_a_link_without_following_it_and_the_manifest_names_ours() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.deb");
        std::fs::write(&src, b"deb").unwrap();
        let archives = dir.path().join("archives");
        std::fs::create_dir(&archives).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, archives.join("k_1_all.deb")).unwrap();
        assert_eq!(place(&src, &archives, "k_1_all.deb").unwrap(), 3);
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read(archives.join("k_1_all.deb")).unwrap(), b"deb");
        std::fs::write(archives.join("other_1_all.deb"), b"not ours").unwrap();
        let stage = dir.path().join("stage");
        std::fs::create_dir(&stage).unwrap();
        write_manifest(&stage, &["k_1_all.deb".to_string()]).unwrap();
        assert_eq!(read_manifest(&stage), ["k_1_all.deb"]);
        // Another package's install leaves ours staged.
        assert!(clean(&stage, Placed::Apt(&archives), &["kubeadm".to_string()]).is_empty());
        assert!(archives.join("k_1_all.deb").exists() && stage.exists());
        assert!(clean(&stage, Placed::Apt(&archives), &["k".to_string()]).is_empty());
        assert!(!archives.join("k_1_all.deb").exists());
        assert!(archives.join("other_1_all.deb").exists());
        assert!(!stage.exists());
    }
}
