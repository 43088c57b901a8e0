#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Verification without etcd, on a snapshot etcd 3.4.23 wrote (`etcdctl snapshot save`, three puts)
//! and what `etcdctl snapshot status -w json` said of it (tests/fixtures): the same facts, and every
//! kind of damage refused with a message saying what is wrong.

use etcd_snapshot::verify;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A copy of the fixture snapshot, changed by `damage`.
fn copy_with(dir: &Path, damage: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(fixture("etcd-3.4.23.db")).unwrap();
    damage(&mut bytes);
    let path = dir.join("copy.db");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn the_facts_are_what_etcdctl_snapshot_status_said() {
    let facts = verify(&fixture("etcd-3.4.23.db")).unwrap();
    let status: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("etcd-3.4.23.status.json")).unwrap()).unwrap();
    assert_eq!(facts.hash, status["hash"].as_u64().unwrap() as u32);
    assert_eq!(facts.revision, status["revision"].as_i64().unwrap());
    assert_eq!(facts.total_key, status["totalKey"].as_u64().unwrap());
    assert_eq!(facts.total_size, status["totalSize"].as_u64().unwrap());
    assert_eq!(facts.size, facts.total_size + 32);
    // sha256 is the whole file's (what sha256sum prints); db_sha256 the one etcd appended.
    use sha2::Digest;
    let bytes = std::fs::read(fixture("etcd-3.4.23.db")).unwrap();
    assert_eq!(facts.sha256, hex::encode(sha2::Sha256::digest(&bytes)));
    assert_eq!(facts.db_sha256, hex::encode(&bytes[bytes.len() - 32..]));
}

#[test]
fn one_flipped_byte_anywhere_in_the_database_fails_the_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let len = std::fs::metadata(fixture("etcd-3.4.23.db")).unwrap().len() as usize;
    // The meta page, a data page, unused space at the end of a page, the last byte before the digest.
    for at in [20, 3 * 4096 + 40, 4096 * 2 - 1, len - 33] {
        let path = copy_with(dir.path(), |b| b[at] ^= 0x01);
        let err = verify(&path).unwrap_err();
        assert!(
            err.contains("is damaged: etcd appended sha256"),
            "byte {at}: {err}"
        );
    }
    // And in the digest itself.
    let path = copy_with(dir.path(), |b| b[len - 1] ^= 0x80);
    assert!(verify(&path).unwrap_err().contains("is damaged"));
}

#[test]
fn a_cut_or_bare_database_is_not_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_with(dir.path(), |b| b.truncate(b.len() - 32));
    let err = verify(&path).unwrap_err();
    assert!(err.contains("carries no sha256"), "{err}");
    let path = copy_with(dir.path(), |b| b.truncate(b.len() - 100));
    assert!(verify(&path).unwrap_err().contains("carries no sha256"));
    // Cut by whole pages, the last 32 bytes left are taken for the digest, and do not match.
    let path = copy_with(dir.path(), |b| b.truncate(b.len() - 4096));
    assert!(verify(&path).unwrap_err().contains("is damaged"));
    let path = copy_with(dir.path(), |b| b.truncate(100));
    assert!(verify(&path).unwrap_err().contains("too small"));
    let err = verify(&dir.path().join("missing.db")).unwrap_err();
    assert!(err.contains("cannot open"), "{err}");
}

#[test]
fn a_damaged_database_with_a_matching_digest_fails_bbolts_checks() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    // Damage a page header (page 3 claims to be page 9) and re-seal it, as a rewriting attacker or a
    // buggy copier would: the sha256 holds, the database does not.
    let path = copy_with(dir.path(), |b| {
        let db_len = b.len() - 32;
        b[3 * 4096] = 9;
        let sum = sha2::Sha256::digest(&b[..db_len]);
        b[db_len..].copy_from_slice(&sum);
    });
    let err = verify(&path).unwrap_err();
    assert!(err.contains("the database is damaged"), "{err}");
    assert!(err.contains("page 3"), "{err}");
}
