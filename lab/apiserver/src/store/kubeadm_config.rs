//! `kube-system/kubeadm-config` as the release's kubeadm wrote it: `MasterConfiguration` (with the
//! `nodeName` the old runbook rewrites) up to 1.11, then `ClusterConfiguration` (+ `ClusterStatus`
//! before v1beta3), in the config API version of the release. A stacked etcd set up by the 1.11 HA
//! guide keeps its `etcd.local.extraArgs` there (1.11's v1alpha2 and 1.12's v1alpha3), which the
//! 1.11 -> 1.12 and 1.12 -> 1.13 HA upgrade pages have edited before each `kubeadm upgrade apply`.

use serde_json::{json, Value};

use super::object::labels_of;
use super::{Kind, Store};
use crate::cluster::ExternalEtcdSeed;
use crate::emulation::KubeadmConfigApi;

impl Store {
    /// The data of `kube-system/kubeadm-config`.
    pub(super) fn kubeadm_config(&self) -> Value {
        let api = self.emu.kubeadm_config_api();
        if api.master_configuration() {
            return json!({"MasterConfiguration": self.master_configuration(api)});
        }
        self.cluster_configuration(api)
    }

    /// The `MasterConfiguration` of kubeadm 1.9 to 1.11, with the primary control plane's name.
    fn master_configuration(&self, api: KubeadmConfigApi) -> String {
        let version = &self.served_version;
        let primary = self.primary_master.clone().unwrap_or_default();
        let addr = self.node_ip(&primary);
        let endpoint = &self.cluster_endpoint;
        let mut api_endpoint = format!(
            "api:\n  advertiseAddress: {addr}\n  bindPort: 6443\n  controlPlaneEndpoint: {endpoint}\n"
        );
        // The 1.11 HA guide's config: `apiServerCertSANs: ["LOAD_BALANCER_DNS"]`.
        if self.stacked_etcd.is_some() && api == KubeadmConfigApi::V1Alpha2 {
            let host = endpoint.rsplit_once(':').map_or(endpoint.as_str(), |(h, _)| h);
            api_endpoint.push_str(&format!("apiServerCertSANs:\n- {host}\n"));
        }
        if api == KubeadmConfigApi::V1Alpha1 {
            let etcd = v1alpha1_etcd(self.external_etcd.as_ref());
            format!(
                "{api_endpoint}authorizationModes:
- Node
- RBAC
certificatesDir: /etc/kubernetes/pki
cloudProvider: \"\"
{etcd}imageRepository: gcr.io/google_containers
kubeProxy:
  config:
    bindAddress: 0.0.0.0
    clientConnection:
      kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
    clusterCIDR: 10.244.0.0/16
    mode: \"\"
kubeletConfiguration: {{}}
kubernetesVersion: {version}
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
nodeName: {primary}
privilegedPods: false
token: \"\"
tokenTTL: 24h0m0s
unifiedControlPlaneImage: \"\"
"
            )
        } else {
            let etcd = self
                .external_etcd
                .as_ref()
                .map(external_etcd)
                .or_else(|| self.stacked_etcd(false))
                .unwrap_or_else(|| "etcd:\n  local:\n    dataDir: /var/lib/etcd\n    image: \"\"\n".into());
            format!(
                "{api_endpoint}apiVersion: kubeadm.k8s.io/v1alpha2
certificatesDir: /etc/kubernetes/pki
clusterName: kubernetes
{etcd}imageRepository: k8s.gcr.io
kind: MasterConfiguration
kubernetesVersion: {version}
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
nodeRegistration:
  criSocket: /var/run/dockershim.sock
  name: {primary}
  taints:
  - effect: NoSchedule
    key: node-role.kubernetes.io/master
unifiedControlPlaneImage: \"\"
"
            )
        }
    }

