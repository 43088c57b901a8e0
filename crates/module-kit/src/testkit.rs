//! Running a module binary the way Ansible does, for tests: args file as argv[1], or JSON on stdin;
//! checks that stdout is exactly one JSON object and that the exit code agrees with `failed`.

use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// What one module run produced.
#[derive(Debug, Clone)]
pub struct Ran {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The JSON object on stdout.
    pub json: Value,
}

impl Ran {
    pub fn changed(&self) -> bool {
        self.json["changed"].as_bool().unwrap_or(false)
    }

    pub fn failed(&self) -> bool {
        self.json["failed"].as_bool().unwrap_or(true)
    }

    pub fn msg(&self) -> &str {
        self.json["msg"].as_str().unwrap_or("")
    }
}

/// Runs `bin ARGS_FILE` with `args` written to a fresh file (Ansible's binary-module convention).
pub fn run_with_args_file(bin: &Path, args: &Value) -> Result<Ran, String> {
    let dir = std::env::temp_dir().join(format!(
        "module-kit-args-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
    let file = dir.join("args");
    std::fs::write(&file, args.to_string()).map_err(|e| format!("args file: {e}"))?;
    let out = Command::new(bin)
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let _ = std::fs::remove_dir_all(&dir);
    interpret(out)
}

/// Runs `bin` with raw bytes on stdin (no argument).
pub fn run_with_stdin(bin: &Path, input: &[u8]) -> Result<Ran, String> {
    let mut child = Command::new(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(|e| format!("stdin: {e}"))?;
    }
    interpret(child.wait_with_output().map_err(|e| format!("wait: {e}"))?)
}

fn interpret(out: std::process::Output) -> Result<Ran, String> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let exit_code = out.status.code().unwrap_or(-1);
    let json: Value = serde_json::from_str(stdout.trim_end_matches('\n'))
        .map_err(|e| format!("stdout is not one JSON object ({e}): {stdout:?} (stderr: {stderr:?})"))?;
    if !json.is_object() {
        return Err(format!("stdout is JSON but not an object: {stdout}"));
    }
    let ran = Ran {
        exit_code,
        stdout,
        stderr,
        json,
    };
    let expected = if ran.failed() { 1 } else { 0 };
    if ran.exit_code != expected {
        return Err(format!(
            "exit code {} disagrees with the result: {}",
            ran.exit_code, ran.stdout
        ));
    }
    Ok(ran)
}
