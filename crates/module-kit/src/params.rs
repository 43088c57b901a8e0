//! Typed parameters that check themselves while they are parsed, so that every module refuses the same
//! bad input the same way, with a message naming the field (the protocol adds the name):
//!
//! - [`Seconds`]: a duration in whole seconds, at least `MIN` (1 unless said otherwise) and at most
//!   [`MAX_SECONDS`] (7 days), so that `now + timeout` can never overflow;
//! - [`Retries`]: how many more attempts, at most [`MAX_RETRIES`];
//! - [`FilePath`]: an absolute path, never empty (an empty path would mean the current directory),
//!   without NUL or other control characters;
//! - [`Name`]: a name or other word passed on (a node, a context, a unit, a repository, an argument):
//!   never empty, without NUL or other control characters.
//!
//! All of them accept what Ansible templating produces: numbers also as strings (`"30"`), and all of
//! them serialize back to what they accept (so a caller such as `kup` builds a module's arguments as
//! its typed `Params`).
//!
//! And [`Params`], what a module's parameter struct is: `#[derive(Deserialize, Params)]` gives the
//! intake every key the struct accepts (names, aliases, and those of `#[serde(flatten)]`-ed parts), so
//! that an unknown key is refused with the list of accepted ones, whatever its value.

use crate::echo::{shown, shown_value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A module's parameters: parsed by serde, and knowing every key they accept. Derive it
/// (`#[derive(Deserialize, module_kit::Params)]`): the derive reads the same `#[serde(...)]`
/// attributes (`rename`, `alias`, `skip`, `flatten`), so the names are declared once, by the fields.
///
/// serde's `deny_unknown_fields` does not work with `flatten`; the intake refuses unknown keys itself,
/// from [`Params::NAMES`] (and also those given as `null`, which serde never sees).
pub trait Params: DeserializeOwned {
    /// Every accepted key: each field's name and aliases, then those of its flattened parts.
    const NAMES: &'static [&'static str];
}

/// `parts` joined into one array of `N` names (what `derive(Params)` generates; `N` must be the total).
/// A name given twice (two fields, an alias, or a field and a flattened part) stops the build.
#[allow(clippy::panic)] // Evaluated at compile time: a panic here is a compile error naming the name.
pub const fn join_names<const N: usize>(parts: &[&[&'static str]]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut at = 0;
    let mut p = 0;
    while p < parts.len() {
        let mut i = 0;
        while i < parts[p].len() {
            let name = parts[p][i];
            let mut j = 0;
            while j < at {
                if same(out[j], name) {
                    panic!("derive(Params): a parameter name or alias is declared twice");
                }
                j += 1;
            }
            out[at] = name;
            at += 1;
            i += 1;
        }
        p += 1;
    }
    if at != N {
        panic!("join_names: N is not the number of names");
    }
    out
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The longest duration any parameter may ask for: 7 days.
pub const MAX_SECONDS: u64 = 7 * 24 * 60 * 60;

/// The most extra attempts any parameter may ask for.
pub const MAX_RETRIES: u32 = 100;

/// A whole number from a JSON number or a string holding one, for range checks (i128 holds every
/// JSON integer, so that a huge value is reported as too large rather than as not a number).
pub(crate) fn whole_number(value: &Value) -> Result<i128, String> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .ok_or_else(|| format!("expected a whole number, got {n}")),
        Value::String(s) => s
            .trim()
            .parse::<i128>()
            .map_err(|_| format!("expected a whole number, got {}", shown(s))),
        other => Err(format!("expected a whole number, got {}", shown_value(other))),
    }
}

/// A duration in whole seconds, from `MIN` (default 1) to [`MAX_SECONDS`].
///
/// `Seconds` is "at least 1 second"; `Seconds<0>` allows 0 (for "look once", "no delay", "never").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seconds<const MIN: u64 = 1>(u64);

impl<const MIN: u64> Seconds<MIN> {
    /// `secs`, or why it is out of range.
    pub fn new(secs: u64) -> Result<Self, String> {
        Self::check(i128::from(secs))
    }

    /// `secs` moved into range: for defaults written in the code.
    pub const fn of(secs: u64) -> Self {
        if secs < MIN {
            Seconds(MIN)
        } else if secs > MAX_SECONDS {
            Seconds(MAX_SECONDS)
        } else {
            Seconds(secs)
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }

    pub fn duration(self) -> Duration {
        Duration::from_secs(self.0)
    }

    fn check(n: i128) -> Result<Self, String> {
        if n < i128::from(MIN) {
            let unit = if MIN == 1 { "second" } else { "seconds" };
            Err(format!("must be at least {MIN} {unit}, got {n}"))
        } else if n > i128::from(MAX_SECONDS) {
            Err(format!("must be at most {MAX_SECONDS} seconds (7 days), got {n}"))
        } else {
            // In range, so it fits.
            Ok(Seconds(u64::try_from(n).unwrap_or(MAX_SECONDS)))
        }
    }
}

impl<'de, const MIN: u64> Deserialize<'de> for Seconds<MIN> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        whole_number(&value)
            .map_err(|e| e.replace("whole number", "whole number of seconds"))
            .and_then(Self::check)
            .map_err(serde::de::Error::custom)
    }
}