    /// `ClusterConfiguration` (kubeadm 1.12 on), and `ClusterStatus` with the control planes'
    /// endpoints before v1beta3.
    fn cluster_configuration(&self, api: KubeadmConfigApi) -> Value {
        let version = &self.served_version;
        let endpoint = &self.cluster_endpoint;
        let api_version = api.version();
        let repo = self.emu.image_registry();
        let api_server = if api.extra_args_list() {
            "apiServer:\n  extraArgs:\n  - name: authorization-mode\n    value: Node,RBAC\n".to_string()
        } else {
            "apiServer:\n  extraArgs:\n    authorization-mode: Node,RBAC\n  timeoutForControlPlane: 4m0s\n"
                .to_string()
        };
        let guide = self.stacked_etcd.is_some() && api == KubeadmConfigApi::V1Alpha3;
        let etcd = self
            .external_etcd
            .as_ref()
            .map(external_etcd)
            .or_else(|| if guide { self.stacked_etcd(true) } else { None })
            .unwrap_or_else(|| "etcd:\n  local:\n    dataDir: /var/lib/etcd\n".into());
        let dns = if api.dns_type() {
            "dns:\n  type: CoreDNS\n"
        } else {
            "dns: {}\n"
        };
        let cfg = format!(
            "{api_server}apiVersion: kubeadm.k8s.io/{api_version}
certificatesDir: /etc/kubernetes/pki
clusterName: kubernetes
controlPlaneEndpoint: {endpoint}
controllerManager: {{}}
{dns}{etcd}imageRepository: {repo}
kind: ClusterConfiguration
kubernetesVersion: {version}
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
scheduler: {{}}
"
        );
        if api.cluster_status() {
            let mut status = "apiEndpoints:\n".to_string();
            // A 1.12 cluster of the guide's: the first control plane's endpoint only, as the
            // 1.12 -> 1.13 HA page has it ("Add an entry for each of the additional control plane
            // hosts").
            let first = self
                .stacked_etcd
                .as_ref()
                .and_then(|e| e.members.first())
                .filter(|_| guide);
            if let Some(first) = first {
                status.push_str(&format!(
                    "  {first}:\n    advertiseAddress: {}\n    bindPort: 6443\n",
                    self.node_ip(first)
                ));
            } else if let Some(nodes) = self.map(Kind::Node) {
                for (k, n) in nodes {
                    if labels_of(n).is_some_and(|l| {
                        l.contains_key("node-role.kubernetes.io/master")
                            || l.contains_key("node-role.kubernetes.io/control-plane")
                    }) {
                        status.push_str(&format!(
                            "  {}:\n    advertiseAddress: {}\n    bindPort: 6443\n",
                            k.1,
                            self.node_ip(&k.1)
                        ));
                    }
                }
            }
            status.push_str(&format!(
                "apiVersion: kubeadm.k8s.io/{api_version}\nkind: ClusterStatus\n"
            ));
            return json!({"ClusterConfiguration": cfg, "ClusterStatus": status});
        }
        json!({"ClusterConfiguration": cfg})
    }
}

impl Store {
    /// `etcd.local` of the 1.11 HA guide's stacked etcd ("Stacked control plane nodes", kubernetes/
    /// website docs/setup/independent/high-availability.md of v1.11), None without one. Not
    /// `upgraded`: 1.11's v1alpha2 as cp1's `kubeadm init` uploaded the guide's config for it (its own
    /// address, `initial-cluster` of itself). `upgraded`: 1.12's v1alpha3 as the 1.11 -> 1.12 HA page
    /// leaves it after the first control plane's apply (its own address, `initial-cluster` of every
    /// control plane, `initial-cluster-state: existing`).
    fn stacked_etcd(&self, upgraded: bool) -> Option<String> {
        let members = &self.stacked_etcd.as_ref()?.members;
        let first = members.first()?;
        let ip = self.node_ip(first);
        let joined: &[String] = if upgraded {
            members
        } else {
            std::slice::from_ref(first)
        };
        let cluster: Vec<String> = joined
            .iter()
            .map(|m| format!("{m}=https://{}:2380", self.node_ip(m)))
            .collect();
        let state = if upgraded {
            "      initial-cluster-state: existing\n"
        } else {
            ""
        };
        Some(format!(
            "etcd:\n  local:\n    dataDir: /var/lib/etcd\n    extraArgs:\n      \
             advertise-client-urls: https://{ip}:2379\n      initial-advertise-peer-urls: https://{ip}:2380\n      \
             initial-cluster: {}\n{state}      listen-client-urls: https://127.0.0.1:2379,https://{ip}:2379\n      \
             listen-peer-urls: https://{ip}:2380\n    image: \"\"\n    peerCertSANs:\n    - {first}\n    - {ip}\n    \
             serverCertSANs:\n    - {first}\n    - {ip}\n",
            cluster.join(",")
        ))
    }
}

/// `etcd:` of a v1alpha1 `MasterConfiguration` (kubeadm 1.9, 1.10: v1alpha1/types.go `Etcd`, its fields
/// sorted as kubeadm's YAML has them): empty client fields and `endpoints: null` for the local etcd;
/// the external one's endpoints and files as the 1.9 HA guide's `config.yaml` gives them
/// (kubernetes/website docs/setup/independent/high-availability.md).
fn v1alpha1_etcd(external: Option<&ExternalEtcdSeed>) -> String {
    let quoted = |text: &str| {
        if text.is_empty() {
            "\"\"".to_string()
        } else {
            text.to_string()
        }
    };
    let (ca, cert, key) = external
        .map(|e| (e.ca_file.as_str(), e.cert_file.as_str(), e.key_file.as_str()))
        .unwrap_or_default();
    let endpoints = match external {
        Some(e) if !e.endpoints.is_empty() => format!("\n{}", endpoint_list(&e.endpoints, "  ")),
        _ => " null\n".to_string(),
    };
    format!(
        "etcd:\n  caFile: {}\n  certFile: {}\n  dataDir: /var/lib/etcd\n  endpoints:{endpoints}  \
         image: \"\"\n  keyFile: {}\n",
        quoted(ca),
        quoted(cert),
        quoted(key)
    )
}

