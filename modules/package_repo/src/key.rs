//! The repository's signing key: an OpenPGP public key (ASCII-armored or binary), its v4
//! fingerprint, and the form each reader wants (apt's keyrings binary, as `gpg --dearmor` writes
//! them, or armored when named `.asc`; rpm's armored). Nothing here trusts a key: the module
//! installs one only when its fingerprint is the pinned one.

use sha1::{Digest, Sha1};

/// A key file read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The packets, dearmored.
    pub binary: Vec<u8>,
    /// The primary key's v4 fingerprint: 40 uppercase hex digits.
    pub fingerprint: String,
}

impl Key {
    /// The key as a file for `armored` readers (rpm, apt's `.asc` keyrings) or binary ones. Armored
    /// anew rather than copied, so that nothing but the checked packets is written (not a second
    /// block after the first one's end).
    pub fn bytes(&self, armored: bool) -> Vec<u8> {
        if armored {
            armor(&self.binary).into_bytes()
        } else {
            self.binary.clone()
        }
    }
}

/// `fingerprint` as [`Key::fingerprint`] spells it: without spaces, uppercase.
pub fn normalized(fingerprint: &str) -> String {
    fingerprint
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase()
}

/// Whether `fingerprint` is one a v4 key can have: 40 hex digits (spaces aside).
pub fn is_v4_fingerprint(fingerprint: &str) -> bool {
    let n = normalized(fingerprint);
    n.len() == 40 && n.bytes().all(|b| b.is_ascii_hexdigit())
}

const BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
const END: &str = "-----END PGP PUBLIC KEY BLOCK-----";

/// Reads a key file: one public key (a primary key with its user ids, signatures and subkeys).
/// A file holding several primary keys is refused: apt would trust every one of them.
pub fn parse(bytes: &[u8]) -> Result<Key, String> {
    let text = std::str::from_utf8(bytes).ok();
    let armored = text.filter(|t| t.trim_start().starts_with("-----BEGIN PGP"));
    let binary = match armored {
        Some(text) => dearmor(text)?,
        None => bytes.to_vec(),
    };
    let packets = packets(&binary)?;
    let Some(&(tag, ref body)) = packets.first() else {
        return Err("the file holds no OpenPGP packet".into());
    };
    if tag != 6 {
        return Err(format!(
            "expected an OpenPGP public key, but the first packet is of type {tag}{}",
            if tag == 5 { " (a secret key)" } else { "" }
        ));
    }
    let primaries = packets.iter().filter(|(t, _)| *t == 6).count();
    if primaries > 1 {
        return Err(format!(
            "the file holds {primaries} public keys; expected one (every key in a keyring is trusted)"
        ));
    }
    let body = &binary[body.clone()];
    match body.first() {
        Some(4) => {}
        Some(v) => {
            return Err(format!(
                "the key is a version {v} key; only v4 fingerprints are supported"
            ))
        }
        None => return Err("the public key packet is empty".into()),
    }
    let len = u16::try_from(body.len()).map_err(|_| "the public key packet is too long".to_string())?;
    let mut sha = Sha1::new();
    sha.update([0x99]);
    sha.update(len.to_be_bytes());
    sha.update(body);
    let fingerprint = sha
        .finalize()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<String>();
    Ok(Key { binary, fingerprint })
}

