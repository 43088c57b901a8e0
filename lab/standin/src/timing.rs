//! Realistic timing (`kup-lab up --timing realistic`): how long the real kubeadm and kubelet take,
//! scaled by the lab's time factor. The lab writes [`FILE`] on each node of a realistic lab; the
//! stand-ins read it, say what they wait for, record it in [`RECORD`] and wait. Without the file
//! (the default lab) they wait for nothing.

use std::path::Path;

/// Written by the lab on every node of a realistic lab: `timing=realistic`, `time_factor=F`.
pub const FILE: &str = "/etc/kup-lab/timing";
/// One line per wait: `step<TAB>simulated seconds<TAB>real seconds<TAB>time factor`.
pub const RECORD: &str = "/var/lib/kup-lab/timing.log";

/// `kubeadm upgrade apply` on the first control plane. Estimate: 3 minutes on a real control
/// plane, from pulling the new images and waiting for each static pod (etcd, kube-apiserver,
/// kube-controller-manager, kube-scheduler) to be restarted by the kubelet with its new hash; kubeadm
/// waits up to UpgradeManifestsTimeout = 5 min per component (cmd/kubeadm/app/constants/constants.go).
pub const KUBEADM_APPLY_SECONDS: f64 = 180.0;
/// `kubeadm upgrade node` on another control plane. Estimate: 1 minute (the same static pod
/// restarts as apply, images usually pulled, no cluster-wide phases: addons, config upload).
pub const KUBEADM_NODE_CONTROL_PLANE_SECONDS: f64 = 60.0;
/// `kubeadm upgrade node` on a worker. Estimate: 5 s (it only fetches the kubelet configuration
/// from the cluster and writes /var/lib/kubelet/config.yaml; no pod is waited for).
pub const KUBEADM_NODE_WORKER_SECONDS: f64 = 5.0;
/// A (re)started kubelet until its node reports Ready at its version. Estimate: 20 s: it posts the
/// node status on start and every nodeStatusUpdateFrequency (10 s by default, kubelet configuration
/// reference, kubelet.config.k8s.io/v1beta1), Ready only once the runtime answers and PLEG has
/// relisted (every 1 s) the pods; the kubeadm upgrade guide's "restart the kubelet" is followed by
/// a wait of this order in practice.
pub const KUBELET_READY_SECONDS: f64 = 20.0;

/// The file's text for a realistic lab with `time_factor`.
pub fn render(time_factor: f64) -> String {
    format!("# kup-lab up --timing realistic: the stand-ins wait as long as real ones, scaled\ntiming=realistic\ntime_factor={time_factor}\n")
}

/// The time factor if `text` (the file) says realistic; None otherwise.
pub fn parse(text: &str) -> Option<f64> {
    let mut realistic = false;
    let mut factor = None;
    for line in text.lines() {
        match line.trim().split_once('=') {
            Some(("timing", value)) => realistic = value.trim() == "realistic",
            Some(("time_factor", value)) => factor = value.trim().parse::<f64>().ok(),
            _ => {}
        }
    }
    let factor = factor.filter(|f| f.is_finite() && *f >= 0.0)?;
    realistic.then_some(factor)
}

/// The time factor of this node's realistic lab, or None (default timing).
pub fn realistic() -> Option<f64> {
    parse(&std::fs::read_to_string(FILE).ok()?)
}

/// What one wait is: the step, its realistic duration and the real one.
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    pub step: String,
    pub simulated: f64,
    pub real: f64,
    pub factor: f64,
}

impl Wait {
    pub fn line(&self) -> String {
        format!(
            "{}\t{}\t{:.3}\t{}",
            self.step, self.simulated, self.real, self.factor
        )
    }

    pub fn parse_line(line: &str) -> Option<Wait> {
        let mut parts = line.split('\t');
        Some(Wait {
            step: parts.next()?.to_string(),
            simulated: parts.next()?.parse().ok()?,
            real: parts.next()?.parse().ok()?,
            factor: parts.next()?.parse().ok()?,
        })
    }
}

/// In a realistic lab: records the wait for `step` ([`RECORD`]) and returns it (the caller says it
/// and sleeps); None in a default lab.
pub fn plan(step: &str, simulated: f64) -> Option<Wait> {
    let factor = realistic()?;
    let wait = Wait {
        step: step.to_string(),
        simulated,
        real: simulated * factor,
        factor,
    };
    let record = Path::new(RECORD);
    if let Some(dir) = record.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(record) {
        use std::io::Write;
        let _ = writeln!(file, "{}", wait.line());
    }
    Some(wait)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn the_file_the_lab_writes_reads_back() {
        assert_eq!(parse(&render(0.05)), Some(0.05));
        assert_eq!(parse("timing=default\ntime_factor=1\n"), None);
        assert_eq!(parse("timing=realistic\n"), None);
        assert_eq!(parse("timing=realistic\ntime_factor=-1\n"), None);
    }

    #[test]
    fn a_recorded_wait_reads_back() {
        let wait = Wait {
            step: "kubeadm upgrade apply".into(),
            simulated: 180.0,
            real: 9.0,
            factor: 0.05,
        };
        assert_eq!(Wait::parse_line(&wait.line()), Some(wait));
    }
}
