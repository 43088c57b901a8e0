//! Verifying a snapshot file: the sha256 etcd appends to every snapshot its v3 API sends, and the
//! facts `etcdctl snapshot status` (etcd 3.4) reports, computed from the bbolt database itself.
//!
//! etcd's maintenance server sends the database (bbolt's `Tx.WriteTo`, a whole number of pages) and
//! then one more message holding the sha256 of everything it sent; a client concatenates the
//! messages. So a snapshot is `pgid * page_size` bytes of database and 32 bytes of digest, and
//! `etcdctl snapshot restore` recognises the digest by the size (`size % 512 == 32`) and refuses a
//! database whose sha256 differs (etcd v3.4 `clientv3/snapshot/v3_snapshot.go`, `saveDB`; the server
//! side in `etcdserver/api/v3rpc/maintenance.go`, `Snapshot`).
//!
//! The status is what `v3Manager.Status` computes in the same file: a CRC-32C (Castagnoli) over every
//! top-level bucket's name followed by each of its keys and values in order, the number of entries
//! of all buckets (`totalKey`), the main revision of the last key of bucket `key` (its first 8 bytes,
//! big-endian), and the database's size as bbolt's `Tx.Size` says it.

use bbolt_stats::{Db, FileSource, Visitor};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// What a verified snapshot is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Facts {
    /// The file's size (database and digest).
    pub size: u64,
    /// sha256 of the whole file, as `sha256sum` prints it.
    pub sha256: String,
    /// The sha256 etcd appended, which the database matches.
    pub db_sha256: String,
    /// `etcdctl snapshot status`'s hash, revision, totalKey and totalSize.
    pub hash: u32,
    pub revision: i64,
    pub total_key: u64,
    pub total_size: u64,
}

/// The digest etcd appends.
const DIGEST: u64 = 32;
/// bbolt's smallest database: two meta pages, a freelist and a root page of 512 bytes.
const SMALLEST: u64 = 4 * 512;

/// Reads the snapshot at `path` and checks it; what is wrong, in words, otherwise.
pub fn verify(path: &Path) -> Result<Facts, String> {
    let shown = path.display();
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let size = file
        .metadata()
        .map_err(|e| format!("cannot inspect {shown}: {e}"))?
        .len();
    if size < SMALLEST + DIGEST {
        return Err(format!("{shown} is {size} bytes, too small for an etcd snapshot"));
    }
    let db_len = size - DIGEST;
    if !db_len.is_multiple_of(512) {
        return Err(format!(
            "{shown} carries no sha256 (its size, {size} bytes, is not a whole number of 512-byte \
             blocks plus 32): not a snapshot as etcd's v3 API sends it, or cut short"
        ));
    }
    let (whole, db, appended) =
        digests(&mut file, db_len).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if db != appended {
        return Err(format!(
            "{shown} is damaged: etcd appended sha256 {}, the database hashes to {}",
            hex::encode(appended),
            hex::encode(db)
        ));
    }
    let status = status(file, db_len).map_err(|e| format!("{shown}: the database is damaged: {e}"))?;
    Ok(Facts {
        size,
        sha256: hex::encode(whole),
        db_sha256: hex::encode(appended),
        hash: status.hash,
        revision: status.revision,
        total_key: status.total_key,
        total_size: status.total_size,
    })
}

/// The sha256 of the whole file and of its first `db_len` bytes, and the 32 bytes after those, in
/// one pass: the whole file's digest continues from the database's state.
fn digests(file: &mut std::fs::File, db_len: u64) -> std::io::Result<([u8; 32], [u8; 32], [u8; 32])> {
    let mut db = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut left = db_len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(buf.len()));
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        db.update(&buf[..n]);
        left -= n as u64;
    }
    let mut appended = [0u8; 32];
    file.read_exact(&mut appended)?;
    let mut whole = db.clone();
    whole.update(appended);
    Ok((whole.finalize().into(), db.finalize().into(), appended))
}

/// `etcdctl snapshot status` of a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub hash: u32,
    pub revision: i64,
    pub total_key: u64,
    pub total_size: u64,
}

