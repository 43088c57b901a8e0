//! The initial cluster from a [`Cluster`] seed: namespaces, nodes as the release's kubelet and
//! kubeadm registered them, control-plane static pods, DaemonSets, ReplicaSets, single pods, PDBs and
//! config maps, all Running and Ready at once.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::object::{meta_str, set_path};
use super::{Kind, Store};
use crate::cluster::{Cluster, NodeSeed, Role};
use crate::util::now_str;

impl Store {
    pub(super) fn seed(&mut self, c: &Cluster) -> Result<(), String> {
        let mut namespaces: BTreeSet<String> = ["default", "kube-system", "kube-public"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if self.emu.node_lease_namespace() {
            namespaces.insert("kube-node-lease".into());
        }
        for ns in c
            .replica_sets
            .iter()
            .map(|r| &r.namespace)
            .chain(c.daemon_sets.iter().map(|d| &d.namespace))
            .chain(c.deployments.iter().map(|d| &d.namespace))
            .chain(c.pods.iter().map(|p| &p.namespace))
            .chain(c.pdbs.iter().map(|p| &p.namespace))
            .chain(c.config_maps.keys())
        {
            namespaces.insert(ns.clone());
        }
        for ns in &namespaces {
            self.create(Kind::Namespace, "", json!({"metadata": {"name": ns}}))
                .map_err(|e| e.message)?;
        }
        if let Some(unknown) = c
            .node_annotations
            .keys()
            .find(|name| !c.nodes.iter().any(|n| &n.name == *name))
        {
            return Err(format!("nodeAnnotations names unknown node {unknown:?}"));
        }
        let mut seen = BTreeSet::new();
        for (i, n) in c.nodes.iter().enumerate() {
            if !seen.insert(n.name.clone()) {
                return Err(format!("node {:?} is listed twice", n.name));
            }
            let mut node = self.node_object(i, n);
            if let Some(extra) = c.node_annotations.get(&n.name) {
                if let Some(a) = node
                    .pointer_mut("/metadata/annotations")
                    .and_then(Value::as_object_mut)
                {
                    for (k, v) in extra {
                        a.insert(k.clone(), json!(v));
                    }
                }
            }
            let node = self.commit(Kind::Node, node);
            self.register_node(&node, n.kubelet, i);
            if self.primary_master.is_none() && n.roles.contains(&Role::ControlPlane) {
                self.primary_master = Some(n.name.clone());
            }
        }
        if c.static_pods {
            let version = self.served_version.clone();
            for n in c.nodes.iter().filter(|n| n.roles.contains(&Role::ControlPlane)) {
                for comp in [
                    "etcd",
                    "kube-apiserver",
                    "kube-controller-manager",
                    "kube-scheduler",
                ] {
                    let image = if comp == "etcd" {
                        self.emu.etcd_image().to_string()
                    } else {
                        self.emu.control_plane_image(comp, &version)
                    };
                    let hash = format!(
                        "{:032x}",
                        (self.rng.next_u64() as u128) << 64 | self.rng.next_u64() as u128
                    );
                    let template = json!({
                        "metadata": {
                            "labels": {"component": comp, "tier": "control-plane"},
                            "annotations": {"kubernetes.io/config.hash": hash, "kubernetes.io/config.mirror": hash,
                                "kubernetes.io/config.seen": now_str(), "kubernetes.io/config.source": "file"}
                        },
                        "spec": {"containers": [{"name": comp, "image": image, "command": [comp]}],
                            "hostNetwork": true, "priorityClassName": "system-node-critical",
                            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                            "tolerations": [{"operator": "Exists", "effect": "NoExecute"}]}
                    });
                    let owner = self.emu.mirror_pods_owned_by_node().then(|| {
                        let node = self.get(Kind::Node, "", &n.name).cloned().unwrap_or(Value::Null);
                        json!({"apiVersion": "v1", "kind": "Node", "name": n.name, "uid": meta_str(&node, "uid"), "controller": true})
                    });
                    let mut pod = self.pod_from_template(
                        "kube-system",
                        &format!("{comp}-{}", n.name),
                        &template,
                        owner,
                        Some(&n.name),
                    );
                    if let Some(m) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("generateName");
                    }
                    self.launch_pod(pod, true);
                }
            }
        }
        for d in &c.deployments {
            let labels = if d.labels.is_empty() {
                json!({"app": d.name})
            } else {
                json!(d.labels)
            };
            let container = d.container.as_deref().unwrap_or(&d.name);
            let m = self.new_meta(&d.namespace, &d.name, labels.clone());
            let replicas = d.replicas;
            let obj = json!({"metadata": m, "spec": {"replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels},
                    "spec": {"containers": [{"name": container, "image": d.image}]}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}}},
                "status": {"observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas,
                    "updatedReplicas": replicas, "availableReplicas": replicas,
                    "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                        "message": "Deployment has minimum availability."}]}});
            self.commit(Kind::Deployment, obj);
        }
        for ds in &c.daemon_sets {
            let labels = if ds.labels.is_empty() {
                json!({"app": ds.name})
            } else {
                json!(ds.labels)
            };
            let mut spec = self.pod_spec(
                ds.image.as_deref().unwrap_or("busybox:1.28"),
                ds.termination_grace_period_seconds,
                ds.empty_dir,
            );
            if let Some(o) = spec.as_object_mut() {
                o.insert("tolerations".into(), json!([
                    {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
                    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
                    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]));
                if ds.roles.len() == 1 {
                    let key = if ds.roles.contains(&Role::ControlPlane) {
                        self.emu.control_plane_role_key()
                    } else {
                        "node-role.kubernetes.io/worker"
                    };
                    o.insert("nodeSelector".into(), json!({key: ""}));
                }
            }
            let m = self.new_meta(&ds.namespace, &ds.name, labels.clone());
            let obj = json!({"metadata": m, "spec": {"selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": spec},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}},
                "status": {"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0}});
            let stored = self.commit(Kind::DaemonSet, obj);
            for n in &c.nodes {
                if ds.roles.is_empty() || n.roles.iter().any(|r| ds.roles.contains(r)) {
                    self.launch_owned_pod(Kind::DaemonSet, &stored, Some(&n.name), true);
                }
            }
        }
        let workers: Vec<String> = c
            .nodes
            .iter()
            .filter(|n| !n.roles.contains(&Role::ControlPlane) && !n.unschedulable && n.ready)
            .map(|n| n.name.clone())
            .collect();
        let mut rr = 0usize;
        for rs in &c.replica_sets {
            let labels = if rs.labels.is_empty() {
                json!({"app": rs.name})
            } else {
                json!(rs.labels)
            };
            let spec = self.pod_spec(
                rs.image.as_deref().unwrap_or("nginx:1.13"),
                rs.termination_grace_period_seconds,
                rs.empty_dir,
            );
            let m = self.new_meta(&rs.namespace, &rs.name, labels.clone());
            let obj = json!({"metadata": m, "spec": {"replicas": rs.replicas, "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": spec}},
                "status": {"replicas": rs.replicas, "fullyLabeledReplicas": rs.replicas, "readyReplicas": rs.replicas,
                    "availableReplicas": rs.replicas, "observedGeneration": 1}});
            let obj = self.commit(Kind::ReplicaSet, obj);
            for i in 0..rs.replicas as usize {
                let node = if rs.nodes.is_empty() {
                    let n = workers.get(rr % workers.len().max(1)).cloned();
                    rr += 1;
                    n
                } else {
                    rs.nodes.get(i % rs.nodes.len()).cloned()
                };
                if let Some(n) = &node {
                    if self.get(Kind::Node, "", n).is_none() {
                        return Err(format!("replicaSet {:?} names unknown node {n:?}", rs.name));
                    }
                }
                self.launch_owned_pod(Kind::ReplicaSet, &obj, node.as_deref(), true);
            }
        }
        for p in &c.pods {
            if self.get(Kind::Node, "", &p.node).is_none() {
                return Err(format!("pod {:?} names unknown node {:?}", p.name, p.node));
            }
            let mut template = json!({"metadata": {"labels": p.labels},
                "spec": self.pod_spec("busybox:1.28", p.termination_grace_period_seconds, p.empty_dir)});
            if p.mirror {
                let hash = format!("{:016x}", self.rng.next_u64());
                set_path(
                    &mut template,
                    &["metadata", "annotations"],
                    json!({"kubernetes.io/config.mirror": hash,
                    "kubernetes.io/config.hash": hash, "kubernetes.io/config.source": "file"}),
                );
            }
            let pod = self.pod_from_template(&p.namespace, &p.name, &template, None, Some(&p.node));
            if let Some(m) = pod.get("metadata").and_then(Value::as_object) {
                if m.contains_key("generateName") {
                    continue;
                }
            }
            self.launch_pod(pod, true);
        }
        for p in &c.pdbs {
            let m = self.new_meta(&p.namespace, &p.name, json!({}));
            let mut spec = json!({"selector": {"matchLabels": p.selector}});
            if let Some(o) = spec.as_object_mut() {
                if let Some(v) = &p.min_available {
                    o.insert("minAvailable".into(), json!(v));
                }
                if let Some(v) = &p.max_unavailable {
                    o.insert("maxUnavailable".into(), json!(v));
                }
            }
            let mut obj = json!({"metadata": m, "spec": spec});
            set_path(&mut obj, &["metadata", "generation"], json!(1));
            self.commit(Kind::Pdb, obj);
        }
        let kc = self.kubeadm_config();
        let m = self.new_meta("kube-system", "kubeadm-config", json!({}));
        self.commit(Kind::ConfigMap, json!({"metadata": m, "data": kc}));
        for (ns, cms) in &c.config_maps {
            for (name, data) in cms {
                let m = self.new_meta(ns, name, json!({}));
                self.commit(Kind::ConfigMap, json!({"metadata": m, "data": data}));
            }
        }
        Ok(())
    }

    fn pod_spec(&self, image: &str, grace: i64, empty_dir: bool) -> Value {
        let mut c = json!({"name": "main", "image": image, "imagePullPolicy": "IfNotPresent", "resources": {},
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"});
        let mut spec = json!({"containers": [], "restartPolicy": "Always", "terminationGracePeriodSeconds": grace,
            "dnsPolicy": "ClusterFirst", "serviceAccountName": "default", "serviceAccount": "default",
            "securityContext": {}, "schedulerName": "default-scheduler"});
        if empty_dir {
            set_path(
                &mut c,
                &["volumeMounts"],
                json!([{"name": "scratch", "mountPath": "/scratch"}]),
            );
            set_path(
                &mut spec,
                &["volumes"],
                json!([{"name": "scratch", "emptyDir": {}}]),
            );
        }
        set_path(&mut spec, &["containers"], json!([c]));
        spec
    }

    fn node_object(&mut self, i: usize, n: &NodeSeed) -> Value {
        let emu = self.emu;
        let kubelet = n
            .kubelet_version
            .clone()
            .unwrap_or_else(|| self.served_version.clone());
        let address = n
            .address
            .clone()
            .unwrap_or_else(|| format!("10.88.{}.{}", i / 250, i % 250 + 10));
        let mut labels = json!({"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
            "kubernetes.io/hostname": n.name});
        let control = n.roles.contains(&Role::ControlPlane);
        if let Some(l) = labels.as_object_mut() {
            if emu.node_ga_os_arch_labels() {
                l.insert("kubernetes.io/arch".into(), json!("amd64"));
                l.insert("kubernetes.io/os".into(), json!("linux"));
            }
            if control {
                if emu.kubeadm_master_label() {
                    l.insert("node-role.kubernetes.io/master".into(), json!(""));
                }
                if emu.kubeadm_control_plane_label() {
                    l.insert("node-role.kubernetes.io/control-plane".into(), json!(""));
                }
                if emu.kubeadm_exclude_from_lb_label() {
                    l.insert(
                        "node.kubernetes.io/exclude-from-external-load-balancers".into(),
                        json!(""),
                    );
                }
            }
            for (k, v) in &n.labels {
                l.insert(k.clone(), json!(v));
            }
        }
        let mut m = self.new_meta("", &n.name, labels);
        set_path(
            &mut m,
            &["annotations"],
            json!({"node.alpha.kubernetes.io/ttl": "0",
            "volumes.kubernetes.io/controller-managed-attach-detach": "true"}),
        );
        let mut spec = json!({"podCIDR": format!("10.{}.{}.0/24", 244 + i / 256, i % 256)});
        if let Some(o) = spec.as_object_mut() {
            if emu.node_external_id() {
                o.insert("externalID".into(), json!(n.name));
            }
            if emu.dual_stack_fields() {
                o.insert(
                    "podCIDRs".into(),
                    json!([format!("10.{}.{}.0/24", 244 + i / 256, i % 256)]),
                );
            }
            if control {
                o.insert(
                    "taints".into(),
                    json!([{"key": emu.control_plane_role_key(), "effect": "NoSchedule"}]),
                );
            }
            if n.unschedulable {
                o.insert("unschedulable".into(), json!(true));
            }
        }
        let now = now_str();
        let cond = |t: &str, s: &str, r: &str, msg: &str| {
            json!({"type": t, "status": s, "lastHeartbeatTime": now,
            "lastTransitionTime": now, "reason": r, "message": msg})
        };
        let mut conds = Vec::new();
        if emu.node_out_of_disk_condition() {
            conds.push(cond(
                "OutOfDisk",
                "False",
                "KubeletHasSufficientDisk",
                "kubelet has sufficient disk space available",
            ));
        }
        conds.push(cond(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ));
        conds.push(cond(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ));
        if emu.node_pid_pressure_condition() {
            conds.push(cond(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ));
        }
        conds.push(if n.ready {
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status")
        } else {
            cond("Ready", "False", "KubeletNotReady", "container runtime is down")
        });
        let (os_image, runtime, kernel) = emu.node_system();
        let machine = format!("{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64());
        let boot = self.rng.uid();
        let status = json!({
            "capacity": {"cpu": "2", "memory": "4030940Ki", "pods": "110", "ephemeral-storage": "20509308Ki", "hugepages-2Mi": "0"},
            "allocatable": {"cpu": "2", "memory": "3928540Ki", "pods": "110", "ephemeral-storage": "18901337672", "hugepages-2Mi": "0"},
            "conditions": conds,
            "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": n.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"machineID": machine, "systemUUID": machine.to_uppercase(), "bootID": boot,
                "kernelVersion": kernel, "osImage": os_image, "containerRuntimeVersion": runtime,
                "kubeletVersion": kubelet, "kubeProxyVersion": kubelet, "operatingSystem": "linux", "architecture": "amd64"},
        });
        json!({"metadata": m, "spec": spec, "status": status})
    }
}
