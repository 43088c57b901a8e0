//! The embedded kubeadm configuration: parsed with a YAML crate, edited on its one `nodeName` line
//! ([`kubeadm_yaml::edit`]: every other line stays as kubeadm wrote it).

use kubeadm_yaml::Op;
use serde_norway::Value;

/// The document, a mapping at the top (an empty document is an empty one).
pub fn parse(text: &str) -> Result<Value, String> {
    kubeadm_yaml::parse(text)
}

/// v1alpha2 (1.11) and later put the node name in `nodeRegistration`; v1alpha1 stored no apiVersion.
pub fn is_v1alpha2_or_later(doc: &Value) -> bool {
    if doc.get("nodeRegistration").is_some() {
        return true;
    }
    match doc.get("apiVersion").and_then(Value::as_str) {
        Some(v) => v != "kubeadm.k8s.io/v1alpha1",
        None => false,
    }
}

pub fn node_name(doc: &Value) -> Option<String> {
    match doc.get("nodeName")? {
        Value::Null => None,
        other => Some(kubeadm_yaml::shown(other)),
    }
}

/// Sets the top-level `nodeName` (quoted when it would read as something else: `true`, `1.10`),
/// changing only its line or adding one; a layout where no single line holds the key (flow style)
/// is written out whole.
pub fn set_node_name(text: &str, name: &str) -> Result<String, String> {
    kubeadm_yaml::edit(text, &[Op::set(&["nodeName"], name)]).map(|(text, _)| text)
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
        let out = set_node_name(DOC, "master-2.example.com").unwrap();
        assert_eq!(
            out,
            "api:\n  advertiseAddress: 10.0.0.1\n# the first master\nnodeName: master-2.example.com\nkubernetesVersion: v1.9.2\n"
        );
    }

    #[test]
    fn names_that_read_as_other_types_are_quoted() {
        let out = set_node_name(DOC, "1.10").unwrap();
        assert_eq!(node_name(&parse(&out).unwrap()).as_deref(), Some("1.10"));
        assert!(
            out.contains("nodeName: '1.10'") || out.contains("nodeName: \"1.10\""),
            "{out}"
        );
    }

    #[test]
    fn a_missing_key_is_added_and_flow_style_is_reserialised() {
        let text = "api:\n  bindPort: 6443\n";
        let out = set_node_name(text, "m2").unwrap();
        assert_eq!(out, "api:\n  bindPort: 6443\nnodeName: m2\n");
        let text = "{api: {bindPort: 6443}, nodeName: m1}";
        let out = set_node_name(text, "m2").unwrap();
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
