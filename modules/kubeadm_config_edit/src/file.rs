//! The `--config` file `kubeadm upgrade apply` reads as root: only in a directory nobody else could
//! write to, never through a symbolic link, replaced atomically (a kubeadm reading it sees the old
//! file or the whole new one), mode 0600.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

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

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("/"))
}

/// The file at `path` against `wanted`. A directory another user could write to, a symbolic link,
/// or anything but a regular file is refused.
pub fn inspect(path: &Path, wanted: &str) -> Result<State, String> {
    module_kit::trust::check_private_dir(parent(path))
        .map_err(|e| format!("refusing to write {}: {e}", path.display()))?;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(State {
                before: None,
                write: Some("created".into()),
            })
        }
        Err(e) => return Err(format!("cannot inspect {}: {e}", path.display())),
    };
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{} is a symbolic link; refusing to write through it",
            path.display()
        ));
    }
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(LIMIT + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let before = String::from_utf8(bytes).ok().filter(|t| t.len() as u64 <= LIMIT);
    let mode = meta.mode() & 0o7777;
    let write = if before.as_deref() != Some(wanted) {
        Some("replaced (its content differs)".to_string())
    } else if mode != 0o600 {
        Some(format!("replaced (mode {mode:04o}, not 0600)"))
    } else if meta.uid() != module_kit::trust::euid() {
        Some(format!("replaced (owned by uid {})", meta.uid()))
    } else {
        None
    };
    Ok(State { before, write })
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

/// Writes `text` to `path`: a new file in the same directory (created exclusively, never through a
/// symbolic link, mode 0600), flushed, renamed over `path`, the directory flushed.
pub fn replace(path: &Path, text: &str) -> Result<(), String> {
    let dir = parent(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut staged = Staged(dir.join(format!(
        ".{name}.kubeadm_config_edit-{}-{nanos:x}",
        std::process::id()
    )));
    let shown = staged.0.display().to_string();
    let mut file = module_kit::trust::create_new_nofollow(&staged.0)
        .map_err(|e| format!("cannot create a new file in {}: {e}", dir.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {shown}: {e}"))?;
    // Whatever the umask.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot set the mode of {shown}: {e}"))?;
    file.sync_all()
        .map_err(|e| format!("cannot flush {shown}: {e}"))?;
    drop(file);
    std::fs::rename(&staged.0, path)
        .map_err(|e| format!("cannot move {shown} into place at {}: {e}", path.display()))?;
    staged.0 = PathBuf::new();
    // Makes the rename durable; not worth failing a written file for.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
