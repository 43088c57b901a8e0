#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! An operator's bad day, on one real lab (1 control plane + 2 workers, apt, 1.8.3 -> 1.9.2):
//! files planted where kup runs its copy are refused and never run; an inventory that leaves a
//! node out is refused; a second `kup upgrade` (same journal, or another machine's) is refused while
//! the first runs; Ctrl-C under a terminal ends the run with 130 and the rerun resumes; a worker
//! whose link is cut ends the rollout within the bound, naming it, with later hosts untouched; and
//! once the link is back the rerun completes, its drain of lab-w2 held by a PodDisruptionBudget
//! that allows no disruption until the `--json` stream's progress event names it and the pods it
//! holds (issue #13: live waits say why).

use e2e::lab::{LabOptions, TestLab};
use e2e::schema::validate_stream;
use e2e::{dist, kup, kup_upgrade_args, output_text, root};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn kup_sha256() -> String {
    let out = Command::new("sha256sum")
        .arg(dist().join("kup"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Pids of the running `kup upgrade` processes (not their `script` or shell parents).
fn kup_pids() -> Vec<i32> {
    let kup = dist().join("kup");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().map(String::as_str) == Some(kup.to_str().unwrap())
            && args.get(1).map(String::as_str) == Some("upgrade")
        {
            pids.push(pid);
        }
    }
    // A child caught between fork and exec still shows kup's command line (kup runs the
    // controller-side modules itself, several at once while it checks ahead): only the
    // processes whose parent is not a kup are upgrades an operator started.
    let parents: Vec<i32> = pids.iter().map(|pid| parent_pid(*pid)).collect();
    pids.iter()
        .zip(parents)
        .filter(|(_, parent)| !pids.contains(parent))
        .map(|(pid, _)| *pid)
        .collect()
}

fn parent_pid(pid: i32) -> i32 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = stat[stat.rfind(')')? + 2..].to_owned();
            rest.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn process_group(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // pid (comm) state ppid pgrp ...: comm may hold spaces, so count from the last ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// The cluster lock as `cluster_lock` reports it (`locked`, `holder`, ...).
fn lock_status(lab: &TestLab) -> Value {
    let mut child = Command::new(dist().join("kup"))
        .args(["module", "cluster_lock"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let args = serde_json::json!({"action": "status", "kubeconfig": lab.kubeconfig});
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), args.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["failed"], false, "{status}");
    status
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn kup_survives_an_operators_bad_day() {
    let upgrade = kup_upgrade_args("v1.9.2", "0.6.0");
    let Some(lab) = TestLab::up(LabOptions {
        flavour: "apt",
        from: "1.8.3",
        control_planes: 1,
        workers: 2,
        id: 9,
    }) else {
        return;
    };
    let inventory = lab.inventory.clone();

    // 1. Planted files where kup keeps its copy on lab-w1 (node 2) are refused, never run.
    let hash = kup_sha256();
    lab.ssh_ok(2, "mkdir -m 0777 /var/lib/kup && chown nobody /var/lib/kup");
    let plan = kup(&inventory, &["plan", "--to", "v1.9.2", "--cni-version", "0.6.0"]);
    let log = output_text(&plan);
    assert_eq!(plan.status.code(), Some(1), "{log}");
    assert!(
        log.contains("refused to run kup on lab-w1") && log.contains("/var/lib/kup is owned by uid 65534"),
        "{log}"
    );
    let planted = format!(
        "rm -rf /var/lib/kup && mkdir -m 0700 -p /var/lib/kup/bin && chmod 0700 /var/lib/kup \
         && printf '#!/bin/sh\\nid > /tmp/planted-ran\\n' > /var/lib/kup/bin/kup-{hash} \
         && chown nobody /var/lib/kup/bin/kup-{hash} && chmod 0755 /var/lib/kup/bin/kup-{hash}"
    );
    lab.ssh_ok(2, &planted);
    let plan = kup(&inventory, &["plan", "--to", "v1.9.2", "--cni-version", "0.6.0"]);
    let log = output_text(&plan);
    assert_eq!(plan.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("kup-{hash} is owned by uid 65534")),
        "{log}"
    );
    // The same name, root's and private, but not this kup: refused for its content.
    lab.ssh_ok(
        2,
        &format!("chown root /var/lib/kup/bin/kup-{hash} && chmod 0700 /var/lib/kup/bin/kup-{hash}"),
    );
    let plan = kup(&inventory, &["plan", "--to", "v1.9.2", "--cni-version", "0.6.0"]);
    let log = output_text(&plan);
    assert!(log.contains("is not this kup"), "{log}");
    assert_eq!(
        lab.ssh(2, "test -e /tmp/planted-ran").status.code(),
        Some(1),
        "a planted file was executed"
    );
    lab.ssh_ok(2, "rm -rf /var/lib/kup");

    // 2. An inventory that leaves lab-w2 out: the plan is blocked and the upgrade refuses.
    let partial = lab.dir.join("partial.ini");
    let full = std::fs::read_to_string(&inventory).unwrap();
    let without_w2: String = full
        .lines()
        .filter(|l| !l.starts_with("lab-w2"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&partial, without_w2).unwrap();
    let plan = kup(&partial, &["plan", "--to", "v1.9.2", "--cni-version", "0.6.0"]);
    let log = output_text(&plan);
    assert_eq!(plan.status.code(), Some(1), "{log}");
    assert!(log.contains("does not name: lab-w2"), "{log}");
    let up = kup(&partial, &upgrade);
    let log = output_text(&up);
    assert_eq!(up.status.code(), Some(1), "{log}");
    assert!(
        log.contains("does not name: lab-w2") && log.contains("--allow-partial"),
        "{log}"
    );
    assert!(
        lab.nodes().iter().all(|(_, _, v)| v == "v1.8.3"),
        "the refused run changed something"
    );
    assert!(!lab.unschedulable("lab-cp1"));

    // 3. One run at a time. The first runs on a terminal (script's pseudo-terminal).
    let line = format!(
        "{} {} -i {}",
        dist().join("kup").display(),
        upgrade.join(" "),
        inventory.display()
    );
    let first = Command::new("script")
        .args(["-qefc", &line, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    // It holds the cluster's lock (a ConfigMap: the 1.9 API has no coordination.k8s.io).
    wait_for("the first run's lock", Duration::from_secs(60), || {
        lock_status(&lab)["locked"] == true
    });
    assert_eq!(lock_status(&lab)["kind"], "ConfigMap");
    let same = kup(&inventory, &upgrade);
    let log = output_text(&same);
    assert_eq!(same.status.code(), Some(1), "{log}");
    assert!(log.contains("another kup is running with the journal"), "{log}");
    let elsewhere = lab.dir.join("other-machine.json");
    let mut args = upgrade.clone();
    let state = elsewhere.to_string_lossy().into_owned();
    args.extend(["--state", &state]);
    let other = kup(&inventory, &args);
    let log = output_text(&other);
    assert_eq!(other.status.code(), Some(1), "{log}");
    assert!(
        log.contains("the cluster is locked") && log.contains("by kup@") && log.contains(".kup-journal.json"),
        "{log}"
    );

    // 4. Ctrl-C: SIGINT to kup's process group (as the terminal sends it), once a step is journaled.
    let journal = lab.dir.join(".inventory.ini.kup-journal.json");
    wait_for(
        "the first run's first journaled step",
        Duration::from_secs(120),
        || {
            std::fs::read(&journal)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .is_some_and(|j| j["done"].as_array().is_some_and(|d| !d.is_empty()))
        },
    );
    let pids = kup_pids();
    assert_eq!(pids.len(), 1, "one kup upgrade should be running: {pids:?}");
    let group = process_group(pids[0]);
    let killed = Command::new("kill")
        .args(["-INT", "--", &format!("-{group}")])
        .status()
        .unwrap();
    assert!(killed.success());
    let first = first.wait_with_output().unwrap();
    let screen = output_text(&first);
    assert_eq!(first.status.code(), Some(130), "{screen}");
    assert!(screen.contains("interrupt"), "{screen}");
    assert!(
        !screen.contains("did not answer with a JSON result"),
        "a child got the terminal's SIGINT:\n{screen}"
    );
    assert_eq!(
        lock_status(&lab)["locked"],
        false,
        "the interrupted run kept the cluster's lock"
    );

    // 5. The rerun resumes; lab-w2 (node 3) loses its link once lab-w1 is drained.
    let started = Instant::now();
    let mut resume = Command::new(dist().join("kup"))
        .args(&upgrade)
        .arg("-i")
        .arg(&inventory)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = resume.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let veth = format!("vb-{}-13", lab.bridge);
    let mut log = String::new();
    let mut cut_at = None;
    for line in rx.iter() {
        log.push_str(&line);
        log.push('\n');
        if cut_at.is_none() && line.contains("lab-w1") && line.contains(" drain ") {
            let down = Command::new("ip")
                .args(["link", "set", &veth, "down"])
                .status()
                .unwrap();
            assert!(down.success(), "cannot cut {veth}");
            cut_at = Some(Instant::now());
        }
    }
    let status = resume.wait().unwrap();
    reader.join().unwrap();
    let cut_at = cut_at.unwrap_or_else(|| panic!("lab-w1 was never drained:\n{log}"));
    let to_fail = cut_at.elapsed();
    let up = Command::new("ip")
        .args(["link", "set", &veth, "up"])
        .status()
        .unwrap();
    assert!(up.success());
    eprintln!(
        "FIGURE lost host: kup ended {:.1} s after lab-w2's link was cut (rerun took {:.1} s in all)",
        to_fail.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("resuming"), "{log}");
    assert!(log.contains("host lab-w2 stopped answering during step"), "{log}");
    assert!(
        log.contains("its state: lab-w2: not changed by this rollout yet"),
        "{log}"
    );
    // A liveness bound, not a speed target: without ssh's bounds this waited for as long as the
    // link was down.
    assert!(to_fail < Duration::from_secs(120), "took {to_fail:?}:\n{log}");
    wait_for("lab-w2 answering again", Duration::from_secs(60), || {
        lab.ssh(3, "true").status.success()
    });
    assert_eq!(lab.ssh_ok(3, "dpkg-query -W -f '${Version}' kubelet"), "1.8.3-00");
    // Its kubelet's heartbeats were lost with the link: Ready again once they reach the API server.
    lab.wait_node("lab-w2", "v1.8.3", Duration::from_secs(120));
    assert!(!lab.unschedulable("lab-w2"), "lab-w2 was touched");

    // 6. With the link back, the rerun completes. The web pods' PodDisruptionBudget, set to allow
    // no disruption, holds lab-w2's drain until the stream's progress event names it and a pod it
    // holds; then it allows one again and the drain goes on.
    let web_on_w2 = lab.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "--field-selector",
        "spec.nodeName=lab-w2",
        "-o",
        "name",
    ]);
    assert!(
        !web_on_w2.trim().is_empty(),
        "no web pod on lab-w2 to hold its drain"
    );
    // A pod under two budgets cannot be evicted at all (the eviction subresource refuses it): the
    // lab's own budget is changed, not joined by another.
    let pdb_path = "/apis/policy/v1beta1/namespaces/default/poddisruptionbudgets/web";
    let set_budget = |max_unavailable: i64| {
        let mut pdb: Value = serde_json::from_str(&lab.kubectl(&["get", "--raw", pdb_path])).unwrap();
        pdb["spec"]["maxUnavailable"] = max_unavailable.into();
        let file = lab.dir.join("web-pdb.json");
        std::fs::write(&file, pdb.to_string()).unwrap();
        lab.kubectl(&["replace", "--raw", pdb_path, "-f", &file.to_string_lossy()]);
    };
    set_budget(0);
    let mut last = Command::new(dist().join("kup"))
        .args(&upgrade)
        .args(["--json", "--drain-timeout", "180", "-i"])
        .arg(&inventory)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = last.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let mut stdout = String::new();
    let mut held = None;
    for line in BufReader::new(last.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        stdout.push_str(&line);
        stdout.push('\n');
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let text = event["text"].as_str().unwrap_or_default();
        if held.is_none()
            && event["event"] == "progress"
            && event["host"] == "lab-w2"
            && text.contains("by PodDisruptionBudget default/web (allows 0 disruption(s)")
            && text.contains("eviction of default/web-")
        {
            held = Some(event.clone());
            set_budget(1);
        }
    }
    let status = last.wait().unwrap();
    let log = format!("{stdout}\n{}", stderr.join().unwrap());
    assert!(status.success(), "{log}");
    let held = held.unwrap_or_else(|| panic!("no progress event named the budget and its pod:\n{log}"));
    assert_eq!(
        (held["step"].as_str(), held["module"].as_str()),
        (Some("drain"), Some("node_drain")),
        "{held}"
    );
    assert!(held["left_s"].as_u64().is_some_and(|s| s <= 180), "{held}");
    eprintln!("FIGURE progress: {held}");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("docs/kup-events.schema.json")).unwrap())
            .unwrap();
    validate_stream(&schema, &stdout, status.code()).unwrap_or_else(|e| panic!("{e}\n{log}"));
    for (name, ready, version) in lab.nodes() {
        assert!(ready && version == "v1.9.2", "{name}: ready={ready} {version}");
        assert!(!lab.unschedulable(&name), "{name} left cordoned");
    }
    let v: Value = serde_json::from_str(&lab.kubectl(&["get", "--raw", "/_lab/pdb-violations"])).unwrap();
    assert_eq!(v["count"], 0, "a PodDisruptionBudget was violated");
}
