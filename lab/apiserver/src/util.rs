//! Small helpers: timestamps, UIDs, random name suffixes.

use std::time::{SystemTime, UNIX_EPOCH};

/// RFC 3339 UTC time with second precision, like Kubernetes' `metav1.Time`.
pub use module_kit::time::rfc3339;

/// Now, formatted.
pub fn now_str() -> String {
    rfc3339(SystemTime::now())
}

/// A small deterministic PRNG (xorshift64*), enough for names and UIDs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock unless a seed is given.
    pub fn new(seed: Option<u64>) -> Rng {
        let s = seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9E37_79B9_7F4A_7C15)
        });
        Rng(s | 1)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A version-4 style UUID.
    pub fn uid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    /// Kubernetes' 5-character name suffix alphabet (no vowels, no confusable digits).
    pub fn suffix(&mut self, n: usize) -> String {
        const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..n)
            .map(|_| {
                let i = (self.next_u64() % ALPHA.len() as u64) as usize;
                ALPHA.get(i).copied().unwrap_or(b'x') as char
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_time() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_709_251_199)),
            "2024-02-29T23:59:59Z"
        );
    }

    #[test]
    fn uids_look_right() {
        let mut r = Rng::new(Some(7));
        let u = r.uid();
        assert_eq!(u.len(), 36);
        assert_ne!(u, r.uid());
        assert_eq!(r.suffix(5).len(), 5);
    }
}
