//! The base tree every node's overlay sits on: Debian bookworm (minbase + systemd, sshd, iproute2,
//! dnf/rpm for the rpm flavour, and etcd 3.4 from `etcd-server`/`etcd-client` for the control planes
//! of stacked-etcd labs), debootstrapped once and cached under a name derived from its recipe.

use crate::sh;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SUITE: &str = "bookworm";
// The kubelet package's system dependencies are real Debian packages (iptables .. conntrack, ebtables).
const PACKAGES: &str = "systemd,systemd-sysv,dbus,openssh-server,iproute2,dnf,rpm,dnf-plugins-core,python3,\
                        iptables,socat,ethtool,conntrack,ebtables,mount,util-linux,etcd-server,etcd-client";
/// Bump when `finish` changes, so that cached trees are rebuilt.
const SETUP_REVISION: &str = "4";

/// Returns the cached base tree, building it first if its recipe has no complete tree yet.
pub fn ensure(cache: &Path, mirror: Option<&str>) -> Result<PathBuf, String> {
    let name = format!(
        "base-{}",
        sh::digest(&[SUITE.as_bytes(), PACKAGES.as_bytes(), SETUP_REVISION.as_bytes()])
    );
    let dir = cache.join(&name);
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    let mirror = mirror.map(str::to_string).unwrap_or_else(host_mirror);
    let building = cache.join(format!("{name}.building"));
    if building.exists() {
        std::fs::remove_dir_all(&building).map_err(|e| format!("{}: {e}", building.display()))?;
    }
    std::fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    sh::progress(&format!(
        "building the base tree (debootstrap {SUITE} from {mirror}; about 2 minutes, once)"
    ));
    let target = building.to_string_lossy().into_owned();
    sh::run_for(
        "debootstrap",
        &[
            "--variant=minbase",
            &format!("--include={PACKAGES}"),
            SUITE,
            &target,
            &mirror,
        ],
        Duration::from_secs(1800),
    )
    .map_err(|e| format!("debootstrap failed: {e}"))?;
    finish(&building)?;
    sh::write(&building.join(".complete"), SETUP_REVISION)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::rename(&building, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// What every node shares: networkd for the static address, no internet apt sources, dnf made
/// usable on Debian (its `local` plugin breaks gpgcheck), `yum` as dnf, a per-boot machine id, and
/// Debian's own etcd.service disabled (stacked-etcd control planes run `lab-etcd.service`, etcd with
/// kubeadm's flags), its data directory empty.
fn finish(root: &Path) -> Result<(), String> {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let chroot = root.to_string_lossy().into_owned();
    sh::run(
        "chroot",
        &[&chroot, "systemctl", "enable", "systemd-networkd.service"],
    )?;
    sh::run("chroot", &[&chroot, "systemctl", "disable", "etcd.service"])?;
    let data = at(crate::etcd::DATA_DIR);
    if data.exists() {
        std::fs::remove_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
    }
    std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(|e| format!("{}: {e}", data.display()))?;
    // Nothing in a node may reach out: only the lab's own repository will be configured.
    sh::write(&at("/etc/apt/sources.list"), "")?;
    let _ = std::fs::remove_file(at("/etc/apt/sources.list.d/debian.sources"));
    sh::write(&at("/etc/dnf/plugins/local.conf"), "[main]\nenabled=0\n")?;
    sh::write(
        &at("/etc/dnf/dnf.conf"),
        "[main]\ngpgcheck=1\ninstall_weak_deps=False\nbest=True\nskip_if_unavailable=False\n",
    )?;
    if !at("/usr/bin/yum").exists() {
        std::os::unix::fs::symlink("dnf", at("/usr/bin/yum")).map_err(|e| format!("yum link: {e}"))?;
    }
    // Empty: each boot gets its own, so overlays of one tree are distinct machines.
    sh::write(&at("/etc/machine-id"), "")?;
    sh::write(
        &at("/etc/ssh/sshd_config.d/kup-lab.conf"),
        "PermitRootLogin prohibit-password\nUseDNS no\n",
    )?;
    Ok(())
}

/// The Debian mirror the host's apt uses, so the lab builds from the same place; else the default.
fn host_mirror() -> String {
    let deb822 = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default();
    let from_deb822 = deb822
        .lines()
        .filter_map(|l| l.strip_prefix("URIs:"))
        .flat_map(str::split_whitespace)
        .find(|u| u.trim_end_matches('/').ends_with("/debian"));
    let classic = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    let from_classic = classic.lines().find_map(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        (words.first() == Some(&"deb") && words.get(2) == Some(&SUITE))
            .then(|| words.get(1).copied())
            .flatten()
    });
    from_deb822
        .or(from_classic)
        .unwrap_or("http://deb.debian.org/debian")
        .to_string()
}
