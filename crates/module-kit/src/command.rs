//! The one way modules run external programs: an argv (never a shell line), `LC_ALL=C` so output
//! parses the same everywhere, no stdin unless given, a timeout that kills the whole process group,
//! and stdout/stderr captured for the error message.
//!
//! A [`Command`] is a plain value (program, arguments, environment, timeout) until it is run: a
//! module's plan builds the commands it would run, tests compare them ([`Command::argv`]) without
//! running anything, and messages show them as an operator would type them (`Display`).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How much of each stream is kept; the tail is what explains a failure.
const CAPTURE_LIMIT: usize = 1 << 20;

/// A program to run: a value, compared field by field, until [`Command::run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    grace: Duration,
    dir: Option<std::path::PathBuf>,
}

/// SIGTERM first, then this long before SIGKILL ([`Command::grace`]).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// What a finished program left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The exit code; 128 + N when killed by signal N.
    pub rc: i32,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        self.rc == 0
    }
}

#[derive(Debug)]
pub enum CommandError {
    /// The program does not exist or cannot be executed.
    Spawn { program: String, error: std::io::Error },
    /// The program ran longer than its timeout and was stopped (with everything it started):
    /// SIGTERM, then SIGKILL when it did not end within its grace.
    TimedOut {
        argv: String,
        timeout: Duration,
        /// It did not end within [`Command::grace`] of SIGTERM: it was killed (SIGKILL).
        killed: bool,
        grace: Duration,
        output: Box<Output>,
    },
    /// The program exited non-zero (only from [`Command::run_checked`]).
    Failed { argv: String, output: Box<Output> },
}

