//! A small JSON Schema (draft 2020-12) validator for docs/kup-events.schema.json, and the rules of
//! a whole `kup --json` stream. It knows the keywords that schema uses (`$ref` to `#/$defs/...`,
//! `type`, `const`, `enum`, `required`, `properties`, `additionalProperties`, `items`, `oneOf`,
//! `minimum`, `format: date-time`) and refuses a schema with any other, so a keyword it would
//! silently ignore cannot creep in. Shared by kup's own tests (no lab) and the lab's end-to-end
//! tests (included with `#[path]`), so both hold kup's output against the one documented schema.

use serde_json::Value;

/// Whether `instance` is valid against `schema` (the root, for `$ref`); the first reason why not.
pub fn validate(schema: &Value, instance: &Value) -> Result<(), String> {
    check(schema, schema, instance, "$")
}

fn type_matches(name: &str, v: &Value) -> bool {
    match name {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

/// RFC 3339 `date-time`: `2026-12-02T06:40:00Z`, with optional fraction and offset.
pub fn is_date_time(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    if !(b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19))
    {
        return false;
    }
    let num = |r: std::ops::Range<usize>| text[r].parse::<u32>().unwrap_or(99);
    if !(1..=12).contains(&num(5..7))
        || !(1..=31).contains(&num(8..10))
        || num(11..13) > 23
        || num(14..16) > 59
        || num(17..19) > 60
    {
        return false;
    }
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

fn check(root: &Value, schema: &Value, v: &Value, path: &str) -> Result<(), String> {
    let obj = match schema {
        Value::Bool(true) => return Ok(()),
        Value::Bool(false) => return Err(format!("{path}: not allowed")),
        Value::Object(obj) => obj,
        other => return Err(format!("schema at {path} is not a schema: {other}")),
    };
    for (key, kw) in obj {
        match key.as_str() {
            "$schema" | "$id" | "title" | "description" | "$defs" | "examples" => {}
            "$ref" => {
                let target = kw
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/"))
                    .map(|p| p.split('/').try_fold(root, |node, part| node.get(part)))
                    .ok_or_else(|| format!("schema: unsupported $ref {kw}"))?
                    .ok_or_else(|| format!("schema: $ref {kw} leads nowhere"))?;
                check(root, target, v, path)?;
            }
            "type" => {
                let names: Vec<&str> = match kw {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => return Err(format!("schema: bad type {kw}")),
                };
                if !names.iter().any(|n| type_matches(n, v)) {
                    return Err(format!("{path}: {v} is not of type {}", names.join(" or ")));
                }
            }
            "const" => {
                if v != kw {
                    return Err(format!("{path}: {v} is not {kw}"));
                }
            }
            "enum" => {
                let allowed = kw.as_array().ok_or("schema: enum is not an array")?;
                if !allowed.contains(v) {
                    return Err(format!("{path}: {v} is not one of {kw}"));
                }
            }
            "required" => {
                if let Some(o) = v.as_object() {
                    for name in kw.as_array().ok_or("schema: required is not an array")? {
                        let name = name.as_str().ok_or("schema: a required name is not a string")?;
                        if !o.contains_key(name) {
                            return Err(format!("{path}: {name} is missing"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(o) = v.as_object() {
                    let props = kw.as_object().ok_or("schema: properties is not an object")?;
                    for (name, sub) in props {
                        if let Some(value) = o.get(name) {
                            check(root, sub, value, &format!("{path}.{name}"))?;
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(o) = v.as_object() {
                    let declared = obj.get("properties").and_then(Value::as_object);
                    for (name, value) in o {
                        if declared.is_some_and(|d| d.contains_key(name)) {
                            continue;
                        }
                        if kw == &Value::Bool(false) {
                            return Err(format!("{path}: {name} is not a documented field"));
                        }
                        check(root, kw, value, &format!("{path}.{name}"))?;
                    }
                }
            }
            "items" => {
                if let Some(items) = v.as_array() {
                    for (i, item) in items.iter().enumerate() {
                        check(root, kw, item, &format!("{path}[{i}]"))?;
                    }
                }
            }
            "oneOf" => {
                let branches = kw.as_array().ok_or("schema: oneOf is not an array")?;
                let results: Vec<Result<(), String>> =
                    branches.iter().map(|b| check(root, b, v, path)).collect();
                let matched = results.iter().filter(|r| r.is_ok()).count();
                if matched != 1 {
                    // The branch meant for this event says best why it failed.
                    let meant = v["event"].as_str().and_then(|kind| {
                        branches
                            .iter()
                            .zip(&results)
                            .find(|(b, _)| b["$ref"].as_str() == Some(&format!("#/$defs/{kind}")))
                            .and_then(|(_, r)| r.clone().err())
                    });
                    return Err(meant.unwrap_or_else(|| {
                        format!(
                            "{path}: {v} matches {matched} of the schema's {} kinds",
                            branches.len()
                        )
                    }));
                }
            }
            "minimum" => {
                if let (Some(x), Some(min)) = (v.as_f64(), kw.as_f64()) {
                    if x < min {
                        return Err(format!("{path}: {x} is below {min}"));
                    }
                }
            }
            "format" => {
                if kw == "date-time" {
                    if let Some(s) = v.as_str() {
                        if !is_date_time(s) {
                            return Err(format!("{path}: {s:?} is not an RFC 3339 date-time"));
                        }
                    }
                } else {
                    return Err(format!("schema: unsupported format {kw}"));
                }
            }
            other => {
                return Err(format!(
                    "schema: keyword {other} is not supported by this validator"
                ))
            }
        }
    }
    Ok(())
}

/// A whole `--json` stream (stdout, one event a line): every line an event valid against the
/// schema, all of one schema version; a plan or upgrade stream starts with `start` and ends with
/// `report` (exit 0) or `error` (any other exit), and `error` is always the last event. Returns the
/// events.
pub fn validate_stream(schema: &Value, stdout: &str, exit_code: Option<i32>) -> Result<Vec<Value>, String> {
    let mut events = Vec::new();
    for (i, line) in stdout.lines().enumerate() {
        let event: Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: not JSON ({e}): {line}", i + 1))?;
        validate(schema, &event).map_err(|e| format!("line {}: {e}\n  {line}", i + 1))?;
        events.push(event);
    }
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    let (Some(first), Some(last)) = (kinds.first(), kinds.last()) else {
        return Err("an empty stream".into());
    };
    if events.iter().any(|e| e["schema"] != events[0]["schema"]) {
        return Err("events of more than one schema version".into());
    }
    if kinds[..kinds.len() - 1].contains(&"error") {
        return Err(format!("an error event before the end: {kinds:?}"));
    }
    if !matches!(*first, "start" | "error" | "status") {
        return Err(format!("the stream starts with {first}, not start: {kinds:?}"));
    }
    if *first == "start" && !matches!(*last, "report" | "error") {
        return Err(format!("a run's stream ends with {last}: {kinds:?}"));
    }
    if *first == "start" && kinds.iter().filter(|k| **k == "report").count() != 1 {
        return Err(format!("a run's stream has one report: {kinds:?}"));
    }
    match (exit_code, *last) {
        (Some(0), "error") => return Err("exit 0 but the stream ends with an error".into()),
        (Some(code), "error") if events.last().is_some_and(|e| e["exit_code"] != code) => {
            return Err(format!(
                "exit {code}, the error event says {}",
                events[events.len() - 1]["exit_code"]
            ));
        }
        (Some(code), "report") if code != 0 => return Err(format!("exit {code} without an error event")),
        _ => {}
    }
    Ok(events)
}
