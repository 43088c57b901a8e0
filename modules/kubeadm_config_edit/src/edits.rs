//! What the HA upgrade page of the target's minor asks of `kube-system/kubeadm-config` before this
//! control plane's kubeadm runs, decided from the stored documents and the control planes alone
//! (no I/O, so every case is a unit test):
//!
//! - 1.11 -> 1.12, stacked etcd, first control plane (kubernetes/website
//!   kubeadm-upgrade-ha-1-12.md "Upgrade the first control plane node"): in 1.11's
//!   `MasterConfiguration`, `api.advertiseAddress` and the four etcd URL `extraArgs` point at this
//!   node, `initial-cluster` names every control plane, `initial-cluster-state: existing`.
//! - 1.11 -> 1.12, stacked, the others ("Upgrading additional control plane nodes"): the four URLs
//!   in the `ClusterConfiguration` the first apply wrote, this node in `ClusterStatus.apiEndpoints`,
//!   and the Node's cri-socket annotation.
//! - 1.11 -> 1.12, external etcd ("External etcd"): every control plane runs `kubeadm upgrade apply
//!   --config FILE`, FILE holding the configuration with `api.advertiseAddress` of this node.
//! - 1.12 -> 1.13, stacked, first (kubeadm-upgrade-ha-1-13.md): the `etcd` section of
//!   `ClusterConfiguration` removed, every control plane in `ClusterStatus.apiEndpoints`. The others
//!   and external etcd: nothing.

use std::collections::BTreeMap;

use kube_version::Version;
use serde_norway::Value;

use kubeadm_yaml::{get, Op};

/// etcd's ports (kubeadm's `constants.EtcdListenClientPort`, `EtcdListenPeerPort`).
const CLIENT_PORT: u16 = 2379;
const PEER_PORT: u16 = 2380;
/// The API server's port kubeadm writes into `ClusterStatus` when none is known.
const API_PORT: u16 = 6443;
/// What kubeadm's local etcd listens on when `extraArgs` says nothing (kubeadm 1.11/1.12
/// cmd/kubeadm/app/phases/etcd/local.go `getEtcdCommand`): the API server's `--etcd-servers`.
const LOOPBACK_CLIENT: &str = "https://127.0.0.1:2379";

/// The annotation the 1.12 page puts on the other control planes' Nodes.
pub const CRI_SOCKET_ANNOTATION: &str = "kubeadm.alpha.kubernetes.io/cri-socket";

/// A control-plane node and its InternalIP (what kubeadm advertises), if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlane {
    pub name: String,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    Stacked,
    External,
}

impl Topology {
    pub fn name(self) -> &'static str {
        match self {
            Topology::Stacked => "stacked",
            Topology::External => "external",
        }
    }
}

/// What the decision starts from.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// `(major, minor)` of the target.
    pub target: (u32, u32),
    /// The ConfigMap's data.
    pub data: &'a BTreeMap<String, String>,
    /// This node.
    pub node: &'a str,
    pub first: bool,
    /// Every control plane (this node among them), sorted by name.
    pub control_planes: &'a [ControlPlane],
    /// This Node's cri-socket annotation now.
    pub annotation: Option<&'a str>,
    pub cri_socket: &'a str,
    /// The `--config` file as it is now (None: not there).
    pub config_file_now: Option<&'a str>,
}

/// A data key of the ConfigMap rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocEdit {
    pub key: String,
    pub before: String,
    pub after: String,
}

/// What to change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    pub topology: Option<Topology>,
    /// What was found, and why nothing (more) is asked.
    pub lead: String,
    /// The ConfigMap's documents to rewrite.
    pub docs: Vec<DocEdit>,
    /// What changes, one human line each (the config file's are added by the caller).
    pub edits: Vec<String>,
    /// This Node's cri-socket annotation to set (it differs now).
    pub annotate: Option<String>,
    /// The `--config` file's content, when the page asks for one; and what it changes against the
    /// stored configuration.
    pub config_file: Option<(String, Vec<String>)>,
}

const MASTER: &str = "MasterConfiguration";
const CLUSTER: &str = "ClusterConfiguration";
const STATUS: &str = "ClusterStatus";