impl<const MIN: u64> Serialize for Seconds<MIN> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<const MIN: u64> fmt::Display for Seconds<MIN> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0)
    }
}

/// Extra attempts after a failed one: 0 to [`MAX_RETRIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Retries(u32);

impl Retries {
    /// `n` moved into range: for defaults written in the code.
    pub const fn of(n: u32) -> Self {
        if n > MAX_RETRIES {
            Retries(MAX_RETRIES)
        } else {
            Retries(n)
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Retries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let n = whole_number(&value).map_err(serde::de::Error::custom)?;
        if (0..=i128::from(MAX_RETRIES)).contains(&n) {
            Ok(Retries(u32::try_from(n).unwrap_or(MAX_RETRIES)))
        } else {
            Err(serde::de::Error::custom(format!(
                "must be from 0 to {MAX_RETRIES}, got {n}"
            )))
        }
    }
}

impl Serialize for Retries {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

/// Why `text` is not a word to pass on: empty (`empty` says why that matters), a control character,
/// or longer than `max` bytes.
fn unclean(text: &str, empty: &str, max: usize) -> Option<String> {
    if text.is_empty() {
        Some(empty.to_string())
    } else if let Some(problem) = control_character(text) {
        Some(problem.to_string())
    } else if text.len() > max {
        Some(format!("is longer than {max} bytes ({} bytes)", text.len()))
    } else {
        None
    }
}

/// Why `text` has a control character, if it has one.
fn control_character(text: &str) -> Option<&'static str> {
    if text.contains('\0') {
        Some("contains a NUL byte")
    } else if text.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    }
}

/// An absolute path to a file or directory: not empty, no NUL or other control character, at most
/// [`FilePath::MAX_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FilePath(PathBuf);

impl FilePath {
    /// Linux's PATH_MAX.
    pub const MAX_LEN: usize = 4096;

    pub fn new(text: &str) -> Result<Self, String> {
        let empty = "must not be empty (an empty path would mean the current directory)";
        if let Some(problem) = unclean(text, empty, Self::MAX_LEN) {
            return Err(problem);
        }
        if !text.starts_with('/') {
            return Err(format!("must be an absolute path, got {}", shown(text)));
        }
        Ok(FilePath(PathBuf::from(text)))
    }

    /// A path written in the code (a default): not checked.
    pub fn from_static(path: &'static str) -> Self {
        FilePath(PathBuf::from(path))
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

impl<'de> Deserialize<'de> for FilePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => FilePath::new(&s),
            other => Err(format!("expected a path, got {}", shown_value(&other))),
        }
        .map_err(serde::de::Error::custom)
    }
}

impl Serialize for FilePath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Made from a `&str`, so always UTF-8.
        s.serialize_str(&self.0.to_string_lossy())
    }
}

