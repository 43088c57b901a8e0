//! Real etcd on the control planes of stacked-etcd labs (pkgs.k8s.io era, from 1.24): Debian's
//! `etcd-server` (3.4) run with the flags kubeadm gives its static pod, on the PKI kubeadm writes,
//! one member per control plane forming one cluster.
//!
//! The lab's container runtime is a stand-in that owns no real containers, so etcd runs as a plain
//! unit, `lab-etcd.service`, with the static pod's command line; `/etc/kubernetes/manifests/etcd.yaml`
//! carries the same command. kubeadm grows the cluster member by member (`kubeadm join
//! --control-plane` adds each with `--initial-cluster-state=existing`); the lab bootstraps every
//! member at once with the whole `--initial-cluster`, which ends in the same cluster.

use crate::node::RunningNode;
use crate::spec::{LabSpec, NodePlan};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// kubeadm's etcd certificate directory (`<CertificatesDir>/etcd`, cmd/kubeadm/app/constants).
pub const PKI_DIR: &str = "/etc/kubernetes/pki/etcd";
/// The unit that plays etcd's static pod.
pub const UNIT: &str = "lab-etcd.service";
/// etcd's data directory (kubeadm's `Etcd.Local.DataDir` default).
pub const DATA_DIR: &str = "/var/lib/etcd";
/// Debian's etcd-server installs etcd here.
const ETCD: &str = "/usr/bin/etcd";

/// Whether the lab's control planes run stacked etcd: the pkgs.k8s.io-era labs; the older ones use
/// an external etcd, as the 1.8 -> 1.9 HA runbook does, and run none.
pub fn stacked(spec: &LabSpec) -> bool {
    crate::spec::minor_of(&spec.from) >= 24
}

/// The lab's etcd CA (`etcd/ca`), kept in memory while the lab comes up; each control plane gets a
/// copy, as kubeadm's `--upload-certs` or a manual copy gives joining control planes.
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn err(e: rcgen::Error) -> String {
    format!("cannot generate etcd certificates: {e}")
}

impl Ca {
    /// cmd/kubeadm/app/phases/certs/certlist.go `KubeadmCertEtcdCA`: CN `etcd-ca`.
    pub fn generate() -> Result<Ca, String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "etcd-ca");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.self_signed(&key).map_err(err)?;
        Ok(Ca { cert, key })
    }

    /// The files kubeadm writes under `/etc/kubernetes/pki/etcd` on a control plane with stacked
    /// etcd: (file name, contents, mode). Keys 0600.
    pub fn node_files(&self, plan: &NodePlan) -> Result<Vec<(&'static str, String, u32)>, String> {
        // certlist.go: `KubeadmCertEtcdServer` and `KubeadmCertEtcdPeer` have the node's name as CN,
        // server and client usages, and (pkiutil GetEtcdAltNames / GetEtcdPeerAltNames) the node's
        // name, localhost, its advertise address, 127.0.0.1 and ::1 as SANs.
        let sans = vec![
            SanType::DnsName(plan.name.clone().try_into().map_err(err)?),
            SanType::DnsName("localhost".to_string().try_into().map_err(err)?),
            SanType::IpAddress(IpAddr::V4(plan.address)),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ];
        let both = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let (server, server_key) = self.leaf(&plan.name, None, sans.clone(), both.clone())?;
        let (peer, peer_key) = self.leaf(&plan.name, None, sans, both)?;
        // `KubeadmCertEtcdHealthcheck`: CN kube-etcd-healthcheck-client, O system:masters, client
        // usage only.
        let (health, health_key) = self.leaf(
            "kube-etcd-healthcheck-client",
            Some("system:masters"),
            Vec::new(),
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        )?;
        Ok(vec![
            ("ca.crt", self.cert.pem(), 0o644),
            ("ca.key", self.key.serialize_pem(), 0o600),
            ("server.crt", server, 0o644),
            ("server.key", server_key, 0o600),
            ("peer.crt", peer, 0o644),
            ("peer.key", peer_key, 0o600),
            ("healthcheck-client.crt", health, 0o644),
            ("healthcheck-client.key", health_key, 0o600),
        ])
    }

    fn leaf(
        &self,
        cn: &str,
        org: Option<&str>,
        sans: Vec<SanType>,
        usages: Vec<ExtendedKeyUsagePurpose>,
    ) -> Result<(String, String), String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(org) = org {
            params.distinguished_name.push(DnType::OrganizationName, org);
        }
        params.subject_alt_names = sans;
        params.extended_key_usages = usages;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.signed_by(&key, &self.cert, &self.key).map_err(err)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// etcd's command line as kubeadm writes it into the static pod (cmd/kubeadm/app/phases/etcd/
