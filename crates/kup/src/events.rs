//! The `--json` event stream, `kup.events/v1`: one JSON object a line on stdout. Every event has
//! `schema` (this version), `event` (its kind) and `time` (wall clock, RFC 3339 UTC); events of a
//! run also `at` (seconds since kup started). The kinds and their fields are documented in the
//! README ("The --json event stream") and, for machines, in `docs/kup-events.schema.json`, which a
//! test holds every event kup writes against.
//!
//! A stream of `kup plan` or `kup upgrade` is `start`, then `phase`, `step-start`, `step`, `note`
//! as the run goes (`blockers` for a plan), then `report`; a command that exits with anything but
//! 0 ends with one `error` event carrying the exit code and what to do. An error before the run (a
//! usage error, an inventory kup cannot read) is a stream of that one `error` event.

use crate::runlog;
use serde_json::{json, Map, Value};
use std::time::SystemTime;

/// The stream's schema and version: bumped when a field changes meaning or goes away (new
/// optional fields and new event kinds keep it).
pub const SCHEMA: &str = "kup.events/v1";

/// The JSON Schema of every event (docs/kup-events.schema.json).
#[cfg(test)]
pub const JSON_SCHEMA: &str = include_str!("../../../docs/kup-events.schema.json");

/// The validator the end-to-end tests use too.
#[cfg(test)]
#[path = "../../../tests/support/schema.rs"]
pub mod schema;

/// The schema, parsed.
#[cfg(test)]
pub fn json_schema() -> Value {
    serde_json::from_str(JSON_SCHEMA).unwrap_or_default()
}

/// How much of a failed command's output a `step` event carries (the run log has all of it).
const TAIL_LINES: usize = 20;
const TAIL_CHARS: usize = 4000;

/// An event: `schema`, `event`, `time`, then `fields` (an object).
pub fn event(kind: &str, fields: Value) -> Value {
    let mut line = Map::new();
    line.insert("schema".into(), json!(SCHEMA));
    line.insert("event".into(), json!(kind));
    line.insert("time".into(), json!(runlog::rfc3339(SystemTime::now())));
    if let Value::Object(fields) = fields {
        line.extend(fields);
    }
    Value::Object(line)
}

/// The last lines of `text` (at most [`TAIL_LINES`] lines and [`TAIL_CHARS`] characters, cut at a
/// line break when it can be).
pub fn tail(text: &str) -> String {
    let text = text.trim_end();
    let lines: Vec<&str> = text.lines().collect();
    let mut kept = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    if kept.chars().count() > TAIL_CHARS {
        let skip = kept.chars().count() - TAIL_CHARS;
        let cut: String = kept.chars().skip(skip).collect();
        kept = match cut.split_once('\n') {
            Some((_, rest)) if !rest.is_empty() => rest.to_string(),
            _ => cut,
        };
    }
    kept
}

/// What a failed module's result says beyond its message, for its `step` event: the command's
/// `rc`, the tails of its `stderr` and `stdout`, its `warnings`; secrets taken out.
pub fn failure_fields(result: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(rc) = result["rc"].as_i64() {
        out.insert("rc".into(), json!(rc));
    }
    for (key, field) in [("stderr", "stderr_tail"), ("stdout", "stdout_tail")] {
        if let Some(text) = result[key].as_str().filter(|t| !t.trim().is_empty()) {
            out.insert(field.into(), json!(runlog::redact_text(&tail(text))));
        }
    }
    if let Some(warnings) = result["warnings"].as_array().filter(|w| !w.is_empty()) {
        out.insert("warnings".into(), runlog::redact(Value::Array(warnings.clone())));
    }
    out
}

/// Why a command ended with an `error` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The command line, or an inventory kup cannot read (exit 2).
    Usage,
    /// Refused before changing anything: another run holds the journal, the operator said no (exit 1).
    Refused,
    /// A step failed, or the run could not be set up (exit 1).
    Failed,
    /// `kup plan`: something blocks the upgrade (exit 1).
    Blocked,
    /// Ctrl-C or SIGTERM (exit 130).
    Interrupted,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Usage => "usage",
            ErrorKind::Refused => "refused",
            ErrorKind::Failed => "failed",
            ErrorKind::Blocked => "blocked",
            ErrorKind::Interrupted => "interrupted",
        }
    }
}

/// The final `error` event.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    /// What to do about it.
    pub fix: Option<String>,
    pub exit_code: u8,
    pub host: Option<String>,
    pub step: Option<String>,
}

impl Error {
    /// An error whose message may end with kup's `\n  what to do: FIX`: the two told apart.
    pub fn new(kind: ErrorKind, exit_code: u8, text: &str) -> Error {
        let (message, fix) = match text.split_once("\n  what to do: ") {
            Some((m, f)) => (m.to_string(), Some(f.to_string())),
            None => (text.to_string(), None),
        };
        Error {
            kind,
            message,
            fix,
            exit_code,
            host: None,
            step: None,
        }
    }

    pub fn to_event(&self) -> Value {
        event(
            "error",
            json!({"kind": self.kind.name(), "message": runlog::redact_text(&self.message),
                   "fix": self.fix, "exit_code": self.exit_code, "host": self.host, "step": self.step}),
        )
    }
}

/// A usage error as the one event of a `--json` stream.
pub fn usage_error(message: &str) -> Value {
    Error::new(ErrorKind::Usage, 2, message.trim_end()).to_event()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_event_says_its_schema_kind_and_time() {
        let e = event("phase", json!({"name": "preflight"}));
        assert_eq!(e["schema"], SCHEMA);
        assert_eq!(e["event"], "phase");
        assert_eq!(e["name"], "preflight");
        let time = e["time"].as_str().unwrap();
        assert!(
            time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{time}"
        );
    }

    #[test]
    fn a_failed_modules_rc_and_output_tails_without_secrets() {
        let stderr: String = (1..=30).map(|i| format!("E: line {i}\n")).collect();
        let result = json!({"failed": true, "msg": "apt-get failed", "rc": 100, "stderr": stderr,
                            "stdout": "token abcdef.0123456789abcdef used", "warnings": ["held"]});
        let f = failure_fields(&result);
        assert_eq!(f["rc"], 100);
        let kept = f["stderr_tail"].as_str().unwrap();
        assert!(
            kept.starts_with("E: line 11\n") && kept.ends_with("E: line 30"),
            "{kept}"
        );
        assert_eq!(f["stdout_tail"], "token <redacted> used");
        assert_eq!(f["warnings"], json!(["held"]));
        assert!(failure_fields(&json!({"failed": true, "msg": "x", "stderr": " "})).is_empty());
        let long = "y".repeat(10_000);
        assert_eq!(tail(&long).chars().count(), TAIL_CHARS);
    }

    #[test]
    fn an_error_tells_its_message_and_fix_apart() {
        let e = Error::new(
            ErrorKind::Failed,
            1,
            "lab-w1: step drain failed: PDB default/db\n  what to do: relax it",
        );
        assert_eq!(e.message, "lab-w1: step drain failed: PDB default/db");
        assert_eq!(e.fix.as_deref(), Some("relax it"));
        let v = e.to_event();
        assert_eq!(
            (v["event"].as_str(), v["kind"].as_str()),
            (Some("error"), Some("failed"))
        );
        assert_eq!(v["exit_code"], 1);
        let u = usage_error("error: unexpected argument '--frobnicate' found\n");
        assert_eq!(
            (u["kind"].as_str(), u["exit_code"].as_u64()),
            (Some("usage"), Some(2))
        );
        assert_eq!(u["fix"], Value::Null);
    }
}
