//! `kubeadm upgrade node` as each release has it, and the kubelet files kubeadm's upgrades write:
//! - `upgrade node config --kubelet-version V`: 1.11-1.17 (kubernetes/kubernetes PR #64624; removed
//!   in 1.18 by PR #87975);
//! - `upgrade node experimental-control-plane`: 1.12-1.15 (PR #66973; deprecated by PR #78408);
//! - `upgrade node` itself: from 1.15 (PR #78408); on 1.11-1.14 it is only a parent command (the lab
//!   refuses it, where the real one printed its help);
//! - `--kubelet-version` on `upgrade node`: until 1.19 (removed by PR #94869).

use crate::kubeadm::{misbehave_if_asked, upgrade_this_control_plane, Cluster};
use crate::{hostname, say};
use kube_version::Version;
use lab_standin::kubelet_files;
use std::path::Path;

const APISERVER_MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";

pub fn main(own: Version, args: &[&str]) -> Result<(), String> {
    let minor = own.minor;
    if minor < 11 {
        return Err("unknown command \"node\" for \"kubeadm upgrade\"".into());
    }
    let mut words = Vec::new();
    let mut kubelet_version = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (*arg, None::<&str>),
        };
        match name {
            "--kubelet-version" if minor <= 19 => {
                let value = inline.or_else(|| it.next().copied());
                kubelet_version = Some(
                    value
                        .and_then(Version::parse)
                        .ok_or("invalid argument for \"--kubelet-version\" flag")?,
                );
            }
            "--dry-run"
            | "--certificate-renewal"
            | "--etcd-upgrade"
            | "--ignore-preflight-errors"
            | "--skip-phases"
            | "--patches"
            | "--kubeconfig"
            | "-v"
            | "--v" => {
                if inline.is_none() && !matches!(name, "--dry-run") {
                    it.next();
                }
            }
            flag if flag.starts_with('-') => return Err(format!("unknown flag: {flag}")),
            word => words.push(word),
        }
    }
    match words.as_slice() {
        ["config"] if minor <= 17 => {
            let target = kubelet_version.ok_or("required flag(s) \"kubelet-version\" not set")?;
            write_kubelet_files(own, target)?;
            say("[upgrade] The configuration for this node was successfully updated!");
            say("[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.");
            Ok(())
        }
        ["experimental-control-plane"] if (12..=15).contains(&minor) => {
            let cluster = Cluster::read()?;
            let target = stored_target(&cluster, own)?;
            require_control_plane()?;
            // This node's API endpoint from ClusterStatus (the 1.12 -> 1.13 HA page adds every
            // control plane there before the first apply; lab/standin src/kubeadm_etcd.rs).
            let me = cluster.me(&hostname())?;
            crate::kubeadm_etcd::check_control_plane_node(cluster.data(), &me.node)?;
            misbehave_if_asked()?;
            upgrade_this_control_plane(&cluster, &hostname(), target)?;
            say("[upgrade] The control plane instance for this node was successfully updated!");
            Ok(())
        }
        [] if minor >= 15 => node(own, kubelet_version),
        [] => Err(format!(
            "kubeadm {own} (lab stand-in): `kubeadm upgrade node` needs a subcommand in this release: \
             config or experimental-control-plane (`upgrade node` alone arrived in 1.15)"
        )),
        [word, ..] => Err(format!("unknown command \"{word}\" for \"kubeadm upgrade node\"")),
    }
}

/// The cluster's version as kubeadm stored it, which this kubeadm must not be older than.
fn stored_target(cluster: &Cluster, own: Version) -> Result<Version, String> {
    let target = cluster
        .stored_field("kubernetesVersion")
        .and_then(|v| Version::parse_reported(&v))
        .ok_or("[upgrade] FATAL: kubeadm-config has no kubernetesVersion")?;
    if target > own {
        return Err(format!(
            "[upgrade] FATAL: the cluster is at {target} but this kubeadm is {own}: upgrade kubeadm first"
        ));
    }
    Ok(target)
}

fn require_control_plane() -> Result<(), String> {
    if Path::new(APISERVER_MANIFEST).exists() {
        Ok(())
    } else {
        Err(format!(
            "[upgrade] FATAL: this node is not a control plane ({APISERVER_MANIFEST} is missing)"
        ))
    }
}

