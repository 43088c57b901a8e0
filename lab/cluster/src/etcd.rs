//! Real etcd on the lab's control planes: Debian's `etcd-server` (3.4), one member per control plane
//! forming one cluster, TLS with client-certificate auth, in one of two topologies
//! ([`Topology`]):
//!
//! - **stacked** (pkgs.k8s.io era, from 1.24): the flags kubeadm gives its static pod, on the PKI
//!   kubeadm writes. The lab's container runtime is a stand-in that owns no real containers, so etcd
//!   runs as a plain unit, `lab-etcd.service`, with the static pod's command line;
//!   `/etc/kubernetes/manifests/etcd.yaml` carries the same command. kubeadm grows the cluster member
//!   by member (`kubeadm join --control-plane` adds each with `--initial-cluster-state=existing`); the
//!   lab bootstraps every member at once with the whole `--initial-cluster`, which ends in the same
//!   cluster.
//!   On 1.11 and 1.12 labs (`kup-lab up --etcd stacked`) the members are those of the 1.11 HA guide's
//!   "Stacked control plane nodes" (kubernetes/website docs/setup/independent/high-availability.md,
//!   v1.11): each member's URLs and `initial-cluster` as its `etcd.local.extraArgs` give them, the
//!   first alone, each other added with `etcdctl member add` and started with
//!   `initial-cluster-state: existing`, one at a time ([`Bootstrap::OneByOne`]).
//! - **external** (1.8 .. 1.23, the 1.8 -> 1.9 runbook's "running externally"): etcd hosted on the
//!   masters as the 1.9 HA guide's option 2 sets it up (kubernetes/website
//!   docs/setup/independent/high-availability.md, "Creating HA clusters with kubeadm"): cfssl's
//!   files under `/etc/kubernetes/pki/etcd` (`ca.pem`, `client.pem`, `server.pem`, `peer.pem` and
//!   their `-key.pem`), `/etc/etcd.env`, and the guide's `etcd.service`; kubeadm-config names the
//!   members and the client certificate under `etcd:`; no static pod.

use crate::node::RunningNode;
use crate::spec::{LabSpec, NodePlan};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// kubeadm's etcd certificate directory (`<CertificatesDir>/etcd`, cmd/kubeadm/app/constants); the
/// 1.9 HA guide puts the external etcd's cfssl files there too.
pub const PKI_DIR: &str = "/etc/kubernetes/pki/etcd";
/// etcd's data directory (kubeadm's `Etcd.Local.DataDir` default; the 1.9 HA guide's `--data-dir`).
pub const DATA_DIR: &str = "/var/lib/etcd";
/// Debian's etcd-server installs etcd here (the 1.9 HA guide unpacks a release to /usr/local/bin:
/// the lab runs Debian's, as the guide allows: "most distributions of Linux already have a version
/// of etcd installed").
const ETCD: &str = "/usr/bin/etcd";
/// The 1.9 HA guide's environment file for its etcd.service.
pub const ENV_FILE: &str = "/etc/etcd.env";

/// How the lab's control planes run etcd (`kup-lab up --etcd stacked|external`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// kubeadm's stacked etcd: a static pod per control plane (here `lab-etcd.service`).
    Stacked,
    /// An external etcd cluster hosted on the masters, a systemd unit each (the 1.9 HA guide).
    External,
}

/// The first minor whose HA guide stacks etcd on the control planes: kubeadm 1.11's "Creating Highly
/// Available Clusters with kubeadm", "Stacked control plane nodes" (the 1.9/1.10 guide's etcd is
/// external only).
pub const FIRST_STACKED_MINOR: u32 = 11;

