//! What each stand-in package holds and declares: its files (a wrapper that runs the stand-in at the
//! package's version, the kubelet unit, kubeadm's drop-in for the kubelet) and its dependencies, as the
//! real packages of that release declared them.

use super::{Cni, Release, RELEASES, STANDIN};

/// A dependency of a package: `name (>= version)` in deb, `Requires: name >= version` in rpm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub name: &'static str,
    /// None: any version (a system package such as `iptables`).
    pub version: Option<(Relation, String)>,
    /// Only in the deb `Depends` (system packages the lab's rpm database does not hold: its nodes are
    /// Debian underneath, so rpm cannot see them; kubernetes/release rpm specs require them too).
    pub deb_only: bool,
}

#[derive(Debug, Clone)]
pub struct Package {
    pub name: &'static str,
    pub version: String,
    /// Which repository era's version strings it gets.
    pub legacy: bool,
    /// The minor whose pkgs.k8s.io repository holds it (legacy packages: every legacy release).
    pub minor: u32,
    pub summary: &'static str,
    pub depends: Vec<Dependency>,
    /// (path, mode, content)
    pub files: Vec<(&'static str, u32, String)>,
    /// Bytes of incompressible payload that give the package a real one's size (realistic labs
    /// only: [`sized`]); 0 otherwise.
    pub padding: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Exactly,
    AtLeast,
}

impl Dependency {
    /// `name (>= 1.2.0)`, as a deb `Depends` entry.
    pub fn deb(&self) -> String {
        match &self.version {
            Some((Relation::Exactly, v)) => format!("{} (= {v})", self.name),
            Some((Relation::AtLeast, v)) => format!("{} (>= {v})", self.name),
            None => self.name.to_string(),
        }
    }

    /// `name >= 1.2.0`, as an rpm `Requires` value.
    pub fn rpm(&self) -> String {
        match &self.version {
            Some((Relation::Exactly, v)) => format!("{} = {v}", self.name),
            Some((Relation::AtLeast, v)) => format!("{} >= {v}", self.name),
            None => self.name.to_string(),
        }
    }
}

fn needs(name: &'static str, at_least: impl Into<String>) -> Dependency {
    Dependency {
        name,
        version: Some((Relation::AtLeast, at_least.into())),
        deb_only: false,
    }
}

fn system(name: &'static str) -> Dependency {
    Dependency {
        name,
        version: None,
        deb_only: true,
    }
}

pub fn wrapper(tool: &str, version: &str) -> String {
    format!("#!/bin/sh\n# {tool} v{version}: the lab's stand-in\nexec {STANDIN} {tool} v{version} \"$@\"\n")
}

/// Where kubeadm's drop-in for the kubelet goes: the legacy packages put it in /etc, the pkgs.k8s.io
/// ones in the vendor directory (kubernetes/release cmd/krel/templates/latest/kubeadm/kubeadm.spec).
fn dropin_path(legacy: bool) -> &'static str {
    if legacy {
        "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"
    } else {
        "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"
    }
}

/// Stands for the file of KUBELET_EXTRA_ARGS in a package's files: `/etc/default/kubelet` in debs,
/// `/etc/sysconfig/kubelet` in rpms (kubernetes.io "Configuring each kubelet ... with kubeadm"; the
/// pkgs.k8s.io debs carried the rpm's path until kubernetes/release#3279 fixed it, issue #3276).
pub const ENV_FILE: &str = "@KUBELET_ENV_FILE@";
/// Stands for the rpm-only cgroup line of the 1.8-1.10 drop-in (kubernetes/kubernetes
/// build/rpms/10-kubeadm-post-1.8.conf: `KUBELET_CGROUP_ARGS=--cgroup-driver=systemd`); empty in debs.
pub const CGROUP_ENV: &str = "@KUBELET_CGROUP_ENV@";
/// Stands for `$KUBELET_CGROUP_ARGS` on that drop-in's ExecStart (rpms), nothing in debs.
pub const CGROUP_ARG: &str = "@KUBELET_CGROUP_ARG@";

