//! JSON merge patch (RFC 7386), strategic merge patch (the subset Kubernetes clients send), and
//! JSON patch (RFC 6902).

use serde_json::{Map, Value};

/// The patch flavours a client may send (by Content-Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/json-patch+json`
    Json,
}

impl PatchKind {
    /// From a Content-Type header value.
    pub fn from_content_type(ct: &str) -> Option<PatchKind> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/json-patch+json" => Some(PatchKind::Json),
            _ => None,
        }
    }
}

/// Applies a patch of the given kind.
pub fn apply(kind: PatchKind, target: &mut Value, patch: &Value) -> Result<(), String> {
    match kind {
        PatchKind::Merge => {
            merge(target, patch);
            Ok(())
        }
        PatchKind::Strategic => strategic(target, patch, ""),
        PatchKind::Json => json_patch(target, patch),
    }
}

/// RFC 7386.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// The merge key of lists that Kubernetes merges element-wise (`patchMergeKey`).
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "conditions" | "addresses" => Some("type"),
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "containerStatuses"
        | "initContainerStatuses" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "ports" => Some("containerPort"),
        "ownerReferences" => Some("uid"),
        "tolerations" | "taints" => None,
        _ => None,
    }
}

/// Lists of scalars merged as sets.
fn is_set_list(field: &str) -> bool {
    field == "finalizers"
}

/// Strategic merge patch for the subset clients use: maps merge, `null` deletes, lists with a merge
/// key merge element-wise (`$patch: delete` removes an element), `$patch: replace` replaces,
/// `$setElementOrder/...`, `$retainKeys` and `$deleteFromPrimitiveList/...` are understood.
pub fn strategic(target: &mut Value, patch: &Value, field: &str) -> Result<(), String> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut clean = p.clone();
        clean.remove("$patch");
        *target = Value::Object(clean);
        return Ok(());
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        return Ok(());
    };
    if let Some(keep) = p.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        t.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in p {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(list_field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Some(del)) = (t.get_mut(list_field), v.as_array()) {
                cur.retain(|x| !del.contains(x));
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match v {
            Value::Object(_) => {
                strategic(t.entry(k.clone()).or_insert(Value::Null), v, k)?;
            }
            Value::Array(items) => {
                if let Some(key) = merge_key(k) {
                    let cur = t.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                    if !cur.is_array() {
                        *cur = Value::Array(Vec::new());
                    }
                    if let Value::Array(cur) = cur {
                        merge_list(cur, items, key)?;
                    }
                } else if is_set_list(k) {
                    let cur = t.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                    if let Value::Array(cur) = cur {
                        for it in items {
                            if !cur.contains(it) {
                                cur.push(it.clone());
                            }
                        }
                    }
                } else {
                    t.insert(k.clone(), v.clone());
                }
            }
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
    let _ = field;
    Ok(())
}

fn merge_list(cur: &mut Vec<Value>, items: &[Value], key: &str) -> Result<(), String> {
    for it in items {
        let Some(kv) = it.get(key) else {
            if it.get("$patch").and_then(Value::as_str) == Some("replace") {
                cur.clear();
                continue;
            }
            return Err(format!("map: {it} does not contain declared merge key: {key}"));
        };
        let pos = cur.iter().position(|c| c.get(key) == Some(kv));
        let delete = it.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                cur.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                if let Some(slot) = cur.get_mut(i) {
                    strategic(slot, it, "")?;
                }
            }
            (None, false) => {
                let mut fresh = Value::Null;
                strategic(&mut fresh, it, "")?;
                cur.push(fresh);
            }
        }
    }
    Ok(())
}

fn unescape(tok: &str) -> String {
    tok.replace("~1", "/").replace("~0", "~")
}

fn pointer_parent<'a>(root: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), String> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    let target = if parent.is_empty() {
        root
    } else {
        root.pointer_mut(parent)
            .ok_or_else(|| format!("doc is missing path: {path:?}"))?
    };
    Ok((target, unescape(last)))
}

