//! The few fields of nodes, pods and PodDisruptionBudgets the survey reads. serde skips the rest
//! of each object while parsing, so a page of pods costs its text and these small structs, not
//! full k8s-openapi objects.

use std::collections::BTreeMap;
use std::fmt;

use kube_kit::pods::{self, DrainFacts, Owner, MIRROR_ANNOTATION};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// `null` reads as the type's default (the API writes `null` for some empty lists).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One page of a list.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct List<T> {
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: ListMeta,
    #[serde(default = "Vec::new", deserialize_with = "nullable")]
    pub items: Vec<T>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListMeta {
    /// The token for the next page; absent or empty on the last one.
    #[serde(rename = "continue", default)]
    pub next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Meta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

// ----- nodes ---------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct Node {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default, deserialize_with = "nullable")]
    pub spec: NodeSpec,
    #[serde(default, deserialize_with = "nullable")]
    pub status: NodeStatus,
}

#[derive(Debug, Default, Deserialize)]
pub struct NodeSpec {
    #[serde(default, deserialize_with = "nullable")]
    pub unschedulable: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    #[serde(default, deserialize_with = "nullable")]
    pub node_info: NodeInfo,
    #[serde(default, deserialize_with = "nullable")]
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    #[serde(default)]
    pub kubelet_version: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Condition {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub status: String,
}

impl Node {
    pub fn ready(&self) -> bool {
        self.status
            .conditions
            .iter()
            .any(|c| c.kind == "Ready" && c.status == "True")
    }
}

// ----- pods ----------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct Pod {
    #[serde(default)]
    pub metadata: PodMeta,
    #[serde(default, deserialize_with = "nullable")]
    pub spec: PodSpec,
    #[serde(default, deserialize_with = "nullable")]
    pub status: PodStatus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// Only whether the mirror annotation is there; the annotations themselves are skipped.
    #[serde(default, rename = "annotations", deserialize_with = "mirror_mark")]
    pub mirror: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub owner_references: Vec<OwnerRef>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerRef {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub controller: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    pub node_name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub volumes: Vec<Volume>,
    #[serde(default, deserialize_with = "nullable")]
    pub containers: Vec<Container>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    #[serde(default)]
    pub name: String,
    /// Present (even `{}`) for an emptyDir volume; its settings do not matter here.
    #[serde(default)]
    pub empty_dir: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
pub struct Container {
    #[serde(default)]
    pub image: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PodStatus {
    #[serde(default)]
    pub phase: Option<String>,
}

/// Reads an annotations map keeping one bit: whether it has the mirror-pod annotation.
fn mirror_mark<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct Mark;
    impl<'de> Visitor<'de> for Mark {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of annotations or null")
        }
        fn visit_unit<E>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_none<E>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut found = false;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                found |= key == MIRROR_ANNOTATION;
                map.next_value::<IgnoredAny>()?;
            }
            Ok(found)
        }
    }
    d.deserialize_option(Mark)
}

impl Pod {
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }
}

impl DrainFacts for Pod {
    fn key(&self) -> String {
        format!("{}/{}", self.namespace(), self.metadata.name)
    }

    fn is_mirror(&self) -> bool {
        self.metadata.mirror
    }

    fn controller(&self) -> Option<Owner<'_>> {
        self.metadata
            .owner_references
            .iter()
            .find(|r| r.controller)
            .map(|r| Owner {
                kind: &r.kind,
                api_version: &r.api_version,
                name: &r.name,
            })
    }

    fn is_finished(&self) -> bool {
        pods::is_finished_phase(self.status.phase.as_deref())
    }

    fn empty_dirs(&self) -> Vec<String> {
        self.spec
            .volumes
            .iter()
            .filter(|v| v.empty_dir.is_some())
            .map(|v| v.name.clone())
            .collect()
    }
}

// ----- PodDisruptionBudgets ------------------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct Pdb {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default, deserialize_with = "nullable")]
    pub spec: PdbSpec,
    #[serde(default)]
    pub status: Option<PdbStatus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PdbSpec {
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    #[serde(default)]
    pub max_unavailable: Option<IntOrPercent>,
    #[serde(default)]
    pub min_available: Option<IntOrPercent>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PdbStatus {
    #[serde(default)]
    pub disruptions_allowed: Option<i64>,
    #[serde(default)]
    pub expected_pods: Option<i64>,
}

/// An IntOrString as PodDisruptionBudgets use it: a count or a percentage ("50%").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum IntOrPercent {
    Int(i64),
    Text(String),
}

impl std::fmt::Display for IntOrPercent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntOrPercent::Int(n) => write!(f, "{n}"),
            IntOrPercent::Text(t) => write!(f, "{t}"),
        }
    }
}

