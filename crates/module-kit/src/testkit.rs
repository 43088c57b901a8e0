//! Running a module binary the way Ansible does, for tests: args file as argv[1], or JSON on stdin;
//! checks that stdout is exactly one JSON object and that the exit code agrees with `failed`.
//!
//! And a fixed-seed fuzzer of a module's argument intake ([`fuzz_intake`]), and [`Intake`], the
//! checks every module's intake test makes (fuzzed arguments, refusals naming the field, bounded
//! durations, unknown `null` parameters, cut echoes): each module's test of its intake is a few lines.

use crate::Module;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::marker::PhantomData;
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
    /// The run failed, its message containing each of `parts`.
    #[track_caller]
    pub fn assert_failed_saying(&self, parts: &[&str]) {
        assert!(self.failed(), "{}", self.stdout);
        for part in parts {
            assert!(self.msg().contains(part), "{part:?} not in {}", self.msg());
        }
    }

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

/// A small pseudo-random generator (xorshift64*) with a fixed seed: the same cases on every run and
/// every machine, so a failure found once is found again.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Never 0 (xorshift would stay there), and nearby seeds diverge at once.
        Rng((seed ^ 0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// 0 to `n - 1` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True `percent` times out of 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }
}

/// Strings modules are likely to meet, right or wrong: versions (with suffixes that were cut once),
/// channels, actions, states, paths (relative, empty, with NUL), URLs with a password, option-like words.
const WORDS: &[&str] = &[
    "",
    " ",
    "-",
    "--force",
    "yes",
    "no",
    "true",
    "off",
    "auto",
    "none",
    "0",
    "1",
    "30",
    "-1",
    " 30 ",
    "0x10",
    "1e3",
    "9223372036854775807",
    "18446744073709551616",
    "99999999999999999999999999999999999999999",
    "v1.9.2",
    "1.9.2",
    "1.9",
    "v1.10.0-beta.1",
    "v1.9.2-y --force",
    "v1.9.2-$(id)",
    "v1.9.2\n",
    "stable",
    "stable-1.9",
    "latest-1.30",
    "plan",
    "apply",
    "node",
    "drain",
    "cordon",
    "uncordon",
    "started",
    "stopped",
    "restarted",
    "fail",
    "ignore",
    "always",
    "never",
    "apt",
    "dnf",
    "amd64",
    "x86_64",
    "0755",
    "0999",
    "sha256:0000",
    "/",
    "/tmp/x",
    "/var/lib/kup/kubeadm",
    "/etc/kubernetes/manifests",
    "relative/path",
    ".",
    "~/.kube/config",
    "/tmp/ku\u{0}beadm",
    "http://user:pw@127.0.0.1:9/",
    "https://dl.k8s.io/release",
    "ftp://mirror",
    "kube-system",
    "kubeadm-config",
    "worker-1",
    "master-1,worker-1",
    "kubelet",
    "docker",
    "kubelet.service",
    "CoreDNS=true",
    "app=web",
    "=",
    "ünïcødé",
    "日本語",
    "\u{202e}evil",
    "💥",
];

/// Control characters, alone or inside something plausible.
const CONTROLS: &[&str] = &[
    "\u{0}",
    "\r\n",
    "\n",
    "\t",
    "\u{7f}",
    "\u{1b}[31m",
    "\u{8}",
    "\u{85}",
];

fn fuzz_string(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 | 1 => rng.pick(WORDS).copied().unwrap_or_default().to_string(),
        2 => {
            let mut s = String::new();
            for _ in 0..=rng.below(4) {
                s.push_str(rng.pick(WORDS).copied().unwrap_or_default());
                s.push_str(rng.pick(CONTROLS).copied().unwrap_or_default());
            }
            s
        }
        3 => {
            // Long: an argument far larger than any message should carry.
            let unit = rng.pick(WORDS).copied().filter(|w| !w.is_empty()).unwrap_or("x");
            let len = [300, 5_000, 70_000][rng.below(3)];
            unit.repeat(len / unit.len().max(1) + 1)
        }
        _ => (0..rng.below(24))
            .map(|_| char::from(32 + rng.below(95) as u8))
            .collect(),
    }
}

/// A random JSON value: every type, extreme numbers, awkward strings, nesting up to three levels.
pub fn fuzz_value(rng: &mut Rng, depth: u32) -> Value {
    let kinds = if depth >= 3 { 7 } else { 9 };
    match rng.below(kinds) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 => Value::from(rng.below(200) as i64 - 5),
        3 => [
            Value::from(i64::MAX),
            Value::from(i64::MIN),
            Value::from(u64::MAX),
            Value::from(u32::MAX),
            Value::from(u64::from(u32::MAX) + 1),
            Value::from(604_800),
            Value::from(604_801),
            Value::from(0),
            Value::from(-1),
        ][rng.below(9)]
        .clone(),
        4 => [0.5, -1.5, 1e300, 3.0, -0.0][rng.below(5)].into(),
        5 | 6 => Value::String(fuzz_string(rng)),
        7 => Value::Array((0..rng.below(5)).map(|_| fuzz_value(rng, depth + 1)).collect()),
        _ => Value::Object(
            (0..rng.below(4))
                .map(|_| (fuzz_string(rng), fuzz_value(rng, depth + 1)))
                .collect(),
        ),
    }
}

