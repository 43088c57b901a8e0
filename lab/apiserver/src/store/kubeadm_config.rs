//! `kube-system/kubeadm-config` as the release's kubeadm wrote it: `MasterConfiguration` (with the
//! `nodeName` the old runbook rewrites) up to 1.11, then `ClusterConfiguration` (+ `ClusterStatus`
//! before v1beta3), in the config API version of the release.

use serde_json::{json, Value};

use super::object::labels_of;
use super::{Kind, Store};
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
            format!(
                "{api_endpoint}authorizationModes:
- Node
- RBAC
certificatesDir: /etc/kubernetes/pki
cloudProvider: \"\"
etcd:
  caFile: \"\"
  certFile: \"\"
  dataDir: /var/lib/etcd
  endpoints: null
  image: \"\"
  keyFile: \"\"
imageRepository: gcr.io/google_containers
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
            format!(
                "{api_endpoint}apiVersion: kubeadm.k8s.io/v1alpha2
certificatesDir: /etc/kubernetes/pki
clusterName: kubernetes
etcd:
  local:
    dataDir: /var/lib/etcd
    image: \"\"
imageRepository: k8s.gcr.io
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
{dns}etcd:
  local:
    dataDir: /var/lib/etcd
imageRepository: {repo}
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
