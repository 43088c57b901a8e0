//! Argument intake and result output: Ansible's binary-module convention, or JSON on stdin.

use crate::echo::{bounded, elide_quoted, shown_name, ECHO_LIMIT};
use crate::{de, Failure, Module, Outcome, Params};
use serde_json::{Map, Value};
use std::io::{Read, Write};

/// How Ansible (or `kup`) asked the module to run: the `_ansible_*` keys, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Change nothing; report what would change.
    pub check_mode: bool,
    /// Return `diff` (before/after).
    pub diff: bool,
    /// The caller hides the result; modules must not log parameter values anywhere either.
    pub no_log: bool,
    pub verbosity: u8,
}

/// The process entry point of every module binary: read, run, print one JSON object, exit 0 or 1.
pub fn main<M: Module>() -> ! {
    main_with_args::<M>(std::env::args_os().skip(1))
}

/// The same, with the arguments after the program (for multicall binaries: `kup module NAME ARGS`).
pub fn main_with_args<M: Module>(args: impl Iterator<Item = std::ffi::OsString>) -> ! {
    install_panic_guard(M::NAME);
    let mut argv = args;
    let source = argv.next();
    let result = match (source.as_ref().and_then(|s| s.to_str()), argv.next()) {
        (Some("--help" | "-h"), _) => {
            print_help::<M>();
            std::process::exit(0);
        }
        (Some("--version" | "-V"), _) => {
            // Every module is released with the project: the workspace's version.
            let line = format!("{} {}\n", M::NAME, env!("CARGO_PKG_VERSION"));
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
            std::process::exit(0);
        }
        (_, Some(extra)) => failure_value(&Failure::new(format!(
            "unexpected extra argument {:?}: give one JSON args file, or '-' (or nothing) for stdin",
            extra
        ))),
        (Some(path), None) if path != "-" => match std::fs::read(path) {
            Ok(raw) => run_input::<M>(&raw),
            Err(err) => failure_value(&Failure::new(format!("cannot read args file {path}: {err}"))),
        },
        (None, None) if source.is_some() => {
            failure_value(&Failure::new("the args file path is not valid UTF-8"))
        }
        _ => {
            let mut raw = Vec::new();
            match std::io::stdin().read_to_end(&mut raw) {
                Ok(_) => run_input::<M>(&raw),
                Err(err) => failure_value(&Failure::new(format!("cannot read arguments from stdin: {err}"))),
            }
        }
    };
    emit_and_exit(&result)
}

/// Runs a module on raw argument bytes (a JSON object); returns the result object.
pub fn run_input<M: Module>(raw: &[u8]) -> Value {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return failure_value(&Failure::new(format!(
            "{}: no arguments given: expected a JSON object (an args file path as the first argument, \
             or the object on stdin)",
            M::NAME
        )));
    }
    match serde_json::from_slice::<Value>(raw) {
        Ok(args) => run_value::<M>(args),
        Err(err) => failure_value(&Failure::new(format!(
            "{}: arguments are not valid JSON: {err}",
            M::NAME
        ))),
    }
}

/// Runs a module on a parsed argument object; returns the result object.
pub fn run_value<M: Module>(args: Value) -> Value {
    let secrets = secret_values::<M>(&args);
    let mut result = match intake::<M>(args) {
        Ok((params, ctx)) => match M::run(params, &ctx) {
            Ok(outcome) => outcome_value(outcome, &ctx),
            Err(failure) => failure_value(&failure),
        },
        Err(failure) => failure_value(&failure),
    };
    scrub(&mut result, &secrets);
    result
}

/// Everything that happens before a module runs, and nothing else: [`parse_input`], then
/// [`Module::validate`]. No I/O.
pub fn intake<M: Module>(args: Value) -> Result<(M::Params, Context), Failure> {
    let (params, ctx) = parse_input::<M>(args)?;
    M::validate(&params)?;
    Ok((params, ctx))
}

/// The result object [`run_value`] gives when [`intake`] refuses the arguments, or a stub success
/// (`changed: false`, `failed: false`) when it accepts them: intake on its own, for tests.
pub fn intake_value<M: Module>(args: Value) -> Value {
    let secrets = secret_values::<M>(&args);
    let mut result = match intake::<M>(args) {
        Ok(_) => outcome_value(Outcome::unchanged("arguments accepted"), &Context::default()),
        Err(failure) => failure_value(&failure),
    };
    scrub(&mut result, &secrets);
    result
}

/// The names (and aliases) of a module's parameters, flattened parts included: [`Params::NAMES`].
pub fn parameter_names<M: Module>() -> &'static [&'static str] {
    <M::Params as Params>::NAMES
}