/// `etcd.external` from v1alpha2 (kubeadm 1.11) on: `caFile`, `certFile`, `endpoints`, `keyFile`
/// (cmd/kubeadm/app/apis/kubeadm/v1alpha2 `ExternalEtcd`, unchanged in name through v1beta4).
fn external_etcd(external: &ExternalEtcdSeed) -> String {
    format!(
        "etcd:\n  external:\n    caFile: {}\n    certFile: {}\n    endpoints:\n{}    keyFile: {}\n",
        external.ca_file,
        external.cert_file,
        endpoint_list(&external.endpoints, "    "),
        external.key_file
    )
}

/// A YAML list of `endpoints`, each line indented by `indent`.
fn endpoint_list(endpoints: &[String], indent: &str) -> String {
    endpoints.iter().map(|e| format!("{indent}- {e}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn external() -> ExternalEtcdSeed {
        ExternalEtcdSeed {
            endpoints: vec!["https://10.0.0.11:2379".into(), "https://10.0.0.12:2379".into()],
            ca_file: "/etc/kubernetes/pki/etcd/ca.pem".into(),
            cert_file: "/etc/kubernetes/pki/etcd/client.pem".into(),
            key_file: "/etc/kubernetes/pki/etcd/client-key.pem".into(),
        }
    }

    #[test]
    fn v1alpha1_names_the_external_etcd_flat_and_the_local_one_empty() {
        assert_eq!(
            v1alpha1_etcd(None),
            "etcd:\n  caFile: \"\"\n  certFile: \"\"\n  dataDir: /var/lib/etcd\n  endpoints: null\n  \
             image: \"\"\n  keyFile: \"\"\n"
        );
        assert_eq!(
            v1alpha1_etcd(Some(&external())),
            "etcd:\n  caFile: /etc/kubernetes/pki/etcd/ca.pem\n  certFile: /etc/kubernetes/pki/etcd/client.pem\n  \
             dataDir: /var/lib/etcd\n  endpoints:\n  - https://10.0.0.11:2379\n  - https://10.0.0.12:2379\n  \
             image: \"\"\n  keyFile: /etc/kubernetes/pki/etcd/client-key.pem\n"
        );
    }

    /// The lab's 2 control planes and a worker at 10.213.0.11.. (as `kup-lab up` seeds them), with
    /// the 1.11 HA guide's stacked etcd and cri-socket annotations.
    fn guide_store(minor: u32, annotated: &[&str]) -> Store {
        let mut cluster = crate::Cluster::sample(None);
        cluster.nodes.truncate(4);
        cluster.nodes.remove(2);
        for (i, n) in cluster.nodes.iter_mut().enumerate() {
            n.address = Some(format!("10.213.0.{}", 11 + i));
        }
        cluster.nodes[0].name = "lab-cp1".into();
        cluster.nodes[1].name = "lab-cp2".into();
        cluster.nodes[2].name = "lab-w1".into();
        cluster.replica_sets.clear();
        cluster.pods.clear();
        cluster.control_plane_endpoint = Some("10.213.0.10:6443".into());
        cluster.stacked_etcd = Some(crate::cluster::StackedEtcdSeed {
            members: vec!["lab-cp1".into(), "lab-cp2".into()],
        });
        for node in annotated {
            cluster.node_annotations.insert(
                node.to_string(),
                [(
                    "kubeadm.alpha.kubernetes.io/cri-socket".to_string(),
                    "/var/run/dockershim.sock".to_string(),
                )]
                .into(),
            );
        }
        let emu = crate::Emulation::parse(&format!("1.{minor}")).unwrap();
        Store::new(emu, super::super::StoreConfig::default(), &cluster).unwrap()
    }

    fn yaml(text: &str) -> serde_norway::Value {
        serde_norway::from_str(text).unwrap()
    }

    fn annotation(store: &Store, node: &str) -> Option<String> {
        store.get(Kind::Node, "", node)?["metadata"]["annotations"]["kubeadm.alpha.kubernetes.io/cri-socket"]
            .as_str()
            .map(str::to_string)
    }

    #[test]
    fn a_1_11_stacked_seed_is_the_ha_guides_master_configuration_for_cp1() {
        let store = guide_store(11, &["lab-cp1"]);
        let data = store.kubeadm_config();
        let text = data["MasterConfiguration"].as_str().unwrap();
        let doc = yaml(text);
        assert_eq!(doc["apiVersion"], "kubeadm.k8s.io/v1alpha2", "{text}");
        assert_eq!(doc["kind"], "MasterConfiguration");
        assert_eq!(doc["api"]["advertiseAddress"], "10.213.0.11", "{text}");
        assert_eq!(doc["apiServerCertSANs"][0], "10.213.0.10", "{text}");
        let local = &doc["etcd"]["local"];
        let args = &local["extraArgs"];
        assert_eq!(
            args["listen-client-urls"],
            "https://127.0.0.1:2379,https://10.213.0.11:2379"
        );
        assert_eq!(args["advertise-client-urls"], "https://10.213.0.11:2379");
        assert_eq!(args["listen-peer-urls"], "https://10.213.0.11:2380");
        assert_eq!(args["initial-advertise-peer-urls"], "https://10.213.0.11:2380");
        assert_eq!(args["initial-cluster"], "lab-cp1=https://10.213.0.11:2380");
        assert!(args.get("initial-cluster-state").is_none(), "{text}");
        assert_eq!(local["serverCertSANs"][0], "lab-cp1");
        assert_eq!(local["peerCertSANs"][1], "10.213.0.11");
        assert_eq!(local["dataDir"], "/var/lib/etcd");
        assert_eq!(
            annotation(&store, "lab-cp1").as_deref(),
            Some("/var/run/dockershim.sock")
        );
        assert_eq!(annotation(&store, "lab-cp2"), None);
        // The seeded ConfigMap is the stored object (PUT/PATCH change it).
        let stored = store
            .get(Kind::ConfigMap, "kube-system", "kubeadm-config")
            .unwrap();
        assert_eq!(stored["data"], data);
    }

    #[test]
    fn a_1_12_stacked_seed_is_v1alpha3_after_the_first_control_planes_edits() {
        let store = guide_store(12, &["lab-cp1", "lab-cp2"]);
        let data = store.kubeadm_config();
        let text = data["ClusterConfiguration"].as_str().unwrap();
        let doc = yaml(text);
        assert_eq!(doc["apiVersion"], "kubeadm.k8s.io/v1alpha3", "{text}");
        let args = &doc["etcd"]["local"]["extraArgs"];
        assert_eq!(
            args["advertise-client-urls"], "https://10.213.0.11:2379",
            "{text}"
        );
        assert_eq!(
            args["initial-cluster"],
            "lab-cp1=https://10.213.0.11:2380,lab-cp2=https://10.213.0.12:2380"
        );
        assert_eq!(args["initial-cluster-state"], "existing");
        assert_eq!(
            args["listen-client-urls"],
            "https://127.0.0.1:2379,https://10.213.0.11:2379"
        );
        let status = yaml(data["ClusterStatus"].as_str().unwrap());
        let endpoints = status["apiEndpoints"].as_mapping().unwrap();
        assert_eq!(endpoints.len(), 1, "{status:?}");
        assert_eq!(
            status["apiEndpoints"]["lab-cp1"]["advertiseAddress"],
            "10.213.0.11"
        );
        for node in ["lab-cp1", "lab-cp2"] {
            assert_eq!(
                annotation(&store, node).as_deref(),
                Some("/var/run/dockershim.sock")
            );
        }
        // From 1.13 the seed has no extraArgs and every control plane's endpoint.
        let later = guide_store(13, &[]).kubeadm_config();
        let text = later["ClusterConfiguration"].as_str().unwrap();
        assert!(!text.contains("extraArgs:\n      advertise"), "{text}");
        let status = yaml(later["ClusterStatus"].as_str().unwrap());
        assert_eq!(
            status["apiEndpoints"].as_mapping().unwrap().len(),
            2,
            "{status:?}"
        );
    }

    #[test]
    fn later_apis_name_it_under_external() {
        let text = external_etcd(&external());
        assert_eq!(
            text,
            "etcd:\n  external:\n    caFile: /etc/kubernetes/pki/etcd/ca.pem\n    \
             certFile: /etc/kubernetes/pki/etcd/client.pem\n    endpoints:\n    - https://10.0.0.11:2379\n    \
             - https://10.0.0.12:2379\n    keyFile: /etc/kubernetes/pki/etcd/client-key.pem\n"
        );
        let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(doc["etcd"]["external"]["endpoints"][1], "https://10.0.0.12:2379");
        assert_eq!(
            doc["etcd"]["external"]["keyFile"],
            "/etc/kubernetes/pki/etcd/client-key.pem"
        );
    }
}
