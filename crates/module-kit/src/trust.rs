//! Files a module runs as root must be ones no other local user could have planted or replaced: owned
//! by root or the running user, writable by nobody else, in a directory nobody else can write to.
//! And files a module writes go into such a directory, created without following a symlink.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The effective user id this process runs as.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Why `meta` (of `path`, a `what`) could have been written by another user, if it could.
fn judge(path: &Path, meta: &Metadata, what: &str) -> Result<(), String> {
    let (owner, me) = (meta.uid(), euid());
    if owner != 0 && owner != me {
        return Err(format!(
            "{what} {} is owned by uid {owner}, neither root nor the running user (uid {me})",
            path.display()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "{what} {} is writable by its group or by everyone (mode {mode:04o})",
            path.display()
        ));
    }
    Ok(())
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("/"))
}

fn trusted_dir(dir: &Path) -> Result<(), String> {
    let meta =
        std::fs::metadata(dir).map_err(|e| format!("cannot inspect directory {}: {e}", dir.display()))?;
    judge(dir, &meta, "directory")
}

/// Whether the program at `path` may be run: the file (a symlink is followed) a regular file owned by
/// root or the running user and writable by nobody else, and the directories holding it (the one
/// named and, for a symlink, the one it resolves to) likewise. `Ok(false)`: nothing is there (let the
/// caller report that as it does); `Err`: what is wrong, naming the path.
pub fn check_executable(path: &Path) -> Result<bool, String> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("cannot inspect {}: {e}", path.display())),
        Ok(_) => {}
    }
    trusted_dir(parent_of(path))?;
    let resolved: PathBuf =
        std::fs::canonicalize(path).map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
    if resolved != path {
        trusted_dir(parent_of(&resolved))?;
    }
    let meta =
        std::fs::metadata(&resolved).map_err(|e| format!("cannot inspect {}: {e}", resolved.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", resolved.display()));
    }
    judge(&resolved, &meta, "file")?;
    Ok(true)
}

/// Whether `dir` is a safe place to write a file that will be run as root: a real directory (not a
/// symbolic link), owned by root or the running user, writable by nobody else.
pub fn check_private_dir(dir: &Path) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| format!("directory {} is not usable: {e}", dir.display()))?;
    if meta.file_type().is_symlink() {
        return Err(format!("directory {} is a symbolic link", dir.display()));
    }
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    judge(dir, &meta, "directory")
}

/// Creates `dir` with mode 0700 when it does not exist (its parent must); `Ok(true)` if it was created.
pub fn ensure_private_dir(dir: &Path) -> Result<bool, String> {
    match std::fs::symlink_metadata(dir) {
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot inspect {}: {e}", dir.display())),
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    // Whatever the umask: 0700.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot set the mode of {}: {e}", dir.display()))?;
    Ok(true)
}

/// Creates a new file at `path`, exclusively (an existing file or symlink there is an error, never
/// followed), mode 0600, for writing.
pub fn create_new_nofollow(path: &Path) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags, CWD};
    let fd = rustix::fs::openat(
        CWD,
        path,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(File::from(fd))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn private_tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "module-kit-trust-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        assert!(ensure_private_dir(&dir).unwrap());
        dir
    }

    #[test]
    fn executables_must_be_writable_by_their_owner_only() {
        let dir = private_tempdir();
        let prog = dir.join("kubeadm");
        assert_eq!(check_executable(&prog), Ok(false));
        std::fs::write(&prog, "#!/bin/sh\n").unwrap();
        chmod(&prog, 0o755);
        assert_eq!(check_executable(&prog), Ok(true));

        chmod(&prog, 0o775);
        let err = check_executable(&prog).unwrap_err();
        assert!(
            err.contains("writable by its group or by everyone (mode 0775)"),
            "{err}"
        );
        assert!(err.contains(&prog.display().to_string()), "{err}");

        chmod(&prog, 0o755);
        chmod(&dir, 0o1777);
        let err = check_executable(&prog).unwrap_err();
        assert!(err.starts_with("directory "), "{err}");
        assert!(err.contains("mode 1777"), "{err}");

        // A symlink from a private directory into an open one is judged where it leads.
        chmod(&dir, 0o700);
        let open = dir.join("open");
        std::fs::create_dir(&open).unwrap();
        chmod(&open, 0o777);
        std::fs::rename(&prog, open.join("kubeadm")).unwrap();
        std::os::unix::fs::symlink(open.join("kubeadm"), &prog).unwrap();
        let err = check_executable(&prog).unwrap_err();
        assert!(err.contains("open"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn private_dirs_are_created_0700_and_checked() {
        let dir = private_tempdir();
        let meta = std::fs::metadata(&dir).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o700);
        assert_eq!(check_private_dir(&dir), Ok(()));
        assert!(!ensure_private_dir(&dir).unwrap());

        let link = dir.with_extension("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(check_private_dir(&link).unwrap_err().contains("symbolic link"));
        std::fs::remove_file(&link).unwrap();

        chmod(&dir, 0o770);
        assert!(check_private_dir(&dir).unwrap_err().contains("mode 0770"));
        chmod(&dir, 0o700);

        // Not owned by us or root (only testable as root, who can give a directory away).
        if euid() == 0 {
            let theirs = dir.join("theirs");
            std::fs::create_dir(&theirs).unwrap();
            std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
            let err = check_private_dir(&theirs).unwrap_err();
            assert!(err.contains("owned by uid 65534"), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn new_files_never_follow_a_symlink() {
        let dir = private_tempdir();
        let target = dir.join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.join("planted");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(create_new_nofollow(&link).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        let fresh = dir.join("fresh");
        let file = create_new_nofollow(&fresh).unwrap();
        assert_eq!(file.metadata().unwrap().mode() & 0o7777, 0o600);
        assert!(create_new_nofollow(&fresh).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
