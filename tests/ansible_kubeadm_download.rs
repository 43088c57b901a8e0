#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! kubeadm_download through real `ansible-playbook` (connection: local), as a binary module from
//! dist/: a normal run, an idempotent rerun, and a `--check --diff` run; and `ansible-doc` renders
//! its sidecar docs.

use e2e::{ansible_venv_bin, dist_binary, root};
use kube_version::Version;
use lab_release::{write_channels, write_release, ReleaseServer};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const PLAYBOOK: &str = r#"
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Download kubeadm (the runbook's Preparation step)
      kubeadm_download:
        version: stable-1.9
        base_url: "{{ base_url }}"
        dest: "{{ dest }}"
        mode: "0755"
      register: result
    - name: Keep the result for the test
      ansible.builtin.copy:
        content: "{{ result | to_json }}"
        dest: "{{ out }}"
      check_mode: false
      diff: false
"#;

struct Ansible {
    bin_dir: std::path::PathBuf,
    library: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Ansible {
    fn new() -> Option<Ansible> {
        let bin_dir = ansible_venv_bin()?;
        let module = dist_binary("kubeadm_download")?;
        let library = tempfile::tempdir().unwrap();
        std::fs::copy(&module, library.path().join("kubeadm_download")).unwrap();
        let docs = root().join("modules/kubeadm_download/kubeadm_download.yml");
        std::fs::copy(docs, library.path().join("kubeadm_download.yml")).unwrap();
        Some(Ansible {
            bin_dir,
            library,
            home: tempfile::tempdir().unwrap(),
        })
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.env("ANSIBLE_LIBRARY", self.library.path())
            .env("ANSIBLE_HOME", self.home.path())
            .env("ANSIBLE_LOCAL_TEMP", self.home.path().join("tmp"))
            .env("ANSIBLE_REMOTE_TMP", self.home.path().join("remote"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_LOCALHOST_WARNING", "false")
            .env("ANSIBLE_INVENTORY_UNPARSED_WARNING", "false")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "false")
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// Runs the playbook; returns the module's registered result and ansible's stdout.
    fn play(&self, dir: &Path, base_url: &str, dest: &Path, extra: &[&str]) -> (Value, String) {
        let playbook = dir.join("play.yml");
        std::fs::write(&playbook, PLAYBOOK).unwrap();
        let out_file = dir.join("result.json");
        let _ = std::fs::remove_file(&out_file);
        let vars = serde_json::json!({"base_url": base_url, "dest": dest, "out": out_file}).to_string();
        let out = self
            .command("ansible-playbook")
            .arg(&playbook)
            .arg("-e")
            .arg(vars)
            .args(extra)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "ansible-playbook failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
        (result, stdout)
    }
}

fn release_server() -> (ReleaseServer, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    for v in ["v1.8.3", "v1.9.2", "v1.9.3"] {
        let content = format!("#!/bin/sh\necho 'kubeadm {v}'\n");
        write_release(
            root.path(),
            Version::parse(v).unwrap(),
            "amd64",
            content.as_bytes(),
        )
        .unwrap();
    }
    write_channels(root.path()).unwrap();
    (ReleaseServer::start(root.path()).unwrap(), root)
}

#[test]
fn playbook_runs_the_module_normally_then_idempotently() {
    let Some(ansible) = Ansible::new() else { return };
    let (server, _root) = release_server();
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("kubeadm");

    let (first, stdout) = ansible.play(work.path(), &server.base_url(), &dest, &[]);
    assert_eq!(first["changed"], true, "{first}");
    assert_eq!(first["version"], "v1.9.3");
    assert!(stdout.contains("changed: [localhost]"), "{stdout}");
    assert!(dest.exists());

    let (second, stdout) = ansible.play(work.path(), &server.base_url(), &dest, &[]);
    assert_eq!(second["changed"], false, "{second}");
    assert!(stdout.contains("ok: [localhost]"), "{stdout}");
}

#[test]
fn playbook_check_diff_changes_nothing_and_shows_the_diff() {
    let Some(ansible) = Ansible::new() else { return };
    let (server, _root) = release_server();
    let work = tempfile::tempdir().unwrap();
    let dest = work.path().join("kubeadm");

    let (result, stdout) = ansible.play(work.path(), &server.base_url(), &dest, &["--check", "--diff"]);
    assert_eq!(result["changed"], true, "{result}");
    assert!(!dest.exists(), "check mode created {dest:?}");
    assert_eq!(result["diff"]["after"]["version"], "v1.9.3", "{result}");
    // Ansible renders the before/after objects as a unified diff.
    assert!(
        stdout.contains("\"version\": \"v1.9.3\""),
        "no diff rendered:\n{stdout}"
    );
}

#[test]
fn ansible_doc_renders_the_sidecar_docs() {
    let Some(ansible) = Ansible::new() else { return };
    let out = ansible
        .command("ansible-doc")
        .arg("-M")
        .arg(ansible.library.path())
        .arg("kubeadm_download")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("MODULE kubeadm_download"), "{text}");
    assert!(text.contains("Preparation"), "{text}");
    assert!(text.contains("base_url"), "{text}");
}
