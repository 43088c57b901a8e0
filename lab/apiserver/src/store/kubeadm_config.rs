//! `kube-system/kubeadm-config` as the release's kubeadm wrote it: `MasterConfiguration` (with the
//! `nodeName` the old runbook rewrites) up to 1.11, then `ClusterConfiguration` (+ `ClusterStatus`
//! before v1beta3), in the config API version of the release.

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
        let api_endpoint = format!(
            "api:\n  advertiseAddress: {addr}\n  bindPort: 6443\n  controlPlaneEndpoint: {endpoint}\n"
        );
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
            let etcd =
                self.external_etcd.as_ref().map(external_etcd).unwrap_or_else(|| {
                    "etcd:\n  local:\n    dataDir: /var/lib/etcd\n    image: \"\"\n".into()
                });
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
        let etcd = self
            .external_etcd
            .as_ref()
            .map(external_etcd)
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
            if let Some(nodes) = self.map(Kind::Node) {
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
