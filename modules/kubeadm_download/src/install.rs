//! The destination: what is there now, and replacing it atomically so that it is always either the
//! old file or the complete, verified new one.

use std::fs::File;
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
    let meta = match std::fs::symlink_metadata(dest) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Missing),
        Err(err) => return Err(format!("cannot inspect {}: {err}", dest.display())),
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(format!(
            "{} is a symbolic link; refusing to replace it (remove it, or point `dest` at a regular file path)",
            dest.display()
        ));
    }
    if !kind.is_file() {
        return Err(format!(
            "{} exists and is not a regular file; refusing to replace it",
            dest.display()
        ));
    }
    Ok(Existing::File {
        mode: meta.permissions().mode() & 0o7777,
        size: meta.len(),
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

/// A file being written beside `dest`; removed on drop unless installed.
pub struct Staged {
    path: PathBuf,
    file: Option<File>,
}

impl Staged {
    /// Creates a fresh temporary file (exclusively, never through a symlink, mode 0600) in `dir`.
    pub fn create(dir: &Path, dest_name: &str) -> Result<Self, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = dir.join(format!(".{dest_name}.kup-{}-{nanos:x}.part", std::process::id()));
        // Exclusive and without following a symlink: nothing planted there is ever written through.
        let file = module_kit::trust::create_new_nofollow(&path)
            .map_err(|e| format!("cannot create a temporary file in {}: {e}", dir.display()))?;
        Ok(Staged {
            path,
            file: Some(file),
        })
    }

    pub fn file(&mut self) -> Result<&mut File, String> {
        self.file
            .as_mut()
            .ok_or_else(|| "temporary file already closed".to_string())
    }

    /// fsync, set the mode, rename over `dest`, fsync the directory.
    pub fn install(mut self, dest: &Path, mode: u32) -> Result<(), String> {
        let file = self
            .file
            .take()
            .ok_or_else(|| "temporary file already closed".to_string())?;
        file.sync_all()
            .map_err(|e| format!("cannot flush {}: {e}", self.path.display()))?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("cannot set the mode of {}: {e}", self.path.display()))?;
        drop(file);
        std::fs::rename(&self.path, dest).map_err(|e| {
            format!(
                "cannot move {} into place at {}: {e}",
                self.path.display(),
                dest.display()
            )
        })?;
        sync_dir(dest);
        // Installed: nothing left to clean up.
        self.path = PathBuf::new();
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

/// Sets the mode of an existing, already-correct file.
pub fn set_mode(dest: &Path, mode: u32) -> Result<(), String> {
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set the mode of {}: {e}", dest.display()))
}

/// Makes the rename durable; a failure here is not worth failing an installed file for.
fn sync_dir(dest: &Path) {
    if let Some(dir) = dest.parent() {
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
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
