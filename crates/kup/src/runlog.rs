//! The run log: every `kup plan` and `kup upgrade` appends one JSON object a line to a file beside
//! the journal (`<journal>.log`, `<journal>.plan.log`, or `--log PATH`): a start record (kup's
//! version, the command line, the inventory, the target, the time), every phase, note and step with
//! the module's full result (a failed command's rc, stdout and stderr included), and the outcome,
//! written also when the run fails or is interrupted.
//!
//! The file is created with mode 0600 (it holds cluster details), never through a symbolic link,
//! and never by a predictable name in a world-writable directory (there it gets a random one).
//! Nothing secret reaches it: values under keys named like a token, password, secret or private key
//! are replaced, a URL's password is masked, and bootstrap tokens (`abcdef.0123456789abcdef`) are
//! hidden wherever they appear.

use serde_json::{json, Map, Value};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

pub const REDACTED: &str = "<redacted>";

pub struct RunLog {
    path: PathBuf,
    file: Mutex<File>,
    started: Instant,
    ended: AtomicBool,
}

impl RunLog {
    /// Opens (appends to) the log at `path`. `explicit`: the operator named it (`--log`): in a
    /// world-writable directory it is refused; the default name gets a random one there instead.
    pub fn open(path: &Path, explicit: bool) -> Result<RunLog, String> {
        let err = |e: std::io::Error| format!("cannot write the run log {}: {e}", path.display());
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let world_writable = std::fs::metadata(dir).map_err(err)?.mode() & 0o002 != 0;
        let (file, path) = if world_writable {
            if explicit {
                return Err(format!(
                    "refusing the run log {}: its directory {} is world-writable (anyone could put a \
                     link or a file of theirs there first); give --log a path in a directory of your own",
                    path.display(),
                    dir.display()
                ));
            }
            let stem = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "kup".into());
            // Created exclusively with a random part (mode 0600): nobody can have put it there.
            let (file, path) = tempfile::Builder::new()
                .prefix(&format!("{}.", stem.trim_end_matches(".log")))
                .suffix(".log")
                .rand_bytes(10)
                .tempfile_in(dir)
                .map_err(err)?
                .keep()
                .map_err(|e| err(e.error))?;
            (file, path)
        } else {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(path)
                .map_err(err)?;
            let meta = file.metadata().map_err(err)?;
            if !meta.is_file() {
                return Err(format!("the run log {} is not a regular file", path.display()));
            }
            if meta.uid() != rustix::process::geteuid().as_raw() {
                return Err(format!(
                    "the run log {} belongs to another user (uid {}): remove it or give --log another path",
                    path.display(),
                    meta.uid()
                ));
            }
            if meta.mode() & 0o077 != 0 {
                file.set_permissions(std::fs::Permissions::from_mode(0o600))
                    .map_err(err)?;
            }
            (file, path.to_path_buf())
        };
        Ok(RunLog {
            path,
            file: Mutex::new(file),
            started: Instant::now(),
            ended: AtomicBool::new(false),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record (`event` and its fields), with the time, every secret taken out.
    pub fn record(&self, event: &str, fields: Value) {
        let mut line = Map::new();
        line.insert("event".into(), json!(event));
        line.insert("time".into(), json!(rfc3339(SystemTime::now())));
        line.insert(
            "at".into(),
            json!((self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0),
        );
        if let Value::Object(fields) = redact(fields) {
            line.extend(fields);
        }
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        if let Ok(mut file) = self.file.lock() {
            // One write per line (O_APPEND): lines of concurrent hosts never interleave.
            let _ = file.write_all(text.as_bytes());
        }
    }

    /// The first record of a run.
    pub fn start(&self, command: &str, inventory: &Path, target: Option<&str>) {
        let argv: Vec<String> = std::env::args().map(|a| redact_text(&a)).collect();
        self.record(
            "start",
            json!({"command": command, "kup_version": env!("CARGO_PKG_VERSION"), "argv": argv,
                   "inventory": inventory.display().to_string(), "target": target,
                   "pid": std::process::id()}),
        );
    }

    /// The last record: how the run ended, why, and kup's exit code; synced to the disk.
    pub fn end(&self, outcome: &str, detail: Option<&str>, exit_code: u8) {
        if self.ended.swap(true, Ordering::SeqCst) {
            return;
        }
        self.record(
            "outcome",
            json!({"outcome": outcome, "detail": detail, "exit_code": exit_code}),
        );
        if let Ok(file) = self.file.lock() {
            let _ = file.sync_all();
        }
    }
}

impl Drop for RunLog {
    /// A run that ended without saying how (a panic) still leaves an outcome.
    fn drop(&mut self) {
        self.end("ended without an outcome (kup stopped unexpectedly)", None, 101);
    }
}

/// Whether a key names something secret.
fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('-', "_");
    [
        "token",
        "password",
        "passwd",
        "secret",
        "passphrase",
        "private_key",
        "key_data",
        "authorization",
        "bearer",
    ]
    .iter()
    .any(|s| k.contains(s))
        && !k.ends_with("_path")
        && !k.ends_with("_file")
}

/// `value` with every secret taken out (see the module's documentation).
pub fn redact(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::Null | Value::Bool(_) => v,
                        Value::String(s) if s.is_empty() => Value::String(s),
                        _ if secret_key(&k) => json!(REDACTED),
                        v => redact(v),
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        Value::String(s) => Value::String(redact_text(&s)),
        other => other,
    }
}

/// `text` with URL passwords (`user:***@`), bearer tokens and bootstrap tokens hidden.
pub fn redact_text(text: &str) -> String {
    let mut out = mask_url_passwords(text);
    out = mask_bearer(&out);
    mask_bootstrap_tokens(&out)
}

fn mask_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => out.push_str(&format!("{user}:***@{host}")),
                None => out.push_str(authority),
            },
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn mask_bearer(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.to_ascii_lowercase().find("bearer ") {
        let (head, tail) = rest.split_at(i + "bearer ".len());
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        if end > 0 {
            out.push_str(REDACTED);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// kubeadm's bootstrap tokens: `[a-z0-9]{6}.[a-z0-9]{16}`, not inside a longer word.
fn mask_bootstrap_tokens(text: &str) -> String {
    let bytes = text.as_bytes();
    let token_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let word_char = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_';
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i + 23 <= bytes.len() {
        let candidate = &bytes[i..i + 23];
        let is_token = candidate[6] == b'.'
            && candidate[..6].iter().all(|&b| token_char(b))
            && candidate[7..].iter().all(|&b| token_char(b))
            && (i == 0 || !word_char(bytes[i - 1]))
            && bytes.get(i + 23).is_none_or(|&b| !word_char(b));
        if is_token {
            out.push_str(&text[copied..i]);
            out.push_str(REDACTED);
            i += 23;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

pub use module_kit::time::rfc3339;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn lines(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_799);
        assert_eq!(rfc3339(t), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn secrets_never_reach_the_log() {
        let result = json!({
            "failed": true, "rc": 1,
            "msg": "GET https://ops:hunter2@repo.example/v1.9.2/kubeadm failed",
            "stderr": "join with --token abcdef.0123456789abcdef and Authorization: Bearer eyJhbGciOi.x.y",
            "token": "s3cr3t", "client-key-data": "LS0tLS1C", "bootstrap_token_secret": "x",
            "password": 7, "kubeconfig": "/home/ops/.kube/config", "token_file": "/etc/k/token",
            "nested": [{"Secret": {"a": "b"}}], "empty_token": "",
            "sha256": "0123456789abcdef0123456789abcdef", "version": "v1.9.2", "host": "lab-cp1.example.org"
        });
        let r = redact(result);
        let text = r.to_string();
        for secret in [
            "hunter2",
            "abcdef.0123456789abcdef",
            "eyJhbGciOi",
            "s3cr3t",
            "LS0tLS1C",
            "\"x\"",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(r["msg"], "GET https://ops:***@repo.example/v1.9.2/kubeadm failed");
        assert_eq!(r["password"], REDACTED);
        assert_eq!(r["nested"][0]["Secret"], REDACTED);
        assert_eq!(r["kubeconfig"], "/home/ops/.kube/config", "a path is no secret");
        assert_eq!(r["token_file"], "/etc/k/token");
        assert_eq!(r["empty_token"], "");
        assert_eq!(r["sha256"], "0123456789abcdef0123456789abcdef");
        assert_eq!(r["host"], "lab-cp1.example.org");
        assert_eq!(r["rc"], 1);
        assert_eq!(
            redact_text("--base-url=http://u@mirror/x --to v1.9.2"),
            "--base-url=http://u@mirror/x --to v1.9.2",
            "a user without a password stays"
        );
    }

    #[test]
    fn the_log_is_private_appended_and_always_has_an_outcome() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("j.json.log");
        {
            let log = RunLog::open(&path, false).unwrap();
            log.start("upgrade", Path::new("hosts.ini"), Some("v1.9.2"));
            log.record(
                "step",
                json!({"host": "cp1", "result": {"failed": true, "stderr": "boom", "token": "t0k"}}),
            );
            // Dropped without an outcome: a panic's unwinding.
        }
        assert_eq!(
            std::fs::metadata(&path).unwrap().mode() & 0o777,
            0o600,
            "it may hold cluster details"
        );
        {
            let log = RunLog::open(&path, false).unwrap();
            log.start("upgrade", Path::new("hosts.ini"), Some("v1.9.2"));
            log.end("stopped", Some("interrupted"), 130);
            log.end("twice", None, 0);
        }
        let l = lines(&path);
        let events: Vec<&str> = l.iter().map(|v| v["event"].as_str().unwrap()).collect();
        assert_eq!(events, ["start", "step", "outcome", "start", "outcome"]);
        assert_eq!(l[0]["kup_version"], env!("CARGO_PKG_VERSION"));
        assert!(l[0]["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(l[1]["result"]["stderr"], "boom");
        assert_eq!(l[1]["result"]["token"], REDACTED);
        assert_eq!(l[2]["exit_code"], 101);
        assert_eq!(l[4]["outcome"], "stopped");
        assert_eq!(l[4]["exit_code"], 130);
    }

    #[test]
    fn never_through_a_link_nor_by_a_predictable_name_in_a_world_writable_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let elsewhere = dir.path().join("victim");
        std::fs::write(&elsewhere, "keep").unwrap();
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        assert!(RunLog::open(&link, false).is_err(), "followed a symbolic link");
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "keep");

        let shared = tempfile::tempdir().unwrap();
        std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let wanted = shared.path().join(".hosts.ini.kup-journal.json.log");
        let err = RunLog::open(&wanted, true).err().unwrap();
        assert!(err.contains("world-writable"), "{err}");
        let log = RunLog::open(&wanted, false).unwrap();
        assert_ne!(log.path(), wanted, "a random name instead");
        assert_eq!(log.path().parent(), wanted.parent());
        assert!(!wanted.exists());
        assert_eq!(std::fs::metadata(log.path()).unwrap().mode() & 0o777, 0o600);
    }
}