/// Splits off the `_ansible_*` keys and parses the rest strictly into the module's parameters.
/// `null` means "not given", so the parameter's default applies; but an unknown parameter is refused
/// whatever its value.
pub fn parse_input<M: Module>(args: Value) -> Result<(M::Params, Context), Failure> {
    let Value::Object(all) = args else {
        return Err(Failure::new(format!(
            "{}: arguments must be a JSON object, got {}",
            M::NAME,
            json_kind(&args)
        )));
    };
    let mut ctx = Context::default();
    let mut params = Map::new();
    let mut keys = Vec::new();
    for (key, value) in all {
        match key.strip_prefix("_ansible_") {
            Some(setting) => apply_setting(&mut ctx, setting, &value)?,
            // `null` means "not given" (Ansible's `~`), so the parameter's default applies.
            None if value.is_null() => keys.push(key),
            None => {
                keys.push(key.clone());
                params.insert(key, value);
            }
        }
    }
    // serde's deny_unknown_fields does not see through `flatten`, nor ever sees a `null`: checked here.
    let accepted = parameter_names::<M>();
    if let Some(unknown) = keys.iter().find(|k| !accepted.contains(&k.as_str())) {
        let list: Vec<String> = accepted.iter().map(|a| format!("`{a}`")).collect();
        return Err(Failure::new(format!(
            "{}: unknown parameter {}; accepted parameters: {}",
            M::NAME,
            shown_name(unknown),
            list.join(", ")
        )));
    }
    let params = serde_path_to_error::deserialize(Value::Object(params)).map_err(|err| {
        let path = err.path().to_string();
        // serde echoes the values and keys it refuses in full: cut them.
        let problem = elide_quoted(&err.into_inner().to_string())
            .replace("unknown field", "unknown parameter")
            .replace("missing field", "missing required parameter")
            .replace(", expected one of", "; accepted parameters:")
            .replace("unknown variant", "unknown value");
        // A parameter and its alias both given.
        if let Some(name) = problem
            .strip_prefix("duplicate field `")
            .and_then(|r| r.split('`').next())
        {
            return Failure::new(format!(
                "{}: parameter `{name}` is given twice (under two of its names)",
                M::NAME
            ));
        }
        if problem.starts_with("parameter `") && (path == "." || path.is_empty()) {
            // A field of a flattened part, which names itself (de::flattened_field): serde has no path there.
            Failure::new(problem)
        } else if path == "." || path.is_empty() || problem.starts_with("unknown parameter") {
            Failure::new(format!("{}: {problem}", M::NAME))
        } else {
            Failure::param(&path, problem)
        }
    })?;
    Ok((params, ctx))
}

fn apply_setting(ctx: &mut Context, setting: &str, value: &Value) -> Result<(), Failure> {
    let flag =
        |v: &Value| de::bool_from_value(v).map_err(|e| Failure::param(&format!("_ansible_{setting}"), e));
    match setting {
        "check_mode" => ctx.check_mode = flag(value)?,
        "diff" => ctx.diff = flag(value)?,
        "no_log" => ctx.no_log = flag(value)?,
        "verbosity" => {
            ctx.verbosity =
                de::int_from_value::<u8>(value).map_err(|e| Failure::param("_ansible_verbosity", e))?
        }
        // Others (_ansible_version, _ansible_tmpdir, ...) describe the controller; not ours to judge.
        _ => {}
    }
    Ok(())
}

fn outcome_value(outcome: Outcome, ctx: &Context) -> Value {
    let mut out = outcome.values;
    out.insert("changed".into(), Value::Bool(outcome.changed));
    out.insert("failed".into(), Value::Bool(false));
    out.insert("msg".into(), Value::String(bounded(outcome.msg)));
    if let (true, Some(diff)) = (ctx.diff, outcome.diff) {
        out.insert(
            "diff".into(),
            serde_json::json!({ "before": diff.before, "after": diff.after }),
        );
    }
    if !outcome.warnings.is_empty() {
        let warnings: Vec<String> = outcome.warnings.into_iter().map(bounded).collect();
        out.insert("warnings".into(), warnings.into());
    }
    Value::Object(out)
}

fn failure_value(failure: &Failure) -> Value {
    let mut out = failure.values.clone();
    // A run that changed something before it failed says so with `.with("changed", true)`.
    let changed = failure
        .values
        .get("changed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    out.insert("changed".into(), Value::Bool(changed));
    out.insert("failed".into(), Value::Bool(true));
    out.insert("msg".into(), Value::String(bounded(failure.msg.clone())));
    if let Some(command) = &failure.command {
        out.insert("rc".into(), command.rc.into());
        out.insert("stdout".into(), command.stdout.clone().into());
        out.insert("stderr".into(), command.stderr.clone().into());
    }
    if !failure.warnings.is_empty() {
        let warnings: Vec<String> = failure.warnings.iter().cloned().map(bounded).collect();
        out.insert("warnings".into(), warnings.into());
    }
    Value::Object(out)
}

/// Whether a result object reports failure.
pub(crate) fn is_failed(result: &Value) -> bool {
    result.get("failed").and_then(Value::as_bool).unwrap_or(true)
}

fn emit_and_exit(result: &Value) -> ! {
    let mut stdout = std::io::stdout().lock();
    let text = serde_json::to_string(result).unwrap_or_else(|_| {
        r#"{"failed":true,"changed":false,"msg":"result could not be encoded as JSON"}"#.to_string()
    });
    // If stdout is gone there is nobody left to tell; the exit code still says it.
    let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
    std::process::exit(if is_failed(result) { 1 } else { 0 })
}

fn print_help<M: Module>() {
    let text = if M::DOCS.is_empty() {
        format!(
            "{}: run with a JSON args file as the only argument, or JSON on stdin.\n",
            M::NAME
        )
    } else {
        M::DOCS.to_string()
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Turns any panic into one JSON failure on stdout and exit code 1: never a trace, never non-JSON.
/// A hook (not `catch_unwind`) so that it also works with `panic = "abort"` release builds.
fn install_panic_guard(module: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let failure = Failure::new(format!(
            "{module}: internal error ({what}{place}); nothing more was done. Please report this."
        ));
        emit_and_exit(&failure_value(&failure));
    }));
}

