#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The reader on databases laid out here page by page, the way bbolt lays them out: the walk's order
//! and counts, and each structural problem bbolt's Check reports, found and named (never a panic).

use bbolt_stats::{fnv64a, Bytes, Db, Visitor, MAGIC};

const PS: usize = 4096;

/// A leaf element: (key, value, is a bucket).
type Leaf<'a> = (&'a [u8], Vec<u8>, bool);

fn page(id: u64, flags: u16, count: u16) -> Vec<u8> {
    let mut p = vec![0u8; PS];
    p[0..8].copy_from_slice(&id.to_le_bytes());
    p[8..10].copy_from_slice(&flags.to_le_bytes());
    p[10..12].copy_from_slice(&count.to_le_bytes());
    p
}

/// A leaf page's bytes (header first), elements then keys and values.
fn leaf(id: u64, elems: &[Leaf<'_>]) -> Vec<u8> {
    let mut p = page(id, 0x02, elems.len() as u16);
    let mut data = 16 + elems.len() * 16;
    for (i, (k, v, bucket)) in elems.iter().enumerate() {
        let at = 16 + i * 16;
        p[at..at + 4].copy_from_slice(&u32::from(*bucket).to_le_bytes());
        p[at + 4..at + 8].copy_from_slice(&((data - at) as u32).to_le_bytes());
        p[at + 8..at + 12].copy_from_slice(&(k.len() as u32).to_le_bytes());
        p[at + 12..at + 16].copy_from_slice(&(v.len() as u32).to_le_bytes());
        p[data..data + k.len()].copy_from_slice(k);
        p[data + k.len()..data + k.len() + v.len()].copy_from_slice(v);
        data += k.len() + v.len();
    }
    p
}

fn branch(id: u64, elems: &[(&[u8], u64)]) -> Vec<u8> {
    let mut p = page(id, 0x01, elems.len() as u16);
    let mut data = 16 + elems.len() * 16;
    for (i, (k, child)) in elems.iter().enumerate() {
        let at = 16 + i * 16;
        p[at..at + 4].copy_from_slice(&((data - at) as u32).to_le_bytes());
        p[at + 4..at + 8].copy_from_slice(&(k.len() as u32).to_le_bytes());
        p[at + 8..at + 16].copy_from_slice(&child.to_le_bytes());
        p[data..data + k.len()].copy_from_slice(k);
        data += k.len();
    }
    p
}

fn bucket_header(root: u64) -> Vec<u8> {
    let mut h = root.to_le_bytes().to_vec();
    h.extend_from_slice(&0u64.to_le_bytes());
    h
}

fn meta(id: u64, root: u64, freelist: u64, pgid: u64, txid: u64) -> Vec<u8> {
    let mut p = page(id, 0x04, 0);
    let m = &mut p[16..80];
    m[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    m[4..8].copy_from_slice(&2u32.to_le_bytes());
    m[8..12].copy_from_slice(&(PS as u32).to_le_bytes());
    m[16..24].copy_from_slice(&root.to_le_bytes());
    m[32..40].copy_from_slice(&freelist.to_le_bytes());
    m[40..48].copy_from_slice(&pgid.to_le_bytes());
    m[48..56].copy_from_slice(&txid.to_le_bytes());
    let sum = fnv64a(&m[..56]);
    m[56..64].copy_from_slice(&sum.to_le_bytes());
    p
}

fn freelist(id: u64, free: &[u64]) -> Vec<u8> {
    let mut p = page(id, 0x10, free.len() as u16);
    for (i, f) in free.iter().enumerate() {
        p[16 + i * 8..24 + i * 8].copy_from_slice(&f.to_le_bytes());
    }
    p
}

/// Pages 0-1 meta, 2 freelist (page 7 free), 3 the root: bucket "key" (a branch, page 4, over
/// leaves 5 and 6) and bucket "meta" (inline, two entries).
fn pages() -> Vec<Vec<u8>> {
    let inline = {
        let mut v = bucket_header(0);
        v.extend_from_slice(&leaf(0, &[(b"a", b"1".to_vec(), false), (b"b", b"22".to_vec(), false)])[..200]);
        v
    };
    vec![
        meta(0, 3, 2, 8, 10),
        meta(1, 3, 2, 8, 9),
        freelist(2, &[7]),
        leaf(3, &[(b"key", bucket_header(4), true), (b"meta", inline, true)]),
        branch(4, &[(b"k1", 5), (b"k3", 6)]),
        leaf(
            5,
            &[(b"k1", b"v1".to_vec(), false), (b"k2", b"v2".to_vec(), false)],
        ),
        leaf(6, &[(b"k3", b"v3".to_vec(), false)]),
        page(7, 0x10, 0),
    ]
}

fn file(pages: &[Vec<u8>]) -> Vec<u8> {
    pages.concat()
}

#[derive(Default)]
struct Seen(Vec<String>);

impl Visitor for Seen {
    fn bucket(&mut self, name: &[u8]) {
        self.0.push(format!("[{}]", String::from_utf8_lossy(name)));
    }
    fn entry(&mut self, key: &[u8], value: Option<&[u8]>) {
        let v = value.map_or("<bucket>".into(), |v| String::from_utf8_lossy(v).into_owned());
        self.0.push(format!("{}={v}", String::from_utf8_lossy(key)));
    }
}

fn walk(bytes: &[u8]) -> Result<Vec<String>, String> {
    let db = Db::open(Bytes(bytes)).map_err(|e| e.to_string())?;
    let mut seen = Seen::default();
    db.walk(&mut seen).map_err(|e| e.to_string())?;
    Ok(seen.0)
}

#[test]
fn buckets_and_entries_come_in_key_order_across_pages_and_inline() {
    let bytes = file(&pages());
    let db = Db::open(Bytes(&bytes)).unwrap();
    assert_eq!(db.size(), 8 * PS as u64);
    assert_eq!(db.meta().txid, 10);
    let mut seen = Seen::default();
    let walked = db.walk(&mut seen).unwrap();
    assert_eq!(
        seen.0,
        ["[key]", "k1=v1", "k2=v2", "k3=v3", "[meta]", "a=1", "b=22"]
    );
    assert_eq!((walked.buckets, walked.entries), (2, 5));
    assert_eq!((walked.reachable_pages, walked.free_pages), (7, 1));
}

#[test]
fn a_root_bucket_spread_over_a_branch_page_is_walked_once() {
    let inline = {
        let mut v = bucket_header(0);
        v.extend_from_slice(&leaf(0, &[(b"a", b"1".to_vec(), false)])[..100]);
        v
    };
    let pages = vec![
        meta(0, 3, 2, 7, 4),
        meta(1, 3, 2, 7, 3),
        freelist(2, &[]),
        branch(3, &[(b"key", 4), (b"meta", 5)]),
        leaf(4, &[(b"key", bucket_header(6), true)]),
        leaf(5, &[(b"meta", inline, true)]),
        leaf(6, &[(b"k1", b"v1".to_vec(), false)]),
    ];
    assert_eq!(walk(&file(&pages)).unwrap(), ["[key]", "k1=v1", "[meta]", "a=1"]);
}

#[test]
fn fnv1a_64_known_values() {
    assert_eq!(fnv64a(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv64a(b"a"), 0xaf63_dc4c_8601_ec8c);
}

#[test]
fn a_damaged_meta_page_falls_back_to_the_other_and_two_are_refused() {
    let mut bytes = file(&pages());
    bytes[16 + 40] ^= 0xff; // meta 0's pgid: its checksum no longer holds
    let db = Db::open(Bytes(&bytes)).unwrap();
    assert_eq!(db.meta().txid, 9);
    bytes[PS + 16] ^= 0x01; // meta 1's magic
    let err = Db::open(Bytes(&bytes)).unwrap_err().to_string();
    assert!(err.contains("no valid meta page"), "{err}");
    assert!(err.contains("checksum"), "{err}");
    assert!(err.contains("magic"), "{err}");
}

#[test]
fn a_truncated_file_is_named_so() {
    let bytes = file(&pages());
    let err = walk(&bytes[..7 * PS]).unwrap_err();
    assert!(err.contains("truncated") && err.contains("8 pages"), "{err}");
    let err = walk(&bytes[..40]).unwrap_err();
    assert!(err.contains("too short"), "{err}");
}

/// Changes the pages of [`pages`].
type Damage = dyn Fn(&mut Vec<Vec<u8>>);

#[test]
fn bbolt_checks_problems_are_found_and_name_the_page() {
    let cases: Vec<(&str, Box<Damage>)> = vec![
        (
            "page 7: unreachable unfreed",
            Box::new(|p| p[2] = freelist(2, &[])),
        ),
        (
            "page 5: reachable freed",
            Box::new(|p| p[2] = freelist(2, &[7, 5])),
        ),
        (
            "page 5: multiple references",
            Box::new(|p| p[4] = branch(4, &[(b"k1", 5), (b"k3", 5)])),
        ),
        (
            "page 9: out of bounds",
            Box::new(|p| p[4] = branch(4, &[(b"k1", 5), (b"k3", 9)])),
        ),
        ("page 6: invalid type", Box::new(|p| p[6][8] = 0x08)),
        ("page 6: its header says page 5", Box::new(|p| p[6][0] = 5)),
        (
            "key \"k2\" out of order",
            Box::new(|p| p[6] = leaf(6, &[(b"k2", b"again".to_vec(), false)])),
        ),
        (
            "leaf element 1 out of bounds",
            Box::new(|p| p[5][16 + 16 + 8..16 + 16 + 12].copy_from_slice(&u32::MAX.to_le_bytes())),
        ),
        (
            "which is not a bucket",
            Box::new(|p| p[3] = leaf(3, &[(b"key", bucket_header(4), false)])),
        ),
    ];
    for (want, damage) in cases {
        let mut p = pages();
        damage(&mut p);
        let err = walk(&file(&p)).unwrap_err();
        assert!(err.contains(want), "want {want:?}, got {err:?}");
    }
}

#[test]
fn a_cycle_is_refused_not_followed() {
    let mut p = pages();
    p[4] = branch(4, &[(b"k1", 5), (b"k3", 4)]);
    let err = walk(&file(&p)).unwrap_err();
    assert!(err.contains("page 4: multiple references"), "{err}");
}

#[test]
fn flipped_bytes_anywhere_give_an_answer_never_a_panic() {
    let clean = file(&pages());
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut refused = 0;
    for _ in 0..3000 {
        let mut bytes = clean.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] ^= 1 << (next() % 8);
        }
        if walk(&bytes).is_err() {
            refused += 1;
        }
    }
    // Most flips land in unused page space, which bbolt's format does not cover.
    assert!(refused > 10, "{refused}");
}
