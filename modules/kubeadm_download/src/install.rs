//! The destination: what is there now, and the directory that will hold it. It is replaced atomically
//! ([`module_kit::file::Staged`]), so it is always either the old file or the complete, verified new one.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What `dest` is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    Missing,
    File { mode: u32, size: u64 },
}

/// Looks at `dest` without following a symlink; anything but a regular file or nothing is refused.
pub fn inspect(dest: &Path) -> Result<Existing, String> {
    Ok(match module_kit::file::inspect(dest)? {
        Some(file) => Existing::File {
            mode: file.mode,
            size: file.size,
        },
        None => Existing::Missing,
    })
}

/// What is wrong with the directory that would hold `dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirProblem {
    /// Missing, not a directory, unreadable.
    Unusable(String),
    /// Another local user could replace what is written there: a symbolic link, not owned by root or
    /// the running user, writable by group or others.
    Untrusted(String),
}

/// The directory that will hold `dest`, and whether it has to be created first (only `default_dir`
/// is, mode 0700). It must be a real directory (not a symbolic link) owned by root or the running user
/// and writable by nobody else: what is installed there runs as root.
pub fn check_parent(dest: &Path, default_dir: &Path) -> Result<(PathBuf, bool), DirProblem> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("/"));
    let meta = match std::fs::symlink_metadata(parent) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && parent == default_dir => {
            return Ok((parent.to_path_buf(), true))
        }
        Err(err) => {
            return Err(DirProblem::Unusable(format!(
                "directory {} is not usable: {err}",
                parent.display()
            )))
        }
    };
    if !meta.file_type().is_symlink() && !meta.is_dir() {
        return Err(DirProblem::Unusable(format!(
            "{} is not a directory",
            parent.display()
        )));
    }
    module_kit::trust::check_private_dir(parent).map_err(DirProblem::Untrusted)?;
    Ok((parent.to_path_buf(), false))
}

/// Sets the mode of an existing, already-correct file.
pub fn set_mode(dest: &Path, mode: u32) -> Result<(), String> {
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set the mode of {}: {e}", dest.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn only_the_default_directory_may_be_missing() {
        let dir = tempfile::tempdir().unwrap();
        let default_dir = dir.path().join("kup");
        let dest = default_dir.join("kubeadm");
        assert_eq!(check_parent(&dest, &default_dir), Ok((default_dir.clone(), true)));
        let other = dir.path().join("other").join("kubeadm");
        assert!(matches!(
            check_parent(&other, &default_dir),
            Err(DirProblem::Unusable(_))
        ));
        // Once created (0700), it is used as it is.
        assert!(module_kit::trust::ensure_private_dir(&default_dir).unwrap());
        let mode = std::fs::metadata(&default_dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700);
        assert_eq!(
            check_parent(&dest, &default_dir),
            Ok((default_dir.clone(), false))
        );
        std::fs::set_permissions(&default_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            check_parent(&dest, &default_dir),
            Ok((default_dir.clone(), false))
        );
        std::fs::set_permissions(&default_dir, std::fs::Permissions::from_mode(0o775)).unwrap();
        assert!(matches!(
            check_parent(&dest, &default_dir),
            Err(DirProblem::Untrusted(_))
        ));
    }
}
