//! Running a module on a host: `kup module NAME` with the JSON arguments on stdin, locally or over
//! OpenSSH (ControlMaster multiplexing, the inventory's `ansible_*` variables, `~/.ssh/config`).
//! kup copies itself to each host once, under a name carrying its hash.

use crate::inventory::{split_words, Host};
use serde_json::Value;
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

pub struct Transport {
    exe: PathBuf,
    hash: String,
    control_dir: tempfile::TempDir,
    copied: Mutex<HashSet<String>>,
}

impl Transport {
    pub fn new() -> Result<Transport, String> {
        use sha2::Digest;
        let exe = std::env::current_exe().map_err(|e| format!("cannot find kup itself: {e}"))?;
        let bytes = std::fs::read(&exe).map_err(|e| format!("cannot read {}: {e}", exe.display()))?;
        let hash = hex::encode(&sha2::Sha256::digest(&bytes)[..8]);
        let control_dir = tempfile::Builder::new()
            .prefix("kup-ssh-")
            .tempdir()
            .map_err(|e| format!("cannot make a directory for ssh control sockets: {e}"))?;
        Ok(Transport {
            exe,
            hash,
            control_dir,
            copied: Mutex::new(HashSet::new()),
        })
    }

    fn remote_path(&self) -> String {
        format!("/var/tmp/kup-{}", self.hash)
    }

    /// `ssh` with the host's connection settings and connection sharing.
    fn ssh(&self, host: &Host) -> Result<Command, String> {
        let mut cmd = Command::new("ssh");
        cmd.args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ControlMaster=auto",
            "-o",
            "ControlPersist=120",
        ])
        .arg("-o")
        .arg(format!("ControlPath={}/%C", self.control_dir.path().display()));
        if let Some(port) = host.var("ansible_port") {
            cmd.args(["-p", &port]);
        }
        if let Some(user) = host.var("ansible_user") {
            cmd.args(["-l", &user]);
        }
        if let Some(key) = host.var("ansible_ssh_private_key_file") {
            cmd.args(["-i", &key]);
        }
        for var in ["ansible_ssh_common_args", "ansible_ssh_extra_args"] {
            if let Some(extra) = host.var(var) {
                cmd.args(split_words(&extra).map_err(|e| format!("{}: {var}: {e}", host.name))?);
            }
        }
        cmd.arg(host.var("ansible_host").unwrap_or_else(|| host.name.clone()));
        Ok(cmd)
    }

    /// Makes sure this exact kup is on the host.
    fn ensure_copied(&self, host: &Host) -> Result<(), String> {
        if self
            .copied
            .lock()
            .map(|c| c.contains(&host.name))
            .unwrap_or(false)
        {
            return Ok(());
        }
        let path = self.remote_path();
        let present = self
            .ssh(host)?
            .args(["test", "-x", &path])
            .stdin(Stdio::null())
            .output();
        let present = present.map_err(|e| format!("{}: cannot run ssh: {e}", host.name))?;
        match present.status.code() {
            Some(0) => {}
            Some(255) => {
                return Err(format!(
                    "{}: ssh failed: {}",
                    host.name,
                    String::from_utf8_lossy(&present.stderr).trim()
                ))
            }
            _ => {
                let bytes = std::fs::read(&self.exe)
                    .map_err(|e| format!("cannot read {}: {e}", self.exe.display()))?;
                // The path is made of our own hash, never of input.
                let install =
                    format!("cat > {path}.part && chmod 0755 {path}.part && mv -f {path}.part {path}");
                let out = feed(self.ssh(host)?.arg(install), &bytes)?;
                if !out.status.success() {
                    return Err(format!(
                        "{}: cannot copy kup to {path}: {}",
                        host.name,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
            }
        }
        if let Ok(mut copied) = self.copied.lock() {
            copied.insert(host.name.clone());
        }
        Ok(())
    }

    /// Runs a module on `host` (or here, when `host` is None or a local connection); returns its
    /// result object.
    pub fn run(&self, host: Option<&Host>, module: &str, args: &Value) -> Result<Value, String> {
        let input = args.to_string();
        let (out, place) = match host.filter(|h| !h.is_local()) {
            None => {
                let mut cmd = Command::new(&self.exe);
                cmd.args(["module", module]);
                (feed(&mut cmd, input.as_bytes())?, "this machine".to_string())
            }
            Some(host) => {
                self.ensure_copied(host)?;
                let mut cmd = self.ssh(host)?;
                cmd.args([self.remote_path().as_str(), "module", module]);
                (feed(&mut cmd, input.as_bytes())?, host.name.clone())
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        match serde_json::from_str::<Value>(stdout.trim()) {
            Ok(value) if value.is_object() => Ok(value),
            _ => Err(format!(
                "{module} on {place} did not answer with a JSON result (exit {}): {}",
                out.status.code().unwrap_or(-1),
                last_line(&String::from_utf8_lossy(&out.stderr)).unwrap_or_else(|| stdout.trim().to_string())
            )),
        }
    }
}

impl Drop for Transport {
    /// Closes the shared ssh connections now rather than when ControlPersist runs out.
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.control_dir.path()) {
            for socket in entries.flatten() {
                let _ = Command::new("ssh")
                    .arg("-o")
                    .arg(format!("ControlPath={}", socket.path().display()))
                    .args(["-O", "exit", "kup-control"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

fn feed(cmd: &mut Command, input: &[u8]) -> Result<std::process::Output, String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A module that exits early closes the pipe; its answer tells what happened.
        let _ = stdin.write_all(input);
    }
    child
        .wait_with_output()
        .map_err(|e| format!("waiting for {:?}: {e}", cmd.get_program()))
}

fn last_line(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}
