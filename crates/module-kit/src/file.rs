//! Files a module replaces as root: looked at without following a symbolic link, read with a bound,
//! and replaced atomically, so that a reader (apt, dnf, kubeadm, a shell running the binary) sees the
//! old file or the whole new one, and a crash leaves one of the two.
//!
//! Whether the directory may be written to at all (nobody else could replace what is put there) is
//! the caller's check ([`crate::trust::check_private_dir`]): some files live in directories the
//! operator owns, some in ones the module creates.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A regular file as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Regular {
    /// Permission bits, set-id and sticky bits included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
}

/// The directory holding `path` (`/` for a bare name's root).
pub fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("/"))
}

/// What is at `path`; `None` when nothing is. A symbolic link or anything but a regular file is
/// refused: replacing a link would not change the file it points at, and writing through one would
/// change a file nobody named.
pub fn inspect(path: &Path) -> Result<Option<Regular>, String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot inspect {}: {e}", path.display())),
    };
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{} is a symbolic link; refusing to replace it or write through it (give the path of a \
             regular file)",
            path.display()
        ));
    }
    if !meta.is_file() {
        return Err(format!(
            "{} exists and is not a regular file; refusing to replace it",
            path.display()
        ));
    }
    Ok(Some(Regular {
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        size: meta.len(),
    }))
}

/// Reads `path`, at most `limit` bytes (repository files, keys and configurations are a few
/// kilobytes; a larger file is not one of them).
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > limit {
        return Err(format!("{} is larger than {limit} bytes", path.display()));
    }
    Ok(bytes)
}

/// A new file being written beside the one it will replace; removed on drop unless installed.
pub struct Staged {
    path: PathBuf,
    file: Option<File>,
}

impl Staged {
    /// Creates a fresh file (exclusively, never through a symbolic link, mode 0600) in the directory
    /// of `dest`, named after it, this process and the time, so two runs never share one.
    pub fn beside(dest: &Path) -> Result<Self, String> {
        let dir = parent(dest);
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = dir.join(format!(".{name}.kup-{}-{nanos:x}.part", std::process::id()));
        let file = crate::trust::create_new_nofollow(&path)
            .map_err(|e| format!("cannot create a new file in {}: {e}", dir.display()))?;
        Ok(Staged {
            path,
            file: Some(file),
        })
    }

    /// The file to write to, until it is installed.
    pub fn file(&mut self) -> Result<&mut File, String> {
        self.file
            .as_mut()
            .ok_or_else(|| format!("{} is already closed", self.path.display()))
    }

    /// Gives the file `owner`'s owner and group (when given and different), then `mode` (after the
    /// owner: chown clears set-id bits), flushes it, renames it over `dest` and flushes the directory.
    pub fn install(mut self, dest: &Path, mode: u32, owner: Option<Regular>) -> Result<(), String> {
        let shown = self.path.display().to_string();
        let file = self
            .file
            .take()
            .ok_or_else(|| format!("{shown} is already closed"))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("cannot inspect {shown}: {e}"))?;
        let differs = |o: &&Regular| (meta.uid(), meta.gid()) != (o.uid, o.gid);
        if let Some(owner) = owner.as_ref().filter(differs) {
            std::os::unix::fs::fchown(&file, Some(owner.uid), Some(owner.gid)).map_err(|e| {
                format!(
                    "cannot give {shown} the owner {}:{} of {}: {e}",
                    owner.uid,
                    owner.gid,
                    dest.display()
                )
            })?;
        }
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("cannot set the mode of {shown}: {e}"))?;
        file.sync_all()
            .map_err(|e| format!("cannot flush {shown}: {e}"))?;
        drop(file);
        std::fs::rename(&self.path, dest)
            .map_err(|e| format!("cannot move {shown} into place at {}: {e}", dest.display()))?;
        // In place: nothing left to remove.
        self.path = PathBuf::new();
        // Makes the rename durable; not worth failing a file already in place for.
        if let Ok(dir) = File::open(parent(dest)) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Replaces `path` with `bytes`, given `mode` (and `owner`'s owner and group when given), atomically.
pub fn replace(path: &Path, bytes: &[u8], mode: u32, owner: Option<Regular>) -> Result<(), String> {
    let mut staged = Staged::beside(path)?;
    let shown = staged.path.display().to_string();
    staged
        .file()?
        .write_all(bytes)
        .map_err(|e| format!("cannot write {shown}: {e}"))?;
    staged.install(path, mode, owner)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_replaced_file_takes_the_mode_and_owner_given_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubernetes.list");
        std::fs::write(&path, "old\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let before = inspect(&path).unwrap().unwrap();
        assert_eq!((before.mode, before.size), (0o640, 4));
        replace(&path, b"newer\n", before.mode, Some(before)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "newer\n");
        let after = inspect(&path).unwrap().unwrap();
        assert_eq!(
            (after.mode, after.uid, after.gid),
            (0o640, before.uid, before.gid)
        );
        replace(&path, b"x", 0o600, None).unwrap();
        assert_eq!(inspect(&path).unwrap().unwrap().mode, 0o600);
        assert_eq!(names(dir.path()), ["kubernetes.list"]);
    }

    #[test]
    fn links_and_directories_are_neither_replaced_nor_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.list");
        std::fs::write(&target, "x").unwrap();
        let link = dir.path().join("kubernetes.list");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(inspect(&link).unwrap_err().contains("is a symbolic link"));
        assert!(inspect(dir.path()).unwrap_err().contains("not a regular file"));
        assert_eq!(inspect(&dir.path().join("none")), Ok(None));
        // A file in a directory that is gone: the error names it, nothing is left.
        let gone = dir.path().join("gone").join("k.list");
        assert!(replace(&gone, b"x", 0o644, None)
            .unwrap_err()
            .contains("cannot create a new file in"));
        assert_eq!(names(dir.path()), ["kubernetes.list", "real.list"]);
    }

    #[test]
    fn a_staged_file_never_installed_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("kubeadm");
        let mut staged = Staged::beside(&dest).unwrap();
        staged.file().unwrap().write_all(b"half").unwrap();
        assert_eq!(names(dir.path()).len(), 1);
        drop(staged);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn reads_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "12345").unwrap();
        assert_eq!(read_bounded(&path, 5).unwrap(), b"12345");
        assert!(read_bounded(&path, 4)
            .unwrap_err()
            .contains("larger than 4 bytes"));
        assert!(read_bounded(&dir.path().join("none"), 4)
            .unwrap_err()
            .starts_with("cannot read"));
    }
}
