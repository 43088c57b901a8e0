//! Edits of one embedded kubeadm YAML document (a value of `kube-system/kubeadm-config`'s data, as
//! kubeadm_config_nodename and kubeadm_config_edit make them): set a key at a path, or remove one.
//! Each edit is made twice: on the parsed document (what the result must be, and the refusal of a
//! shape we do not know, naming the key), and on the lines of the text, so that every other line,
//! key order, comment and quoting stays as kubeadm (or a person) wrote it. The edited text must
//! parse to exactly the edited document; when the layout defeats the line edit (flow style), the
//! document is written out whole instead (same keys, same order, other formatting).

use serde_norway::{Mapping, Value};

/// One edit of a document.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Set the key at the path (creating the mappings on the way) to the value.
    Set(Vec<String>, Value),
    /// Remove the key at the path, with everything under it.
    Remove(Vec<String>),
}

impl Op {
    pub fn set(path: &[&str], value: impl Into<Value>) -> Op {
        Op::Set(path.iter().map(|s| s.to_string()).collect(), value.into())
    }
    pub fn remove(path: &[&str]) -> Op {
        Op::Remove(path.iter().map(|s| s.to_string()).collect())
    }
}

pub fn parse(text: &str) -> Result<Value, String> {
    match serde_norway::from_str::<Value>(text).map_err(|e| e.to_string())? {
        Value::Mapping(m) => Ok(Value::Mapping(m)),
        Value::Null => Ok(Value::Mapping(Mapping::new())),
        other => Err(format!("expected a mapping at the top, got {}", kind(&other))),
    }
}

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// The value at `path`, if every step is a mapping that has the key.
pub fn get<'a>(doc: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |at, key| at.as_mapping()?.get(*key))
}

/// A value as one line of YAML (`true` and `1.10` quoted when they are strings).
pub fn scalar(v: &Value) -> Result<String, String> {
    serde_norway::to_string(v)
        .map(|s| s.trim_end().to_string())
        .map_err(|e| e.to_string())
}

/// A value for a message: a string as it is, anything else as its YAML.
pub fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => scalar(other).unwrap_or_else(|_| "?".into()),
    }
}

/// `ops` applied to `text`: the new text and, per op that changed something, what it changed
/// (`etcd.local.extraArgs.listen-peer-urls: https://127.0.0.1:2380 -> https://10.0.0.2:2380`). The
/// text is returned unchanged (byte for byte) when no op changes anything.
pub fn edit(text: &str, ops: &[Op]) -> Result<(String, Vec<String>), String> {
    let doc = parse(text)?;
    let mut expected = doc.clone();
    let mut said = Vec::new();
    let mut effective = Vec::new();
    for op in ops {
        if let Some(what) = apply_value(&mut expected, op)? {
            said.push(what);
            effective.push(op.clone());
        }
    }
    if expected == doc {
        return Ok((text.to_string(), Vec::new()));
    }
    if let Some(out) = apply_lines(text, &effective) {
        if parse(&out).ok().as_ref() == Some(&expected) {
            return Ok((out, said));
        }
    }
    let out = serde_norway::to_string(&expected).map_err(|e| e.to_string())?;
    if parse(&out).ok().as_ref() == Some(&expected) {
        Ok((out, said))
    } else {
        Err("cannot make the edit without changing something else; edit it by hand".into())
    }
}

