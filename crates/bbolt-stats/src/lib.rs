//! A read-only reader of bbolt database files (the format of etcd's `member/snap/db` and of the
//! snapshots `etcdctl snapshot save` writes), written from the format as bbolt lays it out: one
//! job, no writing, no memory mapping, no unsafe code.
//!
//! A file is pages of one size. Pages 0 and 1 are meta pages (the valid one with the higher
//! transaction id is current); it names the root bucket's page, the freelist page and the high water
//! mark (`pgid`: pages in use, so `pgid * page_size` is the database's size, what bbolt's `Tx.Size`
//! reports). A bucket is a B+tree of branch and leaf pages; a leaf element flagged as a bucket holds
//! a bucket header (root page, sequence), and a root page 0 means an inline bucket: its one leaf page
//! follows the header inside the value. Integers are little-endian (bbolt writes its in-memory
//! layout, and every platform Kubernetes runs etcd on is little-endian).
//!
//! [`Db::walk`] visits the top-level buckets in key order and, for each, its entries in key order
//! (the order of bbolt's `Cursor`/`ForEach`), and checks on the way what bbolt's `Tx.Check` checks:
//! no page out of bounds or referenced twice, no reachable page freed, every page reachable or
//! free (when the freelist is stored), page types and headers, keys in order. The first problem
//! found is the error, naming the page.
//!
//! Pages are read one at a time through a [`Source`] (a file by `pread`, or bytes in memory), so a
//! database of gigabytes costs a few pages of memory and one bit per page.

use std::fmt;
use std::io;

/// The magic number of a bbolt meta page.
pub const MAGIC: u32 = 0xED0C_DAED;
/// The data file format version bbolt writes.
pub const FORMAT_VERSION: u32 = 2;

const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const META_SIZE: usize = 64;
/// The meta page's checksum covers its first 56 bytes (all fields before the checksum).
const META_CHECKSUMMED: usize = 56;
const BUCKET_HEADER: usize = 16;

const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const META_PAGE: u16 = 0x04;
const FREELIST_PAGE: u16 = 0x10;
const BUCKET_LEAF_FLAG: u32 = 0x01;
/// `pgidNoFreelist`: the freelist is not stored (bbolt's `NoFreelistSync`).
const NO_FREELIST: u64 = u64::MAX;
/// A count of 0xFFFF in a freelist page says the real count is the first id slot.
const FREELIST_COUNT_OVERFLOW: u16 = 0xFFFF;
/// B+trees of real databases are a handful of levels deep; deeper means a cycle or garbage.
const MAX_DEPTH: usize = 64;
const MIN_PAGE_SIZE: u32 = 512;
const MAX_PAGE_SIZE: u32 = 1 << 16;

/// What is wrong with a file, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }

    fn page(id: u64, msg: impl fmt::Display) -> Self {
        Error(format!("page {id}: {msg}"))
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Where the bytes of a database come from.
pub trait Source {
    /// How many bytes the database may occupy.
    fn len(&self) -> u64;
    /// Fills `buf` from `offset`; an error when that is beyond [`Source::len`].
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A database in memory.
#[derive(Debug, Clone, Copy)]
pub struct Bytes<'a>(pub &'a [u8]);

impl Source for Bytes<'_> {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| short())?;
        let end = start.checked_add(buf.len()).ok_or_else(short)?;
        let bytes = self.0.get(start..end).ok_or_else(short)?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

fn short() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "read beyond the end of the database",
    )
}

/// A file read by `pread`, limited to its first `len` bytes (a snapshot's trailer is not part of the
/// database).
#[derive(Debug)]
pub struct FileSource {
    file: std::fs::File,
    len: u64,
}

impl FileSource {
    pub fn new(file: std::fs::File, len: u64) -> Self {
        FileSource { file, len }
    }
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let end = offset.checked_add(buf.len() as u64).ok_or_else(short)?;
        if end > self.len {
            return Err(short());
        }
        self.file.read_exact_at(buf, offset)
    }
}

/// The current meta page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub page_size: u32,
    pub flags: u32,
    /// The root bucket's page.
    pub root: u64,
    pub sequence: u64,
    /// The freelist's page; `None` when the freelist is not stored.
    pub freelist: Option<u64>,
    /// The high water mark: pages in use.
    pub pgid: u64,
    pub txid: u64,
}

fn bytes<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    bytes(b, at).map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    bytes(b, at).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    bytes(b, at).map(u64::from_le_bytes)
}