impl Topology {
    /// `--etcd stacked|external`.
    pub fn parse(text: &str) -> Result<Topology, String> {
        match text {
            "stacked" | "local" => Ok(Topology::Stacked),
            "external" => Ok(Topology::External),
            other => Err(format!(
                "unknown etcd topology {other:?}: use stacked or external"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Topology::Stacked => "stacked",
            Topology::External => "external",
        }
    }

    /// The lab's choice (`--etcd`), else its era's: the pkgs.k8s.io-era labs (from 1.24) run
    /// stacked etcd, kubeadm's default HA topology in today's docs; the older ones an external etcd,
    /// as the 1.8 -> 1.9 HA runbook does.
    pub fn of(spec: &LabSpec) -> Topology {
        spec.etcd.unwrap_or_else(|| Topology::default_for(&spec.from))
    }

    /// The era's topology for a lab from `from`.
    pub fn default_for(from: &str) -> Topology {
        if crate::spec::minor_of(from) >= 24 {
            Topology::Stacked
        } else {
            Topology::External
        }
    }

    /// The unit that runs the member.
    pub fn unit_name(self) -> &'static str {
        match self {
            Topology::Stacked => "lab-etcd.service",
            // The 1.9 HA guide: `cat >/etc/systemd/system/etcd.service` (over Debian's, disabled in
            // the base tree).
            Topology::External => "etcd.service",
        }
    }

    /// What a client presents, under [`PKI_DIR`]: (CA, certificate, key). Stacked: kubeadm's
    /// healthcheck client; external: the guide's `client` profile certificate, the one kubeadm-config
    /// gives the API server.
    pub fn client_files(self) -> [&'static str; 3] {
        match self {
            Topology::Stacked => ["ca.crt", "healthcheck-client.crt", "healthcheck-client.key"],
            Topology::External => ["ca.pem", "client.pem", "client-key.pem"],
        }
    }

    /// `client_files` as absolute paths.
    pub fn client_paths(self) -> [String; 3] {
        self.client_files().map(|f| format!("{PKI_DIR}/{f}"))
    }

    /// Where the member on `plan` serves clients on that node: kubeadm's static pod listens on
    /// 127.0.0.1 too; the guide's members on the node's private address only.
    pub fn local_url(self, plan: &NodePlan) -> String {
        match self {
            Topology::Stacked => "https://127.0.0.1:2379".to_string(),
            Topology::External => client_url(plan),
        }
    }

    /// Whether the member's unit is enabled before the node boots. The guide's unit is
    /// `Type=notify` without a start timeout: a member is ready only once a quorum runs, so enabled
    /// at boot it would hold the first node's boot until the next one boots, and the lab boots them
    /// one by one. It is started on every control plane at once once they are up instead, as the
    /// guide starts it on all machines (`systemctl start etcd`), and enabled then.
    pub fn starts_at_boot(self) -> bool {
        self == Topology::Stacked
    }
}

/// How stacked members come together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrap {
    /// Every member at once with the whole `--initial-cluster` (the same cluster kubeadm's joins
    /// build, member by member).
    Together,
    /// The 1.11 HA guide's way: `kubeadm init`'s member alone, then per control plane `etcdctl
    /// member add` and its member started with `initial-cluster-state: existing` (stacked labs from
    /// 1.11 and 1.12, whose kubeadm-config keeps the guide's `etcd.local.extraArgs`).
    OneByOne,
}

impl Bootstrap {
    pub fn of(spec: &LabSpec) -> Bootstrap {
        let minor = crate::spec::minor_of(&spec.from);
        if Topology::of(spec) == Topology::Stacked && (FIRST_STACKED_MINOR..=12).contains(&minor) {
            Bootstrap::OneByOne
        } else {
            Bootstrap::Together
        }
    }
}

/// The member's client URL on `plan`'s address.
pub fn client_url(plan: &NodePlan) -> String {
    format!("https://{}:2379", plan.address)
}

/// What a control plane gets to run its member.
pub struct Member {
    /// Absolute path, contents, mode.
    pub files: Vec<(String, String, u32)>,
    /// The unit's file name under /etc/systemd/system, and its text.
    pub unit: (&'static str, String),
    /// The static pod's command (stacked: kubeadm's etcd.yaml carries it).
    pub static_pod: Option<Vec<String>>,
}

/// The lab's etcd CA, kept in memory while the lab comes up; each control plane gets a copy, as
/// kubeadm's `--upload-certs` or a manual copy gives joining control planes (the 1.9 HA guide: `scp`
/// `ca.pem` and `ca-key.pem` from etcd0).
pub struct Ca {
    topology: Topology,
    bootstrap: Bootstrap,
    cert: Certificate,
    key: KeyPair,
}

fn err(e: rcgen::Error) -> String {
    format!("cannot generate etcd certificates: {e}")
}

impl Ca {
    /// Stacked: cmd/kubeadm/app/phases/certs/certlist.go `KubeadmCertEtcdCA`, CN `etcd-ca`.
    /// External: the 1.9 HA guide's `ca-csr.json`, CN `etcd` (its key is RSA 2048; rcgen's backend
    /// here generates ECDSA P-256 only, the guide's choice for its client and server keys).
    pub fn generate(topology: Topology) -> Result<Ca, String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cn = match topology {
            Topology::Stacked => "etcd-ca",
            Topology::External => "etcd",
        };
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.self_signed(&key).map_err(err)?;
        Ok(Ca {
            topology,
            bootstrap: Bootstrap::Together,
            cert,
            key,
        })
    }