/// A random argument object: mostly the module's own parameter names (taken from `base`, which holds
/// valid values to start from half of the time, and from `names`), some random keys, random values,
/// and always `_ansible_check_mode: true`.
pub fn fuzz_args(rng: &mut Rng, names: &[&str], base: &Value) -> Value {
    let mut args = match base {
        Value::Object(map) if rng.chance(50) => map.clone(),
        _ => Map::new(),
    };
    for _ in 0..rng.below(5) {
        let key = if rng.chance(75) && !names.is_empty() {
            rng.pick(names).map(|n| n.to_string()).unwrap_or_default()
        } else if rng.chance(20) {
            [
                "_ansible_diff",
                "_ansible_verbosity",
                "_ansible_no_log",
                "_ansible_version",
            ][rng.below(4)]
            .to_string()
        } else {
            fuzz_string(rng)
        };
        args.insert(key, fuzz_value(rng, 0));
    }
    args.insert("_ansible_check_mode".into(), Value::Bool(true));
    Value::Object(args)
}

/// The longest `msg` an intake failure may have.
pub const INTAKE_MESSAGE_LIMIT: usize = 2_000;

/// What [`fuzz_intake`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FuzzReport {
    pub cases: usize,
    pub accepted: usize,
    pub refused: usize,
}

/// Feeds `cases` random argument objects (see [`fuzz_args`]; `base` holds valid arguments to start
/// from) through the module's intake ([`crate::intake_value`]: parsing and [`Module::validate`],
/// never `run`, so nothing is touched) and checks every result: no panic, exactly one JSON object,
/// `changed` and `failed` booleans, and a refusal's `msg` at most [`INTAKE_MESSAGE_LIMIT`] characters
/// naming the parameter at fault (`parameter `name``: a declared one, `_ansible_*`, or a key that was
/// sent). `Err` describes the first case that broke a rule.
pub fn fuzz_intake<M: Module>(seed: u64, cases: usize, base: &Value) -> Result<FuzzReport, String> {
    let names = crate::parameter_names::<M>();
    let mut rng = Rng::new(seed);
    let mut report = FuzzReport::default();
    for case in 0..cases {
        let args = fuzz_args(&mut rng, names, base);
        let shown_args = crate::echo::elide_quoted(&args.to_string());
        let fail = |why: String| format!("{} case {case} (seed {seed}): {why}\nargs: {shown_args}", M::NAME);
        let sent = args.clone();
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| crate::intake_value::<M>(sent)))
                .map_err(|_| fail("intake panicked".into()))?;
        let text = serde_json::to_string(&result).map_err(|e| fail(format!("result is not JSON: {e}")))?;
        let again: Value =
            serde_json::from_str(&text).map_err(|e| fail(format!("not one JSON value: {e}")))?;
        if !again.is_object() {
            return Err(fail(format!("result is not a JSON object: {text}")));
        }
        let (Some(failed), Some(_)) = (again["failed"].as_bool(), again["changed"].as_bool()) else {
            return Err(fail(format!("`failed` or `changed` is not a boolean: {text}")));
        };
        let msg = again["msg"].as_str().unwrap_or_default();
        if msg.contains("internal error") {
            return Err(fail(format!("internal error: {msg}")));
        }
        report.cases += 1;
        if !failed {
            report.accepted += 1;
            continue;
        }
        report.refused += 1;
        if msg.chars().count() > INTAKE_MESSAGE_LIMIT {
            return Err(fail(format!(
                "msg has {} characters: {}",
                msg.chars().count(),
                crate::echo::shown(msg)
            )));
        }
        let keys: Vec<&String> = args.as_object().map(|m| m.keys().collect()).unwrap_or_default();
        if !names_a_field(msg, names, &keys) {
            return Err(fail(format!("msg names no parameter: {msg}")));
        }
    }
    Ok(report)
}

/// Whether `msg` says `parameter `x`` with x a declared parameter (or an element of one: `names[2]`),
/// an `_ansible_*` setting, or a key that was sent (possibly cut: `kkk…`).
fn names_a_field(msg: &str, names: &[&str], keys: &[&String]) -> bool {
    msg.match_indices("parameter `").any(|(at, open)| {
        let rest = &msg[at + open.len()..];
        let Some(end) = rest.find('`') else {
            return false;
        };
        let named = &rest[..end];
        let head = named.split(['[', '.']).next().unwrap_or(named);
        let prefix = named.trim_end_matches('…');
        // A key is shown raw (serde) or escaped (module-kit), maybe cut, and a backtick in it ends it early.
        let sent = |k: &&String| {
            [k.to_string(), k.escape_debug().to_string()]
                .iter()
                .any(|form| form == named || form.starts_with(prefix))
        };
        names.contains(&head) || named.starts_with("_ansible_") || keys.iter().any(sent)
    })
}

