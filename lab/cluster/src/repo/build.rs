//! Building the repositories for real: packages with dpkg-deb and rpmbuild, rpm signatures with
//! rpmsign, indexes with dpkg-scanpackages and createrepo_c, apt `Release` files signed with gpg. The
//! result is cached under a name derived from the recipe.
//!
//! Layout of what nodes see (bind-mounted read-only at [`super::sources::MOUNT`]):
//! - `apt/dists/kubernetes-xenial/...` + `apt/pool/`: the legacy apt.kubernetes.io repository;
//! - `yum/repos/kubernetes-el7-x86_64/` + `yum/doc/`: the legacy packages.cloud.google.com yum one;
//! - `core:/stable:/v1.X/deb/` and `core:/stable:/v1.X/rpm/`: pkgs.k8s.io, one repository per minor;
//! - `keys/`: the public key, binary and armored.

use super::packages::{self, Package};
use super::sign::{self, Key};
use super::{deb_version, rpm_release, RELEASES};
use crate::sh;
use std::path::{Path, PathBuf};

/// Bump when the layout or the signing changes, so that cached repositories are rebuilt.
const REVISION: &str = "5";

/// What a built repository offers.
pub struct Built {
    /// The directory nodes mount (each lab mounts its own copy: [`super::publish`]).
    pub served: PathBuf,
    /// The signing key's fingerprint, and its gpg home (outside what nodes see).
    pub fingerprint: String,
    pub gnupg: PathBuf,
}

