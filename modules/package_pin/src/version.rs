//! Distribution package versions: matching a Kubernetes version to a package version, and ordering
//! them (dpkg's algorithm, which orders rpm's `VERSION-RELEASE` strings the same way for our needs).

use std::cmp::Ordering;

/// The upstream part of a package version: `1:1.9.2-00` -> `1.9.2`, `1.30.2-150500.1.1` -> `1.30.2`.
pub fn upstream(version: &str) -> &str {
    let without_epoch = version.split_once(':').map(|(_, rest)| rest).unwrap_or(version);
    without_epoch
        .split_once('-')
        .map(|(up, _)| up)
        .unwrap_or(without_epoch)
}

/// The versions among `available` that `wanted` names: an exact package version (`1.9.2-00`), or a
/// Kubernetes version (`1.9.2`, `v1.9.2`) matching the upstream part.
pub fn matching<'a>(wanted: &str, available: &'a [String]) -> Vec<&'a str> {
    let wanted = wanted.trim().trim_start_matches('v');
    let strip_epoch = |v: &'a str| v.split_once(':').map(|(_, r)| r).unwrap_or(v);
    let exact: Vec<&str> = available
        .iter()
        .map(String::as_str)
        .filter(|v| strip_epoch(v) == wanted)
        .collect();
    if !exact.is_empty() || wanted.contains('-') {
        return exact;
    }
    let mut found: Vec<&str> = available
        .iter()
        .map(String::as_str)
        .filter(|v| upstream(v) == wanted)
        .collect();
    found.sort_by(|a, b| compare(a, b));
    found.dedup();
    found
}

/// dpkg's version comparison: epoch, then upstream, then revision, each compared by alternating
/// non-digit runs (with `~` before anything, even the end) and numeric runs.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (epoch_a, rest_a) = split_epoch(a);
    let (epoch_b, rest_b) = split_epoch(b);
    let (up_a, rev_a) = rest_a.rsplit_once('-').unwrap_or((rest_a, ""));
    let (up_b, rev_b) = rest_b.rsplit_once('-').unwrap_or((rest_b, ""));
    epoch_a
        .cmp(&epoch_b)
        .then_with(|| compare_part(up_a, up_b))
        .then_with(|| compare_part(rev_a, rev_b))
}

fn split_epoch(v: &str) -> (u64, &str) {
    match v.split_once(':') {
        Some((epoch, rest)) => (epoch.parse().unwrap_or(0), rest),
        None => (0, v),
    }
}

fn weight(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

fn compare_part(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        // Non-digit prefixes, character by character.
        loop {
            let ca = a.first().copied().filter(|c| !c.is_ascii_digit());
            let cb = b.first().copied().filter(|c| !c.is_ascii_digit());
            if ca.is_none() && cb.is_none() {
                break;
            }
            match weight(ca).cmp(&weight(cb)) {
                Ordering::Equal => {
                    a = &a[usize::from(ca.is_some())..];
                    b = &b[usize::from(cb.is_some())..];
                }
                other => return other,
            }
        }
        // Numeric runs, by value.
        let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
        let (na, nb) = (digits(a), digits(b));
        let value = |s: &[u8]| {
            let trimmed: &[u8] = &s[s.iter().take_while(|c| **c == b'0').count()..];
            (trimmed.len(), trimmed.to_vec())
        };
        match value(&a[..na]).cmp(&value(&b[..nb])) {
            Ordering::Equal => {
                a = &a[na..];
                b = &b[nb..];
            }
            other => return other,
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_like_dpkg() {
        assert_eq!(compare("1.9.2-00", "1.9.3-00"), Ordering::Less);
        assert_eq!(compare("1.10.0-00", "1.9.3-00"), Ordering::Greater);
        assert_eq!(compare("1.30.2-1.1", "1.30.2-1.1"), Ordering::Equal);
        assert_eq!(
            compare("1.30.2-150500.1.1", "1.29.6-150500.1.1"),
            Ordering::Greater
        );
        assert_eq!(compare("1:1.0-1", "2.0-1"), Ordering::Greater);
        assert_eq!(compare("1.0~rc1-1", "1.0-1"), Ordering::Less);
        assert_eq!(compare("1.0a-1", "1.0-1"), Ordering::Greater);
        assert_eq!(compare("1.9.02", "1.9.2"), Ordering::Equal);
    }

    #[test]
    fn matches_kubernetes_versions_to_package_versions() {
        let apt: Vec<String> = ["1.9.2-00", "1.9.3-00", "1.19.2-00"].map(String::from).to_vec();
        assert_eq!(matching("1.9.2", &apt), vec!["1.9.2-00"]);
        assert_eq!(matching("v1.9.3", &apt), vec!["1.9.3-00"]);
        assert_eq!(matching("1.9.2-00", &apt), vec!["1.9.2-00"]);
        assert!(matching("1.9.4", &apt).is_empty());
        assert!(matching("1.9.2-01", &apt).is_empty());
        let twice: Vec<String> = ["1.9.2-00", "1.9.2-01"].map(String::from).to_vec();
        assert_eq!(matching("1.9.2", &twice).len(), 2);
        let rpm: Vec<String> = ["1.29.6-150500.1.1", "1.30.2-150500.1.1"]
            .map(String::from)
            .to_vec();
        assert_eq!(matching("1.30.2", &rpm), vec!["1.30.2-150500.1.1"]);
        assert_eq!(upstream("1:1.9.2-00"), "1.9.2");
    }
}