/// Each packet's tag and the range of its body (RFC 4880 section 4.2, old and new headers).
fn packets(data: &[u8]) -> Result<Vec<(u8, std::ops::Range<usize>)>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    let truncated = || "the key is cut short (a packet runs past the end)".to_string();
    while at < data.len() {
        let ctb = data[at];
        if ctb & 0x80 == 0 {
            return Err(format!("not an OpenPGP key (byte {at} is not a packet header)"));
        }
        let byte = |i: usize| data.get(i).copied().map(usize::from).ok_or_else(truncated);
        let (tag, header, len) = if ctb & 0x40 != 0 {
            let first = byte(at + 1)?;
            let (header, len) = match first {
                0..=191 => (2, first),
                192..=223 => (3, ((first - 192) << 8) + byte(at + 2)? + 192),
                255 => (
                    6,
                    (byte(at + 2)? << 24) | (byte(at + 3)? << 16) | (byte(at + 4)? << 8) | byte(at + 5)?,
                ),
                _ => return Err("a packet has a partial length, which keys never use".into()),
            };
            (ctb & 0x3f, header, len)
        } else {
            let (header, len) = match ctb & 3 {
                0 => (2, byte(at + 1)?),
                1 => (3, (byte(at + 1)? << 8) | byte(at + 2)?),
                2 => (
                    5,
                    (byte(at + 1)? << 24) | (byte(at + 2)? << 16) | (byte(at + 3)? << 8) | byte(at + 4)?,
                ),
                _ => (1, data.len() - at - 1),
            };
            ((ctb >> 2) & 0x0f, header, len)
        };
        let start = at + header;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= data.len())
            .ok_or_else(truncated)?;
        out.push((tag, start..end));
        at = end;
    }
    Ok(out)
}

/// The packets of an ASCII-armored public key block; its checksum, when present, must match.
fn dearmor(text: &str) -> Result<Vec<u8>, String> {
    let mut lines = text.lines().map(str::trim_end);
    if !lines.by_ref().any(|l| l.trim_start() == BEGIN) {
        return Err(format!("expected an armored public key ({BEGIN})"));
    }
    // Armor headers (`Comment: ...`) up to the first blank line.
    let mut body: Vec<&str> = Vec::new();
    let mut in_headers = true;
    let mut checksum = None;
    let mut ended = false;
    for line in lines.by_ref() {
        if line == END {
            ended = true;
            break;
        }
        if in_headers {
            if line.is_empty() {
                in_headers = false;
                continue;
            }
            if line.contains(": ") {
                continue;
            }
            in_headers = false;
        }
        if let Some(crc) = line.strip_prefix('=') {
            checksum = Some(crc);
        } else if !line.is_empty() {
            body.push(line);
        }
    }
    if !ended {
        return Err(format!("the armored key has no {END} line"));
    }
    if lines.any(|l| l.contains("-----BEGIN PGP")) {
        return Err("the file holds more than one armored block; expected one public key".into());
    }
    let data = base64_decode(&body.concat()).ok_or("the armored key is not valid base64")?;
    if let Some(crc) = checksum {
        let given = base64_decode(crc).ok_or("the armor checksum is not valid base64")?;
        if given != crc24(&data).to_be_bytes()[1..] {
            return Err("the armor checksum does not match: the key is damaged".into());
        }
    }
    Ok(data)
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)?;
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// OpenPGP's armor checksum (RFC 4880 section 6.1).
fn crc24(data: &[u8]) -> u32 {
    let mut crc: u32 = 0x00B7_04CE;
    for &b in data {
        crc ^= u32::from(b) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x0100_0000 != 0 {
                crc ^= 0x0186_4CFB;
            }
        }
    }
    crc & 0x00FF_FFFF
}

