//! `kubeadm version -o short`, asked once per build of the binary.
//!
//! Why: a real kubeadm is a 40+ MB Go program that takes tens of milliseconds to say its version,
//! and preflight and upgrade steps ask it on every run. The answer cannot change while the file
//! stays the same, so it is kept in a root-only directory on /run (tmpfs: gone at boot), keyed by
//! the file's device, inode, size, mtime and ctime. Replacing the binary (kubeadm_download renames
//! a new file over it) or rewriting it in place changes the key, and the binary is asked again.
//! Any trouble with the cache only means asking the binary: it never fails a caller.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Cache {
    dir: Option<PathBuf>,
}

impl Cache {
    /// `/run/kup/versions` when running as root; no cache otherwise (an unprivileged user's
    /// cache could be written by someone else before us).
    pub fn system() -> Cache {
        let root = fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
        Cache {
            dir: root.then(|| PathBuf::from("/run/kup/versions")),
        }
    }

    /// A cache in `dir` (created 0700 if missing).
    pub fn at(dir: impl Into<PathBuf>) -> Cache {
        Cache {
            dir: Some(dir.into()),
        }
    }

    /// The answer `ask` gives about `binary` (run with `args`), from the cache when the binary
    /// is unchanged since it was last asked. Only successful answers are kept.
    pub fn output<E>(
        &self,
        binary: &Path,
        args: &[&str],
        ask: impl FnOnce() -> Result<String, E>,
    ) -> Result<String, E> {
        let entry = self.dir.as_ref().and_then(|dir| {
            let key = identity(binary, args)?;
            Some((usable_dir(dir)?.join(file_name(&key)), key))
        });
        if let Some((file, key)) = &entry {
            if let Some(answer) = lookup(file, key) {
                return Ok(answer);
            }
        }
        let answer = ask()?;
        if let Some((file, key)) = &entry {
            store(file, key, &answer);
        }
        Ok(answer)
    }
}

/// What identifies one build of the file (symlinks followed) and the question asked of it.
fn identity(binary: &Path, args: &[&str]) -> Option<String> {
    let m = fs::metadata(binary).ok()?;
    Some(format!(
        "{}:{}:{}:{}.{}:{}.{} {} {}",
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        binary.display(),
        args.join(" ")
    ))
}

fn file_name(key: &str) -> String {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The directory, created if missing; refused unless it is a real directory of ours, closed to
/// everyone else.
fn usable_dir(dir: &Path) -> Option<&Path> {
    let _ = fs::DirBuilder::new().recursive(true).mode(0o700).create(dir);
    let m = fs::symlink_metadata(dir).ok()?;
    let me = fs::metadata("/proc/self").ok()?.uid();
    (m.is_dir() && m.uid() == me && m.mode() & 0o077 == 0).then_some(dir)
}

fn lookup(file: &Path, key: &str) -> Option<String> {
    let text = fs::read_to_string(file).ok()?;
    let (stored_key, answer) = text.split_once('\n')?;
    (stored_key == key).then(|| answer.to_string())
}

/// Written to a temporary file and renamed, so a reader sees a whole entry or none.
fn store(file: &Path, key: &str, answer: &str) {
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(format!("{key}\n{answer}").as_bytes()));
    if written.is_err() || fs::rename(&tmp, file).is_err() {
        let _ = fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::cell::Cell;

    fn ask<'a>(count: &'a Cell<u32>, answer: &'a str) -> impl FnOnce() -> Result<String, String> + 'a {
        move || {
            count.set(count.get() + 1);
            Ok(answer.to_string())
        }
    }

    /// A temporary directory holding a `kubeadm` file with `contents` and a cache beside it.
    fn binary_and_cache(contents: &str) -> (tempfile::TempDir, PathBuf, Cache) {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("kubeadm");
        fs::write(&bin, contents).unwrap();
        let cache = Cache::at(tmp.path().join("cache"));
        (tmp, bin, cache)
    }

    #[test]
    fn asks_once_per_build_of_the_binary() {
        let (tmp, bin, cache) = binary_and_cache("one build");
        let asked = Cell::new(0);
        let args = ["version", "-o", "short"];
        assert_eq!(
            cache.output(&bin, &args, ask(&asked, "v1.9.2")).unwrap(),
            "v1.9.2"
        );
        assert_eq!(
            cache.output(&bin, &args, ask(&asked, "ignored")).unwrap(),
            "v1.9.2"
        );
        assert_eq!(asked.get(), 1);
        // Another question about the same file is asked.
        assert_eq!(
            cache.output(&bin, &["version"], ask(&asked, "long")).unwrap(),
            "long"
        );
        assert_eq!(asked.get(), 2);
        // A new build renamed over it (what kubeadm_download does) is asked again.
        let new = tmp.path().join("kubeadm.new");
        fs::write(&new, "another build").unwrap();
        fs::rename(&new, &bin).unwrap();
        assert_eq!(
            cache.output(&bin, &args, ask(&asked, "v1.10.13")).unwrap(),
            "v1.10.13"
        );
        assert_eq!(asked.get(), 3);
        // Rewritten in place: same inode, new size and times.
        fs::write(&bin, "a third build, longer").unwrap();
        assert_eq!(
            cache.output(&bin, &args, ask(&asked, "v1.11.10")).unwrap(),
            "v1.11.10"
        );
        assert_eq!(asked.get(), 4);
        assert_eq!(
            fs::metadata(tmp.path().join("cache")).unwrap().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn failures_are_not_kept_and_a_bad_cache_only_means_asking() {
        let (tmp, bin, cache) = binary_and_cache("x");
        let failed: Result<String, String> = cache.output(&bin, &[], || Err("exit 1".into()));
        assert_eq!(failed.unwrap_err(), "exit 1");
        let asked = Cell::new(0);
        assert_eq!(cache.output(&bin, &[], ask(&asked, "v1")).unwrap(), "v1");
        assert_eq!(asked.get(), 1);
        // A garbled entry is ignored.
        for entry in fs::read_dir(tmp.path().join("cache")).unwrap() {
            fs::write(entry.unwrap().path(), "garbage").unwrap();
        }
        assert_eq!(cache.output(&bin, &[], ask(&asked, "v1")).unwrap(), "v1");
        assert_eq!(asked.get(), 2);
        // A cache directory open to others is not used.
        let open = tmp.path().join("open");
        fs::DirBuilder::new().mode(0o777).create(&open).unwrap();
        fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let open_cache = Cache::at(&open);
        open_cache.output(&bin, &[], ask(&asked, "v1")).unwrap();
        open_cache.output(&bin, &[], ask(&asked, "v1")).unwrap();
        assert_eq!(asked.get(), 4);
        assert_eq!(fs::read_dir(&open).unwrap().count(), 0);
        // A missing binary is simply asked (and fails the caller's way).
        let missing: Result<String, String> =
            Cache::at(tmp.path().join("cache"))
                .output(&tmp.path().join("nope"), &[], || Err("not found".into()));
        assert_eq!(missing.unwrap_err(), "not found");
    }
}