/// The edits the target's page asks for here.
pub fn decide(f: &Facts) -> Result<Decision, String> {
    let stored = Stored::read(f.data)?;
    let topology = stored.topology()?;
    let mut d = Decision {
        topology: Some(topology),
        ..Decision::default()
    };
    let version = stored.version();
    let shown_version = version
        .map(|v| v.to_string())
        .unwrap_or_else(|| "no kubernetesVersion".into());
    match (f.target, topology) {
        ((1, 12), Topology::External) => {
            d.lead = "external etcd: the 1.12 HA page has every control plane run `kubeadm upgrade apply \
                      --config` with its own api.advertiseAddress"
                .into();
            d.config_file = Some(config_file(f, &stored)?);
        }
        ((1, 12), Topology::Stacked) if f.first => {
            let Some((text, doc)) = &stored.master else {
                if stored.cluster.is_some() && version.is_some_and(|v| v.minor >= 12) {
                    d.lead = format!(
                        "kubeadm-config already holds a ClusterConfiguration at {shown_version}: the first \
                         control plane's `kubeadm upgrade apply` has run, nothing is left to edit for it"
                    );
                    return Ok(d);
                }
                return Err(format!(
                    "kubeadm-config has no {MASTER} (kubeadm 1.11's) to edit for 1.12"
                ));
            };
            require_api_version(doc, MASTER, "kubeadm.k8s.io/v1alpha2", "1.11")?;
            let ip = own_ip(f)?;
            let mut ops = vec![Op::set(&["api", "advertiseAddress"], ip.as_str())];
            let args = get(doc, &["etcd", "local", "extraArgs"]);
            ops.extend(url_ops(args, &ip));
            let cluster = initial_cluster(f.control_planes)?;
            let keep = get(doc, &["etcd", "local", "extraArgs", "initial-cluster"])
                .and_then(Value::as_str)
                .is_some_and(|old| same_members(old, &cluster));
            if !keep {
                ops.push(Op::set(&extra_arg("initial-cluster"), cluster.as_str()));
            }
            ops.push(Op::set(&extra_arg("initial-cluster-state"), "existing"));
            d.lead = "stacked etcd, first control plane (1.11 -> 1.12)".into();
            d.rewrite(MASTER, text, &ops)?;
        }
        ((1, 12), Topology::Stacked) => {
            let (Some((text, doc)), Some((status_text, _))) = (&stored.cluster, &stored.status) else {
                if stored.master.is_some() {
                    // Asked early (kup asks every control plane before the first apply, for an
                    // external etcd's files): this node's edits follow the first apply.
                    d.lead = format!(
                        "stacked etcd, another control plane: kubeadm-config still holds 1.11's {MASTER}, \
                         so its edits come after the first control plane's `kubeadm upgrade apply`"
                    );
                    return Ok(d);
                }
                return Err(format!("kubeadm-config has no {STATUS} to add {} to", f.node));
            };
            require_minor(version, 12, &shown_version)?;
            let ip = own_ip(f)?;
            let ops = url_ops(get(doc, &["etcd", "local", "extraArgs"]), &ip);
            d.lead = "stacked etcd, another control plane (1.11 -> 1.12)".into();
            d.rewrite(CLUSTER, text, &ops)?;
            let me = ControlPlane {
                name: f.node.to_string(),
                ip: Some(ip),
            };
            d.rewrite(
                STATUS,
                status_text,
                &endpoint_ops(stored.status_doc(), std::slice::from_ref(&me))?,
            )?;
            if f.annotation != Some(f.cri_socket) {
                d.edits.push(format!(
                    "node {}: annotation {CRI_SOCKET_ANNOTATION}: {} -> {}",
                    f.node,
                    f.annotation.unwrap_or("(none)"),
                    f.cri_socket
                ));
                d.annotate = Some(f.cri_socket.to_string());
            }
        }
        ((1, 13), Topology::External) => {
            d.lead = "external etcd: the 1.13 HA page asks no kubeadm-config edit".into();
        }
        ((1, 13), Topology::Stacked) if !f.first => {
            d.lead = "stacked etcd, another control plane: the 1.13 HA page asks no kubeadm-config edit \
                      (`kubeadm upgrade node experimental-control-plane` reads it as it is)"
                .into();
        }
        ((1, 13), Topology::Stacked) => {
            let Some((text, _)) = &stored.cluster else {
                return Err(format!(
                    "kubeadm-config has no {CLUSTER}: is the cluster at 1.12 (it holds {})?",
                    stored.keys()
                ));
            };
            if version.is_some_and(|v| v.minor >= 13) {
                d.lead = format!(
                    "kubeadm-config already says {shown_version}: the first control plane's `kubeadm upgrade \
                     apply` has run, nothing is left to edit for it"
                );
                return Ok(d);
            }
            require_minor(version, 12, &shown_version)?;
            let Some((status_text, _)) = &stored.status else {
                return Err(format!(
                    "kubeadm-config has no {STATUS} to add the control planes to"
                ));
            };
            d.lead = "stacked etcd, first control plane (1.12 -> 1.13)".into();
            d.rewrite(CLUSTER, text, &[Op::remove(&["etcd"])])?;
            d.rewrite(
                STATUS,
                status_text,
                &endpoint_ops(stored.status_doc(), f.control_planes)?,
            )?;
        }
        ((major, minor), _) => {
            d.lead = format!("no kubeadm-config edit for {major}.{minor}");
        }
    }
    Ok(d)
}

