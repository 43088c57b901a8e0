//! The snapshot directory: its checks, the module's file names, atomic writes, keeping the last N.
//!
//! Snapshots are `etcd-snapshot-<target version>-<UTC time, milliseconds>.db`
//! (`etcd-snapshot-v1.31.2-20261202T064012.345Z.db`); nothing else in the directory is ever listed,
//! replaced or removed. A snapshot is written as `.<name>.part` (created exclusively, mode 0600,
//! never through a symbolic link), fsynced, verified, then renamed to its name (never over an
//! existing file) and the directory fsynced.

use module_kit::trust;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

const PREFIX: &str = "etcd-snapshot-";
const SUFFIX: &str = ".db";

/// One of the module's snapshots found in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub path: PathBuf,
    /// The target version it was taken for (`v1.31.2`).
    pub version: String,
    /// When (`20261202T064012.345Z`).
    pub stamp: String,
}

/// The name of a snapshot for `version` taken at `stamp`.
pub fn file_name(version: &str, stamp: &str) -> String {
    format!("{PREFIX}{version}-{stamp}{SUFFIX}")
}

/// `t` as the names say it: `20261202T064012.345Z` (UTC).
pub fn stamp(t: SystemTime) -> String {
    let millis = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis());
    let whole: String = module_kit::time::rfc3339(t)
        .chars()
        .filter(|c| !matches!(c, '-' | ':' | 'Z'))
        .collect();
    format!("{whole}.{millis:03}Z")
}

fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 => c == b'T',
            15 => c == b'.',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// (version, stamp) of a name of the module's pattern.
pub fn parse_name(name: &str) -> Option<(String, String)> {
    let inner = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let (version, stamp) = inner.rsplit_once('-')?;
    let parsed = kube_version::Version::parse(version)?;
    (parsed.to_string() == version && is_stamp(stamp)).then(|| (version.to_string(), stamp.to_string()))
}

/// Whether `dir` exists, and is a directory nobody but root or this user could have written to.
pub fn check_dir(dir: &Path) -> Result<bool, String> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("cannot inspect {}: {e}", dir.display())),
        Ok(_) => trust::check_private_dir(dir).map(|()| true),
    }
}

/// Creates `dir` (and any missing parent) mode 0700, then checks it.
pub fn ensure_dir(dir: &Path) -> Result<(), String> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.exists() {
        missing.push(at);
        match at.parent() {
            Some(parent) => at = parent,
            None => break,
        }
    }
    for d in missing.into_iter().rev() {
        trust::ensure_private_dir(d)?;
    }
    trust::check_private_dir(dir)
}

/// The module's snapshots in `dir`, newest first (none when `dir` does not exist). Only regular
/// files count; a symbolic link of that name is neither listed nor followed.
pub fn list(dir: &Path) -> Result<Vec<Listed>, String> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
        Ok(entries) => entries,
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some((version, stamp)) = parse_name(&name) else {
            continue;
        };
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            found.push(Listed {
                path: dir.join(&name),
                name,
                version,
                stamp,
            });
        }
    }
    found.sort_by(|a, b| b.stamp.cmp(&a.stamp).then_with(|| b.name.cmp(&a.name)));
    Ok(found)
}

/// Partial snapshots (`.NAME.part` of the module's names) in `dir` last written before `before`: left
/// by a run that was killed, since a live run writes to its own at least every `timeout`.
pub fn stale_parts(dir: &Path, before: SystemTime) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix('.')?.strip_suffix(".part"))
                .is_some_and(|n| parse_name(n).is_some())
        })
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| e.metadata().and_then(|m| m.modified()).is_ok_and(|m| m < before))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Free bytes for an unprivileged writer on the file system `dir` is (or would be created) on.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let mut at = dir;
    while !at.exists() {
        at = at.parent()?;
    }
    let stat = rustix::fs::statvfs(at).ok()?;
    stat.f_bavail.checked_mul(stat.f_frsize)
}

/// Writes `fill`'s bytes to `dir/.name.part`, fsyncs, runs `verify` on it and only then renames it to
/// `dir/name` (failing if that exists) and fsyncs `dir`. On any failure the partial file is removed.
pub fn write_atomically<T>(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&mut dyn Write) -> Result<u64, String>,
    verify: impl FnOnce(&Path) -> Result<T, String>,
) -> Result<T, String> {
    let part = dir.join(format!(".{name}.part"));
    let target = dir.join(name);
    let file =
        trust::create_new_nofollow(&part).map_err(|e| format!("cannot create {}: {e}", part.display()))?;
    let result = (|| {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        fill(&mut out)?;
        let file = out
            .into_inner()
            .map_err(|e| format!("cannot write {}: {}", part.display(), e.error()))?;
        file.sync_all()
            .map_err(|e| format!("cannot fsync {}: {e}", part.display()))?;
        drop(file);
        let facts = verify(&part)?;
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &part,
            rustix::fs::CWD,
            &target,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| format!("cannot rename {} to {}: {e}", part.display(), target.display()))?;
        Ok(facts)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
        return result;
    }
    sync_dir(dir)?;
    result
}

