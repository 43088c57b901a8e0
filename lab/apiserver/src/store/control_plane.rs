//! The control plane's version, as the stand-in kubeadm changes it: the image tags of a node's
//! static pods, and what `/version` reports once the primary control-plane node is upgraded.

use serde_json::json;
use serde_json::Value;

use super::{Kind, Store};
use crate::error::ApiError;

impl Store {
    /// Sets the version of the control-plane static pods on a node (their image tags); when the
    /// node is the primary control-plane node, `/version` reports it from then on.
    pub fn set_control_plane_version(&mut self, node: &str, version: &str) -> Result<Vec<String>, ApiError> {
        self.get_or_404(Kind::Node, "", node)?;
        if !version.starts_with('v') || version.split('.').count() != 3 {
            return Err(ApiError::bad_request(format!(
                "version {version:?} must look like v1.10.13"
            )));
        }
        let mut changed = Vec::new();
        for comp in ["kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
            let pod_name = format!("{comp}-{node}");
            let Some(mut pod) = self.get(Kind::Pod, "kube-system", &pod_name).cloned() else {
                continue;
            };
            let image = self.emu.control_plane_image(comp, version);
            if let Some(cs) = pod.pointer_mut("/spec/containers").and_then(Value::as_array_mut) {
                for c in cs {
                    if let Some(o) = c.as_object_mut() {
                        o.insert("image".into(), json!(image));
                    }
                }
            }
            if let Some(cs) = pod
                .pointer_mut("/status/containerStatuses")
                .and_then(Value::as_array_mut)
            {
                for c in cs {
                    if let Some(o) = c.as_object_mut() {
                        o.insert("image".into(), json!(image));
                        o.insert("imageID".into(), json!(format!("docker-pullable://{image}")));
                    }
                }
            }
            if let Some(m) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
                m.insert("uid".into(), json!(self.rng.uid()));
            }
            self.commit(Kind::Pod, pod);
            changed.push(pod_name);
        }
        if self.primary_master.as_deref() == Some(node) {
            self.served_version = version.to_string();
        }
        Ok(changed)
    }
}