impl std::ops::Deref for FilePath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for FilePath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<OsStr> for FilePath {
    fn as_ref(&self) -> &OsStr {
        self.0.as_os_str()
    }
}

impl From<FilePath> for PathBuf {
    fn from(p: FilePath) -> PathBuf {
        p.0
    }
}

/// A name or word passed on as it is: not empty, no NUL or other control character, at most
/// [`Name::MAX_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    pub const MAX_LEN: usize = 4096;

    pub fn new(text: &str) -> Result<Self, String> {
        match unclean(text, "must not be empty", Self::MAX_LEN) {
            Some(problem) => Err(problem),
            None => Ok(Name(text.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Name::new(&s),
            other => Err(format!("expected a string, got {}", shown_value(&other))),
        }
        .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<OsStr> for Name {
    fn as_ref(&self) -> &OsStr {
        OsStr::new(&self.0)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, String> {
        serde_json::from_value::<T>(v).map_err(|e| e.to_string())
    }

    #[test]
    fn seconds_are_bounded_both_ways() {
        assert_eq!(parse::<Seconds>(json!(30)).map(Seconds::get), Ok(30));
        assert_eq!(parse::<Seconds>(json!(" 30 ")).map(Seconds::get), Ok(30));
        assert_eq!(
            parse::<Seconds>(json!(MAX_SECONDS)).map(Seconds::get),
            Ok(MAX_SECONDS)
        );
        assert_eq!(parse::<Seconds<0>>(json!(0)).map(Seconds::get), Ok(0));
        let zero = parse::<Seconds>(json!(0)).unwrap_err();
        assert!(zero.contains("at least 1 second"), "{zero}");
        for huge in [
            json!(9223372036854775807i64),
            json!(u64::MAX),
            json!("99999999999999999999"),
            json!(MAX_SECONDS + 1),
        ] {
            let err = parse::<Seconds>(huge.clone()).unwrap_err();
            assert!(err.contains("at most 604800 seconds (7 days)"), "{huge}: {err}");
        }
        for junk in [json!(-1), json!("-5")] {
            assert!(parse::<Seconds<0>>(junk).unwrap_err().contains("at least 0"));
        }
        for junk in [json!(1.5), json!("soon"), json!([]), json!(true)] {
            let err = parse::<Seconds>(junk.clone()).unwrap_err();
            assert!(err.contains("whole number of seconds"), "{junk}: {err}");
        }
        assert_eq!(Seconds::<1>::of(0).get(), 1);
        assert_eq!(Seconds::<1>::of(u64::MAX).get(), MAX_SECONDS);
        // The point of the bound: a deadline from any accepted value is representable.
        let longest = parse::<Seconds>(json!(MAX_SECONDS)).unwrap();
        assert!(std::time::Instant::now()
            .checked_add(longest.duration())
            .is_some());
    }

    #[test]
    fn retries_are_bounded() {
        assert_eq!(parse::<Retries>(json!("3")).map(Retries::get), Ok(3));
        assert_eq!(parse::<Retries>(json!(100)).map(Retries::get), Ok(100));
        for bad in [json!(101), json!(4294967295u32), json!(-1)] {
            let err = parse::<Retries>(bad.clone()).unwrap_err();
            assert!(err.contains("from 0 to 100"), "{bad}: {err}");
        }
    }

    #[test]
    fn paths_are_absolute_non_empty_and_clean() {
        let ok = parse::<FilePath>(json!("/var/lib/kup/kubeadm")).unwrap();
        assert_eq!(ok.as_path(), Path::new("/var/lib/kup/kubeadm"));
        for (bad, why) in [
            (json!(""), "must not be empty"),
            (json!("/tmp/kube\u{0}adm"), "NUL"),
            (json!("/etc/kubernetes/\nmanifests"), "control character"),
            (json!("relative/kubeadm"), "absolute"),
            (json!(5), "expected a path"),
            (json!(format!("/{}", "a".repeat(5000))), "longer than 4096"),
        ] {
            let err = parse::<FilePath>(bad.clone()).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.len() < 400, "{err}");
        }
    }

    /// A part several modules share, flattened into each one's parameters.
    #[derive(Debug, Deserialize, Serialize, crate::Params)]
    struct Shared {
        #[serde(default, deserialize_with = "kubeconfig")]
        kubeconfig: Option<FilePath>,
        #[serde(default = "thirty", alias = "timeout_s")]
        request_timeout: Seconds,
    }

    fn thirty() -> Seconds {
        Seconds::of(30)
    }

    fn kubeconfig<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FilePath>, D::Error> {
        crate::de::flattened_field("kubeconfig", d)
    }

    #[derive(Debug, Deserialize, crate::Params)]
    #[allow(dead_code)]
    struct Flat {
        name: Name,
        #[serde(rename = "count")]
        n: Option<u32>,
        #[serde(skip)]
        cache: Option<String>,
        #[serde(flatten)]
        shared: Shared,
    }

    struct FlatModule;

    impl crate::Module for FlatModule {
        const NAME: &'static str = "flat";
        type Params = Flat;
        fn run(_p: Flat, _ctx: &crate::Context) -> Result<crate::Outcome, crate::Failure> {
            Ok(crate::Outcome::unchanged("ran"))
        }
    }

    #[test]
    fn names_see_through_flatten_renames_aliases_and_skips() {
        assert_eq!(
            <Flat as Params>::NAMES,
            ["name", "count", "kubeconfig", "request_timeout", "timeout_s"]
        );
    }

    #[test]
    fn unknown_keys_of_a_flattened_struct_are_refused_with_the_whole_list() {
        let ok = crate::intake::<FlatModule>(json!({"name": "a", "kubeconfig": "/k", "timeout_s": "5"}));
        let (p, _) = ok.unwrap();
        assert_eq!(p.shared.request_timeout.get(), 5);
        assert_eq!(p.shared.kubeconfig.unwrap().as_path(), Path::new("/k"));
        for args in [
            json!({"name": "a", "kubeconfg": "/k"}),
            json!({"name": "a", "kubeconfg": null}),
        ] {
            let msg = crate::intake::<FlatModule>(args).err().unwrap().msg;
            assert_eq!(
                msg,
                "flat: unknown parameter `kubeconfg`; accepted parameters: `name`, `count`, `kubeconfig`, \
                 `request_timeout`, `timeout_s`"
            );
        }
        // A flattened field's own checks still name it.
        let msg = crate::intake::<FlatModule>(json!({"name": "a", "kubeconfig": ""}))
            .err()
            .unwrap()
            .msg;
        assert!(
            msg.starts_with("parameter `kubeconfig`: must not be empty"),
            "{msg}"
        );
        let msg = crate::intake::<FlatModule>(json!({"name": "a", "kubeconfig": null, "count": null}));
        assert!(msg.is_ok());
    }

    #[test]
    fn typed_parameters_serialize_to_what_they_accept() {
        let shared = Shared {
            kubeconfig: Some(FilePath::new("/etc/k").unwrap()),
            request_timeout: Seconds::of(15),
        };
        let v = serde_json::to_value(&shared).unwrap();
        assert_eq!(v, json!({"kubeconfig": "/etc/k", "request_timeout": 15}));
        let back: Shared = serde_json::from_value(v).unwrap();
        assert_eq!(back.request_timeout, Seconds::of(15));
        assert_eq!(serde_json::to_value(Retries::of(3)).unwrap(), json!(3));
        assert_eq!(serde_json::to_value(Name::new("n").unwrap()).unwrap(), json!("n"));
    }

    #[test]
    fn names_are_non_empty_and_clean() {
        assert_eq!(parse::<Name>(json!("worker-1")).unwrap().as_str(), "worker-1");
        for (bad, why) in [
            (json!(""), "empty"),
            (json!("kubelet\u{0}"), "NUL"),
            (json!("a\r\nb"), "control character"),
            (json!(["a"]), "expected a string"),
        ] {
            let err = parse::<Name>(bad.clone()).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