/// A package file's text for one format: the placeholders above filled in (`rpm`: the rpm's).
pub fn for_format(content: &str, rpm: bool) -> String {
    let (env_file, cgroup_env, cgroup_arg) = if rpm {
        (
            "/etc/sysconfig/kubelet",
            "Environment=\"KUBELET_CGROUP_ARGS=--cgroup-driver=systemd\"\n",
            " $KUBELET_CGROUP_ARGS",
        )
    } else {
        ("/etc/default/kubelet", "", "")
    };
    content
        .replace(ENV_FILE, env_file)
        .replace(CGROUP_ENV, cgroup_env)
        .replace(CGROUP_ARG, cgroup_arg)
}

/// kubeadm's `10-kubeadm.conf` for the kubelet, per era, line for line as the packages shipped it
/// but for the placeholders above (filled in per format by [`for_format`]).
pub fn kubeadm_dropin(release: &Release) -> String {
    let minor = release.minor();
    if minor >= 11 {
        // From 1.11 the flags live in files kubeadm writes: kubernetes/kubernetes
        // build/debs/bionic/kubeadm/channel/stable/etc/systemd/system/kubelet.service.d/post-1.10/10-kubeadm.conf
        // (the legacy apt/yum packages; its rpm twin build/rpms/10-kubeadm.conf differs only in the
        // EnvironmentFile), carried on as kubernetes/release cmd/kubepkg/templates/latest/{deb,rpm}/kubeadm/10-kubeadm.conf,
        // which pkgs.k8s.io's packages install (cmd/krel/templates/latest/kubeadm/kubeadm.spec).
        return format!(
            "# Note: This dropin only works with kubeadm and kubelet v1.11+\n[Service]\n\
             Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \
             --kubeconfig=/etc/kubernetes/kubelet.conf\"\n\
             Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"\n\
             # This is a file that \"kubeadm init\" and \"kubeadm join\" generates at runtime, populating the \
             KUBELET_KUBEADM_ARGS variable dynamically\n\
             EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\n\
             # This is a file that the user can use for overrides of the kubelet args as a last resort. \
             Preferably, the user should use\n\
             # the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. \
             KUBELET_EXTRA_ARGS should be sourced from this file.\n\
             EnvironmentFile=-{ENV_FILE}\n\
             ExecStart=\n\
             ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS \
             $KUBELET_EXTRA_ARGS\n"
        );
    }
    // 1.8-1.10: every flag in the drop-in itself: kubernetes/kubernetes
    // build/debs/bionic/kubeadm/channel/stable/etc/systemd/system/kubelet.service.d/post-1.8/10-kubeadm.conf
    // for debs, build/rpms/10-kubeadm-post-1.8.conf for rpms (the same plus the systemd cgroup driver).
    format!(
        "[Service]\n\
         Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \
         --kubeconfig=/etc/kubernetes/kubelet.conf\"\n\
         Environment=\"KUBELET_SYSTEM_PODS_ARGS=--pod-manifest-path=/etc/kubernetes/manifests --allow-privileged=true\"\n\
         Environment=\"KUBELET_NETWORK_ARGS=--network-plugin=cni --cni-conf-dir=/etc/cni/net.d --cni-bin-dir=/opt/cni/bin\"\n\
         Environment=\"KUBELET_DNS_ARGS=--cluster-dns=10.96.0.10 --cluster-domain=cluster.local\"\n\
         Environment=\"KUBELET_AUTHZ_ARGS=--authorization-mode=Webhook --client-ca-file=/etc/kubernetes/pki/ca.crt\"\n\
         Environment=\"KUBELET_CADVISOR_ARGS=--cadvisor-port=0\"\n\
         {CGROUP_ENV}\
         Environment=\"KUBELET_CERTIFICATE_ARGS=--rotate-certificates=true --cert-dir=/var/lib/kubelet/pki\"\n\
         ExecStart=\n\
         ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_SYSTEM_PODS_ARGS $KUBELET_NETWORK_ARGS \
         $KUBELET_DNS_ARGS $KUBELET_AUTHZ_ARGS $KUBELET_CADVISOR_ARGS{CGROUP_ARG} $KUBELET_CERTIFICATE_ARGS \
         $KUBELET_EXTRA_ARGS\n"
    )
}

