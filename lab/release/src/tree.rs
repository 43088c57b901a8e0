//! Writing releases into a dl.k8s.io-shaped directory.

use kube_version::Version;
use sha1::Digest;
use std::collections::BTreeMap;
use std::path::Path;

/// The checksum files a release publishes next to each binary, as the real dl.k8s.io does: md5 and
/// sha1 until 1.17 (kubernetes/release PR #868), sha512 from 1.12 (PR #630), sha256 from 1.16 (PR #849).
pub fn checksum_kinds(version: Version) -> &'static [&'static str] {
    match (version.major, version.minor) {
        (1, m) if m < 12 => &["md5", "sha1"],
        (1, m) if m < 16 => &["md5", "sha1", "sha512"],
        (1, m) if m < 18 => &["md5", "sha1", "sha256", "sha512"],
        _ => &["sha256", "sha512"],
    }
}

fn digest_hex(kind: &str, data: &[u8]) -> String {
    match kind {
        "md5" => hex::encode(md5::Md5::digest(data)),
        "sha1" => hex::encode(sha1::Sha1::digest(data)),
        "sha256" => hex::encode(sha2::Sha256::digest(data)),
        _ => hex::encode(sha2::Sha512::digest(data)),
    }
}

/// Writes `kubeadm` of `version` for `arch` plus its checksum files under `root`.
pub fn write_release(root: &Path, version: Version, arch: &str, kubeadm: &[u8]) -> std::io::Result<()> {
    let dir = root.join(version.to_string()).join("bin/linux").join(arch);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("kubeadm"), kubeadm)?;
    for kind in checksum_kinds(version) {
        // The real files hold the bare hex digest, no file name and no newline.
        std::fs::write(dir.join(format!("kubeadm.{kind}")), digest_hex(kind, kubeadm))?;
    }
    Ok(())
}

/// Writes the channel files (`stable.txt`, `stable-X.Y.txt`, and the `latest` ones) for the
/// releases present under `root`.
pub fn write_channels(root: &Path) -> std::io::Result<()> {
    // Releases only: the channels never name a pre-release, which the lab does not publish.
    let mut versions: Vec<Version> = std::fs::read_dir(root)?
        .filter_map(|e| e.ok())
        .filter_map(|e| Version::parse(&e.file_name().to_string_lossy()))
        .filter(|v| v.pre.is_none())
        .collect();
    versions.sort();
    let mut newest_by_minor: BTreeMap<(u32, u32), Version> = BTreeMap::new();
    for v in &versions {
        newest_by_minor.insert(v.minor_release(), *v);
    }
    if let Some(newest) = versions.last() {
        for channel in ["stable", "latest"] {
            std::fs::write(root.join(format!("{channel}.txt")), format!("{newest}\n"))?;
        }
    }
    for ((major, minor), v) in newest_by_minor {
        for channel in ["stable", "latest"] {
            std::fs::write(
                root.join(format!("{channel}-{major}.{minor}.txt")),
                format!("{v}\n"),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        let a = Version::parse("v1.9.2").unwrap();
        let b = Version::parse("1.10.0").unwrap();
        assert!(a < b);
        assert_eq!(a.to_string(), "v1.9.2");
        assert_eq!(Version::parse("1.9"), None);
        assert_eq!(Version::parse("1.9.2.1"), None);
        assert_eq!(Version::parse("v1.x.2"), None);
    }

    #[test]
    fn channels_name_the_newest_release_of_each_minor() {
        let root = std::env::temp_dir().join(format!("lab-release-channels-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["v1.9.2", "v1.9.11", "v1.10.13", "v1.11.0-rc.1", "notes"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        write_channels(&root).unwrap();
        let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap();
        assert_eq!(read("stable.txt"), "v1.10.13\n");
        assert_eq!(read("latest.txt"), "v1.10.13\n");
        assert_eq!(read("stable-1.9.txt"), "v1.9.11\n");
        assert_eq!(read("latest-1.10.txt"), "v1.10.13\n");
        assert!(!root.join("stable-1.11.txt").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn checksum_files_follow_the_real_history() {
        let v = |s| Version::parse(s).unwrap();
        assert_eq!(checksum_kinds(v("1.9.2")), &["md5", "sha1"]);
        assert!(checksum_kinds(v("1.12.0")).contains(&"sha512"));
        assert!(!checksum_kinds(v("1.15.3")).contains(&"sha256"));
        assert!(checksum_kinds(v("1.16.0")).contains(&"sha256"));
    }
}