/// `op` on the parsed document; what it changed, `None` when it was so already. A step of the path
/// that holds anything but a mapping (or null) is refused, naming it.
fn apply_value(doc: &mut Value, op: &Op) -> Result<Option<String>, String> {
    let (path, value) = match op {
        Op::Set(path, value) => (path, Some(value)),
        Op::Remove(path) => (path, None),
    };
    let Some((last, parents)) = path.split_last() else {
        return Err("an empty path".into());
    };
    let mut at = doc;
    for (i, key) in parents.iter().enumerate() {
        let here = path[..=i].join(".");
        let map = match at {
            Value::Mapping(m) => m,
            other => {
                return Err(format!(
                    "{} is {}, expected a mapping",
                    parent_name(path, i),
                    kind(other)
                ))
            }
        };
        if !map.contains_key(key.as_str()) {
            if value.is_none() {
                return Ok(None);
            }
            map.insert(Value::String(key.clone()), Value::Mapping(Mapping::new()));
        }
        let Some(next) = map.get_mut(key.as_str()) else {
            return Err(format!("{here} vanished"));
        };
        if next.is_null() && value.is_some() {
            *next = Value::Mapping(Mapping::new());
        }
        at = next;
    }
    let dotted = path.join(".");
    let map = match at {
        Value::Mapping(m) => m,
        Value::Null if value.is_none() => return Ok(None),
        other => {
            return Err(format!(
                "{} is {}, expected a mapping",
                parent_name(path, parents.len()),
                kind(other)
            ))
        }
    };
    match value {
        Some(v) => {
            let old = map.insert(Value::String(last.clone()), v.clone());
            Ok(match old {
                Some(old) if &old == v => None,
                Some(old) => Some(format!("{dotted}: {} -> {}", shown(&old), shown(v))),
                None => Some(format!("{dotted}: added {}", shown(v))),
            })
        }
        None => Ok(map.remove(last.as_str()).map(|_| format!("{dotted}: removed"))),
    }
}

/// The dotted name of the parent of `path[at]` (`the document` for the top).
fn parent_name(path: &[String], at: usize) -> String {
    if at == 0 {
        "the document".into()
    } else {
        path[..at].join(".")
    }
}