    /// The CA of the lab `spec`: its topology, its members brought together as its era's guide does.
    pub fn for_lab(spec: &LabSpec) -> Result<Ca, String> {
        let mut ca = Ca::generate(Topology::of(spec))?;
        ca.bootstrap = Bootstrap::of(spec);
        Ok(ca)
    }

    pub fn topology(&self) -> Topology {
        self.topology
    }

    pub fn bootstrap(&self) -> Bootstrap {
        self.bootstrap
    }

    /// Whether `plan`'s member unit is enabled before the node boots: stacked members brought
    /// together do; one by one, only the first (the others once added, [`wait_and_seed`]); external
    /// ones never ([`Topology::starts_at_boot`]).
    pub fn starts_at_boot(&self, plan: &NodePlan, members: &[NodePlan]) -> bool {
        match (self.topology, self.bootstrap) {
            (Topology::External, _) => false,
            (Topology::Stacked, Bootstrap::Together) => true,
            (Topology::Stacked, Bootstrap::OneByOne) => members.first() == Some(plan),
        }
    }

    /// Everything the control plane `plan` among `members` needs to run its member.
    pub fn member(&self, plan: &NodePlan, members: &[NodePlan]) -> Result<Member, String> {
        let pki = self
            .node_files(plan)?
            .into_iter()
            .map(|(file, text, mode)| (format!("{PKI_DIR}/{file}"), text, mode));
        Ok(match self.topology {
            Topology::Stacked => {
                let command = match self.bootstrap {
                    Bootstrap::Together => command(plan, members),
                    Bootstrap::OneByOne => guide_command(plan, members),
                };
                Member {
                    files: pki.collect(),
                    unit: (Topology::Stacked.unit_name(), unit(&command)),
                    static_pod: Some(command),
                }
            }
            Topology::External => Member {
                files: pki
                    .chain(std::iter::once((ENV_FILE.to_string(), env_file(plan), 0o644)))
                    .collect(),
                unit: (
                    Topology::External.unit_name(),
                    external_unit(&external_command(members)),
                ),
                static_pod: None,
            },
        })
    }

    /// The certificate files under [`PKI_DIR`] on `plan`: (file name, contents, mode). Keys 0600.
    pub fn node_files(&self, plan: &NodePlan) -> Result<Vec<(&'static str, String, u32)>, String> {
        match self.topology {
            Topology::Stacked => self.stacked_files(plan),
            Topology::External => self.external_files(plan),
        }
    }

