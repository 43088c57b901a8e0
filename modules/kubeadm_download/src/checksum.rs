//! Checksums: the algorithms dl.k8s.io has published over the years, pinned values, checksum files.

use sha2::Digest;
use std::fmt;
use std::io::Read;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    Sha512,
    Sha256,
    Sha1,
    Md5,
}

impl Algo {
    /// Strongest first: the order in which `checksum: auto` looks for published files.
    pub const BY_STRENGTH: [Algo; 4] = [Algo::Sha512, Algo::Sha256, Algo::Sha1, Algo::Md5];

    pub fn name(self) -> &'static str {
        match self {
            Algo::Sha512 => "sha512",
            Algo::Sha256 => "sha256",
            Algo::Sha1 => "sha1",
            Algo::Md5 => "md5",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algo::Sha512 => 128,
            Algo::Sha256 => 64,
            Algo::Sha1 => 40,
            Algo::Md5 => 32,
        }
    }

    /// sha1 and md5 catch a corrupt download but not a forged one.
    pub fn is_weak(self) -> bool {
        matches!(self, Algo::Sha1 | Algo::Md5)
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::BY_STRENGTH.into_iter().find(|a| a.name() == name)
    }
}

/// An algorithm and the digest it should produce, printed as `algo:hex`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algo: Algo,
    pub hex: String,
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algo.name(), self.hex)
    }
}

impl Checksum {
    /// Parses `algo:hex` as an operator pins it.
    pub fn parse_pinned(text: &str) -> Result<Self, String> {
        let (name, hex) = text.trim().split_once(':').ok_or_else(|| {
            format!(
                "expected `auto` or `<algo>:<hex>` (algo one of sha512, sha256, sha1, md5), got {}",
                module_kit::shown(text)
            )
        })?;
        let algo = Algo::from_name(&name.to_ascii_lowercase()).ok_or_else(|| {
            format!(
                "unknown checksum algorithm {}: use sha512, sha256, sha1 or md5",
                module_kit::shown(name)
            )
        })?;
        Self::from_hex(algo, hex).ok_or_else(|| {
            format!(
                "a {} checksum is {} hex digits, got {}",
                algo.name(),
                algo.hex_len(),
                module_kit::shown(hex)
            )
        })
    }

    /// Parses a published checksum file: the digest, optionally followed by a file name.
    pub fn parse_file(algo: Algo, content: &str) -> Option<Self> {
        Self::from_hex(algo, content.split_whitespace().next()?)
    }

    fn from_hex(algo: Algo, hex: &str) -> Option<Self> {
        let valid = hex.len() == algo.hex_len() && hex.bytes().all(|b| b.is_ascii_hexdigit());
        valid.then(|| Checksum {
            algo,
            hex: hex.to_ascii_lowercase(),
        })
    }
}

/// A running digest of one of the algorithms.
pub enum Hasher {
    Sha512(sha2::Sha512),
    Sha256(sha2::Sha256),
    Sha1(sha1::Sha1),
    Md5(md5::Md5),
}

impl Hasher {
    pub fn new(algo: Algo) -> Self {
        match algo {
            Algo::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
            Algo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algo::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algo::Md5 => Hasher::Md5(md5::Md5::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha512(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Md5(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Checksum {
        let (algo, hex) = match self {
            Hasher::Sha512(h) => (Algo::Sha512, hex::encode(h.finalize())),
            Hasher::Sha256(h) => (Algo::Sha256, hex::encode(h.finalize())),
            Hasher::Sha1(h) => (Algo::Sha1, hex::encode(h.finalize())),
            Hasher::Md5(h) => (Algo::Md5, hex::encode(h.finalize())),
        };
        Checksum { algo, hex }
    }
}

/// The digest of a file on disk.
pub fn of_file(path: &Path, algo: Algo) -> std::io::Result<Checksum> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Hasher::new(algo);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_checksums_are_validated() {
        let sha = "a".repeat(64);
        assert_eq!(
            Checksum::parse_pinned(&format!("sha256:{sha}"))
                .unwrap()
                .to_string(),
            format!("sha256:{sha}")
        );
        assert_eq!(
            Checksum::parse_pinned(&format!("SHA256:{}", "A".repeat(64)))
                .unwrap()
                .hex,
            sha
        );
        assert!(Checksum::parse_pinned(&format!("sha512:{sha}"))
            .unwrap_err()
            .contains("128 hex digits"));
        assert!(Checksum::parse_pinned("crc32:abcd")
            .unwrap_err()
            .contains("unknown checksum algorithm"));
        assert!(Checksum::parse_pinned("deadbeef").is_err());
        assert!(Checksum::parse_pinned(&format!("sha256:{}", "g".repeat(64))).is_err());
    }

    #[test]
    fn checksum_files_may_carry_a_file_name() {
        let md5 = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            Checksum::parse_file(Algo::Md5, &format!("{md5}  kubeadm\n"))
                .unwrap()
                .hex,
            md5
        );
        assert_eq!(Checksum::parse_file(Algo::Md5, md5).unwrap().hex, md5);
        assert!(Checksum::parse_file(Algo::Sha1, md5).is_none());
        assert!(Checksum::parse_file(Algo::Md5, "<html>not found</html>").is_none());
    }

    #[test]
    fn hashers_match_known_digests() {
        let digest = |algo| {
            let mut h = Hasher::new(algo);
            h.update(b"abc");
            h.finish().hex
        };
        assert_eq!(digest(Algo::Md5), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(digest(Algo::Sha1), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            digest(Algo::Sha256),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(digest(Algo::Sha512).starts_with("ddaf35a193617aba"));
    }
}
