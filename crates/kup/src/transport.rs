//! Running a module on a host: `kup module NAME` with the JSON arguments on stdin, locally or over
//! OpenSSH (ControlMaster multiplexing, the inventory's `ansible_*` variables, `~/.ssh/config`).
//!
//! Every remote action is bounded: ssh gives up on a host that does not answer (`ConnectTimeout`,
//! `ServerAliveInterval` x `ServerAliveCountMax`), and every run has a deadline after which its
//! process group is ended. Children run in process groups of their own, so a Ctrl-C on the terminal
//! reaches kup alone, which decides what to do with the step under way.
//!
//! kup copies itself to each host into a directory only the ssh user can write (root:
//! `/var/lib/kup/bin`, anyone else `~/.kup/bin`, mode 0700), and verifies the directory and the copy
//! (type, owner, mode, SHA-256) before the first use in a run; anything else found there is refused,
//! never run.
//!
//! With a progress sink, modules run as `kup module --progress NAME`: their progress lines (one JSON
//! object a line on stderr, `module_kit::progress`) reach the sink while they run; the rest of
//! their stderr is kept for the error messages, as without one.

use crate::inventory::{split_words, Host};
use module_kit::command::last_line;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a module gave no result.
#[derive(Debug, Clone, PartialEq)]
pub enum RunError {
    /// ssh could not reach the host, or lost it (exit 255).
    Unreachable { place: String, detail: String },
    /// The run outlived its deadline and was ended.
    Deadline { place: String, seconds: u64 },
    /// What was found at kup's remote path is not kup's own: refused, never run.
    Refused { place: String, detail: String },
    /// Abandoned on the operator's second Ctrl-C.
    Aborted,
    /// Anything else: kup itself could not run, or the module answered no JSON object.
    Other(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Unreachable { place, detail } => {
                write!(f, "{place} stopped answering over ssh ({detail})")
            }
            RunError::Deadline { place, seconds } => write!(
                f,
                "the step on {place} did not end within its deadline of {seconds} s and was stopped"
            ),
            RunError::Refused { place, detail } => {
                write!(f, "refused to run kup on {place}: {detail}")
            }
            RunError::Aborted => write!(f, "abandoned (second Ctrl-C)"),
            RunError::Other(msg) => write!(f, "{msg}"),
        }
    }
}

/// Where and how modules run. The procedure sees only this, so it is tested with a fake.
pub trait Transport: Sync {
    /// Runs `module` on `host` (here when None or a local connection) with `args`, for at most
    /// `limit`; returns its result object.
    fn run(
        &self,
        host: Option<&Host>,
        module: &str,
        args: &Value,
        limit: Duration,
    ) -> Result<Value, RunError>;
}

/// The ssh options kup adds. The inventory's own ssh arguments come first on the command line, and
/// ssh takes the first value it sees for an option, so an inventory can override each of these.
pub const SSH_BOUNDS: &[&str] = &[
    "-o",
    "ConnectTimeout=10",
    "-o",
    "ServerAliveInterval=5",
    "-o",
    "ServerAliveCountMax=4",
];

/// Verifies (or makes) kup's directory and reports whether `kup-$1` is there and intact. A fixed
/// text: the only argument is kup's own SHA-256 in hex, never input. Exit 3 with `kup-refused:` on
/// stderr means something there is not ours.
const PREPARE: &str = r#"set -u; umask 077; h=$1; me=$(id -u)
if [ "$me" = 0 ]; then d=/var/lib/kup; else d="${HOME:?}/.kup"; fi
refuse() { echo "kup-refused: $*" >&2; exit 3; }
for p in "$d" "$d/bin"; do
  [ -L "$p" ] && refuse "$p is a symbolic link; remove it (it was not made by kup)"
  [ -e "$p" ] || mkdir -m 0700 "$p" || refuse "cannot make $p"
  [ -d "$p" ] || refuse "$p is not a directory; remove it"
  o=$(stat -c %u.%a "$p")
  [ "$o" = "$me.700" ] || refuse "$p is owned by uid ${o%.*} with mode ${o#*.}; kup needs uid $me and mode 700: remove it (kup did not make it)"
