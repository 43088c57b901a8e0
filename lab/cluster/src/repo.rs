//! The lab's package repositories (apt and rpm) and release tree: kubelet, kubeadm, kubectl and
//! kubernetes-cni in several versions, with the version strings the real repositories use, built for
//! real with dpkg-deb and rpmbuild, indexed with dpkg-scanpackages -m and createrepo_c.

use crate::sh;
use std::path::{Path, PathBuf};

/// Where the stand-in binary lives inside nodes (copied there at provisioning).
pub const STANDIN: &str = "/usr/local/lib/kup-lab/standin";

/// A Kubernetes release the lab has packages for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    pub version: &'static str,
    /// The kubernetes-cni version packaged alongside.
    pub cni: &'static str,
    /// Legacy (apt.kubernetes.io / yum.kubernetes.io) version strings, else pkgs.k8s.io ones.
    pub legacy: bool,
}

pub const RELEASES: &[Release] = &[
    Release {
        version: "1.8.3",
        cni: "0.5.1",
        legacy: true,
    },
    Release {
        version: "1.9.2",
        cni: "0.6.0",
        legacy: true,
    },
    Release {
        version: "1.9.3",
        cni: "0.6.0",
        legacy: true,
    },
    Release {
        version: "1.10.13",
        cni: "0.6.0",
        legacy: true,
    },
    Release {
        version: "1.11.10",
        cni: "0.6.0",
        legacy: true,
    },
    Release {
        version: "1.29.6",
        cni: "1.3.0",
        legacy: false,
    },
    Release {
        version: "1.30.2",
        cni: "1.4.0",
        legacy: false,
    },
];

pub fn release(version: &str) -> Option<Release> {
    RELEASES
        .iter()
        .copied()
        .find(|r| r.version == version.trim_start_matches('v'))
}

pub fn versions() -> String {
    RELEASES.iter().map(|r| r.version).collect::<Vec<_>>().join(", ")
}

/// `1.9.2-00` (legacy apt), `1.30.2-1.1` (pkgs.k8s.io apt).
pub fn deb_version(version: &str, legacy: bool) -> String {
    if legacy {
        format!("{version}-00")
    } else {
        format!("{version}-1.1")
    }
}

/// The rpm Release field: `0` (legacy yum), `150500.1.1` (pkgs.k8s.io).
pub fn rpm_release(legacy: bool) -> &'static str {
    if legacy {
        "0"
    } else {
        "150500.1.1"
    }
}

