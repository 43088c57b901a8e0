//! Live progress from long waits (a drain held up by a PodDisruptionBudget, a node not Ready yet),
//! for kup to show while the module runs.
//!
//! A module calls [`report`] as often as it likes while it waits; what is written is throttled
//! ([`MIN_INTERVAL`] between lines, a line only when the text changed or after [`HEARTBEAT`]).
//! Nothing is written unless kup started the module with progress asked for (`kup module
//! --progress NAME`, which calls [`enable`]): under Ansible, or run on its own, a module stays
//! silent. A line goes to **stderr**, one JSON object (`{"kup_progress":1,"text":...}`), so stdout
//! stays the one result object of the module protocol.

use serde_json::{json, Value};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The key (and version) that marks a progress line among a module's other stderr.
pub const KEY: &str = "kup_progress";

/// At most one line this often.
pub const MIN_INTERVAL: Duration = Duration::from_secs(3);
/// The same text again after this long, so the time left the reader shows stays true.
pub const HEARTBEAT: Duration = Duration::from_secs(30);

/// A text longer than this is cut (a line stays small whatever a module puts in it).
const TEXT_LIMIT: usize = 400;

static ENABLED: AtomicBool = AtomicBool::new(false);
static THROTTLE: Mutex<Throttle> = Mutex::new(Throttle { last: None });

/// Progress lines are written from now on (kup's `module --progress`).
pub fn enable() {
    ENABLED.store(true, Ordering::SeqCst);
}

/// Whether progress lines are written.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::SeqCst)
}

/// What a wait is at now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// Why it still waits, in a line: what is awaited and what holds it up.
    pub text: String,
    /// Time left before the module gives up.
    pub left: Option<Duration>,
    /// The node the wait is about, so kup shows it on that host's row.
    pub node: Option<String>,
}

impl Progress {
    pub fn new(text: impl Into<String>) -> Progress {
        Progress {
            text: text.into(),
            ..Progress::default()
        }
    }

    /// Time left until `deadline`.
    pub fn until(mut self, deadline: Instant) -> Progress {
        self.left = Some(deadline.saturating_duration_since(Instant::now()));
        self
    }

    pub fn node(mut self, node: impl Into<String>) -> Progress {
        self.node = Some(node.into());
        self
    }

    /// The line as kup reads it (without its newline).
    pub fn line(&self) -> String {
        let mut text: String = self.text.chars().take(TEXT_LIMIT).collect();
        if text.len() < self.text.len() {
            text.push('…');
        }
        // Seconds left, rounded up: "0 s left" only once it is really over.
        let left = self.left.map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
        json!({KEY: 1, "text": text, "left_s": left, "node": self.node}).to_string()
    }
}

/// Reports `progress`: written to stderr if progress is enabled and the throttle lets it through.
pub fn report(progress: &Progress) {
    if !enabled() {
        return;
    }
    let Ok(mut throttle) = THROTTLE.lock() else {
        return;
    };
    // A closed stderr is no reason to fail the module.
    let _ = write_to(
        &mut std::io::stderr().lock(),
        true,
        &mut throttle,
        progress,
        Instant::now(),
    );
}

/// [`report`]'s decision and write, on any writer: one `write_all` per line, so lines of
/// concurrent waits never interleave. Whether a line was written.
pub fn write_to(
    out: &mut impl Write,
    enabled: bool,
    throttle: &mut Throttle,
    progress: &Progress,
    now: Instant,
) -> std::io::Result<bool> {
    if !enabled || !throttle.admit(&progress.text, now) {
        return Ok(false);
    }
    out.write_all((progress.line() + "\n").as_bytes())?;
    out.flush()?;
    Ok(true)
}

/// When a line may be written.
#[derive(Debug)]
pub struct Throttle {
    /// The last line written: when, and its text.
    last: Option<(Instant, String)>,
}

impl Throttle {
    pub fn new() -> Throttle {
        Throttle { last: None }
    }