done
f="$d/bin/kup-$h"
if [ -e "$f" ] || [ -L "$f" ]; then
  [ -L "$f" ] && refuse "$f is a symbolic link"
  [ -f "$f" ] || refuse "$f is not a regular file"
  o=$(stat -c %u.%a "$f")
  [ "$o" = "$me.700" ] || refuse "$f is owned by uid ${o%.*} with mode ${o#*.}; kup needs uid $me and mode 700: remove it (kup did not make it)"
  s=$(sha256sum < "$f") || refuse "cannot read $f"
  [ "${s%% *}" = "$h" ] || refuse "$f is not this kup (its SHA-256 differs)"
  echo "present $f"
else
  echo "absent $f"
fi"#;

/// Writes stdin to `$1.part` (created new: noclobber, in the verified directory), checks its
/// SHA-256 against `$2`, and renames it into place.
const INSTALL: &str = r#"set -u; umask 077; f=$1; h=$2; set -C
rm -f "$f.part"
cat > "$f.part" || exit 3
chmod 0700 "$f.part" || exit 3
s=$(sha256sum < "$f.part")
[ "${s%% *}" = "$h" ] || { rm -f "$f.part"; echo "kup-refused: the copy of kup arrived damaged" >&2; exit 3; }
mv -f "$f.part" "$f""#;

/// Receives each progress line of a running module: the host it runs on (`""`: this machine), the
/// module, the line's object (`text`, `left_s`, `node`).
pub type ProgressSink = Arc<dyn Fn(&str, &str, &Value) + Send + Sync>;

/// Where a child's progress lines go: the sink, with the host and module to name.
#[derive(Clone)]
struct Forward {
    sink: ProgressSink,
    host: String,
    module: String,
}

pub struct SshTransport {
    exe: PathBuf,
    hash: String,
    control_dir: tempfile::TempDir,
    /// Host name -> the verified remote path of kup, once per run.
    verified: Mutex<HashMap<String, String>>,
    /// Process groups of the children running now (their leaders' pids).
    running: Mutex<HashSet<i32>>,
    aborted: Arc<AtomicBool>,
    /// Modules' progress lines go here (none: modules are not asked for any).
    progress: Option<ProgressSink>,
    /// kup's own bytes, read once and shared by every copy to a host: one copy per host at once
    /// was a copy of the binary (and another for the writer) each, tens of MiB on a large inventory.
    exe_bytes: std::sync::OnceLock<Result<Arc<[u8]>, String>>,
}

impl SshTransport {
    pub fn new(aborted: Arc<AtomicBool>) -> Result<SshTransport, String> {
        use sha2::Digest;
        let exe = std::env::current_exe().map_err(|e| format!("cannot find kup itself: {e}"))?;
        let bytes = std::fs::read(&exe).map_err(|e| format!("cannot read {}: {e}", exe.display()))?;
        SshTransport::with_identity(exe, hex::encode(sha2::Sha256::digest(&bytes)), aborted)
    }

    /// A transport that copies `exe`, known by its SHA-256 `hash` (hex).
    fn with_identity(exe: PathBuf, hash: String, aborted: Arc<AtomicBool>) -> Result<SshTransport, String> {
        let control_dir = tempfile::Builder::new()
            .prefix("kup-ssh-")
            .tempdir()
            .map_err(|e| format!("cannot make a directory for ssh control sockets: {e}"))?;
        Ok(SshTransport {
            exe,
            hash,
            control_dir,
            verified: Mutex::new(HashMap::new()),
            running: Mutex::new(HashSet::new()),
            aborted,
            progress: None,
            exe_bytes: std::sync::OnceLock::new(),
        })
    }

    /// Modules run with `--progress`, and their progress lines go to `sink` as they come.
    pub fn with_progress(mut self, sink: ProgressSink) -> SshTransport {
        self.progress = Some(sink);
        self
    }

