//! What kubeadm 1.12 and 1.13 want of `kube-system/kubeadm-config` before `upgrade apply` on an HA
//! cluster, and what they upload after it, as the HA upgrade pages of those releases have it
//! (kubernetes/website content/en/docs/tasks/administer-cluster/kubeadm/kubeadm-upgrade-ha-1-12.md
//! and kubeadm-upgrade-ha-1-13.md). The stand-in is stricter than the real kubeadm, never more
//! lenient: the real one did not check the edits, it wrote an etcd manifest with another node's
//! addresses, or failed later.
//!
//! Every check is a pure function of the ConfigMap's `data`, the control planes (name, InternalIP)
//! and this node's facts, so each rule is unit-tested without a cluster.

use serde_json::{json, Map, Value};

/// The four etcd URLs the pages set to the local node's address, and `initial-cluster*`.
const URL_KEYS: [&str; 4] = [
    "advertise-client-urls",
    "initial-advertise-peer-urls",
    "listen-client-urls",
    "listen-peer-urls",
];

/// A control-plane node: its name and InternalIP, as the API server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub ip: String,
}

/// This node as kubeadm sees it: its name (the hostname), its InternalIP, and its cri-socket
/// annotation.
#[derive(Debug, Clone)]
pub struct Me {
    pub node: Node,
    pub cri_socket: Option<String>,
}

/// One stored document of kubeadm-config, parsed (null when absent or unreadable).
pub fn doc(data: &Value, key: &str) -> Value {
    data[key]
        .as_str()
        .and_then(|text| serde_norway::from_str::<Value>(text).ok())
        .unwrap_or(Value::Null)
}

/// The configuration kubeadm stored: `MasterConfiguration` (1.11's v1alpha2, or older) or
/// `ClusterConfiguration` (from 1.12's v1alpha3).
fn config(data: &Value) -> (Value, bool) {
    let master = doc(data, "MasterConfiguration");
    if master.is_object() {
        (master, true)
    } else {
        (doc(data, "ClusterConfiguration"), false)
    }
}

/// Whether the stored configuration names an external etcd (`etcd.external` from v1alpha2,
/// `etcd.endpoints` in v1alpha1); else kubeadm runs a local (stacked) one, also when the `etcd`
/// section is gone (the 1.12 -> 1.13 page removes it; kubeadm defaults it to `local`).
pub fn external(data: &Value) -> bool {
    let (cfg, _) = config(data);
    cfg["etcd"]["external"].is_object() || cfg["etcd"]["endpoints"].as_array().is_some_and(|e| !e.is_empty())
}

