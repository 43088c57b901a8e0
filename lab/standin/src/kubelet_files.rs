//! The kubelet's files as kubeadm writes them, per release, and which flags each kubelet release
//! accepts. Shared by the lab's provisioning (what `kubeadm init/join` of the starting release
//! wrote), the kubeadm stand-in (what `kubeadm upgrade` rewrites) and the kubelet stand-in (what it
//! refuses).

/// `KUBELET_KUBEADM_ARGS`, read by the drop-in (kubeadm cmd/kubeadm/app/phases/kubelet/flags.go).
pub const FLAGS_ENV: &str = "/var/lib/kubelet/kubeadm-flags.env";
/// The KubeletConfiguration (kubeadm cmd/kubeadm/app/constants: KubeletConfigurationFileName).
pub const CONFIG: &str = "/var/lib/kubelet/config.yaml";
/// Per-node settings kubeadm keeps out of the flags from 1.34 (NodeLocalCRISocket on by default).
pub const INSTANCE_CONFIG: &str = "/var/lib/kubelet/instance-config.yaml";

const CONTAINERD: &str = "unix:///var/run/containerd/containerd.sock";

/// Flags kubeadm's drop-ins and `kubeadm-flags.env` have passed to the kubelet, with the minor whose
/// kubelet no longer has it. A flag outside this list is refused too: stricter than a real kubelet.
const FLAGS: &[(&str, Option<u32>)] = &[
    ("--bootstrap-kubeconfig", None),
    ("--kubeconfig", None),
    ("--config", None),
    ("--pod-manifest-path", None),
    ("--cluster-dns", None),
    ("--cluster-domain", None),
    ("--authorization-mode", None),
    ("--client-ca-file", None),
    ("--rotate-certificates", None),
    ("--cert-dir", None),
    ("--cgroup-driver", None),
    ("--container-runtime-endpoint", None),
    ("--hostname-override", None),
    ("--node-ip", None),
    ("--node-labels", None),
    ("--register-with-taints", None),
    ("--resolv-conf", None),
    ("--fail-swap-on", None),
    // kubernetes/kubernetes PR #65707 (1.12).
    ("--cadvisor-port", Some(12)),
    // CHANGELOG-1.15: "The deprecated Kubelet flag --allow-privileged has been removed".
    ("--allow-privileged", Some(15)),
    // Dockershim's flags went with it in 1.24 (kubernetes/kubernetes PR #106907).
    ("--network-plugin", Some(24)),
    ("--cni-bin-dir", Some(24)),
    ("--cni-conf-dir", Some(24)),
    ("--network-plugin-mtu", Some(24)),
    // CHANGELOG-1.27: "Kubelet: remove deprecated flag --container-runtime" (PR #114017).
    ("--container-runtime", Some(27)),
    // CHANGELOG-1.35: "Removed the --pod-infra-container-image flag" (PR #133779).
    ("--pod-infra-container-image", Some(35)),
];

/// Why a kubelet of `minor` refuses `flag` (`--name` or `--name=value`), if it does; the text is the
/// real kubelet's (cmd/kubelet/app/server.go: "failed to parse kubelet flag: %w", pflag's
/// "unknown flag: --X").
pub fn refusal(minor: u32, flag: &str) -> Option<String> {
    let name = flag.split('=').next().unwrap_or(flag);
    let known = FLAGS
        .iter()
        .any(|(known, removed)| *known == name && removed.is_none_or(|r| minor < r));
    (!known).then(|| format!("failed to parse kubelet flag: unknown flag: {name}"))
}

/// The pause image kubeadm of `minor` named (cmd/kubeadm/app/constants: PauseVersion).
fn pause_image(minor: u32) -> String {
    let (registry, tag) = match minor {
        ..=17 => ("k8s.gcr.io", "3.1"),
        18..=20 => ("k8s.gcr.io", "3.2"),
        21..=22 => ("k8s.gcr.io", "3.5"),
        23..=24 => ("k8s.gcr.io", "3.6"),
        25 => ("registry.k8s.io", "3.8"),
        26..=30 => ("registry.k8s.io", "3.9"),
        _ => ("registry.k8s.io", "3.10"),
    };
    format!("{registry}/pause:{tag}")
}

/// The flags `kubeadm init/join` of `minor` wrote into `kubeadm-flags.env` for a node whose runtime
/// is docker (before 1.24 in the lab) or containerd (from 1.24), per flags.go's history:
/// `--cgroup-driver` 1.11-1.18 (PR #90513), `--network-plugin=cni` for docker until 1.23,
/// `--container-runtime=remote` until 1.25 (PR #112000), `--container-runtime-endpoint` until 1.33
/// (then instance-config.yaml, PR #131981), `--pod-infra-container-image` from 1.13 (docker, PR
/// #70603; every runtime from 1.21) until 1.34 (PR #133778).
pub fn init_flags(minor: u32) -> Vec<String> {
    let mut flags = Vec::new();
    if minor < 11 {
        return flags;
    }
    if minor < 24 {
        if minor <= 18 {
            flags.push("--cgroup-driver=systemd".to_string());
        }
        flags.push("--network-plugin=cni".to_string());
    } else {
        if minor <= 25 {
            flags.push("--container-runtime=remote".to_string());
        }
        if minor <= 33 {
            flags.push(format!("--container-runtime-endpoint={CONTAINERD}"));
        }
    }
    if (13..=34).contains(&minor) {
        flags.push(format!("--pod-infra-container-image={}", pause_image(minor)));
    }
    flags
}