impl CommandError {
    pub fn output(&self) -> Option<&Output> {
        match self {
            CommandError::Spawn { .. } => None,
            CommandError::TimedOut { output, .. } | CommandError::Failed { output, .. } => Some(output),
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Spawn { program, error } => write!(f, "cannot run {program}: {error}"),
            CommandError::TimedOut {
                argv,
                timeout,
                killed,
                grace,
                ..
            } => {
                write!(
                    f,
                    "`{argv}` did not finish within its timeout of {}s: stopped with SIGTERM",
                    timeout.as_secs_f64()
                )?;
                if *killed {
                    write!(f, ", then SIGKILL {}s later", grace.as_secs_f64())?;
                }
                Ok(())
            }
            CommandError::Failed { argv, output } => {
                let detail = last_line(&output.stderr).or_else(|| last_line(&output.stdout));
                write!(f, "`{argv}` failed with exit code {}", output.rc)?;
                match detail {
                    Some(line) => write!(f, ": {line}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl std::error::Error for CommandError {}

/// The last line of `text` that is not blank, trimmed: what a failed command's output says last
/// (usually why it failed).
pub fn last_line(text: &str) -> Option<&str> {
    text.lines().rev().map(str::trim).find(|l| !l.is_empty())
}

impl Command {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            program: program.as_ref().to_os_string(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            timeout: Duration::from_secs(300),
            grace: DEFAULT_GRACE,
            dir: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// Runs the program in `dir` instead of the current directory.
    pub fn current_dir(mut self, dir: impl AsRef<std::path::Path>) -> Self {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a program past its timeout has, after SIGTERM, to end by itself before SIGKILL
    /// (kubeadm, apt and dnf clean up on SIGTERM: a kill in the middle can leave a node half-done).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    pub fn get_program(&self) -> &OsStr {
        &self.program
    }

    pub fn get_args(&self) -> &[OsString] {
        &self.args
    }

    /// The variables set on top of `LC_ALL=C` and `LANG=C`, in the order given.
    pub fn get_envs(&self) -> &[(OsString, OsString)] {
        &self.env
    }

    pub fn get_timeout(&self) -> Duration {
        self.timeout
    }

    /// The program and its arguments, as text (lossy): what a test compares.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// The command as an operator would type it, for messages (quoted where needed); the same as
    /// its `Display`.
    pub fn display(&self) -> String {
        self.to_string()
    }

    /// Runs to completion; any exit code is an `Ok` output. Errors: cannot start, or timed out.
    pub fn run(&self) -> Result<Output, CommandError> {
        let started = Instant::now();
        let mut command = std::process::Command::new(&self.program);
        command
            .args(&self.args)
            .env("LC_ALL", "C")
            .env("LANG", "C")
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills what it started too.
            .process_group(0);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().map_err(|error| CommandError::Spawn {
            program: self.program.to_string_lossy().into_owned(),
            error,
        })?;
        let writer = child
            .stdin
            .take()
            .zip(self.stdin.clone())
            .map(|(mut pipe, input)| {
                // A program that does not read its input must not block us: write from a thread.
                std::thread::spawn(move || {
                    let _ = pipe.write_all(&input);
                })
            });
        let stdout = capture(child.stdout.take());
        let stderr = capture(child.stderr.take());
        let (status, timed_out) = wait_with_timeout(&mut child, self.timeout);
        let mut killed = false;
        let status = if timed_out {
            signal_group(&child, rustix::process::Signal::TERM);
            match wait_with_timeout(&mut child, self.grace) {
                (Some(status), _) => Some(status),
                _ => {
                    killed = true;
                    signal_group(&child, rustix::process::Signal::KILL);
                    child.wait().ok()
                }
            }
        } else {
            match status {
                Some(s) => Some(s),
                None => child.wait().ok(),
            }
        };
        if let Some(w) = writer {
            let _ = w.join();
        }
        let output = Output {
            rc: status
                .map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)))
                .unwrap_or(-1),
            stdout: join_capture(stdout),
            stderr: join_capture(stderr),
            duration: started.elapsed(),
        };
        if timed_out {
            return Err(CommandError::TimedOut {
                argv: self.display(),
                timeout: self.timeout,
                killed,
                grace: self.grace,
                output: Box::new(output),
            });
        }
        Ok(output)
    }

    /// Like [`Command::run`], but a non-zero exit code is an error carrying the output.
    pub fn run_checked(&self) -> Result<Output, CommandError> {
        let output = self.run()?;
        if output.success() {
            Ok(output)
        } else {
            Err(CommandError::Failed {
                argv: self.display(),
                output: Box::new(output),
            })
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, word) in std::iter::once(&self.program).chain(&self.args).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            let s = word.to_string_lossy();
            if !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@".contains(&b))
            {
                f.write_str(&s)?;
            } else {
                write!(f, "'{}'", s.replace('\'', r"'\''"))?;
            }
        }
        Ok(())
    }
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> (Option<std::process::ExitStatus>, bool) {
    // A timeout too long to be a point in time is no timeout at all (it cannot overflow here).
    let deadline = Instant::now().checked_add(timeout);
    let mut pause = Duration::from_micros(200);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (Some(status), false),
            Ok(None) => {}
            Err(_) => return (None, false),
        }
        let left = match deadline {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            None => Duration::MAX,
        };
        if left.is_zero() {
            return (None, true);
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Signals the program and everything it started (its own process group).
fn signal_group(child: &Child, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

fn capture<R: Read + Send + 'static>(pipe: Option<R>) -> Option<JoinHandle<Vec<u8>>> {
    pipe.map(|mut pipe| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > CAPTURE_LIMIT {
                    // Keep the tail: the end of the output says why something failed.
                    kept.drain(..kept.len() - CAPTURE_LIMIT);
                }
            }
            kept
        })
    })
}

fn join_capture(handle: Option<JoinHandle<Vec<u8>>>) -> String {
    handle
        .and_then(|h| h.join().ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_argv_without_a_shell() {
        // A shell would expand `$HOME` and `;`; an argv passes them through untouched.
        let out = Command::new("echo").args(["$HOME", ";", "ok"]).run().unwrap();
        assert_eq!(out.stdout, "$HOME ; ok\n");
        assert_eq!(out.rc, 0);
    }

    #[test]
    fn sets_the_c_locale() {
        let out = Command::new("sh").args(["-c", "echo $LC_ALL"]).run().unwrap();
        assert_eq!(out.stdout.trim(), "C");
    }

    #[test]
    fn failure_carries_rc_and_output() {
        let err = Command::new("sh")
            .args(["-c", "echo out; echo bad thing >&2; exit 3"])
            .run_checked();
        let err = err.unwrap_err();
        let out = err.output().unwrap();
        assert_eq!(out.rc, 3);
        assert_eq!(out.stdout, "out\n");
        assert!(err.to_string().contains("exit code 3: bad thing"), "{err}");
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        // The grandchild keeps the pipes open; only a group kill lets us return promptly.
        let cmd = Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30"])
            .timeout(Duration::from_millis(200));
        let started = Instant::now();
        let err = cmd.run().unwrap_err();
        assert!(matches!(err, CommandError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn a_timeout_asks_with_sigterm_first_so_the_program_can_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("cleaned");
        let script = format!(
            "trap 'echo cleaned > {}; exit 143' TERM; while :; do sleep 0.05; done",
            marker.display()
        );
        let err = Command::new("sh")
            .args(["-c", &script])
            .timeout(Duration::from_millis(300))
            .run()
            .unwrap_err();
        let CommandError::TimedOut { killed, .. } = &err else {
            panic!("{err}");
        };
        assert!(!killed, "{err}");
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "cleaned\n");
        assert!(err.to_string().ends_with("stopped with SIGTERM"), "{err}");
    }

    #[test]
    fn a_program_that_ignores_sigterm_is_killed_after_its_grace() {
        let err = Command::new("sh")
            .args(["-c", "trap '' TERM; while :; do sleep 0.05; done"])
            .timeout(Duration::from_millis(200))
            .grace(Duration::from_millis(300))
            .run()
            .unwrap_err();
        let CommandError::TimedOut { killed, .. } = &err else {
            panic!("{err}");
        };
        assert!(killed, "{err}");
        assert!(err.to_string().contains("then SIGKILL 0.3s later"), "{err}");
    }

    #[test]
    fn a_timeout_past_the_end_of_time_does_not_panic() {
        // `Instant::now() + Duration::MAX` overflows; such a timeout just never fires.
        let out = Command::new("true").timeout(Duration::MAX).run().unwrap();
        assert_eq!(out.rc, 0);
        let out = Command::new("true")
            .timeout(Duration::from_secs(i64::MAX as u64))
            .run()
            .unwrap();
        assert_eq!(out.rc, 0);
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = Command::new("/nonexistent/kup-test").run().unwrap_err();
        assert!(
            err.to_string().starts_with("cannot run /nonexistent/kup-test"),
            "{err}"
        );
    }

    #[test]
    fn a_command_is_a_value_until_run() {
        let cmd = Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y"])
            .arg("kubelet=1.9.2-00")
            .timeout(Duration::from_secs(600));
        assert_eq!(cmd.argv(), ["apt-get", "install", "-y", "kubelet=1.9.2-00"]);
        assert_eq!(cmd.get_program(), "apt-get");
        assert_eq!(cmd.get_args().len(), 3);
        assert_eq!(
            cmd.get_envs(),
            [("DEBIAN_FRONTEND".into(), "noninteractive".into())]
        );
        assert_eq!(cmd.get_timeout(), Duration::from_secs(600));
        assert_eq!(cmd.to_string(), "apt-get install -y kubelet=1.9.2-00");
        assert_eq!(cmd, cmd.clone());
        assert_ne!(cmd, cmd.clone().timeout(Duration::from_secs(1)));
    }

    #[test]
    fn stdin_is_fed_and_display_quotes() {
        let out = Command::new("cat").stdin("hello").run().unwrap();
        assert_eq!(out.stdout, "hello");
        assert_eq!(
            Command::new("a b").arg("it's").arg("x=1").display(),
            r"'a b' 'it'\''s' x=1"
        );
    }
}
