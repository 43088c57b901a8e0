//! Reading and writing the JSON of stored objects: metadata, owners, conditions.

use serde_json::{json, Map, Value};

use super::Key;
use crate::util::now_str;

pub(crate) fn meta(o: &Value) -> Option<&Map<String, Value>> {
    o.get("metadata").and_then(Value::as_object)
}

pub(crate) fn meta_str<'a>(o: &'a Value, k: &str) -> &'a str {
    meta(o)
        .and_then(|m| m.get(k))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

pub(crate) fn labels_of(o: &Value) -> Option<&Map<String, Value>> {
    meta(o).and_then(|m| m.get("labels")).and_then(Value::as_object)
}

pub(crate) fn set_path(o: &mut Value, path: &[&str], v: Value) {
    let mut cur = o;
    for (i, seg) in path.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(m) = cur else { return };
        if i + 1 == path.len() {
            m.insert((*seg).to_string(), v);
            return;
        }
        cur = m.entry((*seg).to_string()).or_insert(Value::Object(Map::new()));
    }
}

pub(crate) fn controller_of(pod: &Value) -> Option<(&str, &str, &str)> {
    let refs = meta(pod)?.get("ownerReferences")?.as_array()?;
    refs.iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| {
            (
                r.get("kind").and_then(Value::as_str).unwrap_or_default(),
                r.get("name").and_then(Value::as_str).unwrap_or_default(),
                r.get("uid").and_then(Value::as_str).unwrap_or_default(),
            )
        })
}

pub(crate) fn is_mirror(pod: &Value) -> bool {
    meta(pod)
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get("kubernetes.io/config.mirror"))
        .is_some()
}

pub(crate) fn condition_true(o: &Value, ty: &str) -> bool {
    condition_status(o, ty) == Some("True")
}

pub(crate) fn condition_status<'a>(o: &'a Value, ty: &str) -> Option<&'a str> {
    o.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
}

pub(crate) fn set_condition(
    o: &mut Value,
    ty: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) {
    let now = now_str();
    if o.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_none()
    {
        set_path(o, &["status", "conditions"], json!([]));
    }
    let Some(conds) = o.pointer_mut("/status/conditions").and_then(Value::as_array_mut) else {
        return;
    };
    let pos = conds
        .iter()
        .position(|c| c.get("type").and_then(Value::as_str) == Some(ty));
    let mut c = match pos {
        Some(i) => conds.get(i).cloned().unwrap_or_else(|| json!({})),
        None => json!({"type": ty}),
    };
    let changed = c.get("status").and_then(Value::as_str) != Some(status);
    if let Some(m) = c.as_object_mut() {
        m.insert("status".into(), json!(status));
        if changed || !m.contains_key("lastTransitionTime") {
            m.insert("lastTransitionTime".into(), json!(now));
        }
        match reason {
            Some(r) => {
                m.insert("reason".into(), json!(r));
            }
            None => {
                m.remove("reason");
            }
        }
        match message {
            Some(r) => {
                m.insert("message".into(), json!(r));
            }
            None => {
                m.remove("message");
            }
        }
        if m.contains_key("lastHeartbeatTime") {
            m.insert("lastHeartbeatTime".into(), json!(now));
        }
    }
    match pos {
        Some(i) => {
            if let Some(slot) = conds.get_mut(i) {
                *slot = c;
            }
        }
        None => conds.push(c),
    }
}

/// `(namespace, name)` of an object.
pub(crate) fn key_of(o: &Value) -> Key {
    (
        meta_str(o, "namespace").to_string(),
        meta_str(o, "name").to_string(),
    )
}

/// The node a pod is bound to (empty when pending unscheduled).
pub(crate) fn node_of(pod: &Value) -> &str {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Whether deletion has started (`metadata.deletionTimestamp`).
pub(crate) fn is_terminating(o: &Value) -> bool {
    meta(o).is_some_and(|m| m.contains_key("deletionTimestamp"))
}

/// A node's `InternalIP` address.
pub(crate) fn internal_ip(node: &Value) -> Option<&str> {
    node.pointer("/status/addresses")?
        .as_array()?
        .iter()
        .find(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))?
        .get("address")?
        .as_str()
}
