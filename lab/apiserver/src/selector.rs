//! Label selectors (query syntax and `LabelSelector` objects) and field selectors.

use serde_json::{Map, Value};

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Req {
    /// `k=v`, `k==v`
    Eq(String, String),
    /// `k!=v`
    Ne(String, String),
    /// `k in (a,b)`
    In(String, Vec<String>),
    /// `k notin (a,b)`
    NotIn(String, Vec<String>),
    /// `k`
    Exists(String),
    /// `!k`
    NotExists(String),
}

/// A parsed label selector: all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// The requirements.
    pub reqs: Vec<Req>,
}

fn label_of<'a>(labels: Option<&'a Map<String, Value>>, k: &str) -> Option<&'a str> {
    labels.and_then(|l| l.get(k)).and_then(Value::as_str)
}

impl LabelSelector {
    /// Parses the query syntax (`a=b,c!=d,e in (x,y),!f`).
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut reqs = Vec::new();
        let mut parts = Vec::new();
        let mut depth = 0;
        let mut cur = String::new();
        for c in s.chars() {
            match c {
                '(' => {
                    depth += 1;
                    cur.push(c);
                }
                ')' => {
                    depth -= 1;
                    cur.push(c);
                }
                ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            }
        }
        parts.push(cur);
        for p in parts {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            reqs.push(parse_req(p)?);
        }
        Ok(LabelSelector { reqs })
    }

    /// Converts a `LabelSelector` object (`matchLabels`, `matchExpressions`).
    pub fn from_object(v: &Value) -> Result<LabelSelector, String> {
        let mut reqs = Vec::new();
        if let Some(ml) = v.get("matchLabels").and_then(Value::as_object) {
            for (k, val) in ml {
                reqs.push(Req::Eq(k.clone(), val.as_str().unwrap_or_default().to_string()));
            }
        }
        if let Some(me) = v.get("matchExpressions").and_then(Value::as_array) {
            for e in me {
                let key = e
                    .get("key")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                    .unwrap_or_default();
                match e.get("operator").and_then(Value::as_str).unwrap_or_default() {
                    "In" => reqs.push(Req::In(key, values)),
                    "NotIn" => reqs.push(Req::NotIn(key, values)),
                    "Exists" => reqs.push(Req::Exists(key)),
                    "DoesNotExist" => reqs.push(Req::NotExists(key)),
                    op => return Err(format!("{op:?} is not a valid pod selector operator")),
                }
            }
        }
        Ok(LabelSelector { reqs })
    }

    /// True when it selects nothing in particular (matches everything).
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// An equality requirement usable with a label index.
    pub fn first_equality(&self) -> Option<(&str, &str)> {
        self.reqs.iter().find_map(|r| match r {
            Req::Eq(k, v) => Some((k.as_str(), v.as_str())),
            _ => None,
        })
    }

    /// Whether the labels (`metadata.labels`) satisfy all requirements.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.reqs.iter().all(|r| match r {
            Req::Eq(k, v) => label_of(labels, k) == Some(v.as_str()),
            Req::Ne(k, v) => label_of(labels, k) != Some(v.as_str()),
            Req::In(k, vs) => label_of(labels, k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => !label_of(labels, k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::Exists(k) => label_of(labels, k).is_some(),
            Req::NotExists(k) => label_of(labels, k).is_none(),
        })
    }
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 316
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn parse_set(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("found '{rest}', expected: '('"))?;
    Ok(inner
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

fn parse_req(p: &str) -> Result<Req, String> {
    if let Some(k) = p.strip_prefix('!') {
        let k = k.trim();
        return if valid_key(k) {
            Ok(Req::NotExists(k.to_string()))
        } else {
            Err(format!("invalid label key {k:?}"))
        };
    }
    if let Some((k, v)) = p.split_once("!=") {
        return Ok(Req::Ne(k.trim().to_string(), v.trim().to_string()));
    }
    if let Some((k, v)) = p.split_once("==") {
        return Ok(Req::Eq(k.trim().to_string(), v.trim().to_string()));
    }
    if let Some((k, v)) = p.split_once('=') {
        let k = k.trim();
        if !valid_key(k) {
            return Err(format!("invalid label key {k:?}"));
        }
        return Ok(Req::Eq(k.to_string(), v.trim().to_string()));
    }
    if let Some((k, rest)) = p.split_once(" notin ") {
        return Ok(Req::NotIn(k.trim().to_string(), parse_set(rest)?));
    }
    if let Some((k, rest)) = p.split_once(" in ") {
        return Ok(Req::In(k.trim().to_string(), parse_set(rest)?));
    }
    if valid_key(p) {
        return Ok(Req::Exists(p.to_string()));
    }
    Err(format!("unable to parse requirement: {p:?}"))
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    /// `spec.nodeName`
    pub field: String,
    /// The value compared to.
    pub value: String,
    /// `!=` instead of `=`.
    pub negate: bool,
}

/// A parsed field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// The terms (all must hold).
    pub terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses `spec.nodeName=n1,status.phase!=Succeeded`, checking each field against `allowed`.
    pub fn parse(s: &str, allowed: &[&str]) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for p in s.split(',') {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let (field, value, negate) = if let Some((f, v)) = p.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = p.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = p.split_once('=') {
                (f, v, false)
            } else {
                return Err(format!("invalid selector: '{p}'; can't understand '{p}'"));
            };
            let field = field.trim();
            if !allowed.contains(&field) {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push(FieldTerm {
                field: field.to_string(),
                value: value.trim().to_string(),
                negate,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// The value of an equality term on `field`, if any.
    pub fn equality(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && !t.negate)
            .map(|t| t.value.as_str())
    }

    /// Whether an object satisfies every term.
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let mut cur = Some(obj);
            for seg in t.field.split('.') {
                cur = cur.and_then(|c| c.get(seg));
            }
            let actual = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                // Absent booleans read as false (spec.unschedulable), absent strings as "".
                _ if t.field == "spec.unschedulable" => "false".to_string(),
                _ => String::new(),
            };
            (actual == t.value) != t.negate
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_query_syntax() {
        let s = LabelSelector::parse("app=web, tier!=db,env in (a, b),!gone,has").unwrap();
        assert_eq!(s.reqs.len(), 5);
        let l = json!({"app": "web", "env": "b", "has": "1"});
        assert!(s.matches(l.as_object()));
        let l2 = json!({"app": "web", "env": "c", "has": "1"});
        assert!(!s.matches(l2.as_object()));
        assert!(LabelSelector::parse("a=b,(").is_err());
    }

    #[test]
    fn label_object() {
        let s = LabelSelector::from_object(&json!({"matchLabels": {"app": "x"},
            "matchExpressions": [{"key": "t", "operator": "NotIn", "values": ["y"]}]}))
        .unwrap();
        assert!(s.matches(json!({"app": "x"}).as_object()));
        assert!(!s.matches(json!({"app": "x", "t": "y"}).as_object()));
    }

    #[test]
    fn field_selector() {
        let f = FieldSelector::parse(
            "spec.nodeName=n1,status.phase!=Failed",
            &["spec.nodeName", "status.phase"],
        )
        .unwrap();
        assert_eq!(f.equality("spec.nodeName"), Some("n1"));
        assert!(f.matches(&json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Running"}})));
        assert!(!f.matches(&json!({"spec": {"nodeName": "n2"}})));
        assert!(FieldSelector::parse("spec.bogus=1", &["spec.nodeName"]).is_err());
    }
}