    /// Whether `text` is written at `now` (and if so, remembered as the last line).
    pub fn admit(&mut self, text: &str, now: Instant) -> bool {
        let due = match &self.last {
            None => true,
            Some((at, last)) => {
                let since = now.saturating_duration_since(*at);
                (since >= MIN_INTERVAL && last != text) || since >= HEARTBEAT
            }
        };
        if due {
            self.last = Some((now, text.to_string()));
        }
        due
    }
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::new()
    }
}

/// A progress line read back (kup's side): the object, if `line` is one.
pub fn parse(line: &str) -> Option<Value> {
    let line = line.trim_end();
    // Cheap test first: a module's other stderr is mostly not JSON at all.
    if !line.starts_with(&format!("{{\"{KEY}\":")) {
        return None;
    }
    let value: Value = serde_json::from_str(line).ok()?;
    (value.get(KEY) == Some(&json!(1)) && value.get("text").is_some_and(Value::is_string)).then_some(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn silent_unless_enabled_then_one_line_per_report_let_through() {
        // Nothing in this crate's tests enables it: a module run by Ansible is in this state.
        assert!(!enabled());
        report(&Progress::new("waiting"));
        assert!(
            THROTTLE.lock().unwrap().last.is_none(),
            "a disabled report reached the throttle"
        );
        let (t0, p) = (Instant::now(), Progress::new("waiting for w1").node("w1"));
        let mut out = Vec::new();
        let mut throttle = Throttle::new();
        assert!(!write_to(&mut out, false, &mut throttle, &p, t0).unwrap());
        assert!(out.is_empty());
        assert!(write_to(&mut out, true, &mut throttle, &p, t0).unwrap());
        assert!(!write_to(&mut out, true, &mut throttle, &p, t0 + Duration::from_secs(1)).unwrap());
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.ends_with('\n'));
        assert_eq!(parse(text.trim_end()).unwrap()["text"], "waiting for w1");
    }

    #[test]
    fn a_line_is_one_json_object_kup_reads_back() {
        let p = Progress {
            text: "drain w1: 2 pod(s) still on the node".into(),
            left: Some(Duration::from_millis(12_300)),
            node: Some("w1".into()),
        };
        let line = p.line();
        assert!(!line.contains('\n'));
        let v = parse(&line).unwrap();
        assert_eq!(v["text"], "drain w1: 2 pod(s) still on the node");
        assert_eq!(v["left_s"], 13);
        assert_eq!(v["node"], "w1");
        let v = parse(&Progress::new("x").line()).unwrap();
        assert_eq!((v["left_s"].is_null(), v["node"].is_null()), (true, true));
        // Long texts are cut; the line stays one line.
        let long = Progress::new("a\nb".repeat(1000)).line();
        assert!(long.len() < 2000 && !long.contains('\n'), "{long}");
    }

    #[test]
    fn other_stderr_is_not_progress() {
        for line in [
            "",
            "error: something",
            "{\"failed\": true}",
            "{\"kup_progress\":2,\"text\":\"x\"}",
            "{\"kup_progress\":1}",
            "{\"kup_progress\":1,\"text\":7}",
            "{\"kup_progress\":1,\"text\":\"cut",
            "  {\"kup_progress\":1,\"text\":\"x\"}",
        ] {
            assert!(parse(line).is_none(), "{line}");
        }
        assert!(parse("{\"kup_progress\":1,\"text\":\"x\"}\n").is_some());
    }

    #[test]
    fn the_throttle_lets_changes_through_at_most_every_interval_and_repeats_after_a_while() {
        let t0 = Instant::now();
        let mut t = Throttle::new();
        assert!(t.admit("a", t0), "the first line goes out at once");
        assert!(!t.admit("b", t0 + Duration::from_secs(1)), "too soon");
        assert!(
            !t.admit("a", t0 + MIN_INTERVAL),
            "unchanged: not before the heartbeat"
        );
        assert!(
            t.admit("b", t0 + MIN_INTERVAL),
            "changed, and the interval passed"
        );
        let t1 = t0 + MIN_INTERVAL;
        assert!(!t.admit("b", t1 + HEARTBEAT - Duration::from_secs(1)));
        assert!(t.admit("b", t1 + HEARTBEAT), "the heartbeat");
    }
}
