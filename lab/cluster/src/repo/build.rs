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

/// Bump when the padding's content changes.
const PADDING_REVISION: &str = "p1";

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
    ensure_sized(cache, &[])
}

/// [`ensure`] with the kubelet, kubeadm and kubectl packages of `realistic_minors` at their real
/// sizes (`kup-lab up --timing realistic`). The padding is part of the recipe, so such a
/// repository is cached under a name of its own; with no minors the recipe, and so the cache, is
/// exactly the default one.
pub fn ensure_sized(cache: &Path, realistic_minors: &[u32]) -> Result<Built, String> {
    let all = packages::sized(realistic_minors);
    let name = cache_name(&all);
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
    let result = build_into(&building, &key, all);
    key.close();
    result?;
    // Padded packages' staged files are as large as the packages: not kept (the default build keeps
    // its staging tree as it always has).
    if !realistic_minors.is_empty() {
        let stage = building.join("stage");
        std::fs::remove_dir_all(&stage).map_err(|e| format!("{}: {e}", stage.display()))?;
    }
    sh::write(&building.join("fingerprint"), &key.fingerprint)?;
    sh::write(&building.join(".complete"), "")?;
    std::fs::rename(&building, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(Built {
        served: dir.join("srv"),
        fingerprint: key.fingerprint,
        gnupg: dir.join("gnupg"),
    })
}

/// The cache directory's name: a digest of the recipe, which names a package's padding only when it
/// has one (so that the default repositories keep their name).
fn cache_name(all: &[Package]) -> String {
    let recipe: String = all
        .iter()
        .map(|p| {
            let mut line = format!(
                "{} {} {} {:?} {:?}",
                p.name, p.version, p.minor, p.depends, p.files
            );
            if p.padding > 0 {
                line.push_str(&format!(" padding {} {PADDING_REVISION}", p.padding));
            }
            line.push('\n');
            line
        })
        .collect();
    format!("repo-{}", sh::digest(&[recipe.as_bytes(), REVISION.as_bytes()]))
}

fn build_into(out: &Path, key: &Key, all: Vec<Package>) -> Result<(), String> {
    let srv = out.join("srv");
    let keys = srv.join("keys");
    std::fs::create_dir_all(&keys).map_err(|e| e.to_string())?;
    key.export(
        &keys.join("kubernetes-apt-keyring.gpg"),
        &keys.join("kubernetes.asc"),
    )?;
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
    if p.padding > 0 {
        let file = root.join(packages::payload_path(p.name).trim_start_matches('/'));
        sh::write_mode(&file, payload(p, p.padding), 0o644)?;
    }
    Ok(())
}

/// `len` bytes that compression cannot shrink (xorshift64*, seeded by the package), so that the
/// package's file is as large as the real one and downloading it takes as long.
fn payload(p: &Package, len: u64) -> Vec<u8> {
    let mut state = sh::digest(&[p.name.as_bytes(), p.version.as_bytes()])
        .bytes()
        .fold(0x9E37_79B9_7F4A_7C15_u64, |s, b| {
            (s ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
        })
        | 1;
    let mut out = Vec::with_capacity(len as usize + 8);
    while (out.len() as u64) < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len as usize);
    out
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
    let mut files: String = p.files.iter().map(|(path, _, _)| format!("{path}\n")).collect();
    if p.padding > 0 {
        files.push_str(&format!("{}\n", packages::payload_path(p.name)));
    }
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
        let (topdir, rpmdir) = (
            format!("_topdir {}", top.display()),
            format!("_rpmdir {}", pool.display()),
        );
        let spec_path = spec_file.to_string_lossy();
        let mut args = vec![
            "-bb",
            "--quiet",
            "--define",
            &topdir,
            "--define",
            &rpmdir,
            "--define",
            "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
            "--define",
            "__os_install_post %{nil}",
        ];
        // A padded payload cannot be compressed anyway: gzip at level 1 rather than rpm's default
        // (slow on incompressible data); the default packages are built as before.
        if p.padding > 0 {
            args.extend(["--define", "_binary_payload w1.gzdio"]);
        }
        args.push(&spec_path);
        sh::run("rpmbuild", &args)?;
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
    use super::{built_at, cache_name, packages, payload};

    #[test]
    fn only_the_realistic_minors_are_padded_and_the_default_cache_keeps_its_name() {
        let all = packages::all();
        let none = packages::sized(&[]);
        assert!(none.iter().all(|p| p.padding == 0));
        assert_eq!(cache_name(&all), cache_name(&none));
        let real = packages::sized(&[34, 35]);
        assert_ne!(cache_name(&all), cache_name(&real));
        let padding = |name: &str, version: &str| {
            real.iter()
                .find(|p| p.name == name && p.version == version)
                .map(|p| p.padding)
                .unwrap()
        };
        assert_eq!(padding("kubelet", "1.34.2"), 20_000_000);
        assert_eq!(padding("kubeadm", "1.35.1"), 11_000_000);
        assert_eq!(padding("kubectl", "1.35.0"), 11_000_000);
        assert_eq!(padding("kubelet", "1.33.1"), 0);
        assert!(real
            .iter()
            .filter(|p| p.name == "kubernetes-cni" || p.name == "cri-tools")
            .all(|p| p.padding == 0));
    }

    #[test]
    fn the_payload_is_deterministic_and_does_not_repeat() {
        let p = &packages::sized(&[34])
            .into_iter()
            .find(|p| p.name == "kubelet" && p.version == "1.34.2")
            .unwrap();
        let a = payload(p, 100_003);
        assert_eq!(a.len(), 100_003);
        assert_eq!(a, payload(p, 100_003));
        // No short period: the second 4 KiB differ from the first.
        assert_ne!(a[..4096], a[4096..8192]);
        let zeros = a.iter().filter(|b| **b == 0).count();
        assert!(zeros < 1_000, "{zeros} zero bytes: not random-looking");
    }

    #[test]
    fn each_release_is_built_later_than_the_one_before() {
        let order = ["1.8.3", "1.9.2", "1.9.3", "1.10.13", "1.34.2", "1.35.0", "1.35.1"];
        for pair in order.windows(2) {
            assert!(built_at(pair[0]) < built_at(pair[1]), "{pair:?}");
        }
    }
}
