//! Lenient scalar parsing for parameters: Ansible templating turns numbers and booleans into strings
//! (`timeout: "{{ t }}"` arrives as `"30"`), so integers and booleans also accept their string forms.
//! Use with `#[serde(deserialize_with = "module_kit::de::int")]` and friends.
//!
//! Durations, paths and names have types of their own in [`crate::params`]; the adapters at the end
//! ([`seconds`], [`seconds_or_zero`]) apply the same checks to fields that keep a plain type, and
//! [`flattened_field`] names a field of a `#[serde(flatten)]`-ed part in its errors.

use crate::echo::{shown, shown_value};
use crate::params::Seconds;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::str::FromStr;

/// A boolean, or one of Ansible's spellings: yes/no, true/false, on/off, 1/0 (any case).
pub fn bool_from_value(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
        Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" | "1" | "y" => Ok(true),
            "no" | "false" | "off" | "0" | "n" => Ok(false),
            _ => Err(format!(
                "expected a boolean (true/false, yes/no), got {}",
                shown(s)
            )),
        },
        other => Err(format!("expected a boolean, got {}", shown_value(other))),
    }
}

/// An integer, or a string holding one.
pub fn int_from_value<T: TryFrom<i64> + FromStr>(value: &Value) -> Result<T, String> {
    let out_of_range = || format!("{value} is out of range");
    match value {
        Value::Number(n) => {
            let n = n
                .as_i64()
                .ok_or_else(|| format!("expected a whole number, got {n}"))?;
            T::try_from(n).map_err(|_| out_of_range())
        }
        Value::String(s) => s
            .trim()
            .parse::<T>()
            .map_err(|_| format!("expected a whole number, got {}", shown(s))),
        other => Err(format!("expected a whole number, got {}", shown_value(other))),
    }
}

pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    bool_from_value(&Value::deserialize(d)?).map_err(serde::de::Error::custom)
}

pub fn int<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + FromStr,
{
    int_from_value(&Value::deserialize(d)?).map_err(serde::de::Error::custom)
}

pub fn opt_int<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + FromStr,
{
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => int_from_value(&v).map(Some).map_err(serde::de::Error::custom),
    }
}

/// A Unix file mode: an octal string (`"0755"`, `"755"`, `"0o755"`) or an integer (YAML reads the
/// unquoted `0755` as 493, which is that same mode).
pub fn file_mode<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let mode = match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => {
            let digits = s.trim().trim_start_matches("0o");
            if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                None
            } else {
                u32::from_str_radix(digits, 8).ok()
            }
        }
        _ => None,
    };
    match mode {
        Some(m) if m <= 0o7777 => Ok(m),
        _ => Err(serde::de::Error::custom(
            "expected an octal file mode such as \"0755\"",
        )),
    }
}

/// A [`Seconds`] (1 s to 7 days) kept as a plain `u64` of seconds.
pub fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Seconds::<1>::deserialize(d).map(Seconds::get)
}

/// A [`Seconds`] that may be 0 (0 s to 7 days), kept as a plain `u64` of seconds.
pub fn seconds_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Seconds::<0>::deserialize(d).map(Seconds::get)
}

/// A field of a struct that others `#[serde(flatten)]` (use as `deserialize_with` through a small
/// function per field): serde gives an error inside a flattened struct no path, so the field names
/// itself (`parameter `kubeconfig`: ...`), and the intake keeps that as the message.
pub fn flattened_field<'de, D, T>(field: &str, d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map_err(|e| serde::de::Error::custom(format!("parameter `{field}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn booleans_accept_ansible_spellings() {
        assert_eq!(bool_from_value(&json!("Yes")), Ok(true));
        assert_eq!(bool_from_value(&json!("off")), Ok(false));
        assert_eq!(bool_from_value(&json!(1)), Ok(true));
        assert!(bool_from_value(&json!("maybe")).is_err());
        assert!(bool_from_value(&json!([])).is_err());
    }

    #[test]
    fn integers_accept_strings_and_reject_junk() {
        assert_eq!(int_from_value::<u32>(&json!("30")), Ok(30));
        assert_eq!(int_from_value::<u32>(&json!(7)), Ok(7));
        assert!(int_from_value::<u32>(&json!(-1)).is_err());
        assert!(int_from_value::<u8>(&json!(300)).is_err());
        assert!(int_from_value::<u32>(&json!(1.5)).is_err());
        assert!(int_from_value::<u32>(&json!("ten")).is_err());
    }

    #[derive(serde::Deserialize)]
    struct Mode {
        #[serde(deserialize_with = "file_mode")]
        mode: u32,
    }

    #[test]
    fn modes_parse_as_octal() {
        let parse = |v: Value| serde_json::from_value::<Mode>(json!({ "mode": v })).map(|m| m.mode);
        assert_eq!(parse(json!("0755")).ok(), Some(0o755));
        assert_eq!(parse(json!("0o640")).ok(), Some(0o640));
        assert_eq!(parse(json!(493)).ok(), Some(0o755));
        assert!(parse(json!("0789")).is_err());
        assert!(parse(json!("")).is_err());
        assert!(parse(json!(0o17777)).is_err());
    }
}
