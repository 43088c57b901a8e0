//! Running host programs (argv only, through module-kit's runner) and small file helpers.

use module_kit::command::Command;
use std::path::Path;
use std::time::Duration;

/// Runs a program; a non-zero exit is an error carrying the last line of its output.
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    run_for(program, args, Duration::from_secs(300))
}

pub fn run_for(program: &str, args: &[&str], timeout: Duration) -> Result<String, String> {
    Command::new(program)
        .args(args)
        .timeout(timeout)
        .run_checked()
        .map(|o| o.stdout)
        .map_err(|e| {
            let tail = e.output().map(|o| tail(&o.stderr, 5)).unwrap_or_default();
            if tail.is_empty() {
                e.to_string()
            } else {
                format!("{e}\n{tail}")
            }
        })
}

/// Runs a program inside a node (all its namespaces), as `nsenter -t PID -a`.
pub fn in_node(pid: u32, args: &[&str], timeout: Duration) -> Result<String, String> {
    let pid = pid.to_string();
    let mut argv = vec!["-t", pid.as_str(), "-a", "--"];
    argv.extend_from_slice(args);
    run_for("nsenter", &argv, timeout)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn write(path: &Path, content: impl AsRef<[u8]>) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, content).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn write_mode(path: &Path, content: impl AsRef<[u8]>, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    write(path, content)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A short stable digest of a recipe, to name cache entries.
pub fn digest(parts: &[&[u8]]) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hex::encode(&hasher.finalize()[..8])
}

/// Whether a process is alive.
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
            .unwrap_or(false)
}

/// Progress on the terminal (stderr: stdout is for what callers parse).
pub fn progress(message: &str) {
    eprintln!("kup-lab: {message}");
}

/// An exclusive lock on `dir` (held until dropped), taken by waiting.
pub fn lock(dir: &Path) -> Result<std::fs::File, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| format!("cannot lock {}: {e}", path.display()))?;
    Ok(file)
}
