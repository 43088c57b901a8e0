//! The `--config` file `kubeadm upgrade apply` reads as root: only in a directory nobody else could
//! write to, never through a symbolic link, replaced atomically (a kubeadm reading it sees the old
//! file or the whole new one), mode 0600.

use module_kit::file::{self, Regular};
use std::path::Path;

/// The largest file taken for a kubeadm configuration (they are a few kilobytes).
const LIMIT: u64 = 1 << 20;

/// What is at the path now, against what is wanted there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// Its content when it is there (and text).
    pub before: Option<String>,
    /// Why it must be written; `None`: it is as wanted.
    pub write: Option<String>,
}

/// The file at `path` against `wanted`. A directory another user could write to, a symbolic link,
/// or anything but a regular file is refused.
pub fn inspect(path: &Path, wanted: &str) -> Result<State, String> {
    module_kit::trust::check_private_dir(file::parent(path))
        .map_err(|e| format!("refusing to write {}: {e}", path.display()))?;
    let Some(Regular { mode, uid, size, .. }) = file::inspect(path)? else {
        return Ok(State {
            before: None,
            write: Some("created".into()),
        });
    };
    // Too large or not text: not a configuration this module wrote, so it is replaced.
    let before = if size > LIMIT {
        None
    } else {
        String::from_utf8(file::read_bounded(path, LIMIT)?).ok()
    };
    let write = if before.as_deref() != Some(wanted) {
        Some("replaced (its content differs)".to_string())
    } else if mode != 0o600 {
        Some(format!("replaced (mode {mode:04o}, not 0600)"))
    } else if uid != module_kit::trust::euid() {
        Some(format!("replaced (owned by uid {uid})"))
    } else {
        None
    };
    Ok(State { before, write })
}

/// Writes `text` to `path` atomically, mode 0600, owned by the running user.
pub fn replace(path: &Path, text: &str) -> Result<(), String> {
    file::replace(path, text.as_bytes(), 0o600, None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn private() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    #[test]
    fn written_0600_then_left_alone() {
        let dir = private();
        let path = dir.path().join("kubeadm-upgrade-config.yaml");
        assert_eq!(
            inspect(&path, "a: 1\n").unwrap().write.as_deref(),
            Some("created")
        );
        replace(&path, "a: 1\n").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
        let state = inspect(&path, "a: 1\n").unwrap();
        assert_eq!((state.before.as_deref(), state.write), (Some("a: 1\n"), None));
        assert!(inspect(&path, "a: 2\n")
            .unwrap()
            .write
            .unwrap()
            .contains("content differs"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(inspect(&path, "a: 1\n")
            .unwrap()
            .write
            .unwrap()
            .contains("mode 0644"));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["kubeadm-upgrade-config.yaml"]);
    }

    #[test]
    fn open_directories_and_links_are_refused() {
        let dir = private();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = inspect(&dir.path().join("c.yaml"), "x").unwrap_err();
        assert!(
            err.contains("refusing to write") && err.contains("mode 1777"),
            "{err}"
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("c.yaml");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(inspect(&link, "x").unwrap_err().contains("symbolic link"));
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(inspect(&sub, "x").unwrap_err().contains("not a regular file"));
    }
}
