//! Storage: objects by kind and key, resourceVersions, the pod indexes (by node, by label), and
//! listing with label and field selectors and `limit`/`continue` chunking.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use serde_json::{json, Value};

use super::object::{labels_of, meta_str, node_of};
use super::{Key, Kind, Store};
use crate::error::ApiError;
use crate::selector::{FieldSelector, LabelSelector};
use crate::util::now_str;

impl Store {
    pub(super) fn map(&self, kind: Kind) -> Option<&BTreeMap<Key, Value>> {
        self.objs.get(&kind)
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The version `/version` reports.
    pub fn served_version(&self) -> &str {
        &self.served_version
    }

    /// One object.
    pub fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<&Value> {
        self.map(kind)?.get(&(ns.to_string(), name.to_string()))
    }

    /// One object or a 404.
    pub fn get_or_404(&self, kind: Kind, ns: &str, name: &str) -> Result<&Value, ApiError> {
        self.get(kind, ns, name)
            .ok_or_else(|| ApiError::not_found(kind.resource(), kind.group(), name))
    }

    /// Number of objects of a kind.
    pub fn count(&self, kind: Kind) -> usize {
        self.map(kind).map(BTreeMap::len).unwrap_or(0)
    }

    /// The keys of the pods bound to a node (`""`: the pending, unscheduled ones).
    pub(super) fn pods_on(&self, node: &str) -> Vec<Key> {
        self.by_node
            .get(node)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn index_pod(&mut self, key: &Key, pod: &Value, add: bool) {
        let node = node_of(pod).to_string();
        if add {
            self.by_node.entry(node).or_default().insert(key.clone());
        } else if let Some(set) = self.by_node.get_mut(&node) {
            set.remove(key);
        }
        if let Some(labels) = labels_of(pod) {
            for (k, v) in labels {
                let ik = (
                    key.0.clone(),
                    k.clone(),
                    v.as_str().unwrap_or_default().to_string(),
                );
                if add {
                    self.by_label.entry(ik).or_default().insert(key.clone());
                } else if let Some(set) = self.by_label.get_mut(&ik) {
                    set.remove(key);
                    if set.is_empty() {
                        self.by_label.remove(&ik);
                    }
                }
            }
        }
    }

    /// Stores an object with a new resourceVersion; returns the stored copy.
    pub(super) fn commit(&mut self, kind: Kind, mut obj: Value) -> Value {
        self.rv += 1;
        let ns = meta_str(&obj, "namespace").to_string();
        let name = meta_str(&obj, "name").to_string();
        let self_link = self.emu.self_links().then(|| self.self_link(kind, &ns, &name));
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), json!(self.rv.to_string()));
            if let Some(l) = self_link {
                m.insert("selfLink".into(), json!(l));
            }
        }
        let key = (ns, name);
        if kind == Kind::Pod {
            if let Some(old) = self.map(Kind::Pod).and_then(|m| m.get(&key)).cloned() {
                self.index_pod(&key, &old, false);
            }
            self.index_pod(&key, &obj, true);
        }
        if kind == Kind::Node {
            let sched = Store::node_schedulable(&obj);
            if let Some(rt) = self.nodes_rt.get_mut(&key.1) {
                rt.schedulable = sched;
            }
        }
        if let Some(m) = self.objs.get_mut(&kind) {
            m.insert(key, obj.clone());
        }
        obj
    }

    pub(super) fn remove(&mut self, kind: Kind, key: &Key) -> Option<Value> {
        let old = self.objs.get_mut(&kind)?.remove(key)?;
        self.rv += 1;
        if kind == Kind::Pod {
            self.index_pod(key, &old, false);
        }
        Some(old)
    }

    fn self_link(&self, kind: Kind, ns: &str, name: &str) -> String {
        let prefix = match kind.group() {
            "" => "/api/v1".to_string(),
            g => format!(
                "/apis/{g}/{}",
                self.emu.group_versions(g).first().copied().unwrap_or("v1")
            ),
        };
        if kind.namespaced() {
            format!("{prefix}/namespaces/{ns}/{}/{name}", kind.resource())
        } else {
            format!("{prefix}/{}/{name}", kind.resource())
        }
    }

    pub(super) fn new_meta(&mut self, ns: &str, name: &str, labels: Value) -> Value {
        let mut m = json!({
            "name": name,
            "uid": self.rng.uid(),
            "creationTimestamp": now_str(),
        });
        if let Some(o) = m.as_object_mut() {
            if !ns.is_empty() {
                o.insert("namespace".into(), json!(ns));
            }
            if labels.as_object().is_some_and(|l| !l.is_empty()) {
                o.insert("labels".into(), labels);
            }
        }
        m
    }

    /// Lists objects (sorted by namespace and name), optionally within a namespace, filtered by
    /// selectors, with `limit`/`continue` chunking. Returns the items and the continue token.
    pub fn list(
        &self,
        kind: Kind,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        cont: Option<&str>,
    ) -> Result<(Vec<&Value>, Option<String>), ApiError> {
        let Some(map) = self.map(kind) else {
            return Ok((Vec::new(), None));
        };
        let after: Option<Key> = match cont {
            Some(c) if !c.is_empty() => Some(decode_continue(c)?),
            _ => None,
        };
        let lower = match &after {
            Some(k) => Bound::Excluded(k.clone()),
            None => match ns {
                Some(n) => Bound::Included((n.to_string(), String::new())),
                None => Bound::Unbounded,
            },
        };
        let limit = limit.filter(|l| *l > 0);
        // Index: pods of one node, or of one label within a namespace.
        let index: Option<&BTreeSet<Key>> = if kind == Kind::Pod {
            if let Some(node) = fields.equality("spec.nodeName") {
                Some(self.by_node.get(node).unwrap_or(&EMPTY))
            } else if let (Some(n), Some((lk, lv))) = (ns, labels.first_equality()) {
                Some(
                    self.by_label
                        .get(&(n.to_string(), lk.to_string(), lv.to_string()))
                        .unwrap_or(&EMPTY),
                )
            } else {
                None
            }
        } else {
            None
        };
        let candidates: Box<dyn Iterator<Item = (&Key, &Value)> + '_> = match index {
            Some(set) => Box::new(
                set.range((lower, Bound::Unbounded))
                    .filter_map(move |k| map.get_key_value(k)),
            ),
            None => Box::new(
                map.range((lower, Bound::Unbounded))
                    .take_while(move |(k, _)| ns.is_none_or(|n| k.0 == n)),
            ),
        };
        let mut out: Vec<&Value> = Vec::new();
        let mut next = None;
        for (k, v) in candidates {
            if ns.is_some_and(|n| k.0 != n) || !labels.matches(labels_of(v)) || !fields.matches(v) {
                continue;
            }
            if limit.is_some_and(|l| out.len() >= l) {
                next = Some(encode_continue(out.last().copied()));
                break;
            }
            out.push(v);
        }
        Ok((out, next))
    }
}

static EMPTY: BTreeSet<Key> = BTreeSet::new();

fn encode_continue(last: Option<&Value>) -> String {
    use base64::Engine;
    let (ns, name) = last
        .map(|v| (meta_str(v, "namespace"), meta_str(v, "name")))
        .unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{ns}\u{0}{name}"))
}

fn decode_continue(c: &str) -> Result<Key, ApiError> {
    use base64::Engine;
    let bad = || ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| bad())?;
    let s = String::from_utf8(raw).map_err(|_| bad())?;
    let (ns, name) = s.split_once('\u{0}').ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}
