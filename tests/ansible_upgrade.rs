#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The whole upgrade through real `ansible-playbook` (issue 7, "playbooks/ and inventory/"):
//! playbooks/upgrade.yml takes a real apt lab (systemd-nspawn nodes over real ssh, the lab API server,
//! the lab release server) from 1.8.3 to 1.9.2 with the static binary modules of dist/; plan.yml and
//! `--check` change nothing; a second run changes nothing. Also: ansible-lint is clean, ansible-doc
//! renders every module, and the collection tarball carries the static binaries.

use e2e::lab::{LabOptions, TestLab};
use e2e::{ansible_venv_bin, dist, dist_binary, prerequisite, root, slow_runs_wanted};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Every module, as modules/<name>/ (each must be linked into playbooks/library).
fn modules() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("modules"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

struct Ansible {
    venv_bin: PathBuf,
    home: tempfile::TempDir,
}

impl Ansible {
    /// Ansible from .venv, and every module binary in dist/ (the library links point there).
    fn new() -> Option<Ansible> {
        let venv_bin = ansible_venv_bin()?;
        for m in modules() {
            dist_binary(&m)?;
        }
        Some(Ansible {
            venv_bin,
            home: tempfile::tempdir().unwrap(),
        })
    }

    /// A command from the venv, run in the repository root with its ansible.cfg.
    fn command(&self, program: &str) -> Command {
        let path = format!(
            "{}:{}",
            self.venv_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(self.venv_bin.join(program));
        cmd.current_dir(root())
            .env("PATH", path)
            .env("ANSIBLE_CONFIG", root().join("ansible.cfg"))
            .env("ANSIBLE_HOME", self.home.path())
            .env("ANSIBLE_LOCAL_TEMP", self.home.path().join("tmp"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_FORCE_COLOR", "0")
            .env("NO_COLOR", "1")
            .env("ANSIBLE_LOCALHOST_WARNING", "false")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a playbook of playbooks/ on an inventory; returns (success, stdout+stderr).
    fn playbook(&self, inventory: &Path, playbook: &str, extra: &[&str]) -> (bool, String) {
        let out = self
            .command("ansible-playbook")
            .arg("-i")
            .arg(inventory)
            .arg(root().join("playbooks").join(playbook))
            .args([
                "-e",
                "to_version=1.9.2",
                "-e",
                "retry_delay=1",
                "-e",
                "cni_version=0.6.0",
            ])
            .args(extra)
            .output()
            .expect("ansible-playbook");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// `upgrade.yml` run again with `extra`: it succeeds and changes nothing on any host.
    fn rerun_changes_nothing(&self, inventory: &Path, extra: &[&str]) {
        let (ok, out) = self.playbook(inventory, "upgrade.yml", extra);
        assert!(ok, "second run failed:\n{out}");
        for (host, counters) in &recap(&out) {
            assert_eq!(counters["changed"], 0, "{host} changed on the second run:\n{out}");
        }
    }
}

impl Drop for Ansible {
    /// Ends the ssh ControlPersist masters Ansible left (they would outlive the lab).
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.home.path().join("cp")) else {
            return;
        };
        for socket in entries.flatten() {
            let _ = Command::new("ssh")
                .arg("-o")
                .arg(format!("ControlPath={}", socket.path().display()))
                .args(["-O", "exit", "lab-node"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// PLAY RECAP: host -> (counter -> value).
fn recap(output: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut hosts = BTreeMap::new();
    let Some(at) = output.find("PLAY RECAP") else {
        return hosts;
    };
    for line in output[at..].lines().skip(1) {
        let Some((host, counters)) = line.split_once(" : ") else {
            continue;
        };
        let counters = counters
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
            .collect();
        hosts.insert(host.trim().to_string(), counters);
    }
    hosts
}

/// What an upgrade would change, as seen from outside: nodes (Ready, version, cordon), the pods and
/// where they run, kubeadm-config, and on each node its packages, holds, services, /var/lib/kup/kubeadm and
/// control-plane images.
fn state(lab: &TestLab, nodes: u8) -> Vec<String> {
    let mut seen = Vec::new();
    let list: Value = serde_json::from_str(&lab.kubectl(&["get", "nodes", "-o", "json"])).expect("node list");
    for n in list["items"].as_array().unwrap() {
        seen.push(format!(
            "node {} version={} unschedulable={} annotations={}",
            n["metadata"]["name"],
            n["status"]["nodeInfo"]["kubeletVersion"],
            n["spec"]["unschedulable"],
            n["metadata"]["annotations"]
        ));
    }
    for (name, ready, _) in lab.nodes() {
        seen.push(format!("node {name} ready={ready}"));
    }
    let pods: Value = serde_json::from_str(&lab.kubectl(&["get", "pods", "-A", "-o", "json"])).expect("pods");
    let mut pods: Vec<String> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "pod {}/{} on {}",
                p["metadata"]["namespace"].as_str().unwrap_or(""),
                p["metadata"]["name"].as_str().unwrap_or(""),
                p["spec"]["nodeName"].as_str().unwrap_or("")
            )
        })
        .collect();
    pods.sort();
    seen.extend(pods);
    seen.push(lab.kubeadm_config().to_string());
    for n in 1..=nodes {
        let out = lab.ssh(
            n,
            "dpkg-query -W -f '${Package}=${Version} ' kubelet kubeadm kubectl kubernetes-cni; echo; \
             apt-mark showhold | sort | tr '\\n' ' '; echo; \
             systemctl is-active keepalived kubelet docker | tr '\\n' ' '; echo; \
             ls -l /var/lib/kup/kubeadm 2>&1; grep -h 'image:' /etc/kubernetes/manifests/*.yaml 2>/dev/null",
        );
        seen.push(format!("node {n}: {}", String::from_utf8_lossy(&out.stdout)));
    }
    seen
}

fn assert_same(before: &[String], after: &[String], what: &str) {
    let changed: Vec<_> = before
        .iter()
        .zip(after)
        .filter(|(b, a)| b != a)
        .map(|(b, a)| format!("  before: {b}\n  after:  {a}"))
        .collect();
    assert!(
        changed.is_empty() && before.len() == after.len(),
        "{what} changed the lab:\n{}",
        changed.join("\n")
    );
}

#[test]
fn ansible_playbook_upgrades_an_apt_lab_from_1_8_3_to_1_9_2() {
    let Some(lab) = TestLab::up(LabOptions {
        flavour: "apt",
        from: "1.8.3",
        control_planes: 3,
        workers: 2,
        id: 5,
    }) else {
        return;
    };
    let Some(ansible) = Ansible::new() else {
        return;
    };
    let hosts = ["lab-cp1", "lab-cp2", "lab-cp3", "lab-w1", "lab-w2"];
    let before = state(&lab, 5);
    assert!(
        before.iter().any(|s| s.contains("kubelet=1.8.3-00")),
        "{before:?}"
    );

    // plan.yml: every module in check mode; it runs through and changes nothing.
    let (ok, out) = ansible.playbook(&lab.inventory, "plan.yml", &["--diff"]);
    assert!(ok, "plan.yml failed:\n{out}");
    assert!(out.contains("/var/lib/kup/kubeadm upgrade apply v1.9.2"), "{out}");
    assert_same(&before, &state(&lab, 5), "plan.yml");

    // upgrade.yml --check: the same.
    let (ok, out) = ansible.playbook(
        &lab.inventory,
        "upgrade.yml",
        &["--check", "-e", "workers_batch=2"],
    );
    assert!(ok, "upgrade.yml --check failed:\n{out}");
    // Both workers in one batch; the control planes one by one.
    assert_eq!(
        out.matches("PLAY [Workers' packages, in batches]").count(),
        1,
        "{out}"
    );
    assert_eq!(
        out.matches("PLAY [Control-plane nodes' packages, one by one]")
            .count(),
        3,
        "{out}"
    );
    assert_same(&before, &state(&lab, 5), "upgrade.yml --check");

    // The upgrade, for real.
    let started = Instant::now();
    let (ok, out) = ansible.playbook(&lab.inventory, "upgrade.yml", &[]);
    let took = started.elapsed();
    assert!(ok, "upgrade.yml failed after {took:?}:\n{out}");
    eprintln!(
        "ansible-playbook playbooks/upgrade.yml, 1.8.3 -> 1.9.2, 3 control planes + 2 workers: {:.1} s",
        took.as_secs_f64()
    );
    let first = recap(&out);
    assert_eq!(
        first.keys().map(String::as_str).collect::<Vec<_>>(),
        hosts,
        "{out}"
    );
    for (host, counters) in &first {
        assert_eq!(counters["failed"], 0, "{host}: {out}");
        assert!(counters["changed"] > 0, "{host} was not upgraded: {out}");
    }

    // Every node Ready at v1.9.2 (real kubectl), schedulable again; the control plane at v1.9.2.
    let nodes = lab.nodes();
    assert_eq!(nodes.len(), 5, "{nodes:?}");
    for (name, ready, version) in &nodes {
        assert!(
            *ready && version == "v1.9.2",
            "{name}: ready={ready} version={version}"
        );
    }
    let list: Value = serde_json::from_str(&lab.kubectl(&["get", "nodes", "-o", "json"])).expect("node list");
    for n in list["items"].as_array().unwrap() {
        assert_ne!(
            n["spec"]["unschedulable"], true,
            "{} left cordoned",
            n["metadata"]["name"]
        );
    }
    let version: Value =
        serde_json::from_str(&lab.kubectl(&["version", "-o", "json"])).expect("kubectl version");
    assert_eq!(version["serverVersion"]["gitVersion"], "v1.9.2", "{version}");
    for n in 1..=5 {
        let packages = lab.ssh_ok(
            n,
            "dpkg-query -W -f '${Package}=${Version} ' kubelet kubeadm kubectl kubernetes-cni",
        );
        assert_eq!(
            packages.trim(),
            "kubeadm=1.9.2-00 kubectl=1.9.2-00 kubelet=1.9.2-00 kubernetes-cni=0.6.0-00",
            "node {n}"
        );
        assert_eq!(
            lab.ssh_ok(n, "apt-mark showhold").split_whitespace().count(),
            4,
            "node {n}: holds"
        );
    }
    for n in 1..=3 {
        let images = lab.ssh_ok(n, "grep -h 'image:' /etc/kubernetes/manifests/*.yaml");
        assert!(
            images.lines().all(|l| l.trim_end().ends_with(":v1.9.2")),
            "control plane {n}: {images}"
        );
    }
    // Drains went through evictions: no PodDisruptionBudget was ever violated.
    let violations: Value = serde_json::from_str(&lab.kubectl(&["get", "--raw", "/_lab/pdb-violations"]))
        .expect("pdb violations");
    assert_eq!(violations["count"], 0, "{violations}");

    // A second run finds nothing to do. It uses the group aliases (masters, nodes) and no controller
    // kubeconfig, so the API steps run on the first control plane with its admin.conf.
    let aliased = lab.dir.join("inventory-aliases.ini");
    let text = std::fs::read_to_string(&lab.inventory).unwrap();
    assert!(text.contains("\nkubeconfig="), "{text}");
    let text: String = text
        .replace("[control_plane]", "[masters]")
        .replace("[workers]", "[nodes]")
        .lines()
        .filter(|l| !l.starts_with("kubeconfig="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&aliased, text).unwrap();
    let (ok, out) = ansible.playbook(&aliased, "upgrade.yml", &[]);
    assert!(ok, "second run failed:\n{out}");
    assert!(
        out.contains("ok: [lab-w1 -> lab-cp1("),
        "API steps not on the first control plane:\n{out}"
    );
    let second = recap(&out);
    assert_eq!(second.len(), 5, "{out}");
    for (host, counters) in &second {
        assert_eq!(counters["changed"], 0, "{host} changed on the second run:\n{out}");
        assert_eq!(counters["failed"], 0, "{host}: {out}");
    }
}

#[test]
fn ansible_lint_is_clean() {
    let Some(ansible) = Ansible::new() else {
        return;
    };
    let Some(_) = prerequisite(
        ansible.venv_bin.join("ansible-lint"),
        "ansible-lint",
        "scripts/deps installs it into .venv",
    ) else {
        return;
    };
    let out = ansible
        .command("ansible-lint")
        .args(["--nocolor", "playbooks", "inventory"])
        .output()
        .expect("ansible-lint");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ansible-lint:\n{text}");
    assert!(
        text.contains("Profile 'production' was required, and it passed"),
        "{text}"
    );
}

#[test]
fn ansible_doc_renders_every_module() {
    let Some(ansible) = Ansible::new() else {
        return;
    };
    let library = root().join("playbooks/library");
    let mut failures = Vec::new();
    for m in modules() {
        for file in [m.clone(), format!("{m}.yml")] {
            if !library.join(&file).exists() {
                failures.push(format!("playbooks/library/{file} is missing"));
            }
        }
        // The binary in dist/ has its docs beside it (README: ANSIBLE_LIBRARY=dist).
        let beside = ansible
            .command("ansible-doc")
            .env("ANSIBLE_LIBRARY", dist())
            .arg(&m)
            .output()
            .expect("ansible-doc");
        if !String::from_utf8_lossy(&beside.stdout).contains(&format!("MODULE {m}")) {
            failures.push(format!(
                "ANSIBLE_LIBRARY=dist ansible-doc {m}: {}",
                String::from_utf8_lossy(&beside.stderr)
            ));
        }
        // By the library path, as text and as JSON; and by the collection name.
        let text = ansible
            .command("ansible-doc")
            .arg("-M")
            .arg(&library)
            .arg(&m)
            .output()
            .expect("ansible-doc");
        let shown = String::from_utf8_lossy(&text.stdout);
        if !text.status.success() || !shown.contains(&format!("MODULE {m}")) {
            failures.push(format!(
                "ansible-doc -M playbooks/library {m}: {}{}",
                shown,
                String::from_utf8_lossy(&text.stderr)
            ));
            continue;
        }
        let json = ansible
            .command("ansible-doc")
            .args(["-j", &format!("kubeadm_ha.upgrade.{m}")])
            .output()
            .expect("ansible-doc -j");
        let doc: Value = serde_json::from_slice(&json.stdout).unwrap_or(Value::Null);
        let doc = &doc[format!("kubeadm_ha.upgrade.{m}")];
        if doc["doc"]["short_description"].as_str().unwrap_or("").is_empty()
            || !doc["doc"]["options"].is_object()
            || !doc["return"].is_object()
            || doc["examples"].as_str().unwrap_or("").is_empty()
        {
            failures.push(format!(
                "ansible-doc -j kubeadm_ha.upgrade.{m}: no description, options, return or examples: {}",
                String::from_utf8_lossy(&json.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn collection_builds_with_the_static_binaries() {
    let Some(ansible) = Ansible::new() else {
        return;
    };
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(root().join("playbooks/build-collection"))
        .arg(out_dir.path())
        .env("ANSIBLE_HOME", ansible.home.path())
        .stdin(Stdio::null())
        .output()
        .expect("build-collection");
    assert!(
        out.status.success(),
        "build-collection: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tarball = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(tarball.exists(), "{}", tarball.display());

    // Installed where no repository configuration is seen, the collection holds the very binaries
    // of dist/ (statically linked: ELF without an interpreter), their docs, and the playbooks.
    let install = tempfile::tempdir().unwrap();
    let galaxy = ansible
        .command("ansible-galaxy")
        .current_dir(install.path())
        .env_remove("ANSIBLE_CONFIG")
        .args(["collection", "install", "-p"])
        .arg(install.path())
        .arg(&tarball)
        .output()
        .expect("ansible-galaxy");
    assert!(
        galaxy.status.success(),
        "{}{}",
        String::from_utf8_lossy(&galaxy.stdout),
        String::from_utf8_lossy(&galaxy.stderr)
    );
    let col = install.path().join("ansible_collections/kubeadm_ha/upgrade");
    for m in modules() {
        let installed = std::fs::read(col.join("plugins/modules").join(&m)).unwrap();
        assert!(
            installed == std::fs::read(dist().join(&m)).unwrap(),
            "{m}: not the binary of dist/"
        );
        assert!(installed.starts_with(b"\x7fELF"), "{m}: not ELF");
        let file = Command::new("file")
            .arg(col.join("plugins/modules").join(&m))
            .output()
            .expect("file");
        let file = String::from_utf8_lossy(&file.stdout);
        assert!(
            file.contains("statically linked") || file.contains("static-pie linked"),
            "{file}"
        );
        assert!(col.join("plugins/modules").join(format!("{m}.yml")).is_file());
    }
    // A play outside the repository that calls a module by its FQCN, for real (a read-only check).
    let play = install.path().join("fqcn.yml");
    std::fs::write(
        &play,
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n\
         \x20   - name: Disk check by FQCN\n      kubeadm_ha.upgrade.upgrade_preflight:\n\
         \x20       version: v1.9.2\n        skip: [swap, kubeadm, version_skew, api, nodes_ready, control_plane]\n\
         \x20       disk_path: /\n        min_free_mb: 1\n      register: preflight\n\
         \x20   - name: The module answered\n      ansible.builtin.assert:\n\
         \x20       that: [\"preflight.checks[0].name == 'disk'\", \"preflight.checks[0].ok\"]\n",
    )
    .unwrap();
    let ran = ansible
        .command("ansible-playbook")
        .current_dir(install.path())
        .env_remove("ANSIBLE_CONFIG")
        .env("ANSIBLE_COLLECTIONS_PATH", install.path())
        .args(["-i", "localhost,"])
        .arg(&play)
        .output()
        .expect("ansible-playbook");
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(ran.status.success(), "{shown}");
    assert!(shown.contains("ok=2") && shown.contains("failed=0"), "{shown}");

    let syntax = ansible
        .command("ansible-playbook")
        .current_dir(install.path())
        .env_remove("ANSIBLE_CONFIG")
        .env("ANSIBLE_COLLECTIONS_PATH", install.path())
        .args(["--syntax-check", "-i", "localhost,", "kubeadm_ha.upgrade.upgrade"])
        .output()
        .expect("ansible-playbook");
    assert!(
        syntax.status.success(),
        "{}{}",
        String::from_utf8_lossy(&syntax.stdout),
        String::from_utf8_lossy(&syntax.stderr)
    );
}

/// The same playbook on today's cluster follows the era table kup follows: the repository switched
/// to v1.35 (one-line and deb822 files, or the `.repo` file), the kubeadm package first, `kubeadm
/// upgrade node` on the second control plane and on the worker (whose 1.34 flags the 1.35 kubelet
/// refuses), every node drained and only its kubelet restarted; a second run changes nothing.
#[test]
fn ansible_playbook_upgrades_a_modern_lab_the_way_upstream_documents_it() {
    modern_upgrade("apt", 12);
}

/// The same on dnf: the `.repo` file switched, the packages version-locked. One of the slow runs
/// (`KUP_ERA_HOPS=1`, README "Tests").
#[test]
fn ansible_playbook_upgrades_a_modern_rpm_lab() {
    if slow_runs_wanted() {
        modern_upgrade("rpm", 31);
    }
}

/// The 1.11 -> 1.12 HA page on a stacked etcd, by the playbook: kubeadm-config edited before each
/// control plane's apply (the lab's kubeadm 1.12 refuses without), the other control plane in
/// `ClusterStatus.apiEndpoints` and annotated; a second run changes nothing. A slow run.
#[test]
fn ansible_playbook_upgrades_a_stacked_etcd_cluster_from_1_11_to_1_12() {
    if !slow_runs_wanted() {
        return;
    }
    let Some(lab) = TestLab::up_with(
        LabOptions {
            flavour: "apt",
            from: "1.11.10",
            control_planes: 2,
            // Two workers: the web pods' PodDisruptionBudget needs somewhere to go while one is drained.
            workers: 2,
            id: 34,
        },
        &["--etcd", "stacked"],
    ) else {
        return;
    };
    let Some(ansible) = Ansible::new() else {
        return;
    };
    // The 1.12 packages need kubernetes-cni >= 0.7.5 (the helper passes the 1.9 seed's 0.6.0).
    let target = [
        "-e",
        "to_version=1.12.9",
        "-e",
        "force_drain=true",
        "-e",
        "cni_version=0.7.5",
    ];
    let (ok, out) = ansible.playbook(&lab.inventory, "upgrade.yml", &target);
    assert!(ok, "upgrade.yml failed:\n{out}");
    assert!(
        out.contains("TASK [Edit kubeadm-config as this minor's HA upgrade page asks"),
        "{out}"
    );
    lab.assert_all_at("v1.12.9");
    lab.assert_packages_at("1.12.9");
    let config = lab.kubeadm_config();
    let status = config["ClusterStatus"].as_str().unwrap_or_default();
    for n in 1..=2 {
        assert!(status.contains(&format!("lab-cp{n}:")), "{status}");
    }
    let cluster = config["ClusterConfiguration"].as_str().unwrap_or_default();
    assert!(
        cluster.contains(&format!("advertise-client-urls: https://{}:2379", lab.address(2))),
        "{cluster}"
    );
    ansible.rerun_changes_nothing(&lab.inventory, &target);
}

fn modern_upgrade(flavour: &'static str, id: u8) {
    let Some(lab) = TestLab::up(LabOptions {
        flavour,
        from: "1.34.2",
        control_planes: 2,
        // Two workers: the web pods' PodDisruptionBudget needs somewhere to go while one is drained.
        workers: 2,
        id,
    }) else {
        return;
    };
    let Some(ansible) = Ansible::new() else {
        return;
    };
    let before = state(&lab, 4);
    // From 1.11 control planes are drained too: the lab's bare pod on lab-cp1 blocks the plan.
    let plain = ["-e", "to_version=1.35.1", "-e", "cni_version=1.8.0"];
    let (ok, out) = ansible.playbook(&lab.inventory, "plan.yml", &plain);
    assert!(
        !ok && out.contains("cannot drain node lab-cp1"),
        "plan.yml:\n{out}"
    );
    let target = [&plain[..], &["-e", "force_drain=true"]].concat();
    let (ok, out) = ansible.playbook(&lab.inventory, "plan.yml", &target);
    assert!(ok, "plan.yml failed:\n{out}");
    assert_same(&before, &state(&lab, 4), "plan.yml");

    let (ok, out) = ansible.playbook(&lab.inventory, "upgrade.yml", &target);
    assert!(ok, "upgrade.yml failed:\n{out}");
    assert!(
        out.contains("TASK [Run kubeadm upgrade node on this worker"),
        "{out}"
    );
    assert!(!out.contains("changed: [lab-w1] => (item=keepalived"), "{out}");
    lab.assert_all_at("v1.35.1");
    lab.assert_packages_at("1.35.1");
    ansible.rerun_changes_nothing(&lab.inventory, &target);
}

/// upgrade.yml's rescue: a worker whose new kubelet refuses to start (a flag 1.35 removed, left in
/// /etc/default/kubelet) is rolled back to its 1.34 packages, Ready, and the play stops; with the
/// fault gone a rerun finishes.
#[test]
fn ansible_playbook_rolls_back_a_worker_whose_kubelet_does_not_come_back() {
    let Some(lab) = TestLab::up(LabOptions {
        flavour: "apt",
        from: "1.34.2",
        control_planes: 1,
        workers: 2,
        id: 25,
    }) else {
        return;
    };
    let Some(ansible) = Ansible::new() else {
        return;
    };
    lab.ssh_ok(
        2,
        "echo 'KUBELET_EXTRA_ARGS=--pod-infra-container-image=registry.k8s.io/pause:3.10' > /etc/default/kubelet",
    );
    let target = [
        "-e",
        "to_version=1.35.1",
        "-e",
        "cni_version=1.8.0",
        "-e",
        "force_drain=true",
    ];
    let (ok, out) = ansible.playbook(&lab.inventory, "upgrade.yml", &target);
    assert!(!ok, "{out}");
    assert!(out.contains("rolled lab-w1 back to kubelet 1.34.2-1.1"), "{out}");
    assert_eq!(
        lab.ssh_ok(2, "dpkg-query -W -f '${Version}' kubelet"),
        "1.34.2-1.1"
    );
    let node = lab.kubectl(&[
        "get",
        "node",
        "lab-w1",
        "-o",
        "jsonpath={.status.nodeInfo.kubeletVersion}",
    ]);
    assert_eq!(node.trim(), "v1.34.2");
    lab.ssh_ok(2, "rm /etc/default/kubelet");
    let (ok, out) = ansible.playbook(&lab.inventory, "upgrade.yml", &target);
    assert!(ok, "rerun:\n{out}");
    lab.assert_all_at("v1.35.1");
}

/// `upgrade.yml` over one era's hop on a 2 + 2 lab, checked as `tests/kup_eras.rs` checks kup's:
/// every node Ready at the target, its packages there and held, no kubelet flag the target refuses
/// left in `kubeadm-flags.env`, the repository at the target's minor (pkgs.k8s.io), no
/// PodDisruptionBudget violated, a second run changing nothing. `cni` is the
/// kubernetes-cni the target's packages publish (the helper passes the 1.9 seed's).
fn playbook_hop(flavour: &'static str, from: &'static str, to: &str, cni: &str, id: u8) {
    let Some(lab) = TestLab::up(LabOptions {
        flavour,
        from,
        control_planes: 2,
        workers: 2,
        id,
    }) else {
        return;
    };
    let Some(ansible) = Ansible::new() else {
        return;
    };
    let (to_version, cni_version) = (format!("to_version={to}"), format!("cni_version={cni}"));
    let target = ["-e", &to_version, "-e", &cni_version, "-e", "force_drain=true"];
    let (ok, out) = ansible.playbook(&lab.inventory, "upgrade.yml", &target);
    assert!(ok, "{from} -> {to}: upgrade.yml failed:\n{out}");
    lab.assert_all_at(&format!("v{to}"));
    lab.assert_packages_at(to);
    assert_eq!(lab.pdb_violations(), 0, "a PodDisruptionBudget was violated");
    ansible.rerun_changes_nothing(&lab.inventory, &target);
}

/// The era hops `tests/kup_eras.rs` runs with kup, by the playbook (slow runs, `KUP_ERA_HOPS=1`):
/// 1.11's downloaded kubeadm and nodeName, 1.14's `experimental-control-plane` and `upgrade node
/// config`, a pkgs.k8s.io minor switch, and the same on rpm.
#[test]
fn ansible_playbook_upgrades_1_10_to_1_11() {
    if slow_runs_wanted() {
        playbook_hop("apt", "1.10.13", "1.11.10", "0.7.5", 35);
    }
}

#[test]
fn ansible_playbook_upgrades_1_13_to_1_14() {
    if slow_runs_wanted() {
        playbook_hop("apt", "1.13.12", "1.14.10", "0.7.5", 36);
    }
}

#[test]
fn ansible_playbook_upgrades_1_26_to_1_27() {
    if slow_runs_wanted() {
        playbook_hop("apt", "1.26.15", "1.27.16", "1.2.0", 37);
    }
}

#[test]
fn ansible_playbook_upgrades_1_33_to_1_34_on_rpm() {
    if slow_runs_wanted() {
        playbook_hop("rpm", "1.33.1", "1.34.2", "1.7.1", 38);
    }
}
