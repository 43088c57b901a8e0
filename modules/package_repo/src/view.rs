//! The node's packages as they will look after the switch, without switching: the Kubernetes
//! repository file pointed at the target's minor in a private scratch directory, its index
//! refreshed there, and the options that make apt or dnf read that configuration instead of the
//! node's. What a plan uses to ask the real resolver whether the target's packages will install,
//! on every node, before anything changes. Made even when the file already names the minor (or
//! is a legacy repository): the fresh index sees a patch published since the node's last refresh,
//! as the run (which refreshes first) will.
//!
//! The view holds the Kubernetes repository alone (plus what is installed): a dependency that only
//! another repository offers and that is not installed yet is reported missing. Stricter than the
//! real transaction, never more lenient.

use crate::sources::{self, Format};
use crate::{locate, minor, Manager, READ_LIMIT};
use module_kit::file;
use module_kit::Failure;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A scratch configuration; removed when dropped.
#[derive(Debug)]
pub struct SwitchedView {
    /// Kept for its lifetime: the directory is removed on drop.
    _dir: tempfile::TempDir,
    /// Options for every apt-get/apt-cache (`-o ...`) or dnf/yum (`--setopt=...`) command.
    pub options: Vec<String>,
    /// The node's repository file the view rewrote.
    pub path: PathBuf,
    /// The minor the node's file names now (`v1.33`), and the one the view names (`legacy`
    /// both for a legacy repository, which holds every version).
    pub minor_before: String,
    pub minor_after: String,
}

/// The view of the node's Kubernetes repository at `version`'s minor, with a fresh index.
pub fn switched_view(
    manager: Manager,
    path: Option<&Path>,
    version: &str,
    timeout: Duration,
) -> Result<SwitchedView, Failure> {
    let to = minor(version).ok_or_else(|| Failure::new(format!("{version} is not a Kubernetes version")))?;
    let path = locate(manager, path)?;
    let shown = path.display().to_string();
    let text = String::from_utf8(file::read_bounded(&path, READ_LIMIT).map_err(Failure::new)?)
        .map_err(|_| Failure::new(format!("{shown} is not UTF-8 text")))?;
    let format = Format::of(&path, &text).unwrap_or(match manager {
        Manager::Apt => Format::List,
        Manager::Rpm(_) => Format::Repo,
    });
    let found = sources::scan(format, &text, to);
    if found.entries == 0 && found.legacy.is_empty() {
        return Err(Failure::new(format!(
            "{shown} defines no Kubernetes package repository: expected {}",
            format.expected()
        )));
    }
    let dir = tempfile::Builder::new()
        .prefix("package-view-")
        .tempdir()
        .map_err(|e| {
            Failure::new(format!(
                "cannot make a scratch directory for the switched view: {e}"
            ))
        })?;
    let root = dir.path();
    let name = path
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| match format {
            Format::List => "kubernetes.list".into(),
            Format::Deb822 => "kubernetes.sources".into(),
            Format::Repo => "kubernetes.repo".into(),
        });
    let made = |what: &Path, e: std::io::Error| Failure::new(format!("cannot write {}: {e}", what.display()));
    let options = match manager {
        Manager::Apt => {
            let file = root.join(&name);
            std::fs::write(&file, &found.text).map_err(|e| made(&file, e))?;
            for sub in ["lists/partial", "cache/archives/partial"] {
                let d = root.join(sub);
                std::fs::create_dir_all(&d).map_err(|e| made(&d, e))?;
            }
            apt_options(root, &file)
        }
        Manager::Rpm(_) => {
            let repos = root.join("repos");
            std::fs::create_dir_all(&repos).map_err(|e| made(&repos, e))?;
            let file = repos.join(&name);
            std::fs::write(&file, &found.text).map_err(|e| made(&file, e))?;
            rpm_options(root)
        }
    };
    let refresh = match manager {
        Manager::Apt => module_kit::command::Command::new("apt-get").args(["update", "-q"]),
        // The scratch cache holds no imported repository key yet: dnf imports the one the
        // definition's `gpgkey=` names, as it did when the node was provisioned (repo_gpgcheck).
        Manager::Rpm(program) => module_kit::command::Command::new(program).args(["-q", "-y", "makecache"]),
    }
    .args(&options)
    .timeout(timeout);
    let out = refresh.run().map_err(Failure::from)?;
    if let Some(why) = manager.refresh_failed(&out) {
        let mut failure = Failure::new(format!(
            "the index of {shown} switched to v1.{to} cannot be read: {why}"
        ));
        failure.command = Some(Box::new(out));
        return Err(failure);
    }
    let minors: Vec<String> = found.minors.iter().map(|m| format!("v1.{m}")).collect();
    let legacy = found.entries == 0;
    Ok(SwitchedView {
        _dir: dir,
        options,
        path,
        minor_before: if legacy {
            "legacy".into()
        } else {
            minors.join(", ")
        },
        minor_after: if legacy {
            "legacy".into()
        } else {
            format!("v1.{to}")
        },
    })
}

/// apt reads only the rewritten file (`sourceparts=-`), into its own lists and cache; the node's
/// dpkg status (what is installed) stays the one it reads.
fn apt_options(root: &Path, file: &Path) -> Vec<String> {
    [
        format!("Dir::Etc::sourcelist={}", file.display()),
        "Dir::Etc::sourceparts=-".into(),
        format!("Dir::State::Lists={}", root.join("lists").display()),
        format!("Dir::Cache={}", root.join("cache").display()),
    ]
    .into_iter()
    .flat_map(|o| ["-o".to_string(), o])
    .collect()
}

/// dnf/yum read only the rewritten `.repo`, into their own cache.
fn rpm_options(root: &Path) -> Vec<String> {
    vec![
        format!("--setopt=reposdir={}", root.join("repos").display()),
        format!("--setopt=cachedir={}", root.join("cache").display()),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn apt_reads_only_the_scratch_configuration() {
        let o = apt_options(Path::new("/s"), Path::new("/s/kubernetes.sources"));
        assert_eq!(
            o,
            [
                "-o",
                "Dir::Etc::sourcelist=/s/kubernetes.sources",
                "-o",
                "Dir::Etc::sourceparts=-",
                "-o",
                "Dir::State::Lists=/s/lists",
                "-o",
                "Dir::Cache=/s/cache"
            ]
        );
    }

    #[test]
    fn a_file_without_a_kubernetes_repository_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kubernetes.list");
        std::fs::write(&file, "deb http://deb.debian.org/debian bookworm main\n").unwrap();
        let err = switched_view(Manager::Apt, Some(&file), "1.34.2", Duration::from_secs(5)).unwrap_err();
        assert!(
            err.msg.contains("defines no Kubernetes package repository"),
            "{}",
            err.msg
        );
        assert!(err.msg.contains(&file.display().to_string()), "{}", err.msg);
    }
}