/// The kubelet's own unit (kubernetes/release build/debs/kubelet.service: `Restart=always`,
/// `RestartSec=10`; the lab restarts faster so that tests do not wait).
fn kubelet_unit(version: &str) -> String {
    format!(
        "[Unit]\nDescription=kubelet: The Kubernetes Node Agent (lab stand-in v{version})\n\
         Documentation=https://kubernetes.io/docs/\nWants=network-online.target\n\
         After=network-online.target docker.service containerd.service\n\n\
         [Service]\nExecStart=/usr/bin/kubelet\nRestart=always\nStartLimitInterval=0\nRestartSec=2\n\n\
         [Install]\nWantedBy=multi-user.target\n"
    )
}

/// The kubelet's dependencies: kubernetes-cni as [`Release::needs`] says, and the system tools of
/// kubernetes/release build/debs/templates/latest/kubelet/debian/control (`iptables (>= 1.4.21),
/// iproute2, socat, util-linux, mount, ebtables, ethtool, conntrack`).
fn kubelet_depends(release: &Release) -> Vec<Dependency> {
    let mut deps = vec![match release.needs.cni {
        Cni::Exactly(v) => Dependency {
            name: "kubernetes-cni",
            version: Some((Relation::Exactly, v.to_string())),
            deb_only: false,
        },
        Cni::AtLeast(v) => needs("kubernetes-cni", v),
    }];
    for tool in [
        "iptables",
        "iproute2",
        "socat",
        "util-linux",
        "mount",
        "ethtool",
        "conntrack",
    ] {
        deps.push(system(tool));
    }
    if release.legacy() {
        deps.push(system("ebtables"));
    }
    deps
}

/// kubeadm's dependencies, as [`Release::needs`] says.
fn kubeadm_depends(release: &Release) -> Vec<Dependency> {
    let needs_of = release.needs;
    let mut deps = Vec::new();
    if let Some(floor) = needs_of.kube {
        deps.push(needs("kubelet", floor));
        deps.push(needs("kubectl", floor));
    }
    if needs_of.kubeadm_cni {
        deps.push(match needs_of.cni {
            Cni::Exactly(v) => Dependency {
                name: "kubernetes-cni",
                version: Some((Relation::Exactly, v.to_string())),
                deb_only: false,
            },
            Cni::AtLeast(v) => needs("kubernetes-cni", v),
        });
    }
    if let Some(cri) = needs_of.cri_tools {
        deps.push(needs("cri-tools", cri));
    }
    deps
}

/// Where a realistic package carries its payload (a file of its own per package name).
pub fn payload_path(name: &str) -> String {
    format!("/usr/share/kup-lab/{name}.payload")
}

/// The size a release's package has on pkgs.k8s.io (amd64 .deb, compressed), in bytes. Estimates,
/// not read from the repository's index: the v1.3x debs are about 20 MB for kubelet and 10-12 MB
/// each for kubeadm and kubectl (their statically linked binaries are about 2-3x that uncompressed).
pub fn realistic_size(name: &str) -> u64 {
    match name {
        // Estimate: pkgs.k8s.io kubelet_1.3x.y-1.1_amd64.deb, about 20 MB.
        "kubelet" => 20_000_000,
        // Estimate: pkgs.k8s.io kubeadm_1.3x.y-1.1_amd64.deb, about 11 MB.
        "kubeadm" => 11_000_000,
        // Estimate: pkgs.k8s.io kubectl_1.3x.y-1.1_amd64.deb, about 11 MB.
        "kubectl" => 11_000_000,
        _ => 0,
    }
}

