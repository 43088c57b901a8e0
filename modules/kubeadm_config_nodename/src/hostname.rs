//! This host's FQDN, as `hostname -f` would say, without getaddrinfo (a static binary must not
//! load NSS modules): the kernel's host name, made fully qualified by `/etc/hosts`.

use std::path::Path;

pub fn fqdn() -> Result<String, String> {
    let short = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .ok_or("cannot read this host's name; give node_name")?;
    Ok(qualify(&short, Path::new("/etc/hosts")))
}

/// `short` qualified by the hosts file: the canonical (first) name of the line listing it, or an
/// alias on that line that extends it.
pub fn qualify(short: &str, hosts: &Path) -> String {
    if short.contains('.') {
        return short.to_string();
    }
    let text = std::fs::read_to_string(hosts).unwrap_or_default();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let names: Vec<String> = line
            .split_whitespace()
            .skip(1)
            .map(str::to_ascii_lowercase)
            .collect();
        if !names
            .iter()
            .any(|n| n == short || n.starts_with(&format!("{short}.")))
        {
            continue;
        }
        if let Some(full) = names.iter().find(|n| n.starts_with(&format!("{short}."))) {
            return full.clone();
        }
        if let Some(first) = names.first().filter(|n| n.contains('.')) {
            return first.clone();
        }
    }
    short.to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_qualifies() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(
            &hosts,
            "127.0.0.1 localhost\n10.0.0.2 master-2.lab.example master-2 # me\n",
        )
        .unwrap();
        assert_eq!(qualify("master-2", &hosts), "master-2.lab.example");
        assert_eq!(qualify("master-3", &hosts), "master-3");
        assert_eq!(qualify("a.b", &hosts), "a.b");
    }
}