/// The CRI socket `kubeadm init/join` of `minor` put in instance-config.yaml: from 1.34, where the
/// NodeLocalCRISocket feature gate is on by default (kubernetes/kubernetes PR #131981).
pub fn init_instance_endpoint(minor: u32) -> Option<&'static str> {
    (minor >= 34).then_some(CONTAINERD)
}

/// `KUBELET_KUBEADM_ARGS="..."` (flags.go: `fmt.Sprintf("%s=%q\n", ...)`).
pub fn flags_env(flags: &[String]) -> String {
    format!("KUBELET_KUBEADM_ARGS=\"{}\"\n", flags.join(" "))
}

/// The flags of a `kubeadm-flags.env` text.
pub fn parse_flags_env(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("KUBELET_KUBEADM_ARGS="))
        .flat_map(|v| {
            v.trim_matches('"')
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The kubelet's configuration as kubeadm of `minor` writes it (the kubelet-config ConfigMap).
pub fn config_yaml(minor: u32) -> String {
    let mut text = String::from(
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
         authentication:\n  x509:\n    clientCAFile: /etc/kubernetes/pki/ca.crt\n\
         authorization:\n  mode: Webhook\ncgroupDriver: systemd\nclusterDNS:\n- 10.96.0.10\n\
         clusterDomain: cluster.local\nrotateCertificates: true\nstaticPodPath: /etc/kubernetes/manifests\n",
    );
    text.push_str(&format!("# written by kubeadm v1.{minor} (lab stand-in)\n"));
    text
}

/// `instance-config.yaml`: the node's CRI socket (cmd/kubeadm/app/phases/kubelet/config.go).
pub fn instance_config_yaml(endpoint: &str) -> String {
    format!(
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncontainerRuntimeEndpoint: {endpoint}\n"
    )
}

/// What `kubeadm upgrade apply/node` of `minor` does to the flags (cmd/kubeadm/app/phases/upgrade/
/// postupgrade.go): 1.26 removes `--container-runtime` (CleanupKubeletDynamicEnvFileContainerRuntime);
/// from 1.34, without an instance-config.yaml, `--container-runtime-endpoint` moves there
/// (WriteKubeletConfigFiles); 1.35 removes `--pod-infra-container-image` (PR #133778).
/// Returns the new flags and, if one is to be written, the instance configuration's endpoint.
pub fn upgraded_flags(
    minor: u32,
    flags: &[String],
    has_instance_config: bool,
) -> (Vec<String>, Option<String>) {
    let mut kept = Vec::new();
    let mut endpoint = None;
    for flag in flags {
        let name = flag.split('=').next().unwrap_or(flag);
        match name {
            "--container-runtime" if minor == 26 => {}
            "--container-runtime-endpoint" if minor >= 34 && !has_instance_config => {
                endpoint = flag.split_once('=').map(|(_, v)| v.to_string());
            }
            "--pod-infra-container-image" if minor >= 35 => {}
            _ => kept.push(flag.clone()),
        }
    }
    if minor >= 34 && !has_instance_config && endpoint.is_none() {
        endpoint = Some(CONTAINERD.to_string());
    }
    (kept, endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelets_refuse_the_flags_their_release_removed() {
        assert_eq!(refusal(23, "--network-plugin=cni"), None);
        assert_eq!(
            refusal(24, "--network-plugin=cni").as_deref(),
            Some("failed to parse kubelet flag: unknown flag: --network-plugin")
        );
        assert!(refusal(26, "--container-runtime=remote").is_none());
        assert!(refusal(27, "--container-runtime=remote").is_some());
        assert!(refusal(34, "--pod-infra-container-image=x").is_none());
        assert!(refusal(35, "--pod-infra-container-image=x").is_some());
        assert!(refusal(11, "--cadvisor-port=0").is_none());
        assert!(refusal(12, "--cadvisor-port=0").is_some());
        assert!(
            refusal(30, "--made-up-flag").is_some(),
            "an unknown flag is refused"
        );
    }

    #[test]
    fn each_releases_own_flags_start_its_own_kubelet() {
        for minor in 11..=35 {
            for flag in init_flags(minor) {
                assert_eq!(refusal(minor, &flag), None, "1.{minor} refuses its own {flag}");
            }
        }
    }

    #[test]
    fn the_flags_of_one_release_break_the_next_where_upstream_broke() {
        let broken = |from: u32| init_flags(from).iter().any(|f| refusal(from + 1, f).is_some());
        assert!(broken(23), "1.24 drops dockershim's flags");
        assert!(!broken(26), "1.26 no longer writes --container-runtime");
        assert!(broken(34), "1.35 drops --pod-infra-container-image");
        assert!(!broken(30));
    }

    #[test]
    fn upgrades_clean_the_flags_as_kubeadm_does() {
        let (kept, endpoint) = upgraded_flags(35, &init_flags(34), true);
        assert!(kept.iter().all(|f| refusal(35, f).is_none()), "{kept:?}");
        assert_eq!(endpoint, None);
        let (kept, endpoint) = upgraded_flags(34, &init_flags(33), false);
        assert!(!kept.iter().any(|f| f.starts_with("--container-runtime-endpoint")));
        assert_eq!(endpoint.as_deref(), Some(CONTAINERD));
        let (kept, _) = upgraded_flags(26, &init_flags(25), false);
        assert!(!kept.iter().any(|f| f == "--container-runtime=remote"));
        // 1.24's kubeadm leaves dockershim's flags: the operator migrates the runtime first.
        let (kept, _) = upgraded_flags(24, &init_flags(23), false);
        assert!(kept.contains(&"--network-plugin=cni".to_string()));
        assert_eq!(parse_flags_env(&flags_env(&kept)), kept);
    }
}