/// FNV-1a, 64 bits: bbolt's meta page checksum.
pub fn fnv64a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The meta page at the start of `page` (its page header first), or why it is not a valid one.
fn parse_meta(page: &[u8]) -> Result<Meta, String> {
    let meta = page
        .get(PAGE_HEADER..PAGE_HEADER + META_SIZE)
        .ok_or("too short for a meta page")?;
    let field32 = |at| u32_at(meta, at).unwrap_or(0);
    let field64 = |at| u64_at(meta, at).unwrap_or(0);
    if field32(0) != MAGIC {
        return Err(format!("magic {:#010x}, not bbolt's {MAGIC:#010x}", field32(0)));
    }
    if field32(4) != FORMAT_VERSION {
        return Err(format!("format version {}, not {FORMAT_VERSION}", field32(4)));
    }
    let sum = fnv64a(&meta[..META_CHECKSUMMED]);
    if field64(META_CHECKSUMMED) != sum {
        return Err(format!(
            "checksum {:#018x}, computed {sum:#018x}",
            field64(META_CHECKSUMMED)
        ));
    }
    let freelist = field64(32);
    Ok(Meta {
        page_size: field32(8),
        flags: field32(12),
        root: field64(16),
        sequence: field64(24),
        freelist: (freelist != NO_FREELIST).then_some(freelist),
        pgid: field64(40),
        txid: field64(48),
    })
}

fn sane_page_size(size: u32) -> bool {
    size.is_power_of_two() && (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&size)
}

/// Receives what [`Db::walk`] finds, in key order.
pub trait Visitor {
    /// A top-level bucket begins.
    fn bucket(&mut self, _name: &[u8]) {}
    /// An entry of the current top-level bucket; `value` is `None` for a nested bucket (whose own
    /// entries are checked but not visited, as bbolt's `ForEach` does).
    fn entry(&mut self, key: &[u8], value: Option<&[u8]>);
}

/// What a walk counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Walked {
    /// Top-level buckets.
    pub buckets: u64,
    /// Entries of the top-level buckets (nested buckets count as one entry each).
    pub entries: u64,
    /// Pages reachable: the meta pages, the freelist, every bucket's pages.
    pub reachable_pages: u64,
    /// Pages the freelist names.
    pub free_pages: u64,
}

/// One bit per page.
struct Pages(Vec<u64>);

impl Pages {
    fn new(count: u64) -> Self {
        Pages(vec![0; usize::try_from(count.div_ceil(64)).unwrap_or(0)])
    }

    fn get(&self, id: u64) -> bool {
        let (word, bit) = ((id / 64) as usize, id % 64);
        self.0.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    fn set(&mut self, id: u64) {
        let (word, bit) = ((id / 64) as usize, id % 64);
        if let Some(w) = self.0.get_mut(word) {
            *w |= 1 << bit;
        }
    }
}

/// The state of a walk: which pages were reached, which are free.
struct State {
    reached: Pages,
    free: Pages,
    walked: Walked,
}

/// A database, opened for reading.
pub struct Db<S> {
    src: S,
    meta: Meta,
}

impl<S> fmt::Debug for Db<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").field("meta", &self.meta).finish()
    }
}

/// A page as read: its id, bytes (overflow pages included) and header fields.
struct Page {
    id: u64,
    bytes: Vec<u8>,
    flags: u16,
    count: u16,
}