/// Builds (or finds in the cache) the repositories.
pub fn ensure(cache: &Path) -> Result<Built, String> {
    let recipe: String = packages::all()
        .iter()
        .map(|p| {
            format!(
                "{} {} {} {:?} {:?}\n",
                p.name, p.version, p.minor, p.depends, p.files
            )
        })
        .collect();
    let name = format!("repo-{}", sh::digest(&[recipe.as_bytes(), REVISION.as_bytes()]));
    let dir = cache.join(&name);
    if dir.join(".complete").exists() {
        let fingerprint = std::fs::read_to_string(dir.join("fingerprint"))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        return Ok(Built {
            served: dir.join("srv"),
            fingerprint: fingerprint.trim().to_string(),
            gnupg: dir.join("gnupg"),
        });
    }
    sh::progress("building the lab's signed apt and rpm repositories (once; about a minute)");
    let building = cache.join(format!("{name}.building"));
    if building.exists() {
        std::fs::remove_dir_all(&building).map_err(|e| format!("{}: {e}", building.display()))?;
    }
    // The private key stays outside what nodes see.
    let key = Key::generate(&building.join("gnupg"))?;
    let result = build_into(&building, &key);
    key.close();
    result?;
    sh::write(&building.join("fingerprint"), &key.fingerprint)?;
    sh::write(&building.join(".complete"), "")?;
    std::fs::rename(&building, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(Built {
        served: dir.join("srv"),
        fingerprint: key.fingerprint,
        gnupg: dir.join("gnupg"),
    })
}

fn build_into(out: &Path, key: &Key) -> Result<(), String> {
    let srv = out.join("srv");
    let keys = srv.join("keys");
    std::fs::create_dir_all(&keys).map_err(|e| e.to_string())?;
    key.export(
        &keys.join("kubernetes-apt-keyring.gpg"),
        &keys.join("kubernetes.asc"),
    )?;
    let all = packages::all();
    let mut debs = Vec::new();
    let mut rpms = Vec::new();
    for p in &all {
        debs.push((p, build_deb(p, out)?));
        rpms.push((p, build_rpm(p, out)?));
    }
    let rpm_files: Vec<PathBuf> = rpms.iter().map(|(_, f)| f.clone()).collect();
    key.sign_rpms(&rpm_files)?;

    // Legacy apt: one repository, suite kubernetes-xenial, component main, every legacy version.
    let apt = srv.join("apt");
    for (p, file) in debs.iter().filter(|(p, _)| p.legacy) {
        link_into(file, &apt.join("pool"), p)?;
    }
    let packages_index = "main/binary-amd64/Packages";
    let dists = apt.join("dists/kubernetes-xenial");
    sh::write(&dists.join(packages_index), scan_debs(&apt, "pool")?)?;
    let release = dists.join("Release");
    sh::write(
        &release,
        sign::release_file(&dists, &[packages_index], Some(("kubernetes-xenial", "main")))?,
    )?;
    key.sign_release(&release)?;

    // Legacy yum: kubernetes-el7-x86_64 with every legacy version, repomd signed (repo_gpgcheck=1).
    let yum = srv.join("yum/repos/kubernetes-el7-x86_64");
    for (p, file) in rpms.iter().filter(|(p, _)| p.legacy) {
        link_into(file, &yum, p)?;
    }
    index_rpms(&yum, key)?;
    for doc in ["yum-key.gpg", "rpm-package-key.gpg"] {
        copy(&keys.join("kubernetes.asc"), &srv.join("yum/doc").join(doc))?;
    }

    // pkgs.k8s.io: a flat apt repository and an rpm repository per minor, holding that minor only.
    for minor in super::stable_minors() {
        let base = srv.join(super::sources::stable_path(minor));
        let deb = base.join("deb");
        for (p, file) in debs.iter().filter(|(p, _)| !p.legacy && p.minor == minor) {
            link_into(file, &deb, p)?;
        }
        sh::write(&deb.join("Packages"), scan_debs(&deb, ".")?)?;
        let release = deb.join("Release");
        sh::write(&release, sign::release_file(&deb, &["Packages"], None)?)?;
        key.sign_release(&release)?;
        let rpm = base.join("rpm");
        for (p, file) in rpms.iter().filter(|(p, _)| !p.legacy && p.minor == minor) {
            link_into(file, &rpm, p)?;
        }
        index_rpms(&rpm, key)?;
        copy(&keys.join("kubernetes.asc"), &rpm.join("repodata/repomd.xml.key"))?;
    }
    Ok(())
}

/// Hard-links a built package into a repository directory (a package appears in several).
fn link_into(file: &Path, dir: &Path, p: &Package) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let name = file.file_name().ok_or(format!("{}: no file name", p.name))?;
    let target = dir.join(name);
    if !target.exists() {
        std::fs::hard_link(file, &target).map_err(|e| format!("{}: {e}", target.display()))?;
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    let data = std::fs::read(from).map_err(|e| format!("{}: {e}", from.display()))?;
    sh::write(to, data)
}

/// dpkg-scanpackages names files relative to its working directory: run it in the repository root.
pub(super) fn scan_debs(root: &Path, under: &str) -> Result<String, String> {
    module_kit::command::Command::new("dpkg-scanpackages")
        .args(["-m", under])
        .current_dir(root)
        .run_checked()
        .map(|out| out.stdout)
        .map_err(|e| e.to_string())
}

pub(super) fn index_rpms(dir: &Path, key: &Key) -> Result<(), String> {
    sh::run("createrepo_c", &["-q", &dir.to_string_lossy()])?;
    key.sign_repomd(dir)
}

/// Writes the package's files under `root`, with the format's own lines (`rpm`: the rpm's; see
/// `packages::for_format`).
fn stage_files(p: &Package, root: &Path, rpm: bool) -> Result<(), String> {
    let built = built_at(&p.version);
    for (path, mode, content) in &p.files {
        let content = packages::for_format(content, rpm);
        let file = root.join(path.trim_start_matches('/'));
        sh::write_mode(&file, content, *mode)?;
        std::fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_modified(built))
            .map_err(|e| format!("{}: {e}", file.display()))?;
    }
    Ok(())
}

/// When the release's packages were built, as their files' modification times say: each release
/// its own, later for later releases. dpkg and rpm keep a package's mtimes, so the next release's
/// kubelet.service replaces the unit file with a newer one and systemd wants a daemon-reload
/// (NeedDaemonReload), as with the real packages, built months apart; packages built by the lab
/// within one second would otherwise look unchanged to systemd.
fn built_at(version: &str) -> std::time::SystemTime {
    let mut parts = version.split(['.', '-']).map(|n| n.parse::<u64>().unwrap_or(0));
    let (major, minor, patch) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    // 2017-01-01 plus a day per patch and a hundred per minor: distinct and ordered.
    let days = (major.saturating_sub(1) * 100 + minor) * 100 + patch;
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_483_228_800 + days * 86_400)
}

