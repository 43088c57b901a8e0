// Tests: a failed expectation is a failed test, so panicking is their job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A realistic-timing lab (`kup-lab up --timing realistic`), scaled down by its time factor: the lab
//! says its mode and its repository's bandwidth, the stand-in kubeadm and kubelet wait (and record)
//! the realistic durations scaled by the factor, and the packages have real sizes. No assertion on
//! how long anything took: what is checked is what the lab planned and recorded.

use e2e::lab::{leftovers, LabOptions, TestLab};
use e2e::{dist, output_text};
use lab_standin::timing::{self, Wait};
use std::process::{Command, Stdio};

const FACTOR: f64 = 0.05;

/// The waits recorded on `node`, oldest first.
fn waits(lab: &TestLab, node: u8) -> Vec<Wait> {
    lab.ssh_ok(node, &format!("cat {} 2>/dev/null || true", timing::RECORD))
        .lines()
        .map(|l| Wait::parse_line(l).unwrap_or_else(|| panic!("a bad record line {l:?}")))
        .collect()
}

fn assert_wait(waits: &[Wait], step: &str, simulated: f64) {
    let wait = waits
        .iter()
        .rev()
        .find(|w| w.step == step)
        .unwrap_or_else(|| panic!("no {step:?} wait recorded: {waits:?}"));
    assert_eq!(wait.simulated, simulated, "{wait:?}");
    assert_eq!(wait.factor, FACTOR, "{wait:?}");
    assert!(
        (wait.real - simulated * FACTOR).abs() < 1e-3,
        "{step}: {} s real, wanted {} s x {FACTOR}",
        wait.real,
        simulated
    );
}

#[test]
fn a_realistic_lab_waits_as_real_upgrades_do_scaled_and_serves_real_sized_packages() {
    let factor = FACTOR.to_string();
    let Some(lab) = TestLab::up_with(
        LabOptions {
            flavour: "apt",
            from: "1.34.2",
            control_planes: 1,
            workers: 1,
            id: 26,
        },
        &[
            "--timing",
            "realistic",
            "--time-factor",
            &factor,
            "--bandwidth",
            "20MB/s",
        ],
    ) else {
        return;
    };

    // The lab says its mode, and the repository's bandwidth: 20 MB/s simulated, 400 MB/s real.
    let out = Command::new(dist().join("kup-lab"))
        .args(["status", "--dir"])
        .arg(&lab.dir)
        .stdin(Stdio::null())
        .output()
        .expect("kup-lab status");
    let status = output_text(&out);
    assert!(out.status.success(), "{status}");
    assert!(
        status.contains(
            "timing realistic (time factor 0.05), repository bandwidth 20.0 MB/s (served at 400.0 MB/s real)"
        ),
        "{status}"
    );
    assert!(
        status.contains(&format!("repository server http://{}.1:8081 running", lab.subnet)),
        "{status}"
    );

    // Each node knows the mode: the stand-ins read it.
    for node in [1, 2] {
        let text = lab.ssh_ok(node, &format!("cat {}", timing::FILE));
        assert_eq!(timing::parse(&text), Some(FACTOR), "node {node}: {text}");
    }

    // Every kubelet waited before its node turned Ready at `up`: 20 s scaled to 1 s.
    for node in [1, 2] {
        assert_wait(&waits(&lab, node), "kubelet ready", timing::KUBELET_READY_SECONDS);
    }

    // A kubelet package as large as the real one, downloaded whole from the lab's repository.
    let size: u64 = lab
        .ssh_ok(
            2,
            "apt-cache show kubelet=1.34.2-1.1 | sed -n 's/^Size: //p' | head -n1",
        )
        .trim()
        .parse()
        .expect("the index gives a size");
    assert!(size >= 19_000_000, "kubelet 1.34.2 is {size} bytes");
    let downloaded: u64 = lab
        .ssh_ok(
            2,
            "cd /tmp && apt-get download -qq kubelet=1.34.2-1.1 && stat -c %s /tmp/kubelet_1.34.2-1.1_amd64.deb",
        )
        .trim()
        .parse()
        .expect("a file size");
    assert_eq!(downloaded, size);

    // kubeadm on the worker: `upgrade node` waits 5 s scaled, and says so.
    let text = lab.ssh_ok(2, "kubeadm upgrade node");
    assert!(
        text.contains(
            "[lab/timing] kubeadm upgrade node (worker): 5 s as a real one takes, 0.25 s at time factor 0.05"
        ),
        "{text}"
    );
    assert_wait(
        &waits(&lab, 2),
        "kubeadm upgrade node (worker)",
        timing::KUBEADM_NODE_WORKER_SECONDS,
    );

    // kubeadm on the control plane: `upgrade apply` waits 3 minutes scaled (9 s), and says so.
    let text = lab.ssh_ok(1, "kubeadm upgrade apply v1.34.2 -y");
    assert!(
        text.contains(
            "[lab/timing] kubeadm upgrade apply: 180 s as a real one takes, 9.00 s at time factor 0.05"
        ),
        "{text}"
    );
    assert!(text.contains("[upgrade/successful]"), "{text}");
    assert_wait(
        &waits(&lab, 1),
        "kubeadm upgrade apply",
        timing::KUBEADM_APPLY_SECONDS,
    );

    // A restarted kubelet waits again before it reports.
    let before = waits(&lab, 2)
        .iter()
        .filter(|w| w.step == "kubelet ready")
        .count();
    lab.ssh_ok(2, "systemctl restart kubelet");
    lab.wait_node("lab-w1", "v1.34.2", std::time::Duration::from_secs(60));
    let mut after = 0;
    for _ in 0..60 {
        after = waits(&lab, 2)
            .iter()
            .filter(|w| w.step == "kubelet ready")
            .count();
        if after > before {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(after, before + 1, "the restarted kubelet recorded no wait");

    let (dir, bridge) = (lab.dir.clone(), lab.bridge.clone());
    drop(lab);
    let left = leftovers(&dir, &bridge);
    assert!(left.is_empty(), "kup-lab down left: {left:?}");
}