/// Every package, those of `minors` (kubelet, kubeadm, kubectl) padded to [`realistic_size`]; with
/// no minors exactly [`all`].
pub fn sized(minors: &[u32]) -> Vec<Package> {
    let mut packages = all();
    for p in &mut packages {
        if minors.contains(&p.minor) {
            p.padding = realistic_size(p.name);
        }
    }
    packages
}

pub fn all() -> Vec<Package> {
    let mut all = Vec::new();
    let mut extras: Vec<(&'static str, &'static str, bool, u32)> = Vec::new();
    for r in RELEASES {
        let v = r.version.to_string();
        let (legacy, minor) = (r.legacy(), r.minor());
        let package = |name, summary, depends, files| Package {
            name,
            version: v.clone(),
            legacy,
            minor,
            summary,
            depends,
            files,
            padding: 0,
        };
        all.push(package(
            "kubelet",
            "Kubernetes node agent (lab stand-in)",
            kubelet_depends(r),
            vec![
                ("/usr/bin/kubelet", 0o755, wrapper("kubelet", &v)),
                ("/usr/lib/systemd/system/kubelet.service", 0o644, kubelet_unit(&v)),
            ],
        ));
        all.push(package(
            "kubeadm",
            "Kubernetes cluster bootstrapping tool (lab stand-in)",
            kubeadm_depends(r),
            vec![
                ("/usr/bin/kubeadm", 0o755, wrapper("kubeadm", &v)),
                (dropin_path(legacy), 0o644, kubeadm_dropin(r)),
            ],
        ));
        all.push(package(
            "kubectl",
            "Kubernetes command line tool (lab stand-in)",
            vec![],
            vec![("/usr/bin/kubectl", 0o755, wrapper("kubectl", &v))],
        ));
        let key_minor = if legacy { 0 } else { minor };
        extras.push(("kubernetes-cni", r.cni, legacy, key_minor));
        if let Some(cri) = r.cri_tools {
            extras.push(("cri-tools", cri, legacy, key_minor));
        }
    }
    extras.sort();
    extras.dedup();
    for (name, version, legacy, minor) in extras {
        let files = if name == "cri-tools" {
            vec![(
                "/usr/bin/crictl",
                0o755,
                format!("#!/bin/sh\necho \"crictl version v{version}\"\n"),
            )]
        } else {
            vec![("/opt/cni/bin/VERSION", 0o644, format!("{version}\n"))]
        };
        all.push(Package {
            name,
            version: version.to_string(),
            legacy,
            minor,
            summary: if name == "cri-tools" {
                "Container Runtime Interface tools (lab stand-in)"
            } else {
                "Kubernetes CNI plugins (lab stand-in)"
            },
            depends: vec![],
            files,
            padding: 0,
        });
    }
    all
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn each_pkgs_k8s_io_minor_holds_its_own_cni_and_cri_tools() {
        let all = all();
        for minor in super::super::stable_minors() {
            for name in ["kubelet", "kubeadm", "kubectl", "kubernetes-cni", "cri-tools"] {
                assert!(
                    all.iter()
                        .any(|p| p.name == name && p.minor == minor && !p.legacy),
                    "v1.{minor} lacks {name}"
                );
            }
        }
    }

    #[test]
    fn dependencies_are_those_the_real_packages_declare() {
        let deps = |version: &str, name: &str| -> Vec<String> {
            all()
                .into_iter()
                .find(|p| p.name == name && p.version == version)
                .unwrap()
                .depends
                .iter()
                .map(Dependency::deb)
                .filter(|d| d.contains('('))
                .collect()
        };
        assert_eq!(deps("1.8.3", "kubelet"), ["kubernetes-cni (= 0.5.1)"]);
        assert_eq!(deps("1.9.2", "kubelet"), ["kubernetes-cni (>= 0.6.0)"]);
        assert_eq!(
            deps("1.13.12", "kubeadm"),
            [
                "kubelet (>= 1.13.0)",
                "kubectl (>= 1.13.0)",
                "kubernetes-cni (>= 0.7.5)",
                "cri-tools (>= 1.13.0)"
            ]
        );
        assert_eq!(deps("1.31.9", "kubeadm"), ["cri-tools (>= 1.30.0)"]);
        assert_eq!(deps("1.31.9", "kubelet"), ["kubernetes-cni (>= 1.2.0)"]);
    }

    #[test]
    fn the_dropin_reads_kubeadm_flags_from_1_11() {
        let old = super::super::release("1.10.13").unwrap();
        let new = super::super::release("1.11.10").unwrap();
        assert!(!kubeadm_dropin(&old).contains("kubeadm-flags.env"));
        assert!(kubeadm_dropin(&old).contains("--cadvisor-port=0"));
        assert!(kubeadm_dropin(&new).contains("EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env"));
        assert!(kubeadm_dropin(&new).contains("--config=/var/lib/kubelet/config.yaml"));
    }

    /// Line for line what the packages shipped (the upstream files quoted in kubeadm_dropin's comments).
    #[test]
    fn the_dropins_are_the_upstream_files() {
        let new = super::super::release("1.34.2").unwrap();
        let deb_1_11 = "# Note: This dropin only works with kubeadm and kubelet v1.11+\n[Service]\n\
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"\n\
Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"\n\
# This is a file that \"kubeadm init\" and \"kubeadm join\" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically\n\
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\n\
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use\n\
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.\n\
EnvironmentFile=-/etc/default/kubelet\nExecStart=\n\
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS\n";
        assert_eq!(for_format(&kubeadm_dropin(&new), false), deb_1_11);
        assert_eq!(
            for_format(&kubeadm_dropin(&new), true),
            deb_1_11.replace("/etc/default/kubelet", "/etc/sysconfig/kubelet")
        );
        let old = super::super::release("1.9.2").unwrap();
        let rpm_1_8 = "[Service]\n\
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"\n\
Environment=\"KUBELET_SYSTEM_PODS_ARGS=--pod-manifest-path=/etc/kubernetes/manifests --allow-privileged=true\"\n\
Environment=\"KUBELET_NETWORK_ARGS=--network-plugin=cni --cni-conf-dir=/etc/cni/net.d --cni-bin-dir=/opt/cni/bin\"\n\
Environment=\"KUBELET_DNS_ARGS=--cluster-dns=10.96.0.10 --cluster-domain=cluster.local\"\n\
Environment=\"KUBELET_AUTHZ_ARGS=--authorization-mode=Webhook --client-ca-file=/etc/kubernetes/pki/ca.crt\"\n\
Environment=\"KUBELET_CADVISOR_ARGS=--cadvisor-port=0\"\n\
Environment=\"KUBELET_CGROUP_ARGS=--cgroup-driver=systemd\"\n\
Environment=\"KUBELET_CERTIFICATE_ARGS=--rotate-certificates=true --cert-dir=/var/lib/kubelet/pki\"\n\
ExecStart=\n\
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_SYSTEM_PODS_ARGS $KUBELET_NETWORK_ARGS $KUBELET_DNS_ARGS $KUBELET_AUTHZ_ARGS $KUBELET_CADVISOR_ARGS $KUBELET_CGROUP_ARGS $KUBELET_CERTIFICATE_ARGS $KUBELET_EXTRA_ARGS\n";
        assert_eq!(for_format(&kubeadm_dropin(&old), true), rpm_1_8);
        let deb_1_8 = rpm_1_8
            .replace(
                "Environment=\"KUBELET_CGROUP_ARGS=--cgroup-driver=systemd\"\n",
                "",
            )
            .replace(" $KUBELET_CGROUP_ARGS", "");
        assert_eq!(for_format(&kubeadm_dropin(&old), false), deb_1_8);
    }
}
