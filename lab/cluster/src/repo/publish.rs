//! Each lab's own copy of the repositories (hard links into the cache), so that a patch release can
//! be held back when the lab comes up and published later (`kup-lab publish`): the nodes then see it
//! only after `apt-get update` / `dnf makecache`, as with a real patch published after they were
//! provisioned (their package index is stale until refreshed).

use super::build::{self, Built};
use super::sign::{self, Key};
use super::sources::stable_path;
use super::{deb_version, release, rpm_release};
use crate::sh;
use std::path::{Path, PathBuf};

/// The packages of a release that a repository holds back or publishes.
const RELEASED: &[&str] = &["kubelet", "kubeadm", "kubectl"];

/// Makes `lab_dir/repo` from the built repositories, without the releases in `withhold`.
pub fn lab_copy(built: &Built, lab_dir: &Path, withhold: &[String]) -> Result<PathBuf, String> {
    let dest = lab_dir.join("repo");
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    }
    sh::run(
        "cp",
        &["-al", &built.served.to_string_lossy(), &dest.to_string_lossy()],
    )?;
    for version in withhold {
        set_published(built, &dest, version, false)?;
    }
    Ok(dest)
}

/// Publishes `version` in the lab's copy `dest`: its packages linked in, the indexes signed anew.
pub fn publish(built: &Built, dest: &Path, version: &str) -> Result<(), String> {
    set_published(built, dest, version, true)
}

fn set_published(built: &Built, dest: &Path, version: &str, published: bool) -> Result<(), String> {
    let r = release(version).ok_or_else(|| {
        format!(
            "no lab packages for {version}: choose one of {}",
            super::versions()
        )
    })?;
    if r.legacy() {
        return Err(format!(
            "{version} is in the legacy repository, which the lab shares whole: only pkgs.k8s.io releases \
             (1.24 and later) can be held back and published"
        ));
    }
    let relative = PathBuf::from(stable_path(r.minor()));
    let deb_files: Vec<String> = RELEASED
        .iter()
        .map(|n| format!("{n}_{}_amd64.deb", deb_version(r.version, false)))
        .collect();
    let rpm_files: Vec<String> = RELEASED
        .iter()
        .map(|n| format!("{n}-{}-{}.x86_64.rpm", r.version, rpm_release(false)))
        .collect();
    for (kind, files) in [("deb", &deb_files), ("rpm", &rpm_files)] {
        let dir = dest.join(&relative).join(kind);
        for file in files {
            let target = dir.join(file);
            let _ = std::fs::remove_file(&target);
            if published {
                let source = built.served.join(&relative).join(kind).join(file);
                std::fs::hard_link(&source, &target).map_err(|e| format!("{}: {e}", target.display()))?;
            }
        }
    }
    let key = Key::open(&built.gnupg, &built.fingerprint);
    let result = reindex(&key, dest, &relative);
    key.close();
    result
}

/// New signed indexes for one minor's repositories. Every index file is unlinked before it is
/// written: the copy shares its files with the cache by hard links.
fn reindex(key: &Key, dest: &Path, relative: &Path) -> Result<(), String> {
    let base = dest.join(relative);
    let deb = base.join("deb");
    for name in ["Packages", "Release", "InRelease", "Release.gpg"] {
        let _ = std::fs::remove_file(deb.join(name));
    }
    sh::write(&deb.join("Packages"), build::scan_debs(&deb, ".")?)?;
    let release = deb.join("Release");
    sh::write(&release, sign::release_file(&deb, &["Packages"], None)?)?;
    key.sign_release(&release)?;
    let rpm = base.join("rpm");
    // createrepo_c writes a new repodata/ and replaces the old one whole.
    build::index_rpms(&rpm, key)?;
    let armored = dest.join("keys/kubernetes.asc");
    let text = std::fs::read(&armored).map_err(|e| format!("{}: {e}", armored.display()))?;
    sh::write(&rpm.join("repodata/repomd.xml.key"), text)
}
