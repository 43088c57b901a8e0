//! The parameters the API modules share, declared once: [`Connection`] (flattened into each API
//! module's `Params`) and [`NodeName`].

use module_kit::{de, shown, FilePath, Name, Seconds};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Where and how to reach the API server: the parameters every API module takes, as
/// `#[serde(flatten)] pub connection: Connection` in its `Params`.
///
/// `REQUEST_TIMEOUT` is the default of `request_timeout` in seconds: 30, or what a module chose
/// (`upgrade_preflight`'s checks use 15).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, module_kit::Params)]
pub struct Connection<const REQUEST_TIMEOUT: u64 = 30> {
    /// An explicit kubeconfig; `None` means `$KUBECONFIG`, `~/.kube/config`, then
    /// `/etc/kubernetes/admin.conf`.
    #[serde(
        default,
        deserialize_with = "kubeconfig",
        skip_serializing_if = "Option::is_none"
    )]
    pub kubeconfig: Option<FilePath>,
    /// A context of the kubeconfig; `None` means its current context.
    #[serde(
        default,
        deserialize_with = "context",
        skip_serializing_if = "Option::is_none"
    )]
    pub context: Option<Name>,
    /// How long one API request may take (1 s to 7 days).
    #[serde(
        default = "default_request_timeout::<REQUEST_TIMEOUT>",
        deserialize_with = "request_timeout"
    )]
    pub request_timeout: Seconds,
}

impl<const REQUEST_TIMEOUT: u64> Default for Connection<REQUEST_TIMEOUT> {
    fn default() -> Self {
        Connection {
            kubeconfig: None,
            context: None,
            request_timeout: default_request_timeout::<REQUEST_TIMEOUT>(),
        }
    }
}

impl<const REQUEST_TIMEOUT: u64> Connection<REQUEST_TIMEOUT> {
    /// The default connection with this kubeconfig, if any.
    pub fn with_kubeconfig(kubeconfig: Option<FilePath>) -> Self {
        Connection {
            kubeconfig,
            ..Connection::default()
        }
    }
}

fn default_request_timeout<const SECS: u64>() -> Seconds {
    Seconds::of(SECS)
}

// serde keeps no path inside a flattened struct: each field names itself.
fn kubeconfig<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FilePath>, D::Error> {
    de::flattened_field("kubeconfig", d)
}

fn context<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Name>, D::Error> {
    de::flattened_field("context", d)
}

fn request_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Seconds, D::Error> {
    de::flattened_field("request_timeout", d)
}

/// Whether `name` is a lowercase RFC 1123 subdomain as Kubernetes checks it: at most 253
/// characters, dot-separated parts of lowercase letters, digits and '-', each beginning and ending
/// with a letter or digit. This is what Kubernetes requires of a node name (and of most object
/// names): `ValidateNodeName = apimachineryvalidation.NameIsDNSSubdomain` in
/// k8s.io/kubernetes pkg/apis/core/validation/validation.go, which is `IsDNS1123Subdomain` of
/// k8s.io/apimachinery pkg/util/validation/validation.go (`DNS1123SubdomainMaxLength = 253`,
/// `dns1123SubdomainFmt = dns1123LabelFmt + "(\\." + dns1123LabelFmt + ")*"` with
/// `dns1123LabelFmt = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"`; a part of a subdomain has no length limit
/// of its own there).
pub fn is_dns1123_subdomain(name: &str) -> bool {
    subdomain_problem(name).is_none()
}

/// Whether `name` is a lowercase RFC 1123 label (`IsDNS1123Label`, what a namespace must be): one
/// such part, at most 63 characters.
pub fn is_dns1123_label(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && is_dns1123_subdomain(name)
}

/// Why `name` is not an RFC 1123 subdomain, if it is not.
fn subdomain_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if name.len() > NodeName::MAX_LEN {
        Some("it is longer than 253 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        Some("only lowercase letters, digits, '-' and '.'")
    } else if !name.split('.').all(|part| {
        let bytes = part.as_bytes();
        matches!((bytes.first(), bytes.last()), (Some(a), Some(z)) if a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric())
    }) {
        Some("each dot-separated part begins and ends with a letter or digit")
    } else {
        None
    }
}