    /// `ssh` with the host's connection settings, kup's bounds, and connection sharing.
    fn ssh(&self, host: &Host) -> Result<Command, String> {
        let mut cmd = Command::new("ssh");
        // The inventory's arguments first: ssh keeps the first value of each option.
        for var in ["ansible_ssh_common_args", "ansible_ssh_extra_args"] {
            if let Some(extra) = host.var(var) {
                cmd.args(split_words(&extra).map_err(|e| format!("{}: {var}: {e}", host.name))?);
            }
        }
        cmd.args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ControlMaster=auto",
            "-o",
            "ControlPersist=120",
        ])
        .args(SSH_BOUNDS)
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
        cmd.arg("--")
            .arg(host.var("ansible_host").unwrap_or_else(|| host.name.clone()));
        Ok(cmd)
    }

    /// A fixed script run by `sh -c` on the host with our own hash (and path) as its arguments.
    fn script(&self, host: &Host, script: &str, args: &[&str]) -> Result<Command, String> {
        // ssh joins its arguments into one remote command line: the script goes single-quoted (it
        // has no single quote), the arguments are kup's own hex hash and the path built from it.
        let mut line = format!("sh -c '{script}' kup");
        for a in args {
            line.push(' ');
            line.push_str(a);
        }
        let mut cmd = self.ssh(host)?;
        cmd.arg(line);
        Ok(cmd)
    }

    /// The verified path of this exact kup on `host`, copying it there first if needed.
    fn remote_kup(&self, host: &Host, limit: Duration) -> Result<String, RunError> {
        if let Some(path) = self.verified.lock().ok().and_then(|v| v.get(&host.name).cloned()) {
            return Ok(path);
        }
        let place = host.name.clone();
        let other = |e: String| RunError::Other(format!("{place}: {e}"));
        let mut prepare = self.script(host, PREPARE, &[&self.hash]).map_err(other)?;
        let out = self.wait(&mut prepare, Arc::from(&b""[..]), limit, &place)?;
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let path = match (out.code, answer.split_once(' ')) {
            (Some(0), Some(("present", path))) => path.to_string(),
            (Some(0), Some(("absent", path))) => {
                // Read once: every other host's thread waits for that read rather than making its
                // own copy (the first contact with every host happens at once).
                let bytes = self
                    .exe_bytes
                    .get_or_init(|| {
                        std::fs::read(&self.exe)
                            .map(Arc::from)
                            .map_err(|e| format!("cannot read {}: {e}", self.exe.display()))
                    })
                    .clone()
                    .map_err(RunError::Other)?;
                let mut install = self.script(host, INSTALL, &[path, &self.hash]).map_err(other)?;
                let copied = self.wait(&mut install, bytes, limit, &place)?;
                if copied.code != Some(0) {
                    return Err(remote_failure(
                        &place,
                        &copied,
                        &format!("cannot copy kup to {path}"),
                    ));
                }
                path.to_string()
            }
            _ => return Err(remote_failure(&place, &out, "cannot prepare kup's directory")),
        };
        if let Ok(mut verified) = self.verified.lock() {
            verified.insert(host.name.clone(), path.clone());
        }
        Ok(path)
    }

    /// Runs `cmd` in a process group of its own with `input` on stdin, for at most `limit`.
    fn wait(
        &self,
        cmd: &mut Command,
        input: Arc<[u8]>,
        limit: Duration,
        place: &str,
    ) -> Result<Finished, RunError> {
        self.wait_forwarding(cmd, input, limit, place, None)
    }

    /// [`SshTransport::wait`], with the child's progress lines sent to `forward` as they come.
    fn wait_forwarding(
        &self,
        cmd: &mut Command,
        input: Arc<[u8]>,
        limit: Duration,
        place: &str,
        forward: Option<Forward>,
    ) -> Result<Finished, RunError> {
        if self.aborted.load(Ordering::SeqCst) {
            return Err(RunError::Aborted);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| RunError::Other(format!("cannot run {:?}: {e}", cmd.get_program())))?;
        let group = i32::try_from(child.id()).unwrap_or(0);
        if let Ok(mut running) = self.running.lock() {
            running.insert(group);
        }
        let result = self.supervise(&mut child, input, limit, place, forward);
        if let Ok(mut running) = self.running.lock() {
            running.remove(&group);
        }
        result
    }

    fn supervise(
        &self,
        child: &mut Child,
        input: Arc<[u8]>,
        limit: Duration,
        place: &str,
        forward: Option<Forward>,
    ) -> Result<Finished, RunError> {
        let feeder = child.stdin.take().map(|mut stdin| {
            // A module that exits early closes the pipe; its answer tells what happened.
            std::thread::spawn(move || {
                let _ = stdin.write_all(&input);
            })
        });
        let stdout = child
            .stdout
            .take()
            .map(|s| std::thread::spawn(move || read_all(s)));
        let stderr = child
            .stderr
            .take()
            .map(|s| std::thread::spawn(move || read_stderr(s, forward.as_ref())));
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) => {}
                Err(e) => break Err(RunError::Other(format!("waiting for a child: {e}"))),
            }
            if self.aborted.load(Ordering::SeqCst) {
                end_group(child);
                break Err(RunError::Aborted);
            }
            if started.elapsed() >= limit {
                end_group(child);
                break Err(RunError::Deadline {
                    place: place.to_string(),
                    seconds: limit.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }?;
        if let Some(f) = feeder {
            let _ = f.join();
        }
        let stdout = stdout.and_then(|t| t.join().ok()).unwrap_or_default();
        let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
        Ok(Finished {
            code: status.code(),
            stdout,
            stderr,
        })
    }
}

