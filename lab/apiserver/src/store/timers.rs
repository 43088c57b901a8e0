//! Delayed actions on simulated time: a pod finishing its start-up, a terminating pod going away at
//! the end of its grace period; and the tick that runs them (and the node monitor).

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use super::object::{condition_true, is_terminating, meta_str, node_of};
use super::{Key, Kind, Store};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Action {
    /// The end of a grace period: the pod goes if it is still the same one.
    RemovePod { key: Key, uid: String },
    /// The end of start-up: the pod runs if it is still the same one and its node is Ready.
    PodStarted { key: Key, uid: String },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Timer {
    at: Instant,
    seq: u64,
    action: Action,
}

impl Store {
    pub(super) fn sim(&self, seconds: f64) -> Duration {
        Duration::from_secs_f64((seconds * self.cfg.time_factor).max(0.0))
    }

    pub(super) fn schedule(&mut self, after: Duration, action: Action) {
        self.seq += 1;
        self.timers.push(Reverse(Timer {
            at: Instant::now() + after,
            seq: self.seq,
            action,
        }));
    }

    /// Runs due timers and the node monitor; returns when to call again.
    pub fn tick(&mut self, now: Instant) -> Instant {
        while let Some(Reverse(t)) = self.timers.peek() {
            if t.at > now {
                break;
            }
            let Some(Reverse(t)) = self.timers.pop() else {
                break;
            };
            self.run(t.action);
        }
        self.monitor_nodes(now);
        self.refresh_services(now);
        let monitor_period =
            (self.cfg.node_grace / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
        let next_monitor = match self.services_deadline() {
            Some(t) if t > now => (now + monitor_period).min(t),
            _ => now + monitor_period,
        };
        match self.timers.peek() {
            Some(Reverse(t)) if t.at < next_monitor => t.at,
            _ => next_monitor,
        }
    }

    fn run(&mut self, action: Action) {
        match action {
            Action::RemovePod { key, uid } => {
                let same = self
                    .map(Kind::Pod)
                    .and_then(|m| m.get(&key))
                    .is_some_and(|p| meta_str(p, "uid") == uid);
                if same {
                    if let Some(old) = self.remove(Kind::Pod, &key) {
                        self.after_pod_gone(&old);
                    }
                }
            }
            Action::PodStarted { key, uid } => {
                let Some(mut pod) = self.map(Kind::Pod).and_then(|m| m.get(&key)).cloned() else {
                    return;
                };
                if meta_str(&pod, "uid") != uid || is_terminating(&pod) {
                    return;
                }
                let node_ready = self
                    .get(Kind::Node, "", node_of(&pod))
                    .is_some_and(|n| condition_true(n, "Ready"));
                if !node_ready {
                    return;
                }
                self.set_pod_running(&mut pod);
                self.commit(Kind::Pod, pod);
            }
        }
    }
}