/// local.go `getEtcdCommand`, its arguments sorted by name as `ArgumentsToCommand` does), for
/// `plan` among the control planes `members`. etcd 3.4 knows `--watch-progress-notify-interval`
/// only by its experimental name.
pub fn command(plan: &NodePlan, members: &[NodePlan]) -> Vec<String> {
    let ip = plan.address;
    let pki = |file: &str| format!("{PKI_DIR}/{file}");
    let initial: Vec<String> = members
        .iter()
        .map(|m| format!("{}=https://{}:2380", m.name, m.address))
        .collect();
    let mut args = vec![
        ("advertise-client-urls", format!("https://{ip}:2379")),
        ("cert-file", pki("server.crt")),
        ("client-cert-auth", "true".into()),
        ("data-dir", DATA_DIR.into()),
        ("experimental-initial-corrupt-check", "true".into()),
        ("experimental-watch-progress-notify-interval", "5s".into()),
        ("initial-advertise-peer-urls", format!("https://{ip}:2380")),
        ("initial-cluster", initial.join(",")),
        ("key-file", pki("server.key")),
        (
            "listen-client-urls",
            format!("https://127.0.0.1:2379,https://{ip}:2379"),
        ),
        ("listen-metrics-urls", "http://127.0.0.1:2381".into()),
        ("listen-peer-urls", format!("https://{ip}:2380")),
        ("name", plan.name.clone()),
        ("peer-cert-file", pki("peer.crt")),
        ("peer-client-cert-auth", "true".into()),
        ("peer-key-file", pki("peer.key")),
        ("peer-trusted-ca-file", pki("ca.crt")),
        ("snapshot-count", "10000".into()),
        ("trusted-ca-file", pki("ca.crt")),
    ];
    args.sort();
    std::iter::once("etcd".to_string())
        .chain(args.into_iter().map(|(k, v)| format!("--{k}={v}")))
        .collect()
}

/// The static pod manifest kubeadm writes (abridged to what the lab reads: image and command).
pub fn manifest(image: &str, command: &[String]) -> String {
    let lines: String = command.iter().map(|c| format!("    - {c}\n")).collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\n  namespace: kube-system\nspec:\n  \
         hostNetwork: true\n  containers:\n  - name: etcd\n    image: {image}\n    command:\n{lines}"
    )
}

/// `lab-etcd.service`: the static pod's command as a unit. Not `Type=notify` (Debian's etcd.service
/// is): the first member becomes ready only once a quorum has booted, and nodes boot one by one.
/// A failed start (its address not yet up) is retried as the kubelet restarts a pod.
pub fn unit(command: &[String]) -> String {
    let mut exec = command.to_vec();
    exec[0] = ETCD.to_string();
    format!(
        "[Unit]\nDescription=etcd as kubeadm's static pod runs it (lab: a unit, the runtime is a stand-in)\n\
         After=network.target\nStartLimitIntervalSec=0\n\n[Service]\nExecStart={}\nRestart=always\n\
         RestartSec=1\nLimitNOFILE=65536\n\n[Install]\nWantedBy=multi-user.target\n",
        exec.join(" ")
    )
}

/// etcdctl with the healthcheck client's certificates, at `endpoints`, then `args`.
pub fn etcdctl<'a>(endpoints: &'a str, args: &[&'a str]) -> Vec<String> {
    let mut out: Vec<String> = vec![
        "env".into(),
        "ETCDCTL_API=3".into(),
        "etcdctl".into(),
        format!("--endpoints={endpoints}"),
        format!("--cacert={PKI_DIR}/ca.crt"),
        format!("--cert={PKI_DIR}/healthcheck-client.crt"),
        format!("--key={PKI_DIR}/healthcheck-client.key"),
        "--dial-timeout=2s".into(),
        "--command-timeout=3s".into(),
    ];
    out.extend(args.iter().map(|a| a.to_string()));
    out
}

