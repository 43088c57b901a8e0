//! What the nodes' services mean for the control plane, as the lab's stand-ins report it:
//!
//! - the container runtime's containers (a control plane's static pods) running or stopped: a control
//!   plane whose static pods are down is unavailable, its mirror pods not Ready;
//! - a kubelet that started at a new minor restarting the static pods for a while;
//! - keepalived on the control planes holding the cluster's virtual address: the first running one
//!   in node order (priority) holds it; when the holder stops, the address is unserved for a failover
//!   window and then moves.
//!
//! Every time a control plane turns unavailable, and every time the virtual address is lost or moves,
//! an interruption is counted (`GET /_lab/control-planes`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::object::condition_true;
use super::{Kind, Store};
use crate::error::ApiError;

/// The static pods kubeadm puts on a control plane (cmd/kubeadm/app/constants: Etcd,
/// KubeAPIServer, KubeControllerManager, KubeScheduler).
const STATIC_PODS: &[&str] = &[
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// Simulated seconds between a VRRP master's stop and a backup taking the address over: a stopping
/// keepalived sends a priority-0 advertisement, after which a backup waits Skew_Time =
/// (256 - Priority)/256 s (RFC 3768 section 6.4.3); the lab waits a whole second, the longest skew.
const FAILOVER_SECONDS: f64 = 1.0;

/// One control plane's static pods.
#[derive(Debug, Clone)]
struct Plane {
    /// The runtime's containers were reported stopped.
    stopped: bool,
    /// The runtime the last report came from (`docker`, `containerd`).
    runtime: Option<String>,
    /// When the runtime last reported (its containers running); stale reports count as stopped.
    last_report: Option<Instant>,
    /// The static pods are being restarted until then (a kubelet at a new minor).
    restarting_until: Option<Instant>,
    available: bool,
    interruptions: u64,
}

/// The virtual address keepalived holds.
#[derive(Debug, Clone, Default)]
struct Vip {
    holder: Option<String>,
    /// The last node that held it (to count moves across a failover window).
    last_holder: Option<String>,
    /// No one holds it until then: the failover window.
    failover_until: Option<Instant>,
    moves: u64,
    interruptions: u64,
}

/// The services' state, kept beside the objects.
#[derive(Debug, Clone, Default)]
pub(super) struct Services {
    /// Control planes in node order (the order of keepalived's priorities).
    order: Vec<String>,
    planes: BTreeMap<String, Plane>,
    /// Running keepalived instances and their last report.
    keepalived: BTreeMap<String, Instant>,
    vip: Vip,
}

impl Services {
    pub(super) fn new(control_planes: Vec<String>) -> Services {
        let planes = control_planes
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    Plane {
                        stopped: false,
                        runtime: None,
                        last_report: None,
                        restarting_until: None,
                        available: true,
                        interruptions: 0,
                    },
                )
            })
            .collect();
        Services {
            order: control_planes,
            planes,
            ..Services::default()
        }
    }

    /// Whether `node`'s static pods are up (a node that is no control plane: always).
    pub(super) fn plane_available(&self, node: &str) -> bool {
        self.planes.get(node).is_none_or(|p| p.available)
    }

    /// The next moment something changes by itself (a restart or a failover window ending).
    fn next_deadline(&self) -> Option<Instant> {
        self.planes
            .values()
            .filter_map(|p| p.restarting_until)
            .chain(self.vip.failover_until)
            .min()
    }
}

/// Whether the static pods of a plane are up at `now`, given reports older than `stale` no longer
/// count.
fn plane_up(p: &Plane, now: Instant, stale: Duration) -> bool {
    let reported_gone = p.last_report.is_some_and(|t| now.duration_since(t) > stale);
    let restarting = p.restarting_until.is_some_and(|t| now < t);
    !p.stopped && !reported_gone && !restarting
}