/// The status of the database in the first `db_len` bytes of `file`, after bbolt's checks.
pub fn status(file: std::fs::File, db_len: u64) -> Result<Status, String> {
    let db = Db::open(FileSource::new(file, db_len)).map_err(|e| e.to_string())?;
    if db.size() != db_len {
        return Err(format!(
            "it holds {db_len} bytes but its meta page says {} (a snapshot holds exactly its database)",
            db.size()
        ));
    }
    let mut seen = StatusVisitor::default();
    db.walk(&mut seen).map_err(|e| e.to_string())?;
    if let Some(len) = seen.short_revision {
        return Err(format!("bucket `key` holds a key of {len} bytes, not a revision"));
    }
    Ok(Status {
        hash: seen.crc.sum(),
        revision: seen.revision,
        total_key: seen.total_key,
        total_size: db.size(),
    })
}

#[derive(Default)]
struct StatusVisitor {
    crc: Crc32c,
    in_key_bucket: bool,
    revision: i64,
    total_key: u64,
    short_revision: Option<usize>,
}

impl Visitor for StatusVisitor {
    fn bucket(&mut self, name: &[u8]) {
        self.crc.update(name);
        self.in_key_bucket = name == b"key";
    }

    fn entry(&mut self, key: &[u8], value: Option<&[u8]>) {
        self.crc.update(key);
        self.crc.update(value.unwrap_or_default());
        if self.in_key_bucket {
            match key.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                Some(main) => self.revision = i64::from_be_bytes(main),
                None => self.short_revision = Some(key.len()),
            }
        }
        self.total_key += 1;
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as Go's `crc32.New(crc32.MakeTable(
/// crc32.Castagnoli))` computes it over successive writes.
#[derive(Debug, Clone, Copy)]
pub struct Crc32c(u32);

impl Default for Crc32c {
    fn default() -> Self {
        Crc32c(!0)
    }
}

const fn crc32c_table() -> [[u32; 256]; 8] {
    let mut table = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        table[0][i] = c;
        i += 1;
    }
    // Slicing by 8: table[t][i] is the CRC of byte i followed by t zero bytes.
    let mut t = 1;
    while t < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = table[t - 1][i];
            table[t][i] = (prev >> 8) ^ table[0][(prev & 0xff) as usize];
            i += 1;
        }
        t += 1;
    }
    table
}

static CRC32C: [[u32; 256]; 8] = crc32c_table();

impl Crc32c {
    pub fn update(&mut self, data: &[u8]) {
        let mut crc = self.0;
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let lo = crc ^ u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            crc = CRC32C[7][(lo & 0xff) as usize]
                ^ CRC32C[6][((lo >> 8) & 0xff) as usize]
                ^ CRC32C[5][((lo >> 16) & 0xff) as usize]
                ^ CRC32C[4][(lo >> 24) as usize]
                ^ CRC32C[3][c[4] as usize]
                ^ CRC32C[2][c[5] as usize]
                ^ CRC32C[1][c[6] as usize]
                ^ CRC32C[0][c[7] as usize];
        }
        for &b in chunks.remainder() {
            crc = (crc >> 8) ^ CRC32C[0][((crc ^ u32::from(b)) & 0xff) as usize];
        }
        self.0 = crc;
    }

    pub fn sum(&self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn crc(parts: &[&[u8]]) -> u32 {
        let mut c = Crc32c::default();
        for p in parts {
            c.update(p);
        }
        c.sum()
    }

    #[test]
    fn crc32c_check_values_whatever_the_split() {
        assert_eq!(crc(&[b"123456789"]), 0xE306_9283);
        assert_eq!(crc(&[b"1234", b"", b"56789"]), 0xE306_9283);
        assert_eq!(crc(&[]), 0);
        // 32 zero bytes (RFC 3720, B.4).
        assert_eq!(crc(&[&[0u8; 32]]), 0x8A91_36AA);
        assert_eq!(crc(&[&[0xffu8; 32]]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc(&[&ascending]), 0x46DD_794E);
        assert_eq!(
            crc(&[&ascending[..3], &ascending[3..17], &ascending[17..]]),
            0x46DD_794E
        );
    }
}