impl<S: Source> Db<S> {
    /// Reads and checks the meta pages: magic, format version, checksum; the current one (the valid
    /// one with the higher transaction id) must fit in `src`.
    pub fn open(src: S) -> Result<Db<S>, Error> {
        let len = src.len();
        let first_len = len.min(u64::from(MAX_PAGE_SIZE)) as usize;
        if first_len < PAGE_HEADER + META_SIZE {
            return Err(Error::new(format!("{len} bytes: too short for a bbolt database")));
        }
        let mut first = vec![0; first_len];
        src.read_at(0, &mut first)
            .map_err(|e| Error::new(format!("cannot read the first meta page: {e}")))?;
        let meta0 = parse_meta(&first);
        let read_meta1 = |size: u32| -> Result<Meta, String> {
            let mut page = vec![0; PAGE_HEADER + META_SIZE];
            src.read_at(u64::from(size), &mut page)
                .map_err(|e| format!("cannot read it: {e}"))?;
            let meta = parse_meta(&page)?;
            if meta.page_size == size {
                Ok(meta)
            } else {
                Err(format!("it says page size {}", meta.page_size))
            }
        };
        let meta1 = match &meta0 {
            Ok(m) if sane_page_size(m.page_size) => read_meta1(m.page_size),
            Ok(m) => Err(format!("meta page 0 says page size {}", m.page_size)),
            // The first meta page is damaged: find the second at the usual page sizes.
            // (What is wrong at 4096 bytes, the usual size, is the one reported.)
            Err(_) => [8192, 16384, 32768, 65536, 512, 1024, 2048]
                .into_iter()
                .map(read_meta1)
                .find(Result::is_ok)
                .unwrap_or_else(|| read_meta1(4096)),
        };
        let meta = match (meta0, meta1) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(a), Err(_)) => a,
            (Err(_), Ok(b)) => b,
            (Err(e0), Err(e1)) => {
                return Err(Error::new(format!(
                    "no valid meta page: meta page 0: {e0}; meta page 1: {e1}"
                )))
            }
        };
        if !sane_page_size(meta.page_size) {
            return Err(Error::new(format!(
                "the meta page says page size {}",
                meta.page_size
            )));
        }
        let size = meta
            .pgid
            .checked_mul(u64::from(meta.page_size))
            .ok_or_else(|| Error::new(format!("the meta page says {} pages", meta.pgid)))?;
        if meta.pgid < 3 {
            return Err(Error::new(format!("the meta page says {} pages", meta.pgid)));
        }
        if size > len {
            return Err(Error::new(format!(
                "truncated: the meta page says {} pages of {} bytes ({size} bytes), there are {len} bytes",
                meta.pgid, meta.page_size
            )));
        }
        if meta.root < 2 || meta.root >= meta.pgid {
            return Err(Error::new(format!(
                "the meta page's root bucket page {} is not within pages 2 to {}",
                meta.root,
                meta.pgid - 1
            )));
        }
        Ok(Db { src, meta })
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The database's size as bbolt's `Tx.Size` says it: the high water mark times the page size.
    pub fn size(&self) -> u64 {
        self.meta.pgid * u64::from(self.meta.page_size)
    }

    /// Reads page `id` with its overflow pages.
    fn page(&self, id: u64) -> Result<Page, Error> {
        if id >= self.meta.pgid {
            return Err(Error::page(
                id,
                format!("out of bounds: high water mark {}", self.meta.pgid),
            ));
        }
        let size = u64::from(self.meta.page_size);
        let mut bytes = vec![0; self.meta.page_size as usize];
        self.src
            .read_at(id * size, &mut bytes)
            .map_err(|e| Error::page(id, format!("cannot read: {e}")))?;
        let header_id = u64_at(&bytes, 0).unwrap_or(0);
        if header_id != id {
            return Err(Error::page(id, format!("its header says page {header_id}")));
        }
        let overflow = u64::from(u32_at(&bytes, 12).unwrap_or(0));
        if overflow > 0 {
            if id + overflow >= self.meta.pgid {
                return Err(Error::page(
                    id,
                    format!(
                        "{overflow} overflow pages run past the high water mark {}",
                        self.meta.pgid
                    ),
                ));
            }
            let mut rest = vec![0; (overflow * size) as usize];
            self.src
                .read_at((id + 1) * size, &mut rest)
                .map_err(|e| Error::page(id, format!("cannot read its overflow pages: {e}")))?;
            bytes.extend_from_slice(&rest);
        }
        Ok(Page {
            id,
            flags: u16_at(&bytes, 8).unwrap_or(0),
            count: u16_at(&bytes, 10).unwrap_or(0),
            bytes,
        })
    }

    /// Marks `page` (and its overflow pages) reached: never twice, never a free page.
    fn reach(&self, state: &mut State, page: &Page) -> Result<(), Error> {
        let pages = (page.bytes.len() / self.meta.page_size as usize) as u64;
        for id in page.id..page.id + pages {
            if state.reached.get(id) {
                return Err(Error::page(id, "multiple references"));
            }
            if state.free.get(id) {
                return Err(Error::page(id, "reachable freed"));
            }
            state.reached.set(id);
            state.walked.reachable_pages += 1;
        }
        Ok(())
    }

    /// Visits every top-level bucket and its entries in key order, checking the file's structure
    /// on the way (see the crate's documentation).
    pub fn walk(&self, visitor: &mut dyn Visitor) -> Result<Walked, Error> {
        let mut state = State {
            reached: Pages::new(self.meta.pgid),
            free: Pages::new(self.meta.pgid),
            walked: Walked::default(),
        };
        for id in [0, 1] {
            state.reached.set(id);
            state.walked.reachable_pages += 1;
        }
        if let Some(id) = self.meta.freelist {
            self.read_freelist(id, &mut state)?;
        }
        // The root bucket holds only buckets.
        let mut prev = Vec::new();
        self.tree(
            self.meta.root,
            0,
            true,
            &mut state,
            &mut prev,
            &mut |db, state, key, flags, value| {
                if flags & BUCKET_LEAF_FLAG == 0 {
                    return Err(Error::new(format!(
                        "the root bucket holds {}, which is not a bucket",
                        shown_key(key)
                    )));
                }
                state.walked.buckets += 1;
                visitor.bucket(key);
                db.bucket(value, 1, state, &mut |_, state, k, flags, v| {
                    state.walked.entries += 1;
                    visitor.entry(k, (flags & BUCKET_LEAF_FLAG == 0).then_some(v));
                    Ok(())
                })
            },
        )?;
        if self.meta.freelist.is_some() {
            if let Some(id) = (0..self.meta.pgid).find(|&id| !state.reached.get(id) && !state.free.get(id)) {
                return Err(Error::page(id, "unreachable unfreed"));
            }
        }
        Ok(state.walked)
    }

    fn read_freelist(&self, id: u64, state: &mut State) -> Result<(), Error> {
        let page = self.page(id)?;
        if page.flags & FREELIST_PAGE == 0 {
            return Err(Error::page(
                id,
                format!("the freelist page has type {:#x}", page.flags),
            ));
        }
        self.reach(state, &page)?;
        let (count, first) = if page.count == FREELIST_COUNT_OVERFLOW {
            (u64_at(&page.bytes, PAGE_HEADER).unwrap_or(0), PAGE_HEADER + 8)
        } else {
            (u64::from(page.count), PAGE_HEADER)
        };
        let fits = (page.bytes.len() - first) as u64 / 8;
        if count > fits {
            return Err(Error::page(
                id,
                format!("the freelist says {count} free pages, its page holds {fits}"),
            ));
        }
        for i in 0..count as usize {
            let free = u64_at(&page.bytes, first + i * 8).unwrap_or(0);
            if free < 2 || free >= self.meta.pgid {
                return Err(Error::page(
                    free,
                    format!("freed, but out of bounds (high water mark {})", self.meta.pgid),
                ));
            }
            if state.reached.get(free) {
                return Err(Error::page(free, "reachable freed"));
            }
            if !state.free.get(free) {
                state.free.set(free);
                state.walked.free_pages += 1;
            }
        }
        Ok(())
    }

    /// The entries of the bucket whose header is `value` (a leaf element flagged as a bucket).
    fn bucket(
        &self,
        value: &[u8],
        depth: usize,
        state: &mut State,
        each: &mut Each<'_, S>,
    ) -> Result<(), Error> {
        let root = u64_at(value, 0)
            .filter(|_| value.len() >= BUCKET_HEADER)
            .ok_or_else(|| Error::new(format!("a bucket value of {} bytes", value.len())))?;
        let mut prev = Vec::new();
        if root == 0 {
            // Inline: one leaf page inside the value, with no page of its own.
            let page = Page {
                id: 0,
                flags: u16_at(value, BUCKET_HEADER + 8).unwrap_or(0),
                count: u16_at(value, BUCKET_HEADER + 10).unwrap_or(0),
                bytes: value[BUCKET_HEADER..].to_vec(),
            };
            if page.flags & LEAF_PAGE == 0 {
                return Err(Error::new(format!(
                    "an inline bucket's page has type {:#x}",
                    page.flags
                )));
            }
            return self.leaf(&page, "an inline bucket", depth, false, state, &mut prev, each);
        }
        self.tree(root, depth, false, state, &mut prev, each)
    }

    /// The entries under page `id`, in order; `prev` is the last key seen in this bucket, `top` says
    /// it is the root bucket (whose buckets `each` walks itself), `depth` counts pages and buckets
    /// from the root.
    #[allow(clippy::too_many_arguments)]
    fn tree(
        &self,
        id: u64,
        depth: usize,
        top: bool,
        state: &mut State,
        prev: &mut Vec<u8>,
        each: &mut Each<'_, S>,
    ) -> Result<(), Error> {
        if depth > MAX_DEPTH {
            return Err(Error::page(id, format!("deeper than {MAX_DEPTH} levels")));
        }
        let page = self.page(id)?;
        self.reach(state, &page)?;
        let what = format!("page {id}");
        if page.flags & BRANCH_PAGE != 0 {
            let mut last: Option<Vec<u8>> = None;
            for i in 0..usize::from(page.count) {
                let (key, child) = branch_element(&page.bytes, i)
                    .ok_or_else(|| Error::page(id, format!("branch element {i} out of bounds")))?;
                if last.as_deref().is_some_and(|l| l >= key) {
                    return Err(Error::page(id, "branch keys out of order"));
                }
                last = Some(key.to_vec());
                self.tree(child, depth + 1, top, state, prev, each)?;
            }
            Ok(())
        } else if page.flags & LEAF_PAGE != 0 {
            self.leaf(&page, &what, depth, top, state, prev, each)
        } else {
            Err(Error::page(id, format!("invalid type {:#x}", page.flags)))
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn leaf(
        &self,
        page: &Page,
        what: &str,
        depth: usize,
        top: bool,
        state: &mut State,
        prev: &mut Vec<u8>,
        each: &mut Each<'_, S>,
    ) -> Result<(), Error> {
        for i in 0..usize::from(page.count) {
            let (flags, key, value) = leaf_element(&page.bytes, i)
                .ok_or_else(|| Error::new(format!("{what}: leaf element {i} out of bounds")))?;
            if (i > 0 || !prev.is_empty()) && prev.as_slice() >= key {
                return Err(Error::new(format!("{what}: key {} out of order", shown_key(key))));
            }
            prev.clear();
            prev.extend_from_slice(key);
            each(self, state, key, flags, value)?;
            if flags & BUCKET_LEAF_FLAG != 0 && !top {
                // A nested bucket: its pages are checked, its entries not visited.
                self.bucket(value, depth + 1, state, &mut |_, _, _, _, _| Ok(()))?;
            }
        }
        Ok(())
    }
}

/// What a walk does with each leaf element: (database, state, key, flags, value).
type Each<'e, S> = dyn FnMut(&Db<S>, &mut State, &[u8], u32, &[u8]) -> Result<(), Error> + 'e;

/// Element `i` of a branch page: its key and child page.
fn branch_element(page: &[u8], i: usize) -> Option<(&[u8], u64)> {
    let at = PAGE_HEADER + i * ELEMENT;
    let pos = u32_at(page, at)? as usize;
    let ksize = u32_at(page, at + 4)? as usize;
    let child = u64_at(page, at + 8)?;
    let start = at.checked_add(pos)?;
    Some((page.get(start..start.checked_add(ksize)?)?, child))
}

/// Element `i` of a leaf page: its flags, key and value.
fn leaf_element(page: &[u8], i: usize) -> Option<(u32, &[u8], &[u8])> {
    let at = PAGE_HEADER + i * ELEMENT;
    let flags = u32_at(page, at)?;
    let pos = u32_at(page, at + 4)? as usize;
    let ksize = u32_at(page, at + 8)? as usize;
    let vsize = u32_at(page, at + 12)? as usize;
    let start = at.checked_add(pos)?;
    let mid = start.checked_add(ksize)?;
    let end = mid.checked_add(vsize)?;
    Some((flags, page.get(start..mid)?, page.get(mid..end)?))
}

/// A key for a message: printable ASCII as it is, else hex; cut after 64 bytes.
fn shown_key(key: &[u8]) -> String {
    let cut = &key[..key.len().min(64)];
    let more = if key.len() > 64 { "…" } else { "" };
    if cut.iter().all(|b| b.is_ascii_graphic()) {
        format!("key {:?}{more}", String::from_utf8_lossy(cut))
    } else {
        let hex: String = cut.iter().map(|b| format!("{b:02x}")).collect();
        format!("key 0x{hex}{more}")
    }
}

/// Whether `page` (the start of a file) looks like a bbolt meta page: for callers that want to say
/// "not a bbolt file" rather than a checksum mismatch.
pub fn looks_like_bbolt(start: &[u8]) -> bool {
    u32_at(start, PAGE_HEADER) == Some(MAGIC) && u16_at(start, 8).is_some_and(|f| f & META_PAGE != 0)
}