/// The VIP at `now`, given the first running keepalived instance in priority order and which run.
fn step_vip(
    vip: &mut Vip,
    first_running: Option<&String>,
    running: impl Fn(&str) -> bool,
    now: Instant,
    window: Duration,
) {
    if let Some(until) = vip.failover_until {
        if now < until {
            return;
        }
        vip.failover_until = None;
        vip.holder = first_running.cloned();
        if vip.holder.is_some() && vip.last_holder.is_some() && vip.holder != vip.last_holder {
            vip.moves += 1;
        }
        if vip.holder.is_some() {
            vip.last_holder = vip.holder.clone();
        }
        return;
    }
    match vip.holder.clone() {
        Some(holder) if !running(&holder) => {
            // The master stopped: nobody answers on the address until a backup takes over.
            vip.holder = None;
            vip.interruptions += 1;
            vip.failover_until = Some(now + window);
        }
        Some(holder) => {
            // A higher-priority instance came back: keepalived preempts by default
            // (keepalived.conf(5): "nopreempt" is off unless set).
            if first_running.is_some_and(|f| *f != holder) {
                vip.holder = first_running.cloned();
                vip.last_holder = vip.holder.clone();
                vip.moves += 1;
                vip.interruptions += 1;
            }
        }
        None => {
            if let Some(first) = first_running {
                if vip.last_holder.as_ref().is_some_and(|l| l != first) {
                    vip.moves += 1;
                }
                vip.holder = Some(first.clone());
                vip.last_holder = Some(first.clone());
            }
        }
    }
}

impl Store {
    fn plane_mut(&mut self, node: &str) -> Result<&mut Plane, ApiError> {
        self.get_or_404(Kind::Node, "", node)?;
        self.services
            .planes
            .get_mut(node)
            .ok_or_else(|| ApiError::bad_request(format!("{node} is not a control-plane node")))
    }

    /// The container runtime of `node` reports its containers (the static pods) running or stopped.
    /// A node that is no control plane has nothing to report; it is accepted and ignored.
    pub fn report_static_pods(
        &mut self,
        node: &str,
        runtime: &str,
        running: bool,
    ) -> Result<Value, ApiError> {
        self.get_or_404(Kind::Node, "", node)?;
        if let Some(p) = self.services.planes.get_mut(node) {
            p.stopped = !running;
            p.runtime = Some(runtime.to_string());
            p.last_report = running.then(Instant::now);
            self.refresh_services(Instant::now());
        }
        Ok(self.services_status())
    }