fn secret_values<M: Module>(args: &Value) -> Vec<String> {
    M::SECRETS
        .iter()
        .filter_map(|name| match args.get(*name)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

/// Replaces every occurrence of a secret value in the output with a mask; also the first
/// [`ECHO_LIMIT`] characters of a longer one, which is what a cut echo of it would show.
fn scrub(value: &mut Value, secrets: &[String]) {
    if secrets.is_empty() {
        return;
    }
    match value {
        Value::String(s) => {
            for secret in secrets {
                let head: String = secret.chars().take(ECHO_LIMIT).collect();
                for masked in [secret.as_str(), head.as_str()] {
                    if s.contains(masked) {
                        *s = s.replace(masked, "********");
                    }
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub(v, secrets)),
        Value::Object(map) => map.values_mut().for_each(|v| scrub(v, secrets)),
        _ => {}
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::{FilePath, Name, Seconds};
    use serde_json::json;

    struct Probe;

    #[derive(serde::Deserialize, crate::Params)]
    #[allow(dead_code)]
    struct Params {
        name: Name,
        #[serde(default, alias = "delete_local_data", deserialize_with = "de::boolean")]
        delete_emptydir_data: bool,
        #[serde(default = "default_timeout")]
        timeout: Seconds,
        #[serde(default)]
        path: Option<FilePath>,
    }

    fn default_timeout() -> Seconds {
        Seconds::of(30)
    }

    impl Module for Probe {
        const NAME: &'static str = "probe";
        type Params = Params;
        fn validate(p: &Params) -> Result<(), Failure> {
            if p.name.as_str() == "forbidden" {
                return Err(Failure::param("name", "is forbidden"));
            }
            Ok(())
        }
        fn run(_p: Params, _ctx: &Context) -> Result<Outcome, Failure> {
            Ok(Outcome::changed("ran"))
        }
    }

    #[test]
    fn parameter_names_come_from_the_struct_with_aliases() {
        let names = parameter_names::<Probe>();
        for n in [
            "name",
            "delete_emptydir_data",
            "delete_local_data",
            "timeout",
            "path",
        ] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
    }

    #[test]
    fn nulls_are_defaults_only_for_known_parameters() {
        let ok = intake::<Probe>(json!({"name": "a", "delete_local_data": null, "timeout": null}));
        assert!(ok.is_ok());
        let err = intake::<Probe>(json!({"name": "a", "colour": null}))
            .err()
            .unwrap();
        assert!(
            err.msg
                .starts_with("probe: unknown parameter `colour`; accepted parameters: `name`"),
            "{}",
            err.msg
        );
    }

    #[test]
    fn validate_is_part_of_the_intake_and_runs_before_run() {
        let r = run_value::<Probe>(json!({"name": "forbidden"}));
        assert_eq!(r["failed"], true);
        assert_eq!(r["msg"], "parameter `name`: is forbidden");
        assert_eq!(intake_value::<Probe>(json!({"name": "ok"}))["failed"], false);
    }

    #[test]
    fn typed_parameters_name_the_field() {
        for (args, start) in [
            (
                json!({"name": "a", "timeout": 9223372036854775807i64}),
                "parameter `timeout`: must be at most 604800",
            ),
            (
                json!({"name": "a", "timeout": "0"}),
                "parameter `timeout`: must be at least 1 second",
            ),
            (
                json!({"name": "a", "path": ""}),
                "parameter `path`: must not be empty",
            ),
            (
                json!({"name": "a", "path": "/x\u{0}"}),
                "parameter `path`: contains a NUL byte",
            ),
            (json!({"name": "a\u{0}"}), "parameter `name`: contains a NUL byte"),
        ] {
            let msg = intake::<Probe>(args.clone()).err().unwrap().msg;
            assert!(msg.starts_with(start), "{args}: {msg}");
        }
    }

    #[test]
    fn secrets_cut_in_an_echo_are_still_masked() {
        let mut v = json!({"msg": format!("got \"{}…\" (300 bytes)", "s".repeat(200))});
        scrub(&mut v, &["s".repeat(300)]);
        assert_eq!(v["msg"], "got \"********…\" (300 bytes)");
    }

    #[test]
    fn fuzzed_intake_of_a_small_module() {
        let report = crate::testkit::fuzz_intake::<Probe>(17, 500, &json!({"name": "n"})).unwrap();
        assert_eq!(report.cases, 500);
        assert!(report.accepted > 10 && report.refused > 100, "{report:?}");
    }
}
