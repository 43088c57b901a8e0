//! The embedded kubeadm configuration: parsed with a YAML crate, edited on its one `nodeName` line.

use serde_norway::{Mapping, Value};

pub fn parse(text: &str) -> Result<Mapping, String> {
    match serde_norway::from_str::<Value>(text).map_err(|e| e.to_string())? {
        Value::Mapping(m) => Ok(m),
        Value::Null => Ok(Mapping::new()),
        other => Err(format!("expected a mapping at the top, got {}", kind(&other))),
    }
}

fn kind(v: &Value) -> &'static str {
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

/// v1alpha2 (1.11) and later put the node name in `nodeRegistration`; v1alpha1 stored no apiVersion.
pub fn is_v1alpha2_or_later(doc: &Mapping) -> bool {
    if doc.contains_key("nodeRegistration") {
        return true;
    }
    match doc.get("apiVersion").and_then(Value::as_str) {
        Some(v) => v != "kubeadm.k8s.io/v1alpha1",
        None => false,
    }
}

pub fn node_name(doc: &Mapping) -> Option<String> {
    match doc.get("nodeName")? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => serde_norway::to_string(other).ok().map(|s| s.trim().to_string()),
    }
}

/// `name` as a YAML scalar, quoted when it would otherwise read as something else (`true`, `1.10`).
fn scalar(name: &str) -> Result<String, String> {
    serde_norway::to_string(name)
        .map(|s| s.trim_end().to_string())
        .map_err(|e| e.to_string())
}

/// Sets the top-level `nodeName`, changing only its line (or adding one), and proves by parsing
/// that nothing else changed. Falls back to re-serialising the mapping (which loses comments)
/// when the document is laid out so that no single line holds the key.
pub fn set_node_name(text: &str, doc: &Mapping, name: &str) -> Result<String, String> {
    let mut expected = doc.clone();
    expected.insert(Value::String("nodeName".into()), Value::String(name.into()));
    let line = format!("nodeName: {}", scalar(name)?);

    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let hits: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("nodeName:"))
        .map(|(i, _)| i)
        .collect();
    let edited = match hits.as_slice() {
        [i] => {
            let ending = if lines[*i].ends_with("\r\n") {
                "\r\n"
            } else if lines[*i].ends_with('\n') {
                "\n"
            } else {
                ""
            };
            let mut out = String::with_capacity(text.len() + name.len());
            for (j, l) in lines.iter().enumerate() {
                if j == *i {
                    out.push_str(&line);
                    out.push_str(ending);
                } else {
                    out.push_str(l);
                }
            }
            Some(out)
        }
        [] if !doc.contains_key("nodeName") => {
            let mut out = text.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&line);
            out.push('\n');
            Some(out)
        }
        _ => None,
    };
    if let Some(out) = edited {
        if parse(&out).ok().as_ref() == Some(&expected) {
            return Ok(out);
        }
    }
    let out = serde_norway::to_string(&Value::Mapping(expected.clone())).map_err(|e| e.to_string())?;
    if parse(&out).ok().as_ref() == Some(&expected) {
        Ok(out)
    } else {
        Err("cannot set nodeName without changing something else; edit it by hand".into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DOC: &str = "api:\n  advertiseAddress: 10.0.0.1\n# the first master\nnodeName: master-1 \nkubernetesVersion: v1.9.2\n";

    #[test]
    fn only_the_node_name_line_changes() {
        let doc = parse(DOC).unwrap();
        assert_eq!(node_name(&doc).as_deref(), Some("master-1"));
        let out = set_node_name(DOC, &doc, "master-2.example.com").unwrap();
        assert_eq!(
            out,
            "api:\n  advertiseAddress: 10.0.0.1\n# the first master\nnodeName: master-2.example.com\nkubernetesVersion: v1.9.2\n"
        );
    }

    #[test]
    fn names_that_read_as_other_types_are_quoted() {
        let doc = parse(DOC).unwrap();
        let out = set_node_name(DOC, &doc, "1.10").unwrap();
        assert_eq!(node_name(&parse(&out).unwrap()).as_deref(), Some("1.10"));
        assert!(
            out.contains("nodeName: '1.10'") || out.contains("nodeName: \"1.10\""),
            "{out}"
        );
    }

    #[test]
    fn a_missing_key_is_added_and_flow_style_is_reserialised() {
        let text = "api:\n  bindPort: 6443\n";
        let out = set_node_name(text, &parse(text).unwrap(), "m2").unwrap();
        assert_eq!(out, "api:\n  bindPort: 6443\nnodeName: m2\n");
        let text = "{api: {bindPort: 6443}, nodeName: m1}";
        let out = set_node_name(text, &parse(text).unwrap(), "m2").unwrap();
        assert_eq!(node_name(&parse(&out).unwrap()).as_deref(), Some("m2"));
        assert!(out.contains("bindPort: 6443"), "{out}");
    }

    #[test]
    fn formats() {
        assert!(!is_v1alpha2_or_later(&parse(DOC).unwrap()));
        assert!(is_v1alpha2_or_later(
            &parse("apiVersion: kubeadm.k8s.io/v1alpha2\nkind: MasterConfiguration\n").unwrap()
        ));
        assert!(is_v1alpha2_or_later(
            &parse("nodeRegistration:\n  name: m1\n").unwrap()
        ));
    }
}