    /// A kubelet that started at a new minor restarts the static pods: they are down for
    /// `seconds` simulated seconds.
    pub fn restart_static_pods(&mut self, node: &str, seconds: f64) -> Result<Value, ApiError> {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Err(ApiError::bad_request("seconds must be a number >= 0"));
        }
        let until = Instant::now() + self.sim(seconds);
        let plane = self.plane_mut(node)?;
        plane.restarting_until = Some(plane.restarting_until.map_or(until, |t| t.max(until)));
        self.refresh_services(Instant::now());
        Ok(self.services_status())
    }

    /// keepalived on `node` reports itself running (every few seconds) or stopped.
    pub fn report_keepalived(&mut self, node: &str, running: bool) -> Result<Value, ApiError> {
        self.plane_mut(node)?;
        if running {
            self.services.keepalived.insert(node.to_string(), Instant::now());
        } else {
            self.services.keepalived.remove(node);
        }
        self.refresh_services(Instant::now());
        Ok(self.services_status())
    }

    /// Recomputes availability and the VIP's holder; marks mirror pods as their control plane is.
    pub(super) fn refresh_services(&mut self, now: Instant) {
        let stale = self.cfg.node_grace;
        self.services
            .keepalived
            .retain(|_, seen| now.duration_since(*seen) <= stale);
        let mut changed = Vec::new();
        for (name, p) in self.services.planes.iter_mut() {
            if p.restarting_until.is_some_and(|t| now >= t) {
                p.restarting_until = None;
            }
            let up = plane_up(p, now, stale);
            if up != p.available {
                p.available = up;
                if !up {
                    p.interruptions += 1;
                }
                changed.push(name.clone());
            }
        }
        for node in changed {
            self.mark_static_pods(&node);
        }
        let window = self.sim(FAILOVER_SECONDS);
        let services = &mut self.services;
        let first = services
            .order
            .iter()
            .find(|n| services.keepalived.contains_key(n.as_str()));
        let running = |n: &str| services.keepalived.contains_key(n);
        step_vip(&mut services.vip, first, running, now, window);
    }

    /// Sets the readiness of `node`'s mirror pods: Ready while its static pods are up and the node is.
    fn mark_static_pods(&mut self, node: &str) {
        let node_ready = self
            .get(Kind::Node, "", node)
            .is_some_and(|n| condition_true(n, "Ready"));
        let ready = node_ready && self.services.plane_available(node);
        for comp in STATIC_PODS {
            let name = format!("{comp}-{node}");
            let Some(mut pod) = self.get(Kind::Pod, "kube-system", &name).cloned() else {
                continue;
            };
            if condition_true(&pod, "Ready") != ready {
                self.set_pod_readiness(&mut pod, ready);
                self.commit(Kind::Pod, pod);
            }
        }
    }

    /// Whether `pod` is a static pod of a control plane whose static pods are down.
    pub(super) fn static_pod_down(&self, node: &str, pod_name: &str) -> bool {
        !self.services.plane_available(node)
            && STATIC_PODS
                .iter()
                .any(|comp| pod_name == format!("{comp}-{node}"))
    }

    /// When the services next change by themselves.
    pub(super) fn services_deadline(&self) -> Option<Instant> {
        self.services.next_deadline()
    }

    /// The control plane keepalived gives the virtual address to now, if any.
    pub fn vip_holder(&self) -> Option<String> {
        self.services.vip.holder.clone()
    }

    /// `GET /_lab/control-planes`.
    pub fn services_status(&self) -> Value {
        let now = Instant::now();
        let planes: Vec<Value> = self
            .services
            .order
            .iter()
            .filter_map(|name| self.services.planes.get(name).map(|p| (name, p)))
            .map(|(name, p)| {
                let state = if p.restarting_until.is_some_and(|t| now < t) {
                    "restarting"
                } else if !p.available {
                    "stopped"
                } else if p.last_report.is_some() {
                    "running"
                } else {
                    "unreported"
                };
                json!({"node": name, "available": p.available, "staticPods": state,
                    "runtime": p.runtime, "interruptions": p.interruptions})
            })
            .collect();
        let vip = &self.services.vip;
        let keepalived: Vec<&String> = self
            .services
            .order
            .iter()
            .filter(|n| self.services.keepalived.contains_key(n.as_str()))
            .collect();
        json!({
            "controlPlanes": planes,
            "interruptions": self.services.planes.values().map(|p| p.interruptions).sum::<u64>(),
            "vip": {"holder": vip.holder, "keepalived": keepalived, "failingOver": vip.failover_until.is_some(),
                "moves": vip.moves, "interruptions": vip.interruptions},
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// Runs the VIP with these instances running at `now`.
    fn step(vip: &mut Vip, order: &[String], running: &[&str], now: Instant) {
        let first = order.iter().find(|n| running.contains(&n.as_str()));
        step_vip(vip, first, |n| running.contains(&n), now, Duration::from_secs(1));
    }

    #[test]
    fn the_first_running_instance_holds_the_address_and_a_stop_moves_it_after_a_window() {
        let order = names(&["cp1", "cp2", "cp3"]);
        let mut vip = Vip::default();
        let t0 = Instant::now();
        step(&mut vip, &order, &["cp2"], t0);
        step(&mut vip, &order, &["cp1", "cp2"], t0);
        // cp1 came up after cp2 took the address: preempted, a move.
        assert_eq!(vip.holder.as_deref(), Some("cp1"));
        assert_eq!((vip.moves, vip.interruptions), (1, 1));
        step(&mut vip, &order, &["cp2", "cp3"], t0);
        assert_eq!(vip.holder, None, "nobody holds it during the failover window");
        assert_eq!(vip.interruptions, 2);
        step(&mut vip, &order, &["cp2", "cp3"], t0 + Duration::from_millis(500));
        assert_eq!(vip.holder, None);
        step(&mut vip, &order, &["cp2", "cp3"], t0 + Duration::from_secs(2));
        assert_eq!(vip.holder.as_deref(), Some("cp2"));
        assert_eq!((vip.moves, vip.interruptions), (2, 2));
        // Nobody left: the address is lost; the next one to start takes it.
        step(&mut vip, &order, &[], t0 + Duration::from_secs(3));
        step(&mut vip, &order, &[], t0 + Duration::from_secs(5));
        assert_eq!(vip.holder, None);
        step(&mut vip, &order, &["cp3"], t0 + Duration::from_secs(6));
        assert_eq!(vip.holder.as_deref(), Some("cp3"));
        assert_eq!((vip.moves, vip.interruptions), (3, 3));
    }

    #[test]
    fn static_pods_are_down_while_stopped_restarting_or_unreported_for_too_long() {
        let now = Instant::now();
        let stale = Duration::from_secs(8);
        let mut p = Plane {
            stopped: false,
            runtime: None,
            last_report: None,
            restarting_until: None,
            available: true,
            interruptions: 0,
        };
        assert!(plane_up(&p, now, stale), "never reported: as seeded, running");
        p.last_report = Some(now);
        assert!(plane_up(&p, now + Duration::from_secs(5), stale));
        assert!(!plane_up(&p, now + Duration::from_secs(9), stale));
        p.restarting_until = Some(now + Duration::from_secs(2));
        assert!(!plane_up(&p, now + Duration::from_secs(1), stale));
        assert!(plane_up(&p, now + Duration::from_secs(3), stale));
        p.stopped = true;
        assert!(!plane_up(&p, now + Duration::from_secs(3), stale));
    }

    fn store() -> Store {
        let cfg = crate::store::StoreConfig {
            time_factor: 0.01,
            ..crate::store::StoreConfig::default()
        };
        Store::new(crate::Emulation::V1_30, cfg, &crate::Cluster::sample(None)).unwrap()
    }

    fn ready(s: &Store, pod: &str) -> bool {
        condition_true(s.get(Kind::Pod, "kube-system", pod).unwrap(), "Ready")
    }

    #[test]
    fn a_control_plane_whose_static_pods_stop_is_unavailable_until_they_run_again() {
        let mut s = store();
        s.report_static_pods("master-1", "docker", true).unwrap();
        let v = s.report_static_pods("master-1", "docker", false).unwrap();
        assert_eq!(v["controlPlanes"][0]["available"], false);
        assert_eq!(v["controlPlanes"][0]["interruptions"], 1);
        assert!(!ready(&s, "kube-apiserver-master-1"));
        assert!(!ready(&s, "etcd-master-1"));
        assert!(ready(&s, "kube-apiserver-master-2"));
        // A kubelet heartbeat (a node write) does not bring them back.
        s.after_node_write("master-1");
        assert!(!ready(&s, "kube-apiserver-master-1"));
        // Reported twice: still one interruption.
        s.report_static_pods("master-1", "docker", false).unwrap();
        let v = s.report_static_pods("master-1", "docker", true).unwrap();
        assert_eq!(v["controlPlanes"][0]["available"], true);
        assert_eq!(v["interruptions"], 1);
        assert!(ready(&s, "kube-scheduler-master-1"));
        // Workers have no static pods: accepted, nothing counted; keepalived only on control planes.
        s.report_static_pods("worker-1", "docker", false).unwrap();
        assert_eq!(s.services_status()["interruptions"], 1);
        assert!(s.report_keepalived("worker-1", true).is_err());
    }

    #[test]
    fn a_static_pod_restart_is_an_interruption_for_its_simulated_seconds() {
        let mut s = store();
        // 100 simulated seconds at a time factor of 0.01: one real second.
        let v = s.restart_static_pods("master-2", 100.0).unwrap();
        assert_eq!(v["controlPlanes"][1]["staticPods"], "restarting");
        assert_eq!(v["controlPlanes"][1]["interruptions"], 1);
        assert!(!ready(&s, "kube-controller-manager-master-2"));
        let deadline = s.services_deadline().unwrap();
        s.tick(deadline - Duration::from_millis(500));
        assert!(!ready(&s, "kube-controller-manager-master-2"));
        s.tick(deadline + Duration::from_millis(1));
        assert!(ready(&s, "kube-controller-manager-master-2"));
        assert_eq!(s.services_status()["controlPlanes"][1]["available"], true);
        assert!(s.restart_static_pods("master-2", f64::NAN).is_err());
    }

    #[test]
    fn stopping_the_holders_keepalived_moves_the_address_after_the_window() {
        let mut s = store();
        s.report_keepalived("master-1", true).unwrap();
        s.report_keepalived("master-2", true).unwrap();
        let v = s.report_keepalived("master-3", true).unwrap();
        assert_eq!(v["vip"]["holder"], "master-1");
        let v = s.report_keepalived("master-1", false).unwrap();
        assert_eq!(v["vip"]["holder"], Value::Null);
        assert_eq!(v["vip"]["interruptions"], 1);
        // The window: one simulated second, 10 ms here.
        let end = s.services_deadline().unwrap();
        s.tick(end + Duration::from_millis(1));
        let v = s.services_status();
        assert_eq!(v["vip"]["holder"], "master-2");
        assert_eq!(v["vip"]["moves"], 1);
        assert_eq!(v["vip"]["keepalived"], json!(["master-2", "master-3"]));
    }
}