/// A Kubernetes node name, checked as Kubernetes checks it ([`is_dns1123_subdomain`]). White space
/// around it (what a template may leave) is dropped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(String);

impl NodeName {
    /// `DNS1123SubdomainMaxLength`.
    pub const MAX_LEN: usize = 253;

    /// `text` without the white space around it, or why it is not a node name (`text` echoed cut).
    pub fn new(text: &str) -> Result<NodeName, String> {
        let name = text.trim();
        match subdomain_problem(name) {
            None => Ok(NodeName(name.to_string())),
            Some(why) => Err(format!("{} is not a valid node name ({why})", shown(text))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for NodeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => NodeName::new(&s),
            other => Err(format!(
                "expected a node name, got {}",
                module_kit::echo::shown_value(&other)
            )),
        }
        .map_err(serde::de::Error::custom)
    }
}

impl Serialize for NodeName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl std::str::FromStr for NodeName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        NodeName::new(s)
    }
}

impl std::ops::Deref for NodeName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for NodeName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<NodeName> for String {
    fn from(n: NodeName) -> String {
        n.0
    }
}

impl PartialEq<str> for NodeName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn node_names_are_rfc_1123_subdomains() {
        for good in [
            "worker-1",
            "lab-cp1.example.com",
            "0",
            "a-b.c-d",
            &"a".repeat(253),
        ] {
            assert_eq!(NodeName::new(good).unwrap().as_str(), good);
        }
        // A part longer than 63 is still a valid subdomain for Kubernetes.
        assert!(NodeName::new(&format!("{}.x", "a".repeat(100))).is_ok());
        assert_eq!(NodeName::new(" worker-1\n").unwrap().as_str(), "worker-1");
        for (bad, why) in [
            ("", "empty"),
            ("   ", "empty"),
            ("Worker-1", "lowercase"),
            ("worker_1", "lowercase"),
            ("worker-1\u{0}", "control character"),
            ("-worker", "begins and ends"),
            ("worker-", "begins and ends"),
            ("a..b", "begins and ends"),
            (".a", "begins and ends"),
            ("ünï", "lowercase"),
        ] {
            let err = NodeName::new(bad).unwrap_err();
            assert!(
                err.contains("is not a valid node name") && err.contains(why),
                "{bad:?}: {err}"
            );
        }
        let long = NodeName::new(&"a".repeat(254)).unwrap_err();
        assert!(long.contains("longer than 253"), "{long}");
        let huge = NodeName::new(&"N".repeat(1 << 20)).unwrap_err();
        assert!(huge.len() < 400 && huge.contains("(1048576 bytes)"), "{huge}");
        assert!(is_dns1123_label("kube-system") && !is_dns1123_label("a.b"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
    }

    #[test]
    fn node_names_parse_and_serialize_as_strings() {
        let n: NodeName = serde_json::from_value(json!("worker-1")).unwrap();
        assert_eq!(serde_json::to_value(&n).unwrap(), json!("worker-1"));
        let err = serde_json::from_value::<NodeName>(json!(5))
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected a node name"), "{err}");
    }

    #[test]
    fn a_connection_names_its_fields_and_has_its_default_timeout() {
        assert_eq!(
            <Connection as module_kit::Params>::NAMES,
            ["kubeconfig", "context", "request_timeout"]
        );
        assert_eq!(Connection::<30>::default().request_timeout.get(), 30);
        assert_eq!(Connection::<15>::default().request_timeout.get(), 15);
        let c: Connection<15> = serde_json::from_value(json!({})).unwrap();
        assert_eq!(c, Connection::default());
        let c = Connection::<30>::with_kubeconfig(Some(FilePath::new("/k").unwrap()));
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"kubeconfig": "/k", "request_timeout": 30})
        );
        let err = serde_json::from_value::<Connection>(json!({"context": ""}))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("parameter `context`: must not be empty"), "{err}");
    }
}