impl Pdb {
    /// Why this budget can never allow an eviction, whatever the drain waits for: `maxUnavailable`
    /// 0 (or 0%), or `minAvailable` 100% or at least the pods it expects (a replacement is only
    /// started after an eviction, so the count never rises first). kubectl drain retries such a
    /// budget until its timeout (kubernetes.io "Safely Drain a Node", "Configure a PDB").
    pub fn never_allows(&self) -> Option<String> {
        let zero = |v: &IntOrPercent| {
            matches!(v, IntOrPercent::Int(0)) || matches!(v, IntOrPercent::Text(t) if t.trim() == "0%")
        };
        if let Some(max) = self.spec.max_unavailable.as_ref().filter(|v| zero(v)) {
            return Some(format!("maxUnavailable: {max}"));
        }
        let expected = self.status.as_ref().and_then(|s| s.expected_pods).unwrap_or(0);
        match &self.spec.min_available {
            Some(IntOrPercent::Text(t)) if t.trim() == "100%" => Some("minAvailable: 100%".into()),
            Some(IntOrPercent::Int(n)) if expected > 0 && *n >= expected => {
                Some(format!("minAvailable: {n} with {expected} pod(s) expected"))
            }
            _ => None,
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, deserialize_with = "nullable")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable")]
    pub match_expressions: Vec<Requirement>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Requirement {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub operator: String,
    #[serde(default, deserialize_with = "nullable")]
    pub values: Vec<String>,
}

impl LabelSelector {
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether `labels` satisfy every term (an unknown operator matches nothing, as the API
    /// server would have refused it).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator.as_str() {
                    "In" => value.is_some_and(|v| r.values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    fn pdb(spec: serde_json::Value, expected: i64) -> Pdb {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": spec,
                                                  "status": {"disruptionsAllowed": 0, "expectedPods": expected}}))
        .unwrap()
    }

    #[test]
    fn budgets_that_can_never_allow_an_eviction() {
        let never = |spec, expected| pdb(spec, expected).never_allows();
        assert_eq!(
            never(serde_json::json!({"maxUnavailable": 0}), 3).as_deref(),
            Some("maxUnavailable: 0")
        );
        assert_eq!(
            never(serde_json::json!({"maxUnavailable": "0%"}), 3).as_deref(),
            Some("maxUnavailable: 0%")
        );
        assert_eq!(
            never(serde_json::json!({"minAvailable": "100%"}), 3).as_deref(),
            Some("minAvailable: 100%")
        );
        assert_eq!(
            never(serde_json::json!({"minAvailable": 3}), 3).as_deref(),
            Some("minAvailable: 3 with 3 pod(s) expected")
        );
        // Only "not now": a pod that comes back Ready lets the drain go on.
        assert_eq!(never(serde_json::json!({"minAvailable": 2}), 3), None);
        assert_eq!(never(serde_json::json!({"maxUnavailable": 1}), 3), None);
        assert_eq!(never(serde_json::json!({"maxUnavailable": "10%"}), 3), None);
        // No status yet: nothing is known about the pods.
        assert_eq!(never(serde_json::json!({"minAvailable": 3}), 0), None);
    }
    use super::*;

    #[test]
    fn reads_only_what_it_needs() {
        let page: List<Pod> = serde_json::from_str(
            r#"{"kind":"PodList","metadata":{"continue":"abc","resourceVersion":"7"},"items":[
                {"metadata":{"name":"etcd-m1","namespace":"kube-system","annotations":{"kubernetes.io/config.mirror":"x","a":{"nested":[1]}},
                  "labels":{"component":"etcd"},"ownerReferences":null},
                 "spec":{"nodeName":"m1","containers":[{"name":"etcd","image":"etcd:3.1.11","args":["--x"]}],"volumes":null},
                 "status":{"phase":"Running","conditions":[{"type":"Ready"}]}},
                {"metadata":{"name":"cache","annotations":null,"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"u","controller":true}]},
                 "spec":{"volumes":[{"name":"scratch","emptyDir":{}},{"name":"cfg","configMap":{"name":"c"}}]},"status":null}
            ]}"#,
        )
        .unwrap();
        assert_eq!(page.metadata.next.as_deref(), Some("abc"));
        let (a, b) = (&page.items[0], &page.items[1]);
        assert!(a.is_mirror() && !b.is_mirror());
        assert_eq!(a.key(), "kube-system/etcd-m1");
        assert_eq!(b.key(), "default/cache");
        assert_eq!(b.empty_dirs(), vec!["scratch".to_string()]);
        assert_eq!(b.controller().map(|o| o.kind), Some("ReplicaSet"));
        assert!(a.controller().is_none());
        assert_eq!(a.spec.containers[0].image.as_deref(), Some("etcd:3.1.11"));
        let empty: List<Pod> = serde_json::from_str(r#"{"metadata":{},"items":null}"#).unwrap();
        assert!(empty.items.is_empty() && empty.metadata.next.is_none());
    }

    #[test]
    fn selectors() {
        let sel: LabelSelector = serde_json::from_str(
            r#"{"matchLabels":{"app":"web"},"matchExpressions":[{"key":"tier","operator":"In","values":["a","b"]},
                {"key":"canary","operator":"DoesNotExist"}]}"#,
        )
        .unwrap();
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "a")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "c")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "a"), ("canary", "1")])));
        assert!(!sel.matches(&labels(&[("tier", "a")])));
        let not_in: LabelSelector =
            serde_json::from_str(r#"{"matchExpressions":[{"key":"x","operator":"NotIn","values":["1"]}]}"#)
                .unwrap();
        assert!(not_in.matches(&labels(&[])) && !not_in.matches(&labels(&[("x", "1")])));
    }
}
