//! Replacing a file atomically: apt or dnf reading it at any moment sees the old file or the whole
//! new one, never half of it, and a crash leaves one of the two.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What the existing file is: kept on the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// The file at `path`: its mode and owner; `None` when nothing is there. A symbolic link or anything
/// but a regular file is refused: replacing it would not change what it points at.
pub fn inspect(path: &Path) -> Result<Option<Owner>, String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot inspect {}: {e}", path.display())),
    };
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{} is a symbolic link; refusing to replace it (give the path of the file it points at)",
            path.display()
        ));
    }
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    Ok(Some(Owner {
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    }))
}

/// Reads `path`, at most `limit` bytes (a repository file or a key is a few kilobytes).
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > limit {
        return Err(format!("{} is larger than {limit} bytes", path.display()));
    }
    Ok(bytes)
}

/// A new file beside the one it replaces; removed unless it took its place.
struct Staged(PathBuf);

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Replaces `path` with `bytes`: a new file in the same directory (created exclusively, never
/// through a symbolic link), written, given `mode` (and `owner`'s owner and group, when given),
/// flushed, renamed over `path`, and the directory flushed.
pub fn replace(path: &Path, bytes: &[u8], mode: u32, owner: Option<Owner>) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut staged = Staged(dir.join(format!(".{name}.package_repo-{}-{nanos:x}", std::process::id())));
    let shown = staged.0.display().to_string();
    let mut file = module_kit::trust::create_new_nofollow(&staged.0)
        .map_err(|e| format!("cannot create a new file in {}: {e}", dir.display()))?;
    file.write_all(bytes)
        .map_err(|e| format!("cannot write {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot inspect {shown}: {e}"))?;
    let differs = |o: &&Owner| (meta.uid(), meta.gid()) != (o.uid, o.gid);
    if let Some(owner) = owner.as_ref().filter(differs) {
        std::os::unix::fs::fchown(&file, Some(owner.uid), Some(owner.gid)).map_err(|e| {
            format!(
                "cannot give {shown} the owner {}:{} of {}: {e}",
                owner.uid,
                owner.gid,
                path.display()
            )
        })?;
    }
    // After chown, which clears set-id bits.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set the mode of {shown}: {e}"))?;
    file.sync_all()
        .map_err(|e| format!("cannot flush {shown}: {e}"))?;
    drop(file);
    std::fs::rename(&staged.0, path)
        .map_err(|e| format!("cannot move {shown} into place at {}: {e}", path.display()))?;
    // In place: nothing left to remove.
    staged.0 = PathBuf::new();
    // Makes the rename durable; not worth failing a replaced file for.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_replaced_file_keeps_its_mode_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubernetes.list");
        std::fs::write(&path, "old\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let owner = inspect(&path).unwrap().unwrap();
        assert_eq!(owner.mode, 0o640);
        replace(&path, b"new\n", owner.mode, Some(owner)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(inspect(&path).unwrap(), Some(owner));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["kubernetes.list"]);
    }

    #[test]
    fn links_and_directories_are_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.list");
        std::fs::write(&target, "x").unwrap();
        let link = dir.path().join("kubernetes.list");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(inspect(&link).unwrap_err().contains("symbolic link"));
        assert!(inspect(dir.path()).unwrap_err().contains("not a regular file"));
        assert_eq!(inspect(&dir.path().join("none")), Ok(None));
        // A file in a directory that is gone: the error names it, nothing is left.
        let gone = dir.path().join("gone").join("k.list");
        assert!(replace(&gone, b"x", 0o644, None)
            .unwrap_err()
            .contains("cannot create a new file in"));
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