/// The intake tests every module repeats: `intake_tests!(NodeDrain, env!("CARGO_BIN_EXE_node_drain"),
/// fuzz: json!({...}))` defines `const MODULE: Intake<NodeDrain>` for the module's own tests and
/// the test `fuzzed_arguments_fail_cleanly` ([`Intake::fuzz`] from those valid arguments); with
/// `unknown_null: (base, key)` also `an_unknown_null_parameter_is_refused`
/// ([`Intake::unknown_null_refused`]).
#[macro_export]
macro_rules! intake_tests {
    ($module:ty, $bin:expr, fuzz: $fuzz:expr $(,)?) => {
        const MODULE: $crate::testkit::Intake<$module> = $crate::testkit::Intake::new($bin);

        #[test]
        fn fuzzed_arguments_fail_cleanly() {
            MODULE.fuzz($fuzz);
        }
    };
    ($module:ty, $bin:expr, fuzz: $fuzz:expr, unknown_null: ($base:expr, $key:expr) $(,)?) => {
        $crate::intake_tests!($module, $bin, fuzz: $fuzz);

        #[test]
        fn an_unknown_null_parameter_is_refused() {
            MODULE.unknown_null_refused($base, $key);
        }
    };
}

/// A module's binary, for the tests of its intake: `const MODULE: Intake<NodeDrain> =
/// Intake::new(env!("CARGO_BIN_EXE_node_drain"));`. Each check runs the binary as Ansible does (an
/// args file) and fails the test with the arguments and the answer when the module's answer breaks
/// a rule. The refusals are all made by the intake, before the module touches anything.
#[derive(Debug)]
pub struct Intake<M> {
    bin: &'static str,
    module: PhantomData<fn() -> M>,
}

// A failed expectation here is a failed test: panicking is the point.
#[allow(clippy::panic)]
impl<M: Module> Intake<M> {
    pub const fn new(bin: &'static str) -> Intake<M> {
        Intake {
            bin,
            module: PhantomData,
        }
    }

    /// Runs the module with `args`.
    pub fn run(&self, args: Value) -> Ran {
        run_with_args_file(Path::new(self.bin), &args).unwrap_or_else(|e| panic!("{}: {args}: {e}", M::NAME))
    }

    /// `args` are refused, the message naming `field` first (`parameter `field`: ...`).
    pub fn refused(&self, args: Value, field: &str) -> Ran {
        self.refused_with(args, field, "")
    }

    /// `args` are refused, the message naming `field` first and saying `why`.
    pub fn refused_with(&self, args: Value, field: &str, why: &str) -> Ran {
        let ran = self.run(args.clone());
        assert!(ran.failed(), "{args} accepted: {}", ran.stdout);
        assert!(
            ran.msg().starts_with(&format!("parameter `{field}`")) && ran.msg().contains(why),
            "{args}: {}",
            ran.msg()
        );
        ran
    }

    /// The same, and the answer stays small however large the argument (its echo is cut).
    pub fn refused_small(&self, args: Value, field: &str, why: &str) -> Ran {
        let ran = self.refused_with(args, field, why);
        assert!(ran.stdout.len() < 1_000, "{} bytes", ran.stdout.len());
        ran
    }

    /// [`fuzz_intake`] with the seed and count every module uses (issue 17, item 8), starting from
    /// the valid arguments `base`: both outcomes are common, and every answer keeps the rules.
    pub fn fuzz(&self, base: Value) {
        let report = fuzz_intake::<M>(0x17_08, 400, &base).unwrap_or_else(|e| panic!("{e}"));
        assert!(report.accepted > 5 && report.refused > 100, "{report:?}");
    }

    /// Each of `fields` set to the largest integer over `base` (in check mode) is refused as longer
    /// than 7 days: no deadline overflows, no "internal error".
    pub fn huge_durations_refused(&self, base: Value, fields: &[&str]) {
        for field in fields {
            let args = merged(&base, json!({*field: i64::MAX, "_ansible_check_mode": true}));
            self.refused_with(args, field, "at most 604800 seconds (7 days)");
        }
    }

    /// `key: null` over `base` is refused as an unknown parameter (`null` means a default only for
    /// a known one).
    pub fn unknown_null_refused(&self, base: Value, key: &str) -> Ran {
        let args = merged(&base, json!({ key: null }));
        let ran = self.run(args.clone());
        assert!(ran.failed(), "{args} accepted: {}", ran.stdout);
        assert!(
            ran.msg().contains(&format!("unknown parameter `{key}`")),
            "{args}: {}",
            ran.msg()
        );
        ran
    }
}

/// `base` with the keys of `extra` set over it.
pub fn merged(base: &Value, extra: Value) -> Value {
    let mut out = base.as_object().cloned().unwrap_or_default();
    if let Value::Object(extra) = extra {
        out.extend(extra);
    }
    Value::Object(out)
}