impl Transport for SshTransport {
    fn run(
        &self,
        host: Option<&Host>,
        module: &str,
        args: &Value,
        limit: Duration,
    ) -> Result<Value, RunError> {
        let input = args.to_string();
        let forward = |host: &str| {
            self.progress.as_ref().map(|sink| Forward {
                sink: Arc::clone(sink),
                host: host.to_string(),
                module: module.to_string(),
            })
        };
        // `kup module --progress NAME`: the module writes its progress lines (stderr) for us.
        let words: &[&str] = if self.progress.is_some() {
            &["module", "--progress", module]
        } else {
            &["module", module]
        };
        let (out, place) = match host.filter(|h| !h.is_local()) {
            None => {
                let mut cmd = Command::new(&self.exe);
                cmd.args(words);
                let place = "this machine".to_string();
                let out =
                    self.wait_forwarding(&mut cmd, Arc::from(input.as_bytes()), limit, &place, forward(""))?;
                (out, place)
            }
            Some(host) => {
                let kup = self.remote_kup(host, limit)?;
                let mut cmd = self.ssh(host).map_err(RunError::Other)?;
                cmd.arg(kup.as_str()).args(words);
                let out = self.wait_forwarding(
                    &mut cmd,
                    Arc::from(input.as_bytes()),
                    limit,
                    &host.name,
                    forward(&host.name),
                )?;
                (out, host.name.clone())
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        match serde_json::from_str::<Value>(stdout.trim()) {
            Ok(value) if value.is_object() => Ok(value),
            _ if out.code == Some(255) && place != "this machine" => Err(RunError::Unreachable {
                detail: last_line(&String::from_utf8_lossy(&out.stderr))
                    .map_or_else(|| "ssh exit 255".into(), str::to_string),
                place,
            }),
            _ => Err(RunError::Other(format!(
                "{module} on {place} did not answer with a JSON result (exit {}): {}",
                out.code.unwrap_or(-1),
                last_line(&String::from_utf8_lossy(&out.stderr)).unwrap_or_else(|| stdout.trim())
            ))),
        }
    }
}

impl Drop for SshTransport {
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

struct Finished {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = r.read_to_end(&mut buf);
    buf
}

/// A child's stderr, read line by line as it comes: with `forward`, progress lines go to its sink
/// (and are not kept); everything else is returned, for the error messages.
fn read_stderr(r: impl Read, forward: Option<&Forward>) -> Vec<u8> {
    let Some(forward) = forward else {
        return read_all(r);
    };
    let mut reader = std::io::BufReader::new(r);
    let mut kept = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match std::io::BufRead::read_until(&mut reader, b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let progress = std::str::from_utf8(&line)
            .ok()
            .and_then(module_kit::progress::parse);
        match progress {
            Some(value) => (forward.sink)(&forward.host, &forward.module, &value),
            None => kept.extend_from_slice(&line),
        }
    }
    kept
}

/// SIGTERM to the child's group, then SIGKILL if it is still there after a grace period.
fn end_group(child: &mut Child) {
    let group = i32::try_from(child.id()).unwrap_or(0);
    signal_group(group, rustix::process::Signal::TERM);
    let grace = Instant::now();
    while grace.elapsed() < Duration::from_secs(5) {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_group(group, rustix::process::Signal::KILL);
    let _ = child.wait();
}

fn signal_group(group: i32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(group) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// A failed remote preparation: refused (exit 3), unreachable (ssh's 255), or another error.
fn remote_failure(place: &str, out: &Finished, what: &str) -> RunError {
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Some(reason) = stderr.lines().find_map(|l| l.strip_prefix("kup-refused: ")) {
        return RunError::Refused {
            place: place.to_string(),
            detail: reason.trim().to_string(),
        };
    }
    let detail =
        last_line(&stderr).map_or_else(|| format!("exit {}", out.code.unwrap_or(-1)), str::to_string);
    if out.code == Some(255) {
        RunError::Unreachable {
            place: place.to_string(),
            detail,
        }
    } else {
        RunError::Other(format!("{place}: {what}: {detail}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Hashing the test binary itself would take seconds in a debug build.
    fn transport(aborted: Arc<AtomicBool>) -> SshTransport {
        SshTransport::with_identity("/bin/false".into(), "ab".repeat(32), aborted).unwrap()
    }

    fn host(vars: serde_json::Value) -> Host {
        Host {
            name: "w1".into(),
            vars: vars.as_object().unwrap().clone(),
            node_name: "w1".parse().unwrap(),
        }
    }

    #[test]
    fn a_host_name_is_never_an_ssh_option_and_the_inventory_overrides_the_bounds() {
        let t = transport(Arc::new(AtomicBool::new(false)));
        let h = host(serde_json::json!({"ansible_host": "-oProxyCommand=touch /tmp/x",
                                        "ansible_ssh_common_args": "-o ServerAliveInterval=30"}));
        let cmd = t.ssh(&h).unwrap();
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let n = args.len();
        assert_eq!(args[n - 2..], ["--", "-oProxyCommand=touch /tmp/x"]);
        // ssh keeps the first value of an option: the inventory's comes before kup's.
        let ours = args.iter().position(|a| a == "ServerAliveInterval=5").unwrap();
        let theirs = args.iter().position(|a| a == "ServerAliveInterval=30").unwrap();
        assert!(theirs < ours, "{args:?}");
        assert!(args.iter().any(|a| a == "ConnectTimeout=10"), "{args:?}");
    }

    #[test]
    fn the_remote_scripts_take_only_kups_own_words() {
        let t = transport(Arc::new(AtomicBool::new(false)));
        assert_eq!(t.hash.len(), 64);
        assert!(t.hash.bytes().all(|b| b.is_ascii_hexdigit()));
        for script in [PREPARE, INSTALL] {
            assert!(!script.contains('\''), "a script must fit in single quotes");
        }
        let cmd = t
            .script(&host(serde_json::json!({})), PREPARE, &[&t.hash])
            .unwrap();
        let line = cmd.get_args().last().unwrap().to_string_lossy().into_owned();
        assert!(line.starts_with("sh -c 'set -u;") && line.ends_with(&format!("' kup {}", t.hash)));
    }

    #[test]
    fn a_run_past_its_deadline_is_ended_with_its_process_group() {
        let t = transport(Arc::new(AtomicBool::new(false)));
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild-survived");
        // The child leaves a grandchild in its group that would write the marker later.
        let script = format!("(sleep 3; touch {}) & sleep 30", marker.display());
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script]);
        let err = t
            .wait(&mut cmd, Arc::from(&b""[..]), Duration::from_millis(300), "test")
            .err()
            .unwrap();
        assert_eq!(
            err,
            RunError::Deadline {
                place: "test".into(),
                seconds: 0
            }
        );
        std::thread::sleep(Duration::from_secs(4));
        assert!(!marker.exists(), "the grandchild outlived the deadline");
    }

    /// A stand-in for kup on this machine: `module --progress NAME` (anything else refused) writes
    /// progress lines and other stderr over a second, then its result.
    fn fake_kup(dir: &std::path::Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("kup");
        let script = r#"#!/bin/sh
[ "$1 $2 $3" = "module --progress node_drain" ] || { echo "unexpected: $*" >&2; exit 2; }
cat > /dev/null
echo '{"kup_progress":1,"text":"drain w1: default/web-0 still on the node","left_s":9,"node":"w1"}' >&2
echo 'W0101 a warning of the module' >&2
sleep 1
echo '{"kup_progress":2,"text":"a later version, not ours"}' >&2
echo '{"kup_progress":1,"text":"drain w1: PodDisruptionBudget default/web refused","left_s":8,"node":"w1"}' >&2
echo '{"changed":true,"failed":false,"msg":"drained"}'
"#;
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        path
    }

    #[test]
    fn progress_lines_reach_the_sink_while_the_module_runs_and_other_stderr_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        /// What the sink was given: host, module, line, when.
        type Seen = Vec<(String, String, Value, Instant)>;
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let sink_seen = Arc::clone(&seen);
        let t = SshTransport::with_identity(fake_kup(dir.path()), "ab".repeat(32), Arc::default())
            .unwrap()
            .with_progress(Arc::new(move |host: &str, module: &str, v: &Value| {
                if let Ok(mut seen) = sink_seen.lock() {
                    seen.push((host.into(), module.into(), v.clone(), Instant::now()));
                }
            }));
        let result = t
            .run(
                None,
                "node_drain",
                &serde_json::json!({"name": "w1"}),
                Duration::from_secs(30),
            )
            .unwrap();
        let ended = Instant::now();
        assert_eq!(result["msg"], "drained");
        let seen = seen.lock().unwrap();
        let texts: Vec<&str> = seen
            .iter()
            .map(|(_, _, v, _)| v["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            texts,
            [
                "drain w1: default/web-0 still on the node",
                "drain w1: PodDisruptionBudget default/web refused"
            ]
        );
        let (host, module, first, at) = &seen[0];
        assert_eq!((host.as_str(), module.as_str()), ("", "node_drain"));
        assert_eq!(
            (first["left_s"].as_u64(), first["node"].as_str()),
            (Some(9), Some("w1"))
        );
        // Forwarded as it came, not when the module ended (it slept a second after the line).
        assert!(
            ended.duration_since(*at) >= Duration::from_millis(700),
            "forwarded late"
        );

        // The stderr that is not progress is kept for the error messages, progress lines are not.
        let mut cmd = Command::new(dir.path().join("kup"));
        cmd.args(["module", "--progress", "node_drain"]);
        let forward = Forward {
            sink: Arc::new(|_: &str, _: &str, _: &Value| {}),
            host: "w1".into(),
            module: "node_drain".into(),
        };
        let out = t
            .wait_forwarding(
                &mut cmd,
                Arc::from(&b"{}"[..]),
                Duration::from_secs(30),
                "test",
                Some(forward),
            )
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(
            stderr,
            "W0101 a warning of the module\n{\"kup_progress\":2,\"text\":\"a later version, not ours\"}\n"
        );
        // Without a sink the module is not asked for progress (the fake refuses that command line).
        let plain =
            SshTransport::with_identity(dir.path().join("kup"), "ab".repeat(32), Arc::default()).unwrap();
        let err = plain
            .run(
                None,
                "node_drain",
                &serde_json::json!({}),
                Duration::from_secs(30),
            )
            .unwrap_err();
        assert!(err.to_string().contains("unexpected: module node_drain"), "{err}");
    }

    #[test]
    fn an_abort_ends_the_run_under_way() {
        let aborted = Arc::new(AtomicBool::new(false));
        let t = transport(Arc::clone(&aborted));
        let flag = Arc::clone(&aborted);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            flag.store(true, Ordering::SeqCst);
        });
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let err = t
            .wait(&mut cmd, Arc::from(&b""[..]), Duration::from_secs(60), "test")
            .err()
            .unwrap();
        assert_eq!(err, RunError::Aborted);
    }
}