fn build_deb(p: &Package, out: &Path) -> Result<PathBuf, String> {
    let version = deb_version(&p.version, p.legacy);
    let root = out.join("stage").join(format!("{}_{version}", p.name));
    stage_files(p, &root, false)?;
    let depends = p.depends.iter().map(|d| d.deb()).collect::<Vec<_>>().join(", ");
    let mut control = format!(
        "Package: {}\nVersion: {version}\nArchitecture: amd64\nMaintainer: kubeadm-ha-upgrade lab <lab@localhost>\n",
        p.name
    );
    if !depends.is_empty() {
        control.push_str(&format!("Depends: {depends}\n"));
    }
    control.push_str(&format!("Description: {}\n", p.summary));
    sh::write(&root.join("DEBIAN/control"), control)?;
    let pool = out.join("pool/deb");
    std::fs::create_dir_all(&pool).map_err(|e| e.to_string())?;
    let file = pool.join(format!("{}_{version}_amd64.deb", p.name));
    if !file.exists() {
        sh::run(
            "dpkg-deb",
            &[
                "--root-owner-group",
                "-Zgzip",
                "--build",
                &root.to_string_lossy(),
                &file.to_string_lossy(),
            ],
        )?;
    }
    Ok(file)
}

fn build_rpm(p: &Package, out: &Path) -> Result<PathBuf, String> {
    let release = rpm_release(p.legacy);
    let top = out.join("rpmbuild");
    let root = out
        .join("stage")
        .join(format!("{}-{}-{release}.rpm", p.name, p.version));
    stage_files(p, &root, true)?;
    let requires: String = p
        .depends
        .iter()
        .filter(|d| !d.deb_only)
        .map(|d| format!("Requires: {}\n", d.rpm()))
        .collect();
    let files: String = p.files.iter().map(|(path, _, _)| format!("{path}\n")).collect();
    let spec = format!(
        "Name: {name}\nVersion: {version}\nRelease: {release}\nSummary: {summary}\nLicense: Apache-2.0\n\
         BuildArch: x86_64\nAutoReqProv: no\n{requires}\n%description\n{summary}\n\n\
         %install\nmkdir -p %{{buildroot}}\ncp -a {stage}/. %{{buildroot}}/\n\n%files\n{files}",
        name = p.name,
        version = p.version,
        summary = p.summary,
        stage = root.display(),
    );
    let spec_file = out.join("specs").join(format!("{}-{}.spec", p.name, p.version));
    sh::write(&spec_file, spec)?;
    let pool = out.join("pool/rpm");
    let file = pool.join(format!("{}-{}-{release}.x86_64.rpm", p.name, p.version));
    if !file.exists() {
        sh::run(
            "rpmbuild",
            &[
                "-bb",
                "--quiet",
                "--define",
                &format!("_topdir {}", top.display()),
                "--define",
                &format!("_rpmdir {}", pool.display()),
                "--define",
                "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
                "--define",
                "__os_install_post %{nil}",
                &spec_file.to_string_lossy(),
            ],
        )?;
    }
    Ok(file)
}

/// Writes the release tree (the dl.k8s.io layout) with a kubeadm wrapper per release.
pub fn write_releases(root: &Path) -> Result<(), String> {
    for r in RELEASES {
        let version = kube_version::Version::parse(r.version).ok_or(format!("bad release {}", r.version))?;
        let kubeadm = packages::wrapper("kubeadm", r.version);
        lab_release::write_release(root, version, "amd64", kubeadm.as_bytes())
            .map_err(|e| format!("{}: {e}", root.display()))?;
    }
    lab_release::write_channels(root).map_err(|e| format!("{}: {e}", root.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::built_at;

    #[test]
    fn each_release_is_built_later_than_the_one_before() {
        let order = ["1.8.3", "1.9.2", "1.9.3", "1.10.13", "1.34.2", "1.35.0", "1.35.1"];
        for pair in order.windows(2) {
            assert!(built_at(pair[0]) < built_at(pair[1]), "{pair:?}");
        }
    }
}