fn add(root: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *root = value;
        return Ok(());
    }
    let (parent, last) = pointer_parent(root, path)?;
    match parent {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            let i: usize = last.parse().map_err(|_| format!("bad index {last:?}"))?;
            if i > a.len() {
                return Err(format!("index out of bounds: {path}"));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err(format!("doc is missing path: {path:?}")),
    }
}

fn remove(root: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = pointer_parent(root, path)?;
    match parent {
        Value::Object(m) => m
            .remove(&last)
            .ok_or_else(|| format!("unable to remove nonexistent key: {last}")),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| format!("bad index {last:?}"))?;
            if i >= a.len() {
                return Err(format!("index out of bounds: {path}"));
            }
            Ok(a.remove(i))
        }
        _ => Err(format!("doc is missing path: {path:?}")),
    }
}

/// RFC 6902.
pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), String> {
    // Atomic: a failing operation leaves the document untouched.
    let mut work = doc.clone();
    json_patch_in_place(&mut work, patch)?;
    *doc = work;
    Ok(())
}

fn json_patch_in_place(target: &mut Value, patch: &Value) -> Result<(), String> {
    let ops = patch
        .as_array()
        .ok_or_else(|| "json patch must be an array of operations".to_string())?;
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or_default();
        let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        match kind {
            "add" => add(target, path, value)?,
            "remove" => {
                remove(target, path)?;
            }
            "replace" => {
                remove(target, path)?;
                add(target, path, value)?;
            }
            "test" => {
                if target.pointer(path) != Some(&value) {
                    return Err(format!("testing value {path} failed"));
                }
            }
            "move" | "copy" => {
                let from = op.get("from").and_then(Value::as_str).unwrap_or_default();
                let v = if kind == "move" {
                    remove(target, from)?
                } else {
                    target
                        .pointer(from)
                        .cloned()
                        .ok_or_else(|| format!("doc is missing from path: {from:?}"))?
                };
                add(target, path, v)?;
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch() {
        let mut t = json!({"spec": {"unschedulable": true, "podCIDR": "x"}});
        merge(&mut t, &json!({"spec": {"unschedulable": null}}));
        assert_eq!(t, json!({"spec": {"podCIDR": "x"}}));
    }

    #[test]
    fn strategic_conditions_merge_by_type() {
        let mut t = json!({"status": {"conditions": [
            {"type": "MemoryPressure", "status": "False"},
            {"type": "Ready", "status": "True", "reason": "KubeletReady"}]}});
        let p = json!({"status": {"$setElementOrder/conditions": [{"type": "MemoryPressure"}, {"type": "Ready"}],
            "conditions": [{"type": "Ready", "status": "False"}]}});
        strategic(&mut t, &p, "").unwrap();
        assert_eq!(
            t["status"]["conditions"][1],
            json!({"type": "Ready", "status": "False", "reason": "KubeletReady"})
        );
        assert_eq!(t["status"]["conditions"].as_array().unwrap().len(), 2);
        strategic(
            &mut t,
            &json!({"status": {"conditions": [{"type": "Ready", "$patch": "delete"}]}}),
            "",
        )
        .unwrap();
        assert_eq!(t["status"]["conditions"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn json_patch_ops() {
        let mut t = json!({"a": {"b": [1, 2]}});
        json_patch(
            &mut t,
            &json!([{"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "replace", "path": "/a/c", "value": 1}]),
        )
        .unwrap_err();
        json_patch(
            &mut t,
            &json!([{"op": "add", "path": "/a/c", "value": 1},
            {"op": "test", "path": "/a/c", "value": 1}, {"op": "remove", "path": "/a/b/0"}]),
        )
        .unwrap();
        assert_eq!(t, json!({"a": {"b": [2], "c": 1}}));
    }
}