struct Package {
    name: &'static str,
    version: String,
    legacy: bool,
    summary: &'static str,
    /// (name, minimum version)
    depends: Vec<(&'static str, String)>,
    /// (path, mode, content)
    files: Vec<(&'static str, u32, String)>,
}

fn wrapper(tool: &str, version: &str) -> String {
    format!("#!/bin/sh\n# {tool} v{version}: the lab's stand-in\nexec {STANDIN} {tool} v{version} \"$@\"\n")
}

fn packages() -> Vec<Package> {
    let mut all = Vec::new();
    let mut cnis: Vec<(&str, bool)> = Vec::new();
    for r in RELEASES {
        let v = r.version.to_string();
        all.push(Package {
            name: "kubelet",
            version: v.clone(),
            legacy: r.legacy,
            summary: "Kubernetes node agent (lab stand-in)",
            depends: vec![("kubernetes-cni", r.cni.to_string())],
            files: vec![
                ("/usr/bin/kubelet", 0o755, wrapper("kubelet", &v)),
                (
                    "/usr/lib/systemd/system/kubelet.service",
                    0o644,
                    format!(
                        "[Unit]\nDescription=kubelet: The Kubernetes Node Agent (lab stand-in v{v})\n\
                         After=docker.service containerd.service\n\n[Service]\nExecStart=/usr/bin/kubelet\n\
                         Restart=always\nRestartSec=2\n\n[Install]\nWantedBy=multi-user.target\n"
                    ),
                ),
            ],
        });
        all.push(Package {
            name: "kubeadm",
            version: v.clone(),
            legacy: r.legacy,
            summary: "Kubernetes cluster bootstrapping tool (lab stand-in)",
            depends: vec![
                ("kubelet", "1.6.0".into()),
                ("kubectl", "1.6.0".into()),
                ("kubernetes-cni", r.cni.into()),
            ],
            files: vec![("/usr/bin/kubeadm", 0o755, wrapper("kubeadm", &v))],
        });
        all.push(Package {
            name: "kubectl",
            version: v.clone(),
            legacy: r.legacy,
            summary: "Kubernetes command line tool (lab stand-in)",
            depends: vec![],
            files: vec![("/usr/bin/kubectl", 0o755, wrapper("kubectl", &v))],
        });
        if !cnis.contains(&(r.cni, r.legacy)) {
            cnis.push((r.cni, r.legacy));
        }
    }
    for (cni, legacy) in cnis {
        all.push(Package {
            name: "kubernetes-cni",
            version: cni.to_string(),
            legacy,
            summary: "Kubernetes CNI plugins (lab stand-in)",
            depends: vec![],
            files: vec![("/opt/cni/bin/VERSION", 0o644, format!("{cni}\n"))],
        });
    }
    all
}

/// Builds (or finds in the cache) the repositories; returns the directory holding `deb/` and `rpm/`.
pub fn ensure(cache: &Path) -> Result<PathBuf, String> {
    let recipe: String = packages()
        .iter()
        .map(|p| {
            format!(
                "{} {} {} {:?} {:?}\n",
                p.name, p.version, p.legacy, p.depends, p.files
            )
        })
        .collect();
    let name = format!("repo-{}", sh::digest(&[recipe.as_bytes(), b"2"]));
    let dir = cache.join(&name);
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    sh::progress("building the lab's apt and rpm repositories");
    let building = cache.join(format!("{name}.building"));
    if building.exists() {
        std::fs::remove_dir_all(&building).map_err(|e| format!("{}: {e}", building.display()))?;
    }
    for p in packages() {
        build_deb(&p, &building)?;
        build_rpm(&p, &building)?;
    }
    let deb = building.join("deb");
    // dpkg-scanpackages names files relative to its working directory: run it inside deb/.
    let index = scan_in(&deb)?;
    sh::write(&deb.join("Packages"), index)?;
    sh::run("createrepo_c", &["-q", &building.join("rpm").to_string_lossy()])?;
    sh::write(&building.join(".complete"), "")?;
    std::fs::rename(&building, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

fn scan_in(dir: &Path) -> Result<String, String> {
    module_kit::command::Command::new("dpkg-scanpackages")
        .args(["-m", "."])
        .current_dir(dir)
        .run_checked()
        .map(|out| out.stdout)
        .map_err(|e| e.to_string())
}

fn stage_files(p: &Package, root: &Path) -> Result<(), String> {
    for (path, mode, content) in &p.files {
        sh::write_mode(&root.join(path.trim_start_matches('/')), content, *mode)?;
    }
    Ok(())
}

fn build_deb(p: &Package, out: &Path) -> Result<(), String> {
    let version = deb_version(&p.version, p.legacy);
    let root = out.join("stage").join(format!("{}_{version}", p.name));
    stage_files(p, &root)?;
    let depends = p
        .depends
        .iter()
        .map(|(n, v)| format!("{n} (>= {v})"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut control = format!(
        "Package: {}\nVersion: {version}\nArchitecture: amd64\nMaintainer: kubeadm-ha-upgrade lab <lab@localhost>\n",
        p.name
    );
    if !depends.is_empty() {
        control.push_str(&format!("Depends: {depends}\n"));
    }
    control.push_str(&format!("Description: {}\n", p.summary));
    sh::write(&root.join("DEBIAN/control"), control)?;
    let file = out.join("deb").join(format!("{}_{version}_amd64.deb", p.name));
    std::fs::create_dir_all(out.join("deb")).map_err(|e| e.to_string())?;
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
    Ok(())
}

fn build_rpm(p: &Package, out: &Path) -> Result<(), String> {
    let release = rpm_release(p.legacy);
    let top = out.join("rpmbuild");
    let root = out
        .join("stage")
        .join(format!("{}-{}-{release}.rpm", p.name, p.version));
    stage_files(p, &root)?;
    let requires: String = p
        .depends
        .iter()
        .map(|(n, v)| format!("Requires: {n} >= {v}\n"))
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
    let rpm_dir = out.join("rpm");
    sh::run(
        "rpmbuild",
        &[
            "-bb",
            "--quiet",
            "--define",
            &format!("_topdir {}", top.display()),
            "--define",
            &format!("_rpmdir {}", rpm_dir.display()),
            "--define",
            "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
            "--define",
            "__os_install_post %{nil}",
            &spec_file.to_string_lossy(),
        ],
    )?;
    Ok(())
}

/// Writes the release tree (the dl.k8s.io layout) with a kubeadm wrapper per release.
pub fn write_releases(root: &Path) -> Result<(), String> {
    for r in RELEASES {
        let version = kube_version::Version::parse(r.version).ok_or(format!("bad release {}", r.version))?;
        lab_release::write_release(root, version, "amd64", wrapper("kubeadm", r.version).as_bytes())
            .map_err(|e| format!("{}: {e}", root.display()))?;
    }
    lab_release::write_channels(root).map_err(|e| format!("{}: {e}", root.display()))
}