/// Waits until every control plane's member answers `endpoint health` (a quorum read), then seeds
/// a few keys so that a snapshot has content.
pub fn wait_and_seed(control_planes: &[&RunningNode], limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    for node in control_planes {
        let local = etcdctl("https://127.0.0.1:2379", &["endpoint", "health"]);
        let local: Vec<&str> = local.iter().map(String::as_str).collect();
        loop {
            match node.exec(&local, Duration::from_secs(10)) {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => {
                    let journal = node
                        .exec(
                            &["journalctl", "-u", UNIT, "-n", "5", "--no-pager", "-o", "cat"],
                            Duration::from_secs(10),
                        )
                        .unwrap_or_default();
                    return Err(format!(
                        "etcd on {} not healthy within {} s: {e}\n{journal}",
                        node.plan.name,
                        limit.as_secs()
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
    let Some(first) = control_planes.first() else {
        return Ok(());
    };
    for (key, value) in SEED {
        let put = etcdctl("https://127.0.0.1:2379", &["put", key, value]);
        let put: Vec<&str> = put.iter().map(String::as_str).collect();
        first.exec(&put, Duration::from_secs(10))?;
    }
    Ok(())
}

/// What the lab puts into etcd: a few keys in the API server's layout.
const SEED: &[(&str, &str)] = &[
    (
        "/registry/namespaces/default",
        "{\"kind\":\"Namespace\",\"metadata\":{\"name\":\"default\"}}",
    ),
    (
        "/registry/namespaces/kube-system",
        "{\"kind\":\"Namespace\",\"metadata\":{\"name\":\"kube-system\"}}",
    ),
    (
        "/registry/configmaps/kube-system/kubeadm-config",
        "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"kubeadm-config\"}}",
    ),
    ("/registry/lab/seed", "kup-lab"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(n: u8) -> NodePlan {
        NodePlan {
            name: format!("lab-cp{n}"),
            control_plane: true,
            address: Ipv4Addr::new(10, 213, 0, 10 + n),
        }
    }

    #[test]
    fn the_command_is_kubeadms_sorted_with_every_member() {
        let members = [plan(1), plan(2)];
        let cmd = command(&members[1], &members);
        assert_eq!(cmd[0], "etcd");
        let mut sorted = cmd[1..].to_vec();
        sorted.sort();
        assert_eq!(sorted, cmd[1..]);
        for want in [
            "--initial-cluster=lab-cp1=https://10.213.0.11:2380,lab-cp2=https://10.213.0.12:2380",
            "--listen-client-urls=https://127.0.0.1:2379,https://10.213.0.12:2379",
            "--advertise-client-urls=https://10.213.0.12:2379",
            "--client-cert-auth=true",
            "--peer-client-cert-auth=true",
            "--data-dir=/var/lib/etcd",
            "--snapshot-count=10000",
            "--name=lab-cp2",
            "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
        ] {
            assert!(cmd.iter().any(|c| c == want), "{want} missing: {cmd:?}");
        }
        assert!(unit(&cmd).contains("ExecStart=/usr/bin/etcd --advertise-client-urls="));
        assert!(manifest("registry.k8s.io/etcd:3.5.21-0", &cmd).contains("    - --name=lab-cp2\n"));
    }

    #[test]
    fn the_pki_has_kubeadms_names_and_private_keys() {
        let ca = Ca::generate().unwrap();
        let files = ca.node_files(&plan(1)).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.0).collect();
        assert_eq!(
            names,
            [
                "ca.crt",
                "ca.key",
                "server.crt",
                "server.key",
                "peer.crt",
                "peer.key",
                "healthcheck-client.crt",
                "healthcheck-client.key"
            ]
        );
        for (name, text, mode) in &files {
            if name.ends_with(".key") {
                assert_eq!(*mode, 0o600, "{name}");
                assert!(text.contains("PRIVATE KEY"), "{name}");
            } else {
                assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{name}");
            }
        }
    }
}