/// `binary` as an armored public key block, as `gpg --armor --export` writes it.
pub fn armor(binary: &[u8]) -> String {
    let encoded = base64_encode(binary);
    let mut out = format!("{BEGIN}\n\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push('=');
    out.push_str(&base64_encode(&crc24(binary).to_be_bytes()[1..]));
    out.push('\n');
    out.push_str(END);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    /// The fingerprint gpg printed for the fixture key.
    fn gpg_says(name: &str) -> String {
        String::from_utf8(fixture(&format!("{name}.fingerprint")))
            .unwrap()
            .trim()
            .to_string()
    }

    #[test]
    fn fingerprints_are_the_ones_gpg_computes() {
        let a = parse(&fixture("key-a.asc")).unwrap();
        assert_eq!(a.fingerprint, gpg_says("key-a"));
        assert_eq!(a.binary, fixture("key-a.gpg"));
        assert_eq!(
            parse(&fixture("key-a.gpg")).unwrap().fingerprint,
            gpg_says("key-a")
        );
        // ed25519, a shorter packet: the same computation.
        let b = parse(&fixture("key-b.asc")).unwrap();
        assert_eq!(b.fingerprint, gpg_says("key-b"));
        assert_ne!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn new_format_packet_headers_read_the_same() {
        // Key A's packets, each rewritten with a new-format header (two-octet lengths).
        let old = fixture("key-a.gpg");
        let mut new = Vec::new();
        for (tag, body) in packets(&old).unwrap() {
            let len = body.len();
            new.push(0xC0 | tag);
            if len < 192 {
                new.push(len as u8);
            } else {
                let n = len - 192;
                new.extend([(n >> 8) as u8 + 192, (n & 0xff) as u8]);
            }
            new.extend_from_slice(&old[body]);
        }
        assert_ne!(new, old);
        assert_eq!(parse(&new).unwrap().fingerprint, gpg_says("key-a"));
    }

    #[test]
    fn armor_round_trips_and_gpg_armor_is_checked() {
        let binary = fixture("key-a.gpg");
        let armored = armor(&binary);
        let key = parse(armored.as_bytes()).unwrap();
        assert_eq!(key.binary, binary);
        // Byte for byte what gpg --armor --export wrote, checksum line included.
        let gpg = String::from_utf8(fixture("key-a.asc")).unwrap();
        assert_eq!(armored, gpg);
        assert_eq!(key.bytes(true), gpg.as_bytes());
        assert_eq!(parse(gpg.as_bytes()).unwrap().bytes(false), binary);
        // A second block after the first one's end is not silently dropped (nor written).
        let two = format!("{gpg}{}", String::from_utf8(fixture("key-b.asc")).unwrap());
        assert!(parse(two.as_bytes())
            .unwrap_err()
            .contains("more than one armored block"));
    }

    #[test]
    fn damaged_or_foreign_files_are_refused() {
        let gpg = String::from_utf8(fixture("key-a.asc")).unwrap();
        // One character of the body changed: the checksum no longer matches.
        let line = gpg.lines().nth(3).unwrap().to_string();
        let flipped: String = line
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i == 10 {
                    if c == 'A' {
                        'B'
                    } else {
                        'A'
                    }
                } else {
                    c
                }
            })
            .collect();
        let damaged = gpg.replacen(&line, &flipped, 1);
        assert!(parse(damaged.as_bytes()).unwrap_err().contains("checksum"));
        let cut = &fixture("key-a.gpg")[..300];
        assert!(parse(cut).unwrap_err().contains("cut short"));
        assert!(parse(b"hello").unwrap_err().contains("not an OpenPGP key"));
        assert!(parse(b"").unwrap_err().contains("no OpenPGP packet"));
        assert!(parse(gpg.replace(END, "").as_bytes())
            .unwrap_err()
            .contains("END"));
        // A user id packet first: not a key.
        assert!(parse(&[0xB4, 1, b'x'])
            .unwrap_err()
            .contains("first packet is of type 13"));
        // Two keys in one file: refused, whatever the first one is.
        let mut two = fixture("key-a.gpg");
        two.extend(parse(&fixture("key-b.asc")).unwrap().binary);
        assert!(parse(&two).unwrap_err().contains("holds 2 public keys"));
        // A v5 key: the fingerprint is computed otherwise.
        assert!(parse(&[0x98, 2, 5, 0]).unwrap_err().contains("version 5"));
    }

    #[test]
    fn fingerprints_compare_without_case_or_spaces() {
        assert_eq!(normalized("0e57 bcce 4d01 EC30"), "0E57BCCE4D01EC30");
        assert!(is_v4_fingerprint(
            "0E57 BCCE 4D01 EC30 D459  29FC CB4B FB28 AAAA DA12"
        ));
        assert!(!is_v4_fingerprint("0E57BCCE4D01EC30D45929FCCB4BFB28AAAADA1"));
        assert!(!is_v4_fingerprint("0E57BCCE4D01EC30D45929FCCB4BFB28AAAADA1G"));
        assert!(!is_v4_fingerprint(""));
    }
}