pub fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot fsync directory {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn names_round_trip_and_others_are_not_ours() {
        let t = UNIX_EPOCH + Duration::from_millis(1_772_368_496_042);
        assert_eq!(stamp(t), "20260301T123456.042Z");
        let name = file_name("v1.10.0-beta.1", &stamp(t));
        assert_eq!(name, "etcd-snapshot-v1.10.0-beta.1-20260301T123456.042Z.db");
        assert_eq!(
            parse_name(&name),
            Some(("v1.10.0-beta.1".into(), "20260301T123456.042Z".into()))
        );
        for other in [
            "etcd-snapshot-1.31.2-20260301T123456.042Z.db",
            "etcd-snapshot-v1.31.2-20260301T123456Z.db",
            "etcd-snapshot-v1.31.2-20260301T123456.042Z.db.part",
            ".etcd-snapshot-v1.31.2-20260301T123456.042Z.db.part",
            "etcd-snapshot-latest.db",
            "snapshot.db",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }

    #[test]
    fn listing_is_newest_first_and_ours_only() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "etcd-snapshot-v1.30.1-20260101T000000.000Z.db",
            "etcd-snapshot-v1.31.2-20260301T000000.000Z.db",
            "etcd-snapshot-v1.31.2-20260201T000000.000Z.db",
            "keep-me.db",
        ] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        std::os::unix::fs::symlink(
            "/etc/hostname",
            dir.path().join("etcd-snapshot-v1.31.2-20270101T000000.000Z.db"),
        )
        .unwrap();
        let names: Vec<String> = list(dir.path()).unwrap().into_iter().map(|l| l.name).collect();
        assert_eq!(
            names,
            [
                "etcd-snapshot-v1.31.2-20260301T000000.000Z.db",
                "etcd-snapshot-v1.31.2-20260201T000000.000Z.db",
                "etcd-snapshot-v1.30.1-20260101T000000.000Z.db",
            ]
        );
        assert!(list(&dir.path().join("missing")).unwrap().is_empty());
    }

    #[test]
    fn only_old_partial_snapshots_of_ours_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        let ours = ".etcd-snapshot-v1.31.2-20260301T000000.000Z.db.part";
        for name in [
            ours,
            ".other.part",
            "etcd-snapshot-v1.31.2-20260301T000000.000Z.db",
        ] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let later = SystemTime::now() + Duration::from_secs(60);
        assert_eq!(stale_parts(dir.path(), later), [dir.path().join(ours)]);
        assert!(stale_parts(dir.path(), UNIX_EPOCH).is_empty());
        assert!(stale_parts(&dir.path().join("missing"), later).is_empty());
    }

    #[test]
    fn directories_others_can_write_to_are_refused_and_new_ones_are_0700() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("a/b");
        assert_eq!(check_dir(&new), Ok(false));
        ensure_dir(&new).unwrap();
        for d in [dir.path().join("a"), new.clone()] {
            assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700);
        }
        assert_eq!(check_dir(&new), Ok(true));
        std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = check_dir(&new).unwrap_err();
        assert!(err.contains("writable by its group or by everyone"), "{err}");
        assert!(ensure_dir(&new).is_err());
    }

    #[test]
    fn a_failed_verification_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_atomically(
            dir.path(),
            "s.db",
            |out| out.write_all(b"data").map(|()| 4).map_err(|e| e.to_string()),
            |_| Err::<(), _>("bad".to_string()),
        )
        .unwrap_err();
        assert_eq!(err, "bad");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let ok = write_atomically(
            dir.path(),
            "s.db",
            |out| out.write_all(b"data").map(|()| 4).map_err(|e| e.to_string()),
            |p| Ok(std::fs::metadata(p).unwrap().permissions().mode() & 0o777),
        );
        assert_eq!(ok, Ok(0o600));
        assert_eq!(std::fs::read(dir.path().join("s.db")).unwrap(), b"data");
        // Never over an existing file.
        let again = write_atomically(dir.path(), "s.db", |_| Ok(0), |_| Ok(()));
        assert!(again.unwrap_err().contains("cannot rename"));
        assert_eq!(std::fs::read(dir.path().join("s.db")).unwrap(), b"data");
    }
}