/// The external etcd's endpoints kubeadm-config names.
fn external_endpoints(cfg: &Value) -> Vec<String> {
    let list = if cfg["etcd"]["external"].is_object() {
        &cfg["etcd"]["external"]["endpoints"]
    } else {
        &cfg["etcd"]["endpoints"]
    };
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn shown(value: &Value) -> String {
    match value {
        Value::Null => "nothing".to_string(),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// `FIELD: found X, wanted Y`.
fn problem(field: &str, found: &Value, wanted: &str) -> String {
    format!("{field}: found {}, wanted {wanted}", shown(found))
}

/// `https://HOST:PORT` -> (HOST, PORT).
fn host_port(url: &str) -> Option<(&str, &str)> {
    url.trim().strip_prefix("https://")?.rsplit_once(':')
}

fn fatal(me: &Node, why: &str, problems: &[String]) -> Result<(), String> {
    if problems.is_empty() {
        return Ok(());
    }
    let lines: String = problems.iter().map(|p| format!("\n  - {p}")).collect();
    Err(format!(
        "[upgrade/config] FATAL: kubeadm-config is not ready for this control plane ({} {}): {why}:{lines}",
        me.name, me.ip
    ))
}

/// kubeadm 1.12 `upgrade apply` on a stacked-etcd control plane: the 1.11 -> 1.12 HA page's edits
/// must be in kubeadm-config (and the node annotated) before it runs.
pub fn check_apply_1_12_stacked(data: &Value, me: &Me, control_planes: &[Node]) -> Result<(), String> {
    let (cfg, master) = config(data);
    let ip = &me.node.ip;
    let args = &cfg["etcd"]["local"]["extraArgs"];
    let field = |key: &str| format!("etcd.local.extraArgs.{key}");
    let mut problems = Vec::new();
    // The page: advertise-client-urls, initial-advertise-peer-urls, listen-peer-urls "should be
    // updated to the local node's IP address" (the lab: every URL of them https://IP:port).
    for (key, port) in [
        ("advertise-client-urls", "2379"),
        ("initial-advertise-peer-urls", "2380"),
        ("listen-peer-urls", "2380"),
    ] {
        let value = args[key].as_str().unwrap_or("");
        let urls: Vec<&str> = value.split(',').collect();
        if value.is_empty() || !urls.iter().all(|u| host_port(u) == Some((ip.as_str(), port))) {
            problems.push(problem(&field(key), &args[key], &format!("https://{ip}:{port}")));
        }
    }
    // listen-client-urls: the local node's address among them (the 1.11 guide keeps 127.0.0.1).
    let listen = args["listen-client-urls"].as_str().unwrap_or("");
    let want_client = format!("https://{ip}:2379");
    if !listen.split(',').any(|u| u.trim() == want_client) {
        problems.push(problem(
            &field("listen-client-urls"),
            &args["listen-client-urls"],
            &format!("a list with {want_client} (e.g. https://127.0.0.1:2379,{want_client})"),
        ));
    }
    // initial-cluster: "the hostname and IP address pairs for each control plane node in the
    // cluster"; nothing else (the lab is stricter than etcd).
    let wanted_cluster: Vec<String> = control_planes
        .iter()
        .map(|n| format!("{}=https://{}:2380", n.name, n.ip))
        .collect();
    let mut found: Vec<String> = args["initial-cluster"]
        .as_str()
        .unwrap_or("")
        .split(',')
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    found.sort();
    let mut sorted = wanted_cluster.clone();
    sorted.sort();
    if found != sorted {
        problems.push(problem(
            &field("initial-cluster"),
            &args["initial-cluster"],
            &format!("{:?} (every control plane, none else)", wanted_cluster.join(",")),
        ));
    }
    // "You must also pass an additional argument (initial-cluster-state: existing)".
    if args["initial-cluster-state"].as_str() != Some("existing") {
        problems.push(problem(
            &field("initial-cluster-state"),
            &args["initial-cluster-state"],
            "\"existing\"",
        ));
    }
    if master {
        // First control plane, 1.11's MasterConfiguration: "api.advertiseAddress: This should be set
        // to the local node's IP address."
        let found = &cfg["api"]["advertiseAddress"];
        if found.as_str() != Some(ip) {
            problems.push(problem("api.advertiseAddress", found, &format!("{ip:?}")));
        }
    } else {
        // Other control planes, 1.12's ClusterStatus: "add a mapping for the current host under
        // apiEndpoints" (kubeadm 1.12 cmd/kubeadm/app/util/config/cluster.go getAPIEndpoint:
        // "failed to get APIEndpoint information for this node").
        let status = doc(data, "ClusterStatus");
        let found = &status["apiEndpoints"][&me.node.name]["advertiseAddress"];
        if found.as_str() != Some(ip) {
            problems.push(problem(
                &format!("ClusterStatus.apiEndpoints.{}.advertiseAddress", me.node.name),
                found,
                &format!("{ip:?}"),
            ));
        }
    }
    // kubeadm 1.12 getNodeRegistration: "node %s doesn't have %s annotation"; the page: `kubectl
    // annotate node <nodename> kubeadm.alpha.kubernetes.io/cri-socket=/var/run/dockershim.sock`
    // (the lab's runtime is docker).
    if me.cri_socket.as_deref() != Some(lab_standin::DOCKERSHIM_SOCKET) {
        problems.push(problem(
            &format!(
                "node {}'s annotation {}",
                me.node.name,
                lab_standin::CRI_SOCKET_ANNOTATION
            ),
            &me.cri_socket.clone().map_or(Value::Null, Value::String),
            &format!("{:?}", lab_standin::DOCKERSHIM_SOCKET),
        ));
    }
    fatal(
        &me.node,
        "kubeadm v1.12 upgrade apply on a stacked etcd wants the v1.11 -> v1.12 HA upgrade page's edits first",
        &problems,
    )
}

/// kubeadm 1.12 `upgrade apply` with an external etcd: the 1.11 -> 1.12 HA page runs it with
/// `--config kubeadm-config.yaml`, the cluster's `MasterConfiguration` with `api.advertiseAddress`
/// set to the local node's address. `file` is the `--config` path and what reading it gave.
pub fn check_apply_1_12_external(
    data: &Value,
    me: &Node,
    file: Option<(&str, Result<String, String>)>,
) -> Result<(), String> {
    let why = "kubeadm v1.12 upgrade apply on an external etcd wants --config with the cluster's \
               MasterConfiguration, its api.advertiseAddress this node's (the v1.11 -> v1.12 HA upgrade page: \
               kubectl get configmap -n kube-system kubeadm-config -o jsonpath={.data.MasterConfiguration} > \
               kubeadm-config.yaml)";
    let Some((path, text)) = file else {
        return fatal(me, why, &[problem("--config", &Value::Null, "a file")]);
    };
    let text =
        text.map_err(|e| format!("[upgrade/config] FATAL: unable to read config from {path:?}: {e}"))?;
    let given: Value = serde_norway::from_str(&text)
        .map_err(|e| format!("[upgrade/config] FATAL: {path}: not a kubeadm configuration: {e}"))?;
    let mut problems = Vec::new();
    if given["kind"].as_str() != Some("MasterConfiguration") {
        problems.push(problem(
            &format!("{path}: kind"),
            &given["kind"],
            "\"MasterConfiguration\"",
        ));
    }
    let found = &given["api"]["advertiseAddress"];
    if found.as_str() != Some(me.ip.as_str()) {
        problems.push(problem(
            &format!("{path}: api.advertiseAddress"),
            found,
            &format!("{:?}", me.ip),
        ));
    }
    let (cluster, _) = config(data);
    let (wanted, found) = (external_endpoints(&cluster), external_endpoints(&given));
    if found != wanted {
        problems.push(problem(
            &format!("{path}: etcd.external.endpoints"),
            &json!(found),
            &format!("{wanted:?} (the cluster's)"),
        ));
    }
    fatal(me, why, &problems)
}

/// kubeadm 1.13 `upgrade apply` on a stacked etcd: the 1.12 -> 1.13 HA page removes the `etcd`
/// section ("Remove the etcd section completely": kubeadm 1.13 writes each member's URLs itself,
/// and the stored extraArgs would give every control plane the first one's) and adds every
/// control plane to `ClusterStatus.apiEndpoints` ("Add an entry for each of the additional control
/// plane hosts").
pub fn check_apply_1_13_stacked(data: &Value, me: &Node, control_planes: &[Node]) -> Result<(), String> {
    let (cfg, _) = config(data);
    let mut problems = Vec::new();
    let args = &cfg["etcd"]["local"]["extraArgs"];
    let mut left: Vec<&str> = URL_KEYS.iter().copied().filter(|k| !args[*k].is_null()).collect();
    if let Some(map) = args.as_object() {
        left.extend(
            map.keys()
                .map(String::as_str)
                .filter(|k| k.starts_with("initial-cluster")),
        );
    }
    left.sort_unstable();
    if !left.is_empty() {
        problems.push(problem(
            "ClusterConfiguration etcd.local.extraArgs",
            &json!(left),
            "no etcd section (the page: \"Remove the etcd section completely\")",
        ));
    }
    problems.extend(missing_endpoints(data, control_planes));
    fatal(
        me,
        "kubeadm v1.13 upgrade apply on a stacked etcd wants the v1.12 -> v1.13 HA upgrade page's edits first",
        &problems,
    )
}

/// The control planes `ClusterStatus.apiEndpoints` lacks, or names with another address.
fn missing_endpoints(data: &Value, control_planes: &[Node]) -> Vec<String> {
    let status = doc(data, "ClusterStatus");
    control_planes
        .iter()
        .filter_map(|n| {
            let found = &status["apiEndpoints"][&n.name]["advertiseAddress"];
            (found.as_str() != Some(n.ip.as_str())).then(|| {
                problem(
                    &format!("ClusterStatus.apiEndpoints.{}.advertiseAddress", n.name),
                    found,
                    &format!("{:?}", n.ip),
                )
            })
        })
        .collect()
}

/// `kubeadm upgrade node experimental-control-plane` (1.12-1.15) reads this node's API endpoint
/// from `ClusterStatus` (cmd/kubeadm/app/util/config/cluster.go getAPIEndpoint: "failed to get
/// APIEndpoint information for this node"); the 1.12 -> 1.13 HA page adds every control plane there
/// before the first apply.
pub fn check_control_plane_node(data: &Value, me: &Node) -> Result<(), String> {
    if !data["ClusterStatus"].is_string() {
        return Ok(());
    }
    let problems = missing_endpoints(data, std::slice::from_ref(me));
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "[upgrade/config] FATAL: failed to get APIEndpoint information for this node ({} {}): {}",
        me.name,
        me.ip,
        problems.join("; ")
    ))
}

fn to_yaml(value: &Value) -> String {
    serde_norway::to_string(value).unwrap_or_default()
}

/// kubeadm-config's data as kubeadm `own` uploads it after upgrading this node (`me`, advertised at
/// `advertise`) to `target` (cmd/kubeadm/app/phases/uploadconfig/uploadconfig.go: the
/// configuration in kubeadm's own API version, `ClusterStatus` with this node's endpoint added),
/// or None when this kubeadm's upload is the stored one with the new version (the lab's
/// `record_version`). 1.12 turns 1.11's v1alpha2 `MasterConfiguration` into v1alpha3's
/// `ClusterConfiguration` + `ClusterStatus`; 1.13 v1alpha3 into v1beta1 (the 1.12 -> 1.13 page:
/// "The kubeadm-config ConfigMap is now updated from v1alpha3 version to v1beta1").
pub fn uploaded(data: &Value, own_minor: u32, target: &str, me: &str, advertise: &str) -> Option<Value> {
    if !(12..=13).contains(&own_minor) {
        return None;
    }
    let (mut cfg, master) = config(data);
    let obj = cfg.as_object_mut()?;
    let mut status = doc(data, "ClusterStatus");
    if master {
        if own_minor != 12 {
            return None;
        }
        // v1alpha3 conversion (cmd/kubeadm/app/apis/kubeadm/v1alpha2 -> v1alpha3): `api` becomes
        // the node's endpoint (InitConfiguration) and `controlPlaneEndpoint`; the node's registration
        // and tokens leave the cluster-wide document.
        let api = obj.remove("api").unwrap_or(Value::Null);
        for gone in [
            "nodeRegistration",
            "bootstrapTokens",
            "nodeName",
            "token",
            "tokenTTL",
        ] {
            obj.remove(gone);
        }
        if let Some(endpoint) = api["controlPlaneEndpoint"].as_str() {
            obj.insert("controlPlaneEndpoint".into(), json!(endpoint));
        }
        status = json!({});
    }
    let api_version = if own_minor == 12 { "v1alpha3" } else { "v1beta1" };
    if own_minor == 13 {
        // v1alpha3 -> v1beta1: the component fields move into `apiServer`, `controllerManager`,
        // `scheduler`; the component configs and the hyperkube image leave.
        for (old, component, field) in [
            ("apiServerCertSANs", "apiServer", "certSANs"),
            ("apiServerExtraArgs", "apiServer", "extraArgs"),
            ("controllerManagerExtraArgs", "controllerManager", "extraArgs"),
            ("schedulerExtraArgs", "scheduler", "extraArgs"),
        ] {
            if let Some(value) = obj.remove(old) {
                let entry = obj.entry(component).or_insert_with(|| json!({}));
                if let Some(map) = entry.as_object_mut() {
                    map.insert(field.into(), value);
                }
            }
        }
        for gone in [
            "unifiedControlPlaneImage",
            "kubeProxy",
            "kubeletConfiguration",
            "auditPolicy",
        ] {
            obj.remove(gone);
        }
        // The page removed the etcd section: kubeadm defaults a local etcd in /var/lib/etcd.
        obj.entry("etcd")
            .or_insert_with(|| json!({"local": {"dataDir": "/var/lib/etcd"}}));
        obj.entry("dns").or_insert_with(|| json!({"type": "CoreDNS"}));
    }
    obj.insert(
        "apiVersion".into(),
        json!(format!("kubeadm.k8s.io/{api_version}")),
    );
    obj.insert("kind".into(), json!("ClusterConfiguration"));
    obj.insert("kubernetesVersion".into(), json!(target));
    let mut endpoints: Map<String, Value> = status["apiEndpoints"].as_object().cloned().unwrap_or_default();
    endpoints.insert(
        me.to_string(),
        json!({"advertiseAddress": advertise, "bindPort": 6443}),
    );
    let status = json!({
        "apiEndpoints": endpoints,
        "apiVersion": format!("kubeadm.k8s.io/{api_version}"),
        "kind": "ClusterStatus",
    });
    Some(json!({"ClusterConfiguration": to_yaml(&cfg), "ClusterStatus": to_yaml(&status)}))
}

/// The stored `etcd.local.extraArgs` (string values), for the etcd manifest kubeadm 1.12 writes.
pub fn extra_args(data: &Value) -> Vec<(String, String)> {
    let (cfg, _) = config(data);
    cfg["etcd"]["local"]["extraArgs"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
        .collect()
}

/// The etcd static pod manifest with its command's flags overridden by `args` (kubeadm's
/// getEtcdCommand: the defaults, then `Etcd.Local.ExtraArgs`, sorted by name), other lines kept.
pub fn manifest_with(text: &str, args: &[(String, String)]) -> String {
    const FLAG: &str = "    - --";
    let mut flags: std::collections::BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.strip_prefix(FLAG))
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in args {
        flags.insert(k.clone(), v.clone());
    }
    let mut out = String::new();
    let mut written = false;
    for line in text.lines() {
        if line.starts_with(FLAG) {
            if !written {
                for (k, v) in &flags {
                    out.push_str(&format!("{FLAG}{k}={v}\n"));
                }
                written = true;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn node(n: u8) -> Node {
        Node {
            name: format!("lab-cp{n}"),
            ip: format!("10.213.0.{}", 10 + n),
        }
    }

    fn me(n: u8, annotated: bool) -> Me {
        Me {
            node: node(n),
            cri_socket: annotated.then(|| "/var/run/dockershim.sock".to_string()),
        }
    }

    fn cps() -> Vec<Node> {
        vec![node(1), node(2)]
    }

    /// 1.11's seed (the lab's lab-apiserver store/kubeadm_config.rs): cp1's `kubeadm init` config
    /// of the 1.11 HA guide.
    const SEED_1_11: &str = "api:
  advertiseAddress: 10.213.0.11
  bindPort: 6443
  controlPlaneEndpoint: 10.213.0.10:6443
apiServerCertSANs:
- 10.213.0.10
apiVersion: kubeadm.k8s.io/v1alpha2
certificatesDir: /etc/kubernetes/pki
clusterName: kubernetes
etcd:
  local:
    dataDir: /var/lib/etcd
    extraArgs:
      advertise-client-urls: https://10.213.0.11:2379
      initial-advertise-peer-urls: https://10.213.0.11:2380
      initial-cluster: lab-cp1=https://10.213.0.11:2380
      listen-client-urls: https://127.0.0.1:2379,https://10.213.0.11:2379
      listen-peer-urls: https://10.213.0.11:2380
    image: \"\"
    peerCertSANs:
    - lab-cp1
    - 10.213.0.11
    serverCertSANs:
    - lab-cp1
    - 10.213.0.11
kind: MasterConfiguration
kubernetesVersion: v1.11.10
nodeRegistration:
  criSocket: /var/run/dockershim.sock
  name: lab-cp1
";

    fn master(text: &str) -> Value {
        json!({"MasterConfiguration": text})
    }

    /// `SEED_1_11` with the first control plane's edits of the 1.11 -> 1.12 page made for node `n`.
    fn edited_1_11(n: u8) -> String {
        let ip = node(n).ip;
        SEED_1_11
            .replace(
                "advertiseAddress: 10.213.0.11",
                &format!("advertiseAddress: {ip}"),
            )
            .replace("https://10.213.0.11:2379\n", &format!("https://{ip}:2379\n"))
            .replace(
                "-urls: https://10.213.0.11:2380",
                &format!("-urls: https://{ip}:2380"),
            )
            .replace(
                "initial-cluster: lab-cp1=https://10.213.0.11:2380\n",
                "initial-cluster: lab-cp1=https://10.213.0.11:2380,lab-cp2=https://10.213.0.12:2380\n      \
                 initial-cluster-state: existing\n",
            )
    }

    fn refused(result: Result<(), String>) -> String {
        result.unwrap_err()
    }

    #[test]
    fn the_first_1_12_apply_on_a_stacked_etcd_wants_the_pages_edits() {
        let seeded = refused(check_apply_1_12_stacked(&master(SEED_1_11), &me(1, true), &cps()));
        assert!(seeded.starts_with("[upgrade/config] FATAL: kubeadm-config is not ready for this control plane (lab-cp1 10.213.0.11)"), "{seeded}");
        assert!(seeded.contains("  - etcd.local.extraArgs.initial-cluster: found \"lab-cp1=https://10.213.0.11:2380\", wanted \"lab-cp1=https://10.213.0.11:2380,lab-cp2=https://10.213.0.12:2380\""), "{seeded}");
        assert!(
            seeded.contains(
                "  - etcd.local.extraArgs.initial-cluster-state: found nothing, wanted \"existing\""
            ),
            "{seeded}"
        );
        // The URLs and the address are cp1's already: not named.
        assert!(
            !seeded.contains("advertise-client-urls") && !seeded.contains("api.advertiseAddress"),
            "{seeded}"
        );
        assert_eq!(
            check_apply_1_12_stacked(&master(&edited_1_11(1)), &me(1, true), &cps()),
            Ok(())
        );

        // On lab-cp2, the seed's cp1 values are each named with what was found and wanted.
        let other = refused(check_apply_1_12_stacked(
            &master(&edited_1_11(1)),
            &me(2, true),
            &cps(),
        ));
        for want in [
            "etcd.local.extraArgs.advertise-client-urls: found \"https://10.213.0.11:2379\", wanted https://10.213.0.12:2379",
            "etcd.local.extraArgs.initial-advertise-peer-urls: found \"https://10.213.0.11:2380\", wanted https://10.213.0.12:2380",
            "etcd.local.extraArgs.listen-peer-urls: found \"https://10.213.0.11:2380\", wanted https://10.213.0.12:2380",
            "etcd.local.extraArgs.listen-client-urls: found \"https://127.0.0.1:2379,https://10.213.0.11:2379\", wanted a list with https://10.213.0.12:2379",
            "api.advertiseAddress: found \"10.213.0.11\", wanted \"10.213.0.12\"",
        ] {
            assert!(other.contains(want), "{want} missing:\n{other}");
        }
        assert_eq!(
            check_apply_1_12_stacked(&master(&edited_1_11(2)), &me(2, true), &cps()),
            Ok(())
        );
    }

    #[test]
    fn each_edit_of_the_first_apply_is_required_on_its_own() {
        let good = edited_1_11(1);
        for (broken, field) in [
            (
                good.replace(
                    "advertise-client-urls: https://10.213.0.11:2379",
                    "advertise-client-urls: https://127.0.0.1:2379",
                ),
                "advertise-client-urls",
            ),
            (
                good.replace(
                    "initial-advertise-peer-urls: https://10.213.0.11:2380",
                    "initial-advertise-peer-urls: https://10.213.0.12:2380",
                ),
                "initial-advertise-peer-urls",
            ),
            (
                good.replace(
                    "listen-peer-urls: https://10.213.0.11:2380",
                    "listen-peer-urls: https://127.0.0.1:2380",
                ),
                "listen-peer-urls",
            ),
            (
                good.replace(
                    "listen-client-urls: https://127.0.0.1:2379,https://10.213.0.11:2379",
                    "listen-client-urls: https://127.0.0.1:2379",
                ),
                "listen-client-urls",
            ),
            (
                good.replace(",lab-cp2=https://10.213.0.12:2380", ""),
                "initial-cluster",
            ),
            (
                good.replace(
                    ",lab-cp2=https://10.213.0.12:2380",
                    ",lab-cp2=https://10.213.0.99:2380",
                ),
                "initial-cluster",
            ),
            (
                good.replace(
                    "lab-cp2=https://10.213.0.12:2380",
                    "lab-cp2=https://10.213.0.12:2380,lab-w1=https://10.213.0.13:2380",
                ),
                "initial-cluster",
            ),
            (
                good.replace("initial-cluster-state: existing", "initial-cluster-state: new"),
                "initial-cluster-state",
            ),
            (
                good.replace("advertiseAddress: 10.213.0.11", "advertiseAddress: 10.213.0.12"),
                "api.advertiseAddress",
            ),
        ] {
            let text = refused(check_apply_1_12_stacked(&master(&broken), &me(1, true), &cps()));
            assert!(text.contains(&format!("{field}: found")), "{field}: {text}");
            assert_eq!(text.matches("\n  - ").count(), 1, "only {field}: {text}");
        }
        // The node's cri-socket annotation.
        let text = refused(check_apply_1_12_stacked(&master(&good), &me(1, false), &cps()));
        assert!(text.contains("node lab-cp1's annotation kubeadm.alpha.kubernetes.io/cri-socket: found nothing, wanted \"/var/run/dockershim.sock\""), "{text}");
        let mut wrong = me(1, true);
        wrong.cri_socket = Some("/run/containerd/containerd.sock".into());
        assert!(refused(check_apply_1_12_stacked(&master(&good), &wrong, &cps()))
            .contains("cri-socket: found \"/run/containerd/containerd.sock\""));
    }

    #[test]
    fn later_1_12_applies_want_this_nodes_urls_and_endpoint_in_the_converted_config() {
        let after_cp1 = uploaded(&master(&edited_1_11(1)), 12, "v1.12.10", "lab-cp1", "10.213.0.11").unwrap();
        let cfg = doc(&after_cp1, "ClusterConfiguration");
        assert_eq!(cfg["apiVersion"], "kubeadm.k8s.io/v1alpha3");
        assert_eq!(cfg["kind"], "ClusterConfiguration");
        assert_eq!(cfg["kubernetesVersion"], "v1.12.10");
        assert_eq!(cfg["controlPlaneEndpoint"], "10.213.0.10:6443");
        assert!(cfg["api"].is_null() && cfg["nodeRegistration"].is_null(), "{cfg}");
        assert_eq!(
            cfg["etcd"]["local"]["extraArgs"]["initial-cluster-state"],
            "existing"
        );
        let status = doc(&after_cp1, "ClusterStatus");
        assert_eq!(status["kind"], "ClusterStatus");
        assert_eq!(
            status["apiEndpoints"],
            json!({"lab-cp1": {"advertiseAddress": "10.213.0.11", "bindPort": 6443}})
        );
        assert!(after_cp1["MasterConfiguration"].is_null());

        // cp2 without its edits: its URLs and its endpoint.
        let text = refused(check_apply_1_12_stacked(&after_cp1, &me(2, true), &cps()));
        assert!(
            text.contains("advertise-client-urls: found \"https://10.213.0.11:2379\""),
            "{text}"
        );
        assert!(
            text.contains(
                "ClusterStatus.apiEndpoints.lab-cp2.advertiseAddress: found nothing, wanted \"10.213.0.12\""
            ),
            "{text}"
        );
        assert!(!text.contains("api.advertiseAddress"), "{text}");
        // With them.
        let ip2 = "10.213.0.12";
        let mut edited = after_cp1.clone();
        let cfg_text = after_cp1["ClusterConfiguration"]
            .as_str()
            .unwrap()
            .replace("https://10.213.0.11:2379\n", &format!("https://{ip2}:2379\n"))
            .replace(
                "-urls: https://10.213.0.11:2380",
                &format!("-urls: https://{ip2}:2380"),
            );
        edited["ClusterConfiguration"] = json!(cfg_text);
        let text = refused(check_apply_1_12_stacked(&edited, &me(2, true), &cps()));
        assert_eq!(text.matches("\n  - ").count(), 1, "{text}");
        edited["ClusterStatus"] = json!(after_cp1["ClusterStatus"].as_str().unwrap().replace(
            "apiEndpoints:\n",
            &format!("apiEndpoints:\n  lab-cp2:\n    advertiseAddress: {ip2}\n    bindPort: 6443\n")
        ));
        assert_eq!(check_apply_1_12_stacked(&edited, &me(2, true), &cps()), Ok(()));
        assert!(refused(check_apply_1_12_stacked(&edited, &me(2, false), &cps())).contains("cri-socket"));
        // Its upload adds its endpoint and keeps the others'.
        let after_cp2 = uploaded(&edited, 12, "v1.12.10", "lab-cp2", ip2).unwrap();
        let endpoints = doc(&after_cp2, "ClusterStatus")["apiEndpoints"].clone();
        assert_eq!(endpoints.as_object().unwrap().len(), 2, "{endpoints}");
    }

    #[test]
    fn a_1_12_apply_on_an_external_etcd_wants_config_with_this_nodes_address() {
        let cluster = master(
            "api:\n  advertiseAddress: 10.213.0.11\n  bindPort: 6443\napiVersion: kubeadm.k8s.io/v1alpha2\n\
             etcd:\n  external:\n    caFile: /etc/kubernetes/pki/etcd/ca.pem\n    endpoints:\n    \
             - https://10.213.0.11:2379\n    - https://10.213.0.12:2379\nkind: MasterConfiguration\n",
        );
        assert!(external(&cluster));
        assert!(!external(&master(SEED_1_11)));
        let cp2 = node(2);
        let none = refused(check_apply_1_12_external(&cluster, &cp2, None));
        assert!(
            none.contains("wants --config") && none.contains("--config: found nothing, wanted a file"),
            "{none}"
        );
        let unreadable = refused(check_apply_1_12_external(
            &cluster,
            &cp2,
            Some(("k.yaml", Err("No such file or directory".into()))),
        ));
        assert_eq!(
            unreadable,
            "[upgrade/config] FATAL: unable to read config from \"k.yaml\": No such file or directory"
        );
        let fetched = cluster["MasterConfiguration"].as_str().unwrap().to_string();
        let text = refused(check_apply_1_12_external(
            &cluster,
            &cp2,
            Some(("k.yaml", Ok(fetched.clone()))),
        ));
        assert!(
            text.contains("k.yaml: api.advertiseAddress: found \"10.213.0.11\", wanted \"10.213.0.12\""),
            "{text}"
        );
        let edited = fetched.replace("advertiseAddress: 10.213.0.11", "advertiseAddress: 10.213.0.12");
        assert_eq!(
            check_apply_1_12_external(&cluster, &cp2, Some(("k.yaml", Ok(edited.clone())))),
            Ok(())
        );
        let other_etcd = edited.replace("- https://10.213.0.12:2379\n", "");
        assert!(refused(check_apply_1_12_external(
            &cluster,
            &cp2,
            Some(("k.yaml", Ok(other_etcd)))
        ))
        .contains("etcd.external.endpoints: found [\"https://10.213.0.11:2379\"]"));
        let wrong_kind = edited.replace("kind: MasterConfiguration", "kind: ClusterConfiguration");
        assert!(refused(check_apply_1_12_external(
            &cluster,
            &cp2,
            Some(("k.yaml", Ok(wrong_kind)))
        ))
        .contains("k.yaml: kind: found \"ClusterConfiguration\""));
        // After cp1's apply the cluster holds v1alpha3: the endpoints are compared with its.
        let converted = uploaded(&cluster, 12, "v1.12.10", "lab-cp1", "10.213.0.11").unwrap();
        assert!(external(&converted));
        assert_eq!(
            check_apply_1_12_external(&converted, &cp2, Some(("k.yaml", Ok(edited)))),
            Ok(())
        );
    }

    /// 1.12's seed: v1alpha3 with cp1's extraArgs, cp1's endpoint only.
    fn seed_1_12() -> Value {
        let after = uploaded(&master(&edited_1_11(1)), 12, "v1.12.10", "lab-cp1", "10.213.0.11").unwrap();
        assert!(doc(&after, "ClusterConfiguration")["etcd"]["local"]["extraArgs"].is_object());
        after
    }

    #[test]
    fn a_1_13_apply_on_a_stacked_etcd_wants_the_etcd_section_gone_and_every_endpoint() {
        let seeded = seed_1_12();
        let text = refused(check_apply_1_13_stacked(&seeded, &node(1), &cps()));
        assert!(text.contains("kubeadm v1.13 upgrade apply on a stacked etcd wants the v1.12 -> v1.13 HA upgrade page's edits first"), "{text}");
        assert!(text.contains("ClusterConfiguration etcd.local.extraArgs: found [\"advertise-client-urls\",\"initial-advertise-peer-urls\",\"initial-cluster\",\"initial-cluster-state\",\"listen-client-urls\",\"listen-peer-urls\"], wanted no etcd section"), "{text}");
        assert!(
            text.contains(
                "ClusterStatus.apiEndpoints.lab-cp2.advertiseAddress: found nothing, wanted \"10.213.0.12\""
            ),
            "{text}"
        );
        // The etcd section removed, cp2 still missing.
        let mut cfg = doc(&seeded, "ClusterConfiguration");
        cfg.as_object_mut().unwrap().remove("etcd");
        let mut edited = seeded.clone();
        edited["ClusterConfiguration"] = json!(to_yaml(&cfg));
        let text = refused(check_apply_1_13_stacked(&edited, &node(1), &cps()));
        assert_eq!(text.matches("\n  - ").count(), 1, "{text}");
        assert!(text.contains("apiEndpoints.lab-cp2"), "{text}");
        // Only one URL key left is enough to refuse.
        let mut one = cfg.clone();
        one["etcd"] = json!({"local": {"dataDir": "/var/lib/etcd", "extraArgs": {"listen-peer-urls": "https://10.213.0.11:2380"}}});
        let mut status = doc(&seeded, "ClusterStatus");
        status["apiEndpoints"]["lab-cp2"] = json!({"advertiseAddress": "10.213.0.12", "bindPort": 6443});
        edited["ClusterStatus"] = json!(to_yaml(&status));
        let mut left = edited.clone();
        left["ClusterConfiguration"] = json!(to_yaml(&one));
        assert!(refused(check_apply_1_13_stacked(&left, &node(1), &cps()))
            .contains("found [\"listen-peer-urls\"]"));
        // Both edits: accepted, and the upload is v1beta1 without extraArgs.
        assert_eq!(check_apply_1_13_stacked(&edited, &node(1), &cps()), Ok(()));
        let after = uploaded(&edited, 13, "v1.13.12", "lab-cp1", "10.213.0.11").unwrap();
        let cfg = doc(&after, "ClusterConfiguration");
        assert_eq!(cfg["apiVersion"], "kubeadm.k8s.io/v1beta1");
        assert_eq!(cfg["etcd"], json!({"local": {"dataDir": "/var/lib/etcd"}}));
        assert_eq!(cfg["apiServer"]["certSANs"][0], "10.213.0.10", "{cfg}");
        assert!(cfg["apiServerCertSANs"].is_null());
        assert_eq!(
            doc(&after, "ClusterStatus")["apiVersion"],
            "kubeadm.k8s.io/v1beta1"
        );
        assert_eq!(
            doc(&after, "ClusterStatus")["apiEndpoints"]
                .as_object()
                .unwrap()
                .len(),
            2
        );

        // experimental-control-plane: this node's endpoint.
        assert!(refused(check_control_plane_node(&seeded, &node(2))).starts_with(
            "[upgrade/config] FATAL: failed to get APIEndpoint information for this node (lab-cp2 10.213.0.12): ClusterStatus.apiEndpoints.lab-cp2.advertiseAddress: found nothing"
        ));
        assert_eq!(check_control_plane_node(&after, &node(2)), Ok(()));
        assert_eq!(
            check_control_plane_node(
                &json!({"ClusterConfiguration": "kind: ClusterConfiguration\n"}),
                &node(2)
            ),
            Ok(())
        );
    }

    #[test]
    fn other_releases_upload_as_before_and_the_manifest_takes_the_extra_args() {
        assert_eq!(
            uploaded(&master(SEED_1_11), 11, "v1.11.10", "lab-cp1", "10.213.0.11"),
            None
        );
        assert_eq!(
            uploaded(&seed_1_12(), 14, "v1.14.10", "lab-cp1", "10.213.0.11"),
            None
        );
        let manifest = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: etcd\n    image: x\n    command:\n    \
                        - etcd\n    - --advertise-client-urls=https://10.213.0.12:2379\n    - --data-dir=/var/lib/etcd\n    \
                        - --initial-cluster=lab-cp1=https://10.213.0.11:2380,lab-cp2=https://10.213.0.12:2380\n    \
                        - --name=lab-cp2\n";
        let args = extra_args(&master(&edited_1_11(2)));
        assert_eq!(args.len(), 6, "{args:?}");
        let text = manifest_with(manifest, &args);
        assert!(text.contains("    - etcd\n    - --advertise-client-urls=https://10.213.0.12:2379\n    - --data-dir=/var/lib/etcd\n    - --initial-advertise-peer-urls=https://10.213.0.12:2380\n"), "{text}");
        assert!(
            text.contains("    - --initial-cluster-state=existing\n"),
            "{text}"
        );
        assert!(text.ends_with("    - --name=lab-cp2\n"), "{text}");
        assert!(text.starts_with("apiVersion: v1\nkind: Pod\n"), "{text}");
    }
}