    /// The files kubeadm writes under `/etc/kubernetes/pki/etcd` on a control plane with stacked
    /// etcd.
    fn stacked_files(&self, plan: &NodePlan) -> Result<Vec<(&'static str, String, u32)>, String> {
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
        let (server, server_key) = self.leaf(&plan.name, None, sans.clone(), SERVER)?;
        let (peer, peer_key) = self.leaf(&plan.name, None, sans, SERVER)?;
        // `KubeadmCertEtcdHealthcheck`: CN kube-etcd-healthcheck-client, O system:masters, client
        // usage only.
        let (health, health_key) = self.leaf(
            "kube-etcd-healthcheck-client",
            Some("system:masters"),
            Vec::new(),
            CLIENT,
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

    /// What the 1.9 HA guide's cfssl steps leave in `/etc/kubernetes/pki/etcd` on each master
    /// hosting etcd (cfssljson writes keys 0600, certificates 0644; its csr and json files are left
    /// out).
    fn external_files(&self, plan: &NodePlan) -> Result<Vec<(&'static str, String, u32)>, String> {
        // `client.json`: CN client, profile client (signing, key encipherment, client auth).
        let (client, client_key) = self.leaf("client", None, Vec::new(), CLIENT)?;
        // `cfssl print-defaults csr` with the seds: CN and the first host the peer name
        // ($(hostname)), the second its private address; profiles server and peer (signing, key
        // encipherment, server auth, client auth). Neither localhost nor 127.0.0.1.
        let sans = vec![
            SanType::DnsName(plan.name.clone().try_into().map_err(err)?),
            SanType::IpAddress(IpAddr::V4(plan.address)),
        ];
        let (server, server_key) = self.leaf(&plan.name, None, sans.clone(), SERVER)?;
        let (peer, peer_key) = self.leaf(&plan.name, None, sans, SERVER)?;
        Ok(vec![
            ("ca.pem", self.cert.pem(), 0o644),
            ("ca-key.pem", self.key.serialize_pem(), 0o600),
            ("client.pem", client, 0o644),
            ("client-key.pem", client_key, 0o600),
            ("server.pem", server, 0o644),
            ("server-key.pem", server_key, 0o600),
            ("peer.pem", peer, 0o644),
            ("peer-key.pem", peer_key, 0o600),
        ])
    }

    fn leaf(
        &self,
        cn: &str,
        org: Option<&str>,
        sans: Vec<SanType>,
        usages: &[ExtendedKeyUsagePurpose],
    ) -> Result<(String, String), String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(org) = org {
            params.distinguished_name.push(DnType::OrganizationName, org);
        }
        params.subject_alt_names = sans;
        params.extended_key_usages = usages.to_vec();
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.signed_by(&key, &self.cert, &self.key).map_err(err)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Server and peer certificates: server and client auth.
const SERVER: &[ExtendedKeyUsagePurpose] = &[
    ExtendedKeyUsagePurpose::ServerAuth,
    ExtendedKeyUsagePurpose::ClientAuth,
];
/// Client certificates: client auth only.
const CLIENT: &[ExtendedKeyUsagePurpose] = &[ExtendedKeyUsagePurpose::ClientAuth];

/// `--initial-cluster`: every member's name and peer URL.
fn initial_cluster(members: &[NodePlan]) -> String {
    let all: Vec<String> = members
        .iter()
        .map(|m| format!("{}=https://{}:2380", m.name, m.address))
        .collect();
    all.join(",")
}

/// Stacked: etcd's command line as kubeadm writes it into the static pod (cmd/kubeadm/app/phases/
/// etcd/local.go `getEtcdCommand`, its arguments sorted by name as `ArgumentsToCommand` does), for
/// `plan` among the control planes `members`. etcd 3.4 knows `--watch-progress-notify-interval`
/// only by its experimental name.
pub fn command(plan: &NodePlan, members: &[NodePlan]) -> Vec<String> {
    let ip = plan.address;
    let pki = |file: &str| format!("{PKI_DIR}/{file}");
    let mut args = vec![
        ("advertise-client-urls", format!("https://{ip}:2379")),
        ("cert-file", pki("server.crt")),
        ("client-cert-auth", "true".into()),
        ("data-dir", DATA_DIR.into()),
        ("experimental-initial-corrupt-check", "true".into()),
        ("experimental-watch-progress-notify-interval", "5s".into()),
        ("initial-advertise-peer-urls", format!("https://{ip}:2380")),
        ("initial-cluster", initial_cluster(members)),
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

/// The 1.11 HA guide's `etcd.local.extraArgs` for `plan` among the control planes `members` (in
/// join order): its own URLs, `initial-cluster` of the members up to it, and from the second on
/// `initial-cluster-state: existing` (kubernetes/website docs/setup/independent/high-availability.md
/// of v1.11, "Stacked control plane nodes"). Sorted by name.
pub fn guide_extra_args(plan: &NodePlan, members: &[NodePlan]) -> Vec<(&'static str, String)> {
    let ip = plan.address;
    let upto = members
        .iter()
        .position(|m| m == plan)
        .map_or(members.len(), |i| i + 1);
    let mut args = vec![
        ("advertise-client-urls", format!("https://{ip}:2379")),
        ("initial-advertise-peer-urls", format!("https://{ip}:2380")),
        ("initial-cluster", initial_cluster(&members[..upto])),
        (
            "listen-client-urls",
            format!("https://127.0.0.1:2379,https://{ip}:2379"),
        ),
        ("listen-peer-urls", format!("https://{ip}:2380")),
    ];
    if upto > 1 {
        args.push(("initial-cluster-state", "existing".into()));
    }
    args.sort();
    args
}

/// Stacked, 1.11: the static pod's command as kubeadm 1.11 wrote it with the guide's extraArgs
/// (cmd/kubeadm/app/phases/etcd/local.go `getEtcdCommand` of v1.11: its defaults, which
/// `Etcd.Local.ExtraArgs` override, sorted by `ArgumentsToCommand`).
pub fn guide_command(plan: &NodePlan, members: &[NodePlan]) -> Vec<String> {
    let pki = |file: &str| format!("{PKI_DIR}/{file}");
    let mut args: Vec<(&str, String)> = vec![
        ("cert-file", pki("server.crt")),
        ("client-cert-auth", "true".into()),
        ("data-dir", DATA_DIR.into()),
        ("key-file", pki("server.key")),
        ("name", plan.name.clone()),
        ("peer-cert-file", pki("peer.crt")),
        ("peer-client-cert-auth", "true".into()),
        ("peer-key-file", pki("peer.key")),
        ("peer-trusted-ca-file", pki("ca.crt")),
        ("snapshot-count", "10000".into()),
        ("trusted-ca-file", pki("ca.crt")),
    ];
    args.extend(guide_extra_args(plan, members));
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

/// External: the 1.9 HA guide's `ExecStart` (its systemd tab), word by word, for the masters
/// `members` (`${PEER_NAME}` and `${PRIVATE_IP}` come from [`ENV_FILE`]). Only on the private
/// address, not 127.0.0.1.
pub fn external_command(members: &[NodePlan]) -> Vec<String> {
    let pki = |file: &str| format!("{PKI_DIR}/{file}");
    let mut words: Vec<String> = vec!["etcd".into(), "--name".into(), "${PEER_NAME}".into()];
    for (flag, value) in [
        ("--data-dir", DATA_DIR.to_string()),
        ("--listen-client-urls", "https://${PRIVATE_IP}:2379".into()),
        ("--advertise-client-urls", "https://${PRIVATE_IP}:2379".into()),
        ("--listen-peer-urls", "https://${PRIVATE_IP}:2380".into()),
        (
            "--initial-advertise-peer-urls",
            "https://${PRIVATE_IP}:2380".into(),
        ),
    ] {
        words.extend([flag.to_string(), value]);
    }
    words.extend([
        format!("--cert-file={}", pki("server.pem")),
        format!("--key-file={}", pki("server-key.pem")),
        "--client-cert-auth".into(),
        format!("--trusted-ca-file={}", pki("ca.pem")),
        format!("--peer-cert-file={}", pki("peer.pem")),
        format!("--peer-key-file={}", pki("peer-key.pem")),
        "--peer-client-cert-auth".into(),
        format!("--peer-trusted-ca-file={}", pki("ca.pem")),
        "--initial-cluster".into(),
        initial_cluster(members),
        "--initial-cluster-token".into(),
        "my-etcd-token".into(),
        "--initial-cluster-state".into(),
        "new".into(),
    ]);
    words
}

/// The 1.9 HA guide's `/etc/etcd.env`: `PEER_NAME=$(hostname)`, `PRIVATE_IP` (the node's address on
/// the private network).
pub fn env_file(plan: &NodePlan) -> String {
    format!("PEER_NAME={}\nPRIVATE_IP={}\n", plan.name, plan.address)
}

/// The 1.9 HA guide's `/etc/systemd/system/etcd.service`, as written there but for etcd's path
/// (Debian's).
pub fn external_unit(command: &[String]) -> String {
    let mut exec = command.to_vec();
    exec[0] = ETCD.to_string();
    format!(
        "[Unit]\nDescription=etcd\nDocumentation=https://github.com/coreos/etcd\nConflicts=etcd.service\n\
         Conflicts=etcd2.service\n\n[Service]\nEnvironmentFile={ENV_FILE}\nType=notify\nRestart=always\n\
         RestartSec=5s\nLimitNOFILE=40000\nTimeoutStartSec=0\n\nExecStart={}\n\n[Install]\n\
         WantedBy=multi-user.target\n",
        exec.join(" ")
    )
}

/// The external etcd as kubeadm-config's `etcd:` names it (the 1.9 HA guide's `config.yaml`:
/// `endpoints`, `caFile`, `certFile`, `keyFile`), for the lab API server's seed; None for stacked
/// etcd (kubeadm-config keeps `etcd.local`).
pub fn kubeadm_config(topology: Topology, members: &[NodePlan]) -> Option<serde_json::Value> {
    if topology != Topology::External {
        return None;
    }
    let [ca, cert, key] = topology.client_paths();
    let endpoints: Vec<String> = members.iter().map(client_url).collect();
    Some(serde_json::json!({
        "endpoints": endpoints,
        "caFile": ca,
        "certFile": cert,
        "keyFile": key,
    }))
}

/// The inventory's host variables that name the control plane's etcd for `kup` and `upgrade.yml`
/// (`etcd_endpoint`, `etcd_cacert`, `etcd_cert`, `etcd_key`): an external member's own client URL
/// and the client certificate; none for stacked etcd (kubeadm's healthcheck client, the default).
pub fn inventory_vars(topology: Topology, plan: &NodePlan) -> Vec<(&'static str, String)> {
    if topology != Topology::External || !plan.control_plane {
        return Vec::new();
    }
    let [ca, cert, key] = topology.client_paths();
    vec![
        ("etcd_endpoint", client_url(plan)),
        ("etcd_cacert", ca),
        ("etcd_cert", cert),
        ("etcd_key", key),
    ]
}

/// etcdctl with the topology's client certificates, at `endpoints`, then `args`.
pub fn etcdctl<'a>(topology: Topology, endpoints: &'a str, args: &[&'a str]) -> Vec<String> {
    let [ca, cert, key] = topology.client_paths();
    let mut out: Vec<String> = vec![
        "env".into(),
        "ETCDCTL_API=3".into(),
        "etcdctl".into(),
        format!("--endpoints={endpoints}"),
        format!("--cacert={ca}"),
        format!("--cert={cert}"),
        format!("--key={key}"),
        "--dial-timeout=2s".into(),
        "--command-timeout=3s".into(),
    ];
    out.extend(args.iter().map(|a| a.to_string()));
    out
}

/// Starts the members whose unit does not start at boot (external: `systemctl enable --now` on
/// every control plane, not waiting for each; stacked one by one: each after the first is added
/// with `etcdctl member add` through the first, then started and waited for, as the 1.11 HA guide
/// does), then waits until every control plane's member answers `endpoint health` (a quorum read),
/// then seeds a few keys so that a snapshot has content.
pub fn wait_and_seed(
    topology: Topology,
    bootstrap: Bootstrap,
    control_planes: &[&RunningNode],
    limit: Duration,
) -> Result<(), String> {
    let unit = topology.unit_name();
    if !topology.starts_at_boot() {
        for node in control_planes {
            node.exec(
                &["systemctl", "enable", "--now", "--no-block", unit],
                Duration::from_secs(30),
            )?;
        }
    }
    let deadline = Instant::now() + limit;
    let Some(first) = control_planes.first() else {
        return Ok(());
    };
    let first_url = topology.local_url(&first.plan);
    for (i, node) in control_planes.iter().enumerate() {
        if topology == Topology::Stacked && bootstrap == Bootstrap::OneByOne && i > 0 {
            // The guide: `etcdctl ... member add CP_HOSTNAME https://CP_IP:2380` on the first, then
            // `kubeadm alpha phase etcd local` (the static pod) on the new one.
            let peer = format!("--peer-urls=https://{}:2380", node.plan.address);
            let add = etcdctl(topology, &first_url, &["member", "add", &node.plan.name, &peer]);
            let add: Vec<&str> = add.iter().map(String::as_str).collect();
            retry(first, &add, unit, deadline, limit)?;
            node.exec(&["systemctl", "enable", "--now", unit], Duration::from_secs(30))?;
        }
        let url = topology.local_url(&node.plan);
        let local = etcdctl(topology, &url, &["endpoint", "health"]);
        let local: Vec<&str> = local.iter().map(String::as_str).collect();
        retry(node, &local, unit, deadline, limit)?;
    }
    for (key, value) in SEED {
        let put = etcdctl(topology, &first_url, &["put", key, value]);
        let put: Vec<&str> = put.iter().map(String::as_str).collect();
        first.exec(&put, Duration::from_secs(10))?;
    }
    Ok(())
}

/// Runs `command` on `node` until it succeeds or `deadline` passes (then says so with the last lines
/// of the member's journal).
fn retry(
    node: &RunningNode,
    command: &[&str],
    unit: &str,
    deadline: Instant,
    limit: Duration,
) -> Result<(), String> {
    loop {
        match node.exec(command, Duration::from_secs(10)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                let journal = node
                    .exec(
                        &["journalctl", "-u", unit, "-n", "5", "--no-pager", "-o", "cat"],
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
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
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
    fn the_1_11_guides_members_join_one_by_one_with_its_extra_args() {
        let members = [plan(1), plan(2), plan(3)];
        assert_eq!(
            guide_extra_args(&members[0], &members),
            [
                ("advertise-client-urls", "https://10.213.0.11:2379".to_string()),
                (
                    "initial-advertise-peer-urls",
                    "https://10.213.0.11:2380".to_string()
                ),
                ("initial-cluster", "lab-cp1=https://10.213.0.11:2380".to_string()),
                (
                    "listen-client-urls",
                    "https://127.0.0.1:2379,https://10.213.0.11:2379".to_string()
                ),
                ("listen-peer-urls", "https://10.213.0.11:2380".to_string()),
            ]
        );
        let third = guide_command(&members[2], &members);
        assert_eq!(third[0], "etcd");
        // Sorted by name, as kubeadm's ArgumentsToCommand does.
        let names: Vec<&str> = third[1..]
            .iter()
            .filter_map(|a| a.split_once('='))
            .map(|a| a.0)
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, names);
        for want in [
            "--initial-cluster=lab-cp1=https://10.213.0.11:2380,lab-cp2=https://10.213.0.12:2380,\
             lab-cp3=https://10.213.0.13:2380",
            "--initial-cluster-state=existing",
            "--listen-client-urls=https://127.0.0.1:2379,https://10.213.0.13:2379",
            "--name=lab-cp3",
            "--client-cert-auth=true",
            "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
        ] {
            assert!(third.iter().any(|c| c == want), "{want} missing: {third:?}");
        }
        let second = guide_command(&members[1], &members);
        assert!(second.contains(
            &"--initial-cluster=lab-cp1=https://10.213.0.11:2380,lab-cp2=https://10.213.0.12:2380"
                .to_string()
        ));
        assert!(!guide_command(&members[0], &members)
            .iter()
            .any(|c| c.starts_with("--initial-cluster-state")));
        // Only the first member's unit is enabled at boot; the others once added.
        let mut spec = crate::spec::test_spec("1.11.10");
        spec.etcd = Some(Topology::Stacked);
        let ca = Ca::for_lab(&spec).unwrap();
        assert_eq!(ca.bootstrap(), Bootstrap::OneByOne);
        assert!(ca.starts_at_boot(&members[0], &members));
        assert!(!ca.starts_at_boot(&members[1], &members));
        let member = ca.member(&members[1], &members).unwrap();
        assert_eq!(member.static_pod.as_deref(), Some(second.as_slice()));
        assert_eq!(member.unit.0, "lab-etcd.service");
        assert!(member
            .files
            .iter()
            .any(|f| f.0 == "/etc/kubernetes/pki/etcd/healthcheck-client.key"));
        let together = Ca::generate(Topology::Stacked).unwrap();
        assert!(together.starts_at_boot(&members[1], &members));
    }

    #[test]
    fn the_pki_has_kubeadms_names_and_private_keys() {
        let ca = Ca::generate(Topology::Stacked).unwrap();
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

    #[test]
    fn topologies_follow_the_era() {
        let spec = crate::spec::test_spec;
        for (from, want) in [
            ("1.8.3", Topology::External),
            ("1.10.13", Topology::External),
            ("1.23.17", Topology::External),
            ("1.24.17", Topology::Stacked),
            ("1.35.1", Topology::Stacked),
        ] {
            assert_eq!(Topology::of(&spec(from)), want, "{from}");
        }
        assert_eq!(Topology::Stacked.unit_name(), "lab-etcd.service");
        assert_eq!(Topology::External.unit_name(), "etcd.service");
        assert!(Topology::Stacked.starts_at_boot() && !Topology::External.starts_at_boot());
        // `--etcd` overrides the era's choice; the 1.11 HA guide's one-by-one joins on 1.11, 1.12.
        let with = |from: &str, etcd| crate::spec::LabSpec {
            etcd: Some(etcd),
            ..spec(from)
        };
        assert_eq!(
            Topology::of(&with("1.11.10", Topology::Stacked)),
            Topology::Stacked
        );
        assert_eq!(
            Topology::of(&with("1.34.2", Topology::External)),
            Topology::External
        );
        for (from, etcd, want) in [
            ("1.11.10", Topology::Stacked, Bootstrap::OneByOne),
            ("1.12.10", Topology::Stacked, Bootstrap::OneByOne),
            ("1.13.12", Topology::Stacked, Bootstrap::Together),
            ("1.11.10", Topology::External, Bootstrap::Together),
            ("1.34.2", Topology::Stacked, Bootstrap::Together),
        ] {
            assert_eq!(Bootstrap::of(&with(from, etcd)), want, "{from} {etcd:?}");
        }
        assert_eq!(
            Bootstrap::of(&spec("1.12.10")),
            Bootstrap::Together,
            "external by default"
        );
        assert_eq!(Topology::parse("stacked"), Ok(Topology::Stacked));
        assert_eq!(Topology::parse("external"), Ok(Topology::External));
        assert!(Topology::parse("etcd").is_err());
        assert_eq!(Topology::Stacked.local_url(&plan(2)), "https://127.0.0.1:2379");
        assert_eq!(Topology::External.local_url(&plan(2)), "https://10.213.0.12:2379");
    }

    #[test]
    fn the_external_member_is_the_1_9_ha_guides() {
        let members = [plan(1), plan(2), plan(3)];
        let cmd = external_command(&members);
        let text = cmd.join(" ");
        assert_eq!(
            text,
            "etcd --name ${PEER_NAME} --data-dir /var/lib/etcd \
             --listen-client-urls https://${PRIVATE_IP}:2379 \
             --advertise-client-urls https://${PRIVATE_IP}:2379 \
             --listen-peer-urls https://${PRIVATE_IP}:2380 \
             --initial-advertise-peer-urls https://${PRIVATE_IP}:2380 \
             --cert-file=/etc/kubernetes/pki/etcd/server.pem \
             --key-file=/etc/kubernetes/pki/etcd/server-key.pem --client-cert-auth \
             --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.pem \
             --peer-cert-file=/etc/kubernetes/pki/etcd/peer.pem \
             --peer-key-file=/etc/kubernetes/pki/etcd/peer-key.pem --peer-client-cert-auth \
             --peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.pem \
             --initial-cluster lab-cp1=https://10.213.0.11:2380,lab-cp2=https://10.213.0.12:2380,\
             lab-cp3=https://10.213.0.13:2380 --initial-cluster-token my-etcd-token \
             --initial-cluster-state new"
        );
        assert!(
            !text.contains("127.0.0.1"),
            "the guide's members listen on the private address only"
        );
        let unit = external_unit(&cmd);
        for want in [
            "EnvironmentFile=/etc/etcd.env\n",
            "Type=notify\n",
            "TimeoutStartSec=0\n",
            "Restart=always\n",
            "\nExecStart=/usr/bin/etcd --name ${PEER_NAME} --data-dir /var/lib/etcd ",
            "WantedBy=multi-user.target\n",
        ] {
            assert!(unit.contains(want), "{want:?} missing:\n{unit}");
        }
        assert_eq!(env_file(&plan(2)), "PEER_NAME=lab-cp2\nPRIVATE_IP=10.213.0.12\n");

        let ca = Ca::generate(Topology::External).unwrap();
        let member = ca.member(&members[1], &members).unwrap();
        assert_eq!(member.unit.0, "etcd.service");
        assert!(member.static_pod.is_none(), "an external etcd has no static pod");
        let paths: Vec<&str> = member.files.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/etc/kubernetes/pki/etcd/ca.pem",
                "/etc/kubernetes/pki/etcd/ca-key.pem",
                "/etc/kubernetes/pki/etcd/client.pem",
                "/etc/kubernetes/pki/etcd/client-key.pem",
                "/etc/kubernetes/pki/etcd/server.pem",
                "/etc/kubernetes/pki/etcd/server-key.pem",
                "/etc/kubernetes/pki/etcd/peer.pem",
                "/etc/kubernetes/pki/etcd/peer-key.pem",
                "/etc/etcd.env",
            ]
        );
        for (path, text, mode) in &member.files {
            if path.ends_with("-key.pem") {
                assert_eq!(*mode, 0o600, "{path}");
                assert!(text.contains("PRIVATE KEY"), "{path}");
            } else if path.ends_with(".pem") {
                assert_eq!(*mode, 0o644, "{path}");
                assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{path}");
            }
        }
        let stacked = Ca::generate(Topology::Stacked)
            .unwrap()
            .member(&members[0], &members)
            .unwrap();
        assert_eq!(stacked.unit.0, "lab-etcd.service");
        assert!(stacked.static_pod.is_some());
        assert!(stacked.files.iter().all(|f| f.0.starts_with(PKI_DIR)));
    }

    #[test]
    fn kubeadm_config_and_the_inventory_name_the_external_members_and_the_client_certificate() {
        let members = [plan(1), plan(2)];
        assert_eq!(kubeadm_config(Topology::Stacked, &members), None);
        assert_eq!(
            kubeadm_config(Topology::External, &members).unwrap(),
            serde_json::json!({
                "endpoints": ["https://10.213.0.11:2379", "https://10.213.0.12:2379"],
                "caFile": "/etc/kubernetes/pki/etcd/ca.pem",
                "certFile": "/etc/kubernetes/pki/etcd/client.pem",
                "keyFile": "/etc/kubernetes/pki/etcd/client-key.pem",
            })
        );
        assert!(inventory_vars(Topology::Stacked, &plan(1)).is_empty());
        let worker = NodePlan {
            control_plane: false,
            ..plan(3)
        };
        assert!(inventory_vars(Topology::External, &worker).is_empty());
        assert_eq!(
            inventory_vars(Topology::External, &plan(2)),
            [
                ("etcd_endpoint", "https://10.213.0.12:2379".to_string()),
                ("etcd_cacert", "/etc/kubernetes/pki/etcd/ca.pem".to_string()),
                ("etcd_cert", "/etc/kubernetes/pki/etcd/client.pem".to_string()),
                ("etcd_key", "/etc/kubernetes/pki/etcd/client-key.pem".to_string()),
            ]
        );
        let ctl = etcdctl(
            Topology::External,
            "https://10.213.0.11:2379",
            &["endpoint", "health"],
        );
        assert!(
            ctl.contains(&"--cert=/etc/kubernetes/pki/etcd/client.pem".to_string()),
            "{ctl:?}"
        );
        assert!(ctl.ends_with(&["endpoint".to_string(), "health".to_string()]));
    }
}