/// The ops on the lines of `text`, block style only; `None` when the layout is not one this
/// understands (the caller then checks, or writes the document whole).
fn apply_lines(text: &str, ops: &[Op]) -> Option<String> {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(String::from).collect();
    if let Some(last) = lines.last_mut() {
        if !last.ends_with('\n') {
            last.push('\n');
        }
    }
    for op in ops {
        match op {
            Op::Set(path, value) => set_line(&mut lines, path, &scalar(value).ok()?)?,
            Op::Remove(path) => remove_line(&mut lines, path)?,
        }
    }
    Some(lines.concat())
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// A line that is neither blank nor only a comment.
fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

fn is_item(line: &str) -> bool {
    let t = line.trim();
    t == "-" || t.starts_with("- ")
}

/// The key and what follows its colon, when `line` is `key: ...` at exactly `at` spaces.
fn key_of(line: &str, at: usize) -> Option<(String, &str)> {
    if indent(line) != at {
        return None;
    }
    let t = &line[at..];
    if let Some(q @ ('"' | '\'')) = t.chars().next() {
        let close = t[1..].find(q)? + 1;
        let rest = t[close + 1..].strip_prefix(':')?;
        return Some((t[1..close].to_string(), rest.trim()));
    }
    let mut from = 0;
    while let Some(i) = t[from..].find(':') {
        let colon = from + i;
        let after = &t[colon + 1..];
        if after.is_empty() || after.starts_with([' ', '\n', '\r']) {
            return Some((t[..colon].to_string(), after.trim()));
        }
        from = colon + 1;
    }
    None
}

/// The end (exclusive) of the block of the key on line `i` at indent `at`: its last content line + 1.
fn block_end(lines: &[String], i: usize, at: usize) -> usize {
    let mut end = i + 1;
    for (j, l) in lines.iter().enumerate().skip(i + 1) {
        if !is_content(l) {
            continue;
        }
        let n = indent(l);
        if n > at || (n == at && is_item(l)) {
            end = j + 1;
        } else {
            break;
        }
    }
    end
}

/// The line of `key` at indent `at` among `start..end`.
fn find(lines: &[String], start: usize, end: usize, at: usize, key: &str) -> Option<usize> {
    (start..end).find(|&j| is_content(&lines[j]) && key_of(&lines[j], at).is_some_and(|(k, _)| k == key))
}

/// Where the top level of the document is: its lines and their indent.
fn top(lines: &[String]) -> (usize, usize, usize) {
    let at = lines
        .iter()
        .find(|l| is_content(l))
        .map(|l| indent(l))
        .unwrap_or(0);
    (0, lines.len(), at)
}

/// Walks the mappings of `parents`; the block of the last one (start, end, indent of its keys).
/// Missing keys are created when `create`; `None` when a step is missing (and not created) or
/// holds something other than a block mapping.
fn descend(lines: &mut Vec<String>, parents: &[String], create: bool) -> Option<(usize, usize, usize)> {
    let (mut start, mut end, mut at) = top(lines);
    for key in parents {
        match find(lines, start, end, at, key) {
            Some(i) => {
                let (_, rest) = key_of(&lines[i], at)?;
                if !rest.is_empty() && !rest.starts_with('#') {
                    if !create || !matches!(rest, "{}" | "null" | "~") {
                        return None;
                    }
                    let head = &lines[i][..lines[i].find(':')? + 1];
                    lines[i] = format!("{head}\n");
                }
                let b = block_end(lines, i, at);
                match (i + 1..b).find(|&j| is_content(&lines[j])) {
                    Some(j) if indent(&lines[j]) > at && !is_item(&lines[j]) => {
                        (start, end, at) = (i + 1, b, indent(&lines[j]));
                    }
                    // A list, or something this does not follow.
                    Some(_) => return None,
                    None => (start, end, at) = (i + 1, i + 1, at + 2),
                }
            }
            None if create => {
                let line = format!("{}{}:\n", " ".repeat(at), key_text(key).ok()?);
                lines.insert(end, line);
                (start, end, at) = (end + 1, end + 1, at + 2);
            }
            None => return None,
        }
    }
    Some((start, end, at))
}

/// A key as YAML writes it (quoted only when it must be).
fn key_text(key: &str) -> Result<String, String> {
    scalar(&Value::String(key.to_string()))
}

fn set_line(lines: &mut Vec<String>, path: &[String], value: &str) -> Option<()> {
    let (last, parents) = path.split_last()?;
    let (start, end, at) = descend(lines, parents, true)?;
    match find(lines, start, end, at, last) {
        Some(i) => {
            let b = block_end(lines, i, at);
            let head = lines[i][..lines[i].find(':')? + 1].to_string();
            lines.splice(i..b, [format!("{head} {value}\n")]);
        }
        None => {
            lines.insert(
                end,
                format!("{}{}: {value}\n", " ".repeat(at), key_text(last).ok()?),
            );
        }
    }
    Some(())
}

fn remove_line(lines: &mut Vec<String>, path: &[String]) -> Option<()> {
    let (last, parents) = path.split_last()?;
    let (start, end, at) = descend(lines, parents, false)?;
    let i = find(lines, start, end, at, last)?;
    let b = block_end(lines, i, at);
    lines.drain(i..b);
    Some(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DOC: &str = "api:\n  advertiseAddress: 10.0.0.1\n  bindPort: 6443\n# kept\netcd:\n  local:\n    dataDir: /var/lib/etcd\n    image: \"\"\nkind: MasterConfiguration\nnodeRegistration:\n  taints:\n  - effect: NoSchedule\n";

    #[test]
    fn sets_in_place_and_adds_where_missing() {
        let (out, said) = edit(
            DOC,
            &[
                Op::set(&["api", "advertiseAddress"], "10.0.0.2"),
                Op::set(
                    &["etcd", "local", "extraArgs", "listen-peer-urls"],
                    "https://10.0.0.2:2380",
                ),
                Op::set(
                    &["etcd", "local", "extraArgs", "initial-cluster-state"],
                    "existing",
                ),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "api:\n  advertiseAddress: 10.0.0.2\n  bindPort: 6443\n# kept\netcd:\n  local:\n    dataDir: /var/lib/etcd\n    image: \"\"\n    extraArgs:\n      listen-peer-urls: https://10.0.0.2:2380\n      initial-cluster-state: existing\nkind: MasterConfiguration\nnodeRegistration:\n  taints:\n  - effect: NoSchedule\n"
        );
        assert_eq!(
            said,
            [
                "api.advertiseAddress: 10.0.0.1 -> 10.0.0.2",
                "etcd.local.extraArgs.listen-peer-urls: added https://10.0.0.2:2380",
                "etcd.local.extraArgs.initial-cluster-state: added existing"
            ]
        );
    }

    #[test]
    fn nothing_to_do_keeps_the_text_byte_for_byte() {
        let (out, said) = edit(DOC, &[Op::set(&["api", "bindPort"], 6443)]).unwrap();
        assert_eq!((out.as_str(), said.len()), (DOC, 0));
        let (out, _) = edit(DOC, &[Op::remove(&["dns"])]).unwrap();
        assert_eq!(out, DOC);
    }

    #[test]
    fn removes_a_whole_section() {
        let (out, said) = edit(DOC, &[Op::remove(&["etcd"])]).unwrap();
        assert_eq!(
            out,
            "api:\n  advertiseAddress: 10.0.0.1\n  bindPort: 6443\n# kept\nkind: MasterConfiguration\nnodeRegistration:\n  taints:\n  - effect: NoSchedule\n"
        );
        assert_eq!(said, ["etcd: removed"]);
    }

    #[test]
    fn empty_and_null_mappings_are_filled() {
        let text = "apiEndpoints: {}\nkind: ClusterStatus\n";
        let (out, _) = edit(
            text,
            &[Op::set(&["apiEndpoints", "m2", "advertiseAddress"], "10.0.0.2")],
        )
        .unwrap();
        assert_eq!(
            out,
            "apiEndpoints:\n  m2:\n    advertiseAddress: 10.0.0.2\nkind: ClusterStatus\n"
        );
        let text = "etcd:\n  local:\n    extraArgs: null\n";
        let (out, _) = edit(text, &[Op::set(&["etcd", "local", "extraArgs", "a"], "b")]).unwrap();
        assert_eq!(out, "etcd:\n  local:\n    extraArgs:\n      a: b\n");
    }

    #[test]
    fn a_list_where_a_mapping_belongs_is_refused_naming_it() {
        let text = "etcd:\n  local:\n    extraArgs:\n    - name: listen-peer-urls\n      value: x\n";
        let err = edit(
            text,
            &[Op::set(&["etcd", "local", "extraArgs", "listen-peer-urls"], "y")],
        )
        .unwrap_err();
        assert_eq!(err, "etcd.local.extraArgs is a list, expected a mapping");
        let err = edit("etcd: 3\n", &[Op::remove(&["etcd", "local"])]).unwrap_err();
        assert_eq!(err, "etcd is a number, expected a mapping");
    }

    #[test]
    fn flow_style_is_written_whole_and_values_that_read_otherwise_are_quoted() {
        let text = "{api: {advertiseAddress: 10.0.0.1}, kind: MasterConfiguration}";
        let (out, _) = edit(text, &[Op::set(&["api", "advertiseAddress"], "10.0.0.2")]).unwrap();
        assert_eq!(
            get(&parse(&out).unwrap(), &["api", "advertiseAddress"]).unwrap(),
            "10.0.0.2"
        );
        assert!(out.contains("kind: MasterConfiguration"), "{out}");
        let (out, _) = edit(DOC, &[Op::set(&["etcd", "local", "extraArgs", "x"], "true")]).unwrap();
        assert_eq!(
            get(&parse(&out).unwrap(), &["etcd", "local", "extraArgs", "x"]).unwrap(),
            "true"
        );
    }

    #[test]
    fn multi_line_values_are_replaced_whole() {
        let text = "a:\n  b: >-\n    folded\n    text\n  c: 1\n";
        let (out, _) = edit(text, &[Op::set(&["a", "b"], "x")]).unwrap();
        assert_eq!(out, "a:\n  b: x\n  c: 1\n");
    }
}