impl Decision {
    /// `ops` on the document under `key`: recorded when they change it.
    fn rewrite(&mut self, key: &str, text: &str, ops: &[Op]) -> Result<(), String> {
        let (after, said) = kubeadm_yaml::edit(text, ops).map_err(|e| format!("{key}: {e}"))?;
        if said.is_empty() {
            return Ok(());
        }
        self.edits.extend(said.into_iter().map(|s| format!("{key}: {s}")));
        self.docs.push(DocEdit {
            key: key.to_string(),
            before: text.to_string(),
            after,
        });
        Ok(())
    }
}

fn extra_arg(name: &str) -> [&str; 4] {
    ["etcd", "local", "extraArgs", name]
}

/// An address in a URL (IPv6 in brackets).
fn host(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// The four URLs that name this node; the loopback client URL is kept where etcd listens on it
/// now (`https://127.0.0.1:2379,https://IP:2379`, as the HA guide's own configuration has it).
fn url_ops(args: Option<&Value>, ip: &str) -> Vec<Op> {
    let h = host(ip);
    let listen = match args.and_then(|a| a.get("listen-client-urls")) {
        Some(Value::String(old)) if !old.split(',').any(|u| u.trim() == LOOPBACK_CLIENT) => {
            format!("https://{h}:{CLIENT_PORT}")
        }
        _ => format!("{LOOPBACK_CLIENT},https://{h}:{CLIENT_PORT}"),
    };
    vec![
        Op::set(
            &extra_arg("advertise-client-urls"),
            format!("https://{h}:{CLIENT_PORT}"),
        ),
        Op::set(
            &extra_arg("initial-advertise-peer-urls"),
            format!("https://{h}:{PEER_PORT}"),
        ),
        Op::set(&extra_arg("listen-client-urls"), listen),
        Op::set(&extra_arg("listen-peer-urls"), format!("https://{h}:{PEER_PORT}")),
    ]
}

/// `name1=https://IP1:2380,name2=...`: every control plane, by name.
fn initial_cluster(cps: &[ControlPlane]) -> Result<String, String> {
    cps.iter()
        .map(|c| {
            let ip = c.ip.as_deref().ok_or_else(|| no_ip(&c.name))?;
            Ok(format!("{}=https://{}:{PEER_PORT}", c.name, host(ip)))
        })
        .collect::<Result<Vec<_>, String>>()
        .map(|v| v.join(","))
}

/// The same members in another order is no change.
fn same_members(a: &str, b: &str) -> bool {
    let set = |s: &str| {
        let mut v: Vec<String> = s.split(',').map(|m| m.trim().to_string()).collect();
        v.sort();
        v
    };
    set(a) == set(b)
}

/// An entry in `ClusterStatus.apiEndpoints` for each of `cps` that has none (one that is there is
/// kubeadm's own, and kept).
fn endpoint_ops(status: Option<&Value>, cps: &[ControlPlane]) -> Result<Vec<Op>, String> {
    let endpoints = status.and_then(|s| get(s, &["apiEndpoints"]));
    let mut ops = Vec::new();
    for cp in cps {
        if endpoints
            .and_then(|e| e.get(cp.name.as_str()))
            .is_some_and(|v| !v.is_null())
        {
            continue;
        }
        let ip = cp.ip.as_deref().ok_or_else(|| no_ip(&cp.name))?;
        ops.push(Op::set(&["apiEndpoints", &cp.name, "advertiseAddress"], ip));
        ops.push(Op::set(
            &["apiEndpoints", &cp.name, "bindPort"],
            u64::from(API_PORT),
        ));
    }
    Ok(ops)
}

fn no_ip(node: &str) -> String {
    format!("node {node} has no InternalIP address in its status")
}

fn own_ip(f: &Facts) -> Result<String, String> {
    f.control_planes
        .iter()
        .find(|c| c.name == f.node)
        .ok_or_else(|| format!("node {} is not among the control planes", f.node))?
        .ip
        .clone()
        .ok_or_else(|| no_ip(f.node))
}

fn require_api_version(doc: &Value, key: &str, want: &str, release: &str) -> Result<(), String> {
    let found = get(doc, &["apiVersion"]).and_then(Value::as_str);
    if found == Some(want) {
        return Ok(());
    }
    Err(format!(
        "{key}: apiVersion is {}, not {want} (kubeadm {release}'s): the cluster is not at {release}",
        found.unwrap_or("(none)")
    ))
}

fn require_minor(version: Option<Version>, minor: u32, shown: &str) -> Result<(), String> {
    match version {
        Some(v) if v.major == 1 && v.minor == minor => Ok(()),
        _ => Err(format!(
            "{CLUSTER}: kubernetesVersion is {shown}, not 1.{minor}: these edits are for a cluster at 1.{minor}"
        )),
    }
}

/// The --config file for `kubeadm upgrade apply` on this node (1.12, external etcd). The 1.12 HA page: "Get a copy of the kubeadm config used to create this cluster ... The config
/// must exist on every control plane node before the upgrade begins" (1.11's MasterConfiguration,
/// with this node's `api.advertiseAddress`). Once the first apply has replaced it with 1.12's
/// documents, the copy written before is kept; without one there is nothing faithful to write.
fn config_file(f: &Facts, stored: &Stored) -> Result<(String, Vec<String>), String> {
    let ip = own_ip(f)?;
    let Some((text, doc)) = &stored.master else {
        let kept = f.config_file_now.filter(|text| {
            kubeadm_yaml::parse(text).is_ok_and(|doc| {
                get(&doc, &["kind"]).and_then(Value::as_str) == Some(MASTER)
                    && get(&doc, &["api", "advertiseAddress"]).and_then(Value::as_str) == Some(ip.as_str())
            })
        });
        return match kept {
            Some(text) => Ok((text.to_string(), Vec::new())),
            None => Err(format!(
                "kubeadm-config no longer holds 1.11's {MASTER} (the first control plane's apply uploaded \
                 1.12's documents) and this node has no copy of it with its api.advertiseAddress {ip}: the \
                 1.12 HA page has the copy made on every control plane before the upgrade begins; write \
                 it from a backup of kubeadm-config (kup and upgrade.yml make it before the first apply)"
            )),
        };
    };
    let mut ops = vec![Op::set(&["api", "advertiseAddress"], ip.as_str())];
    // 1.11 uploads no node name, but a config naming another node would have kubeadm wait for
    // that node's static pods here.
    if get(doc, &["nodeRegistration", "name"]).is_some_and(|n| n.as_str() != Some(f.node)) {
        ops.push(Op::set(&["nodeRegistration", "name"], f.node));
    }
    kubeadm_yaml::edit(text, &ops).map_err(|e| format!("{MASTER}: {e}"))
}

/// The documents kubeadm stored, parsed.
struct Stored {
    master: Option<(String, Value)>,
    cluster: Option<(String, Value)>,
    status: Option<(String, Value)>,
    keys: Vec<String>,
}

impl Stored {
    fn read(data: &BTreeMap<String, String>) -> Result<Stored, String> {
        let doc = |key: &str| -> Result<Option<(String, Value)>, String> {
            match data.get(key) {
                Some(text) => kubeadm_yaml::parse(text)
                    .map(|v| Some((text.clone(), v)))
                    .map_err(|e| format!("{key} is not valid YAML: {e}")),
                None => Ok(None),
            }
        };
        let stored = Stored {
            master: doc(MASTER)?,
            cluster: doc(CLUSTER)?,
            status: doc(STATUS)?,
            keys: data.keys().cloned().collect(),
        };
        if stored.master.is_none() && stored.cluster.is_none() {
            return Err(format!(
                "kubeadm-config has neither {MASTER} nor {CLUSTER} (its keys: {}): is it kubeadm's?",
                stored.keys()
            ));
        }
        Ok(stored)
    }

    fn keys(&self) -> String {
        if self.keys.is_empty() {
            "none".into()
        } else {
            self.keys.join(", ")
        }
    }

    /// The configuration kubeadm reads (the newer one when, oddly, both are there).
    fn config(&self) -> &Value {
        match (&self.cluster, &self.master) {
            (Some((_, doc)), _) | (None, Some((_, doc))) => doc,
            (None, None) => &Value::Null,
        }
    }

    fn status_doc(&self) -> Option<&Value> {
        self.status.as_ref().map(|(_, v)| v)
    }

    fn version(&self) -> Option<Version> {
        get(self.config(), &["kubernetesVersion"])
            .and_then(Value::as_str)
            .and_then(Version::parse_reported)
    }

    /// External etcd when the configuration names one: `etcd.external` (v1alpha2 on), or the
    /// flat `etcd.endpoints` of v1alpha1; stacked otherwise (kubeadm's default is a local etcd).
    fn topology(&self) -> Result<Topology, String> {
        let which = if self.cluster.is_some() { CLUSTER } else { MASTER };
        let Some(etcd) = get(self.config(), &["etcd"]) else {
            return Ok(Topology::Stacked);
        };
        match etcd {
            Value::Null => Ok(Topology::Stacked),
            Value::Mapping(m) => {
                if m.get("external").is_some_and(|v| !v.is_null()) {
                    return Ok(Topology::External);
                }
                match m.get("endpoints") {
                    Some(Value::Sequence(s)) if !s.is_empty() => Ok(Topology::External),
                    None | Some(Value::Null) | Some(Value::Sequence(_)) => Ok(Topology::Stacked),
                    Some(other) => Err(format!(
                        "{which}: etcd.endpoints is {}, expected a list",
                        kubeadm_yaml::kind(other)
                    )),
                }
            }
            other => Err(format!(
                "{which}: etcd is {}, expected a mapping",
                kubeadm_yaml::kind(other)
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    /// kubeadm 1.11's uploaded MasterConfiguration of a stacked HA cluster (the 1.11 HA guide's
    /// `kubeadm-config.yaml`, as kubeadm writes it back).
    const V1ALPHA2: &str = "api:
  advertiseAddress: 10.0.0.11
  bindPort: 6443
  controlPlaneEndpoint: lb:6443
apiVersion: kubeadm.k8s.io/v1alpha2
certificatesDir: /etc/kubernetes/pki
etcd:
  local:
    dataDir: /var/lib/etcd
    extraArgs:
      advertise-client-urls: https://10.0.0.11:2379
      initial-advertise-peer-urls: https://10.0.0.11:2380
      initial-cluster: cp1=https://10.0.0.11:2380
      listen-client-urls: https://127.0.0.1:2379,https://10.0.0.11:2379
      listen-peer-urls: https://10.0.0.11:2380
    image: \"\"
kind: MasterConfiguration
kubernetesVersion: v1.11.3
networking:
  podSubnet: 10.244.0.0/16
unifiedControlPlaneImage: \"\"
";

    /// kubeadm 1.12's v1alpha3 documents after the first control plane's apply.
    const V1ALPHA3: &str = "apiServerExtraArgs:
  authorization-mode: Node,RBAC
apiVersion: kubeadm.k8s.io/v1alpha3
controlPlaneEndpoint: lb:6443
etcd:
  local:
    dataDir: /var/lib/etcd
    extraArgs:
      advertise-client-urls: https://10.0.0.11:2379
      initial-advertise-peer-urls: https://10.0.0.11:2380
      initial-cluster: cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380,cp3=https://10.0.0.13:2380
      initial-cluster-state: existing
      listen-client-urls: https://127.0.0.1:2379,https://10.0.0.11:2379
      listen-peer-urls: https://10.0.0.11:2380
    image: \"\"
kind: ClusterConfiguration
kubernetesVersion: v1.12.2
";
    const STATUS_ONE: &str = "apiEndpoints:
  cp1:
    advertiseAddress: 10.0.0.11
    bindPort: 6443
apiVersion: kubeadm.k8s.io/v1alpha3
kind: ClusterStatus
";

    fn cps() -> Vec<ControlPlane> {
        (1..=3)
            .map(|i| ControlPlane {
                name: format!("cp{i}"),
                ip: Some(format!("10.0.0.1{i}")),
            })
            .collect()
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn facts<'a>(
        target: (u32, u32),
        data: &'a BTreeMap<String, String>,
        node: &'a str,
        first: bool,
        cps: &'a [ControlPlane],
    ) -> Facts<'a> {
        Facts {
            target,
            data,
            node,
            first,
            control_planes: cps,
            annotation: None,
            cri_socket: "/var/run/dockershim.sock",
            config_file_now: None,
        }
    }

    /// The decision, then the same again on what it left: nothing more.
    fn decide_twice(f: &Facts) -> Decision {
        let d = decide(f).unwrap();
        let mut after = f.data.clone();
        for doc in &d.docs {
            after.insert(doc.key.clone(), doc.after.clone());
        }
        let again = decide(&Facts {
            data: &after,
            annotation: d.annotate.as_deref().or(f.annotation),
            ..f.clone()
        })
        .unwrap();
        assert!(
            again.docs.is_empty() && again.edits.is_empty(),
            "not idempotent: {again:?}"
        );
        assert_eq!(again.annotate, None);
        d
    }

    #[test]
    fn first_control_plane_for_1_12_stacked() {
        let cps = cps();
        let data = data(&[(MASTER, V1ALPHA2)]);
        // On cp2 (the rollout's first need not be the one that ran init).
        let d = decide_twice(&facts((1, 12), &data, "cp2", true, &cps));
        assert_eq!(d.topology, Some(Topology::Stacked));
        let after = &d.docs[0].after;
        let expect = V1ALPHA2
            .replace("advertiseAddress: 10.0.0.11", "advertiseAddress: 10.0.0.12")
            .replace("https://10.0.0.11", "https://10.0.0.12")
            .replace(
                "initial-cluster: cp1=https://10.0.0.12:2380",
                "initial-cluster: cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380,cp3=https://10.0.0.13:2380",
            )
            .replace(
                "      listen-peer-urls: https://10.0.0.12:2380\n",
                "      listen-peer-urls: https://10.0.0.12:2380\n      initial-cluster-state: existing\n",
            );
        assert_eq!(after, &expect);
        assert_eq!(d.edits.len(), 7, "{:?}", d.edits);
        assert!(d
            .edits
            .contains(&"MasterConfiguration: api.advertiseAddress: 10.0.0.11 -> 10.0.0.12".into()));
        assert!(d.edits.contains(
            &"MasterConfiguration: etcd.local.extraArgs.listen-client-urls: https://127.0.0.1:2379,https://10.0.0.11:2379 -> https://127.0.0.1:2379,https://10.0.0.12:2379".into()
        ));
        assert_eq!(d.annotate, None);
        assert_eq!(d.config_file, None);
    }

    #[test]
    fn loopback_is_kept_only_where_etcd_listens_on_it() {
        let cps = cps();
        // No extraArgs at all (the lab's 1.11, kubeadm's defaults): etcd listens on 127.0.0.1.
        let bare = V1ALPHA2.replace(
            "    extraArgs:\n      advertise-client-urls: https://10.0.0.11:2379\n      initial-advertise-peer-urls: https://10.0.0.11:2380\n      initial-cluster: cp1=https://10.0.0.11:2380\n      listen-client-urls: https://127.0.0.1:2379,https://10.0.0.11:2379\n      listen-peer-urls: https://10.0.0.11:2380\n",
            "",
        );
        let data = data(&[(MASTER, &bare)]);
        let d = decide_twice(&facts((1, 12), &data, "cp1", true, &cps));
        let doc = kubeadm_yaml::parse(&d.docs[0].after).unwrap();
        let args = get(&doc, &["etcd", "local", "extraArgs"]).unwrap();
        assert_eq!(
            args["listen-client-urls"],
            "https://127.0.0.1:2379,https://10.0.0.11:2379"
        );
        assert_eq!(args["initial-cluster-state"], "existing");
        assert_eq!(
            args["initial-cluster"],
            "cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380,cp3=https://10.0.0.13:2380"
        );
        // A node-only listener stays node-only.
        let only = V1ALPHA2.replace("https://127.0.0.1:2379,", "");
        let data2 = self::data(&[(MASTER, &only)]);
        let d = decide_twice(&facts((1, 12), &data2, "cp3", true, &cps));
        let doc = kubeadm_yaml::parse(&d.docs[0].after).unwrap();
        assert_eq!(
            get(&doc, &extra_arg("listen-client-urls")).unwrap(),
            "https://10.0.0.13:2379"
        );
    }

    #[test]
    fn initial_cluster_in_another_order_is_kept() {
        let cps = cps();
        let text = V1ALPHA2.replace(
            "initial-cluster: cp1=https://10.0.0.11:2380",
            "initial-cluster: cp3=https://10.0.0.13:2380,cp1=https://10.0.0.11:2380,cp2=https://10.0.0.12:2380",
        );
        let data = data(&[(MASTER, &text)]);
        let d = decide(&facts((1, 12), &data, "cp1", true, &cps)).unwrap();
        assert!(
            !d.edits.iter().any(|e| e.contains("initial-cluster:")),
            "{:?}",
            d.edits
        );
        assert_eq!(
            d.edits,
            ["MasterConfiguration: etcd.local.extraArgs.initial-cluster-state: added existing"]
        );
    }

    #[test]
    fn other_control_planes_for_1_12_stacked() {
        let cps = cps();
        let data = data(&[(CLUSTER, V1ALPHA3), (STATUS, STATUS_ONE)]);
        let d = decide_twice(&facts((1, 12), &data, "cp3", false, &cps));
        assert_eq!(d.docs.len(), 2);
        let cluster = kubeadm_yaml::parse(&d.docs[0].after).unwrap();
        let args = get(&cluster, &["etcd", "local", "extraArgs"]).unwrap();
        assert_eq!(args["advertise-client-urls"], "https://10.0.0.13:2379");
        assert_eq!(args["initial-advertise-peer-urls"], "https://10.0.0.13:2380");
        assert_eq!(
            args["listen-client-urls"],
            "https://127.0.0.1:2379,https://10.0.0.13:2379"
        );
        assert_eq!(args["listen-peer-urls"], "https://10.0.0.13:2380");
        // Untouched: the member list and state the first control plane set.
        assert_eq!(args["initial-cluster-state"], "existing");
        assert_eq!(
            d.docs[1].after,
            "apiEndpoints:\n  cp1:\n    advertiseAddress: 10.0.0.11\n    bindPort: 6443\n  cp3:\n    advertiseAddress: 10.0.0.13\n    bindPort: 6443\napiVersion: kubeadm.k8s.io/v1alpha3\nkind: ClusterStatus\n"
        );
        assert_eq!(d.annotate.as_deref(), Some("/var/run/dockershim.sock"));
        assert!(d.edits.last().unwrap().contains(
            "annotation kubeadm.alpha.kubernetes.io/cri-socket: (none) -> /var/run/dockershim.sock"
        ));
        // Before the first control plane's apply (kup asks every control plane then, for an
        // external etcd's files): nothing yet, saying when.
        let early = self::data(&[(MASTER, V1ALPHA2)]);
        let d = decide(&facts((1, 12), &early, "cp3", false, &cps)).unwrap();
        assert!(d.docs.is_empty() && d.annotate.is_none() && d.config_file.is_none());
        assert!(
            d.lead.contains("come after the first control plane's"),
            "{}",
            d.lead
        );
    }

    #[test]
    fn first_control_plane_for_1_13_stacked() {
        let cps = cps();
        let data = data(&[(CLUSTER, V1ALPHA3), (STATUS, STATUS_ONE)]);
        let d = decide_twice(&facts((1, 13), &data, "cp1", true, &cps));
        let cluster = &d.docs[0].after;
        assert_eq!(
            cluster,
            "apiServerExtraArgs:\n  authorization-mode: Node,RBAC\napiVersion: kubeadm.k8s.io/v1alpha3\ncontrolPlaneEndpoint: lb:6443\nkind: ClusterConfiguration\nkubernetesVersion: v1.12.2\n"
        );
        let status = kubeadm_yaml::parse(&d.docs[1].after).unwrap();
        for i in 1..=3 {
            assert_eq!(
                get(&status, &["apiEndpoints", &format!("cp{i}"), "advertiseAddress"]).unwrap(),
                format!("10.0.0.1{i}").as_str()
            );
        }
        assert_eq!(d.edits[0], "ClusterConfiguration: etcd: removed");
        // The others, and after the apply: nothing.
        let other = decide(&facts((1, 13), &data, "cp2", false, &cps)).unwrap();
        assert!(other.docs.is_empty() && other.lead.contains("experimental-control-plane"));
        let applied = V1ALPHA3
            .replace("v1.12.2", "v1.13.0")
            .replace("v1alpha3", "v1beta1");
        let done = self::data(&[(CLUSTER, &applied), (STATUS, STATUS_ONE)]);
        let d = decide(&facts((1, 13), &done, "cp1", true, &cps)).unwrap();
        assert!(d.docs.is_empty() && d.lead.contains("has run"), "{d:?}");
    }

    #[test]
    fn external_etcd_gets_a_config_file_for_1_12_and_nothing_for_1_13() {
        let cps = cps();
        let master = "api:\n  advertiseAddress: 10.0.0.11\n  bindPort: 6443\napiVersion: kubeadm.k8s.io/v1alpha2\netcd:\n  external:\n    endpoints:\n    - https://10.0.0.11:2379\nkind: MasterConfiguration\nkubernetesVersion: v1.11.3\nnodeRegistration:\n  name: cp1\n";
        let data = data(&[(MASTER, master)]);
        let d = decide(&facts((1, 12), &data, "cp2", false, &cps)).unwrap();
        assert_eq!(d.topology, Some(Topology::External));
        assert!(d.docs.is_empty() && d.annotate.is_none());
        let (file, said) = d.config_file.unwrap();
        assert_eq!(
            file,
            master
                .replace("advertiseAddress: 10.0.0.11", "advertiseAddress: 10.0.0.12")
                .replace("name: cp1", "name: cp2")
        );
        assert_eq!(said.len(), 2);
        // After the first apply the MasterConfiguration is gone: the copy made before is kept...
        let cluster = "apiVersion: kubeadm.k8s.io/v1alpha3\netcd:\n  external:\n    endpoints:\n    - https://10.0.0.11:2379\nkind: ClusterConfiguration\nkubernetesVersion: v1.12.2\n";
        let data2 = self::data(&[(CLUSTER, cluster), (STATUS, STATUS_ONE)]);
        let copy = master.replace("advertiseAddress: 10.0.0.11", "advertiseAddress: 10.0.0.13");
        let kept = Facts {
            config_file_now: Some(&copy),
            ..facts((1, 12), &data2, "cp3", false, &cps)
        };
        let (file, said) = decide(&kept).unwrap().config_file.unwrap();
        assert_eq!((file.as_str(), said.len()), (copy.as_str(), 0));
        // ...and without one (or with another node's address) nothing faithful can be written.
        for now in [None, Some(master)] {
            let missing = Facts {
                config_file_now: now,
                ..facts((1, 12), &data2, "cp3", false, &cps)
            };
            let err = decide(&missing).unwrap_err();
            assert!(
                err.contains("no copy of it with its api.advertiseAddress 10.0.0.13"),
                "{err}"
            );
        }
        // v1alpha1's flat endpoints are external too; 1.13 asks nothing of it.
        let flat = "etcd:\n  endpoints:\n  - https://10.0.0.11:2379\nkubernetesVersion: v1.12.2\n";
        let data3 = self::data(&[(CLUSTER, flat)]);
        let d = decide(&facts((1, 13), &data3, "cp1", true, &cps)).unwrap();
        assert_eq!(d.topology, Some(Topology::External));
        assert!(d.docs.is_empty() && d.config_file.is_none());
    }

    #[test]
    fn unknown_shapes_are_refused_naming_the_key() {
        let cps = cps();
        let listed = V1ALPHA3.replace(
            "    extraArgs:\n      advertise-client-urls: https://10.0.0.11:2379\n",
            "    extraArgs:\n    - name: advertise-client-urls\n      value: x\n",
        );
        let data = data(&[(CLUSTER, &listed), (STATUS, STATUS_ONE)]);
        let err = decide(&facts((1, 12), &data, "cp2", false, &cps)).unwrap_err();
        assert!(
            err.contains("etcd.local.extraArgs is a list, expected a mapping"),
            "{err}"
        );
        let bad = self::data(&[(CLUSTER, "etcd: [1]\n")]);
        let err = decide(&facts((1, 13), &bad, "cp1", true, &cps)).unwrap_err();
        assert_eq!(err, "ClusterConfiguration: etcd is a list, expected a mapping");
        let none = self::data(&[("other", "x")]);
        let err = decide(&facts((1, 12), &none, "cp1", true, &cps)).unwrap_err();
        assert!(err.contains("its keys: other"), "{err}");
        let status = self::data(&[(CLUSTER, V1ALPHA3), (STATUS, "apiEndpoints: [cp1]\n")]);
        let err = decide(&facts((1, 13), &status, "cp1", true, &cps)).unwrap_err();
        assert!(err.contains("ClusterStatus: apiEndpoints is a list"), "{err}");
        // A 1.10 (v1alpha1) configuration is not one the 1.12 page edits.
        let v1alpha1 = self::data(&[(
            MASTER,
            "etcd:\n  endpoints: null\nkubernetesVersion: v1.10.3\nnodeName: cp1\n",
        )]);
        let err = decide(&facts((1, 12), &v1alpha1, "cp1", true, &cps)).unwrap_err();
        assert!(
            err.contains("apiVersion is (none), not kubeadm.k8s.io/v1alpha2"),
            "{err}"
        );
        // A control plane without an address.
        let mut cps2 = cps.clone();
        cps2[2].ip = None;
        let data = self::data(&[(MASTER, V1ALPHA2)]);
        let err = decide(&facts((1, 12), &data, "cp1", true, &cps2)).unwrap_err();
        assert_eq!(err, "node cp3 has no InternalIP address in its status");
    }

    #[test]
    fn other_targets_need_nothing_and_ipv6_is_bracketed() {
        let cps = cps();
        let data = data(&[(CLUSTER, V1ALPHA3)]);
        let d = decide(&facts((1, 14), &data, "cp1", true, &cps)).unwrap();
        assert!(d.docs.is_empty() && d.lead.contains("1.14"));
        let ops = url_ops(None, "fd00::1");
        assert_eq!(
            ops[0],
            Op::set(&extra_arg("advertise-client-urls"), "https://[fd00::1]:2379")
        );
        assert_eq!(
            ops[2],
            Op::set(
                &extra_arg("listen-client-urls"),
                "https://127.0.0.1:2379,https://[fd00::1]:2379"
            )
        );
    }
}