fn node(own: Version, kubelet_version: Option<Version>) -> Result<(), String> {
    let cluster = Cluster::read()?;
    let target = stored_target(&cluster, own)?;
    if Path::new(APISERVER_MANIFEST).exists() {
        misbehave_if_asked()?;
        crate::realistic_wait(
            "kubeadm upgrade node (control plane)",
            lab_standin::timing::KUBEADM_NODE_CONTROL_PLANE_SECONDS,
        );
        upgrade_this_control_plane(&cluster, &hostname(), target)?;
        say("[upgrade] The control plane instance for this node was successfully updated!");
        crate::addons::upgrade(&cluster, own, target, false)?;
    } else {
        say("[upgrade] Skipping phase. Not a control plane node.");
        crate::realistic_wait(
            "kubeadm upgrade node (worker)",
            lab_standin::timing::KUBEADM_NODE_WORKER_SECONDS,
        );
    }
    write_kubelet_files(own, kubelet_version.unwrap_or(target))?;
    say("[upgrade] The configuration for this node was successfully updated!");
    say("[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.");
    Ok(())
}

/// What kubeadm `own` writes for the kubelet of `target` during an upgrade
/// (cmd/kubeadm/app/phases/upgrade/postupgrade.go): the old config.yaml backed up under
/// /etc/kubernetes/tmp, the new one written, kubeadm-flags.env cleaned of what the new kubelet
/// refuses, and from 1.34 the CRI socket moved to instance-config.yaml.
pub fn write_kubelet_files(own: Version, target: Version) -> Result<(), String> {
    if own.minor < 11 {
        return Ok(());
    }
    let config = Path::new(kubelet_files::CONFIG);
    if config.exists() {
        let backup =
            Path::new("/etc/kubernetes/tmp").join(format!("kubeadm-kubelet-config{}", std::process::id()));
        std::fs::create_dir_all(&backup).map_err(|e| format!("{}: {e}", backup.display()))?;
        std::fs::copy(config, backup.join("config.yaml"))
            .map_err(|e| format!("{}: {e}", backup.display()))?;
        say(&format!(
            "[upgrade] Backing up kubelet config file to {}/config.yaml",
            backup.display()
        ));
    }
    say(&format!(
        "[kubelet] Downloading configuration for the kubelet from the \"kubelet-config-1.{}\" ConfigMap in the kube-system namespace",
        target.minor
    ));
    write_atomically(config, &kubelet_files::config_yaml(target.minor))?;
    say(&format!(
        "[kubelet] Writing kubelet configuration to file \"{}\"",
        kubelet_files::CONFIG
    ));
    let env = Path::new(kubelet_files::FLAGS_ENV);
    let flags = std::fs::read_to_string(env)
        .map(|t| kubelet_files::parse_flags_env(&t))
        .unwrap_or_default();
    let instance = Path::new(kubelet_files::INSTANCE_CONFIG);
    let (kept, endpoint) = kubelet_files::upgraded_flags(own.minor, &flags, instance.exists());
    if kept != flags {
        write_atomically(env, &kubelet_files::flags_env(&kept))?;
        say(&format!(
            "[upgrade] Removed flags the kubelet {target} no longer accepts from {}",
            kubelet_files::FLAGS_ENV
        ));
    }
    if let Some(endpoint) = endpoint {
        write_atomically(instance, &kubelet_files::instance_config_yaml(&endpoint))?;
        say(&format!(
            "[kubelet] Writing instance configuration to file \"{}\"",
            kubelet_files::INSTANCE_CONFIG
        ));
    }
    Ok(())
}

fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let staged = path.with_extension("kubeadm-upgrade");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&staged, text)
        .and_then(|()| std::fs::rename(&staged, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    /// Subcommands a release does not have are refused before anything is read from the cluster.
    #[test]
    fn subcommands_exist_only_in_their_releases() {
        let refused = |version: &str, args: &[&str]| main(v(version), args).unwrap_err();
        assert!(refused("v1.10.13", &[]).contains("unknown command \"node\" for \"kubeadm upgrade\""));
        assert!(refused("v1.13.12", &[]).contains("needs a subcommand"));
        assert!(refused("v1.11.10", &["experimental-control-plane"]).contains("unknown command"));
        assert!(refused("v1.16.0", &["experimental-control-plane"]).contains("unknown command"));
        assert!(refused("v1.18.0", &["config", "--kubelet-version", "v1.18.0"])
            .contains("unknown command \"config\""));
        assert!(refused("v1.20.0", &["config", "--kubelet-version", "v1.20.0"])
            .contains("unknown flag: --kubelet-version"));
        assert!(refused("v1.13.12", &["config"]).contains("required flag(s) \"kubelet-version\""));
        assert!(refused("v1.30.2", &["--made-up"]).contains("unknown flag: --made-up"));
    }
}
