//! Checking one bundle file against its index entry: the piece of
//! `plc-verify` that any tool receiving a bundle from elsewhere (a mirror,
//! a copy) needs too, so it takes bytes and an entry and touches no disk.
//!
//! The steps, in order: the file's framing (zstd data frames, at most one
//! leading metadata frame as other implementations write; any other
//! skippable frame is a hidden payload), its hash and size, and only when
//! the file is the one the index names, its content: decompressed within
//! the entry's `uncompressed_size`, hashed, and read line by line for the
//! counts, times and order the entry claims.

use crate::index::{chain_hash, sha256_hex, BundleEntry};
use crate::line::{OpParser, Seen, Sequencer};
use crate::repo::{content_bound, decompress_bounded};
use crate::time::Timestamp;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

/// One thing wrong with a bundle: the index field (or `file`, `content`,
/// `operation N`) it concerns, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The field or part concerned, e.g. `content_hash` or `file`.
    pub field: String,
    /// What is wrong, e.g. `index says 5f0c..., content has 9a41...`.
    pub message: String,
}

impl Problem {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The operations of a bundle at one of its ends: the instant, its text
/// as written, and the CIDs of the operations at that instant (what a
/// neighbouring bundle must not repeat).
#[derive(Clone, Debug, Default)]
pub struct Edge {
    /// The instant.
    pub time: Option<Timestamp>,
    /// createdAt as written in the first (or last) operation.
    pub text: String,
    /// CIDs of the operations at that instant.
    pub cids: Vec<String>,
}

/// What [`check_bundle`] found.
#[derive(Debug, Default)]
pub struct BundleCheck {
    /// Every problem, in the order found; empty when the file is exactly
    /// what the entry says.
    pub problems: Vec<Problem>,
    /// SHA-256 of the content, when the file was decompressed.
    pub content_hash: Option<String>,
    /// Operation lines in the content.
    pub operations: u64,
    /// The first instant of the content and its operations.
    pub first: Option<Edge>,
    /// The last instant of the content and its operations.
    pub last: Option<Edge>,
}

impl BundleCheck {
    /// True when no problem was found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Where a bundle sits in the chain, for [`check_bundle`].
#[derive(Clone, Copy, Debug)]
pub enum Link<'a> {
    /// Do not check `hash` and `parent` (the caller folds the chain itself).
    Unchecked,
    /// Bundle 1: `hash` must be sha256("plcbundle:genesis:" + content_hash)
    /// and `parent` empty (or absent, as Go writes it).
    Genesis,
    /// After the bundle whose chain hash is this: `hash` must be
    /// sha256(parent + ":" + content_hash) and `parent` this.
    After(&'a str),
}

/// Checks one bundle file (`file`, its bytes as stored) against its index
/// entry, and returns every problem found.
///
/// Checked: the framing (data frames; at most one leading skippable frame
/// with magic 0x184D2A50, the other implementations' metadata; any other
/// skippable frame or trailing bytes are reported), `compressed_hash` and
/// `compressed_size` (of the whole file, or of its data frames, as one
/// other implementation counts them), then, only if the file is the one
/// the index names, the content: decompressed into `content` (replacing
/// what it held; the caller reuses the buffer from one bundle to the
/// next) but never beyond the entry's `uncompressed_size`, then
/// `content_hash`, `uncompressed_size`, every operation line, order and
/// repeats inside the bundle, `operation_count`, `did_count`,
/// `start_time` and `end_time`; and, unless `link` is
/// [`Link::Unchecked`], `hash` and `parent`.
///
/// On return `content` holds the decompressed content when
/// [`BundleCheck::content_hash`] is `Some` (even if other checks failed),
/// and is empty otherwise.
pub fn check_bundle(
    entry: &BundleEntry,
    file: &[u8],
    link: Link<'_>,
    content: &mut Vec<u8>,
) -> BundleCheck {
    check_bundle_helped(entry, file, link, content, None)
}

/// The line scan of a bundle's content ([`scan_lines`]): what another
/// thread can do while this one hashes the content.
pub struct LineScan {
    scan: Scan,
    problems: Vec<Problem>,
}

/// Asks another thread to scan a bundle's lines: given the content, it
/// returns where the [`LineScan`] will arrive (the other thread drops its
/// handle on the content before it answers), or `None` when no thread is
/// free.
pub type Helper<'a> = &'a dyn Fn(Arc<Vec<u8>>) -> Option<Receiver<LineScan>>;

/// [`check_bundle`], with the lines scanned by `helper`'s thread, when it
/// has one free, while this one hashes the content. `plc-verify` uses it
/// for the last bundles, when the other workers have run out of bundles.
pub fn check_bundle_helped(
    entry: &BundleEntry,
    file: &[u8],
    link: Link<'_>,
    content: &mut Vec<u8>,
    helper: Option<Helper<'_>>,
) -> BundleCheck {
    let mut check = BundleCheck::default();
    let hash = sha256_hex(file);
    if check_file(entry, file, &hash, content, &mut check.problems) {
        let work = helper.map_or(Work::Here, Work::Helped);
        check_content(entry, content, link, &mut check, work);
    }
    check
}

/// Scans `content`'s lines, as [`check_bundle`] does, without hashing
/// it: for the thread helping another ([`Helper`]).
pub fn scan_lines(content: &[u8]) -> LineScan {
    let mut problems = Vec::new();
    let scan = read_lines(content, None, &mut problems);
    LineScan { scan, problems }
}

/// The first half of [`check_bundle`]: framing, stored hash (`hash`,
/// the file's SHA-256) and size, and, only when the file is the one the
/// index names, decompression into `content` within the entry's
/// `uncompressed_size`. Returns whether `content` holds the content.
fn check_file(
    entry: &BundleEntry,
    file: &[u8],
    hash: &str,
    content: &mut Vec<u8>,
    problems: &mut Vec<Problem>,
) -> bool {
    content.clear();
    let frames = read_framing(file, problems);
    if !check_stored(entry, file, hash, &frames, problems) {
        problems.push(Problem::new(
            "file",
            "not decompressed: it is not the file the index names",
        ));
        return false;
    }
    let bound = content_bound(entry);
    if let Err(e) = decompress_bounded(file, bound, content, false) {
        content.clear();
        problems.push(Problem::new(
            "file",
            format!("does not decompress within uncompressed_size ({bound} bytes): {e}"),
        ));
        return false;
    }
    true
}

/// Who hashes a bundle's content and reads its lines.
enum Work<'a> {
    /// This thread, in one pass.
    Here,
    /// The helper's thread reads the lines (when it has one free) while
    /// this one hashes.
    Helped(Helper<'a>),
}

/// The second half of [`check_bundle`]: the content's hash and size, the
/// chain link, every operation line.
fn check_content(
    entry: &BundleEntry,
    content: &mut Vec<u8>,
    link: Link<'_>,
    check: &mut BundleCheck,
    work: Work<'_>,
) {
    let (scan, content_hash, mut line_problems) = match work {
        Work::Here => scan_and_hash(content),
        Work::Helped(help) => {
            let shared = Arc::new(std::mem::take(content));
            let reply = help(Arc::clone(&shared));
            let hash = reply.as_ref().map(|_| sha256_hex(&shared));
            let lines = reply.and_then(|r| r.recv().ok());
            // The helper lets go of the content before it answers; if it
            // stopped instead, its handle may still be alive: copy.
            *content = Arc::try_unwrap(shared).unwrap_or_else(|shared| (*shared).clone());
            match (lines, hash) {
                (Some(lines), Some(hash)) => (lines.scan, hash, lines.problems),
                // No thread was free (or the helper stopped): here.
                _ => scan_and_hash(content),
            }
        }
    };
    let content: &[u8] = content;
    if entry.content_hash != content_hash {
        check.problems.push(Problem::new(
            "content_hash",
            format!(
                "index says {}, content has {content_hash}",
                entry.content_hash
            ),
        ));
    }
    if entry.uncompressed_size != content.len() as u64 {
        check.problems.push(Problem::new(
            "uncompressed_size",
            format!(
                "index says {}, content is {} bytes",
                entry.uncompressed_size,
                content.len()
            ),
        ));
    }
    check_link(entry, link, &content_hash, &mut check.problems);
    check.content_hash = Some(content_hash);
    check.problems.append(&mut line_problems);
    compare_with_entry(entry, &scan, &mut check.problems);
    check.operations = scan.operations;
    check.first = scan.first;
    check.last = scan.last;
}

/// The quick check of one bundle file: its framing, `compressed_hash`
/// and `compressed_size` only, nothing decompressed (so
/// [`BundleCheck::content_hash`] stays `None`).
pub fn check_stored_file(entry: &BundleEntry, file: &[u8]) -> BundleCheck {
    let mut check = BundleCheck::default();
    let frames = read_framing(file, &mut check.problems);
    check_stored(entry, file, &sha256_hex(file), &frames, &mut check.problems);
    check
}

/// `hash` and `parent` of `entry` against the chain before it.
pub fn check_link(entry: &BundleEntry, link: Link<'_>, content_hash: &str, out: &mut Vec<Problem>) {
    let parent = match link {
        Link::Unchecked => return,
        Link::Genesis => None,
        Link::After(p) => Some(p),
    };
    let recomputed = chain_hash(parent, content_hash);
    if entry.hash != recomputed {
        out.push(Problem::new(
            "hash",
            format!(
                "chain broken: index says {}, recomputed {recomputed}",
                entry.hash
            ),
        ));
    }
    let want_parent = parent.unwrap_or("");
    if entry.parent != want_parent {
        out.push(Problem::new(
            "parent",
            format!(
                "expected {want_parent:?} (the previous bundle's hash), found {:?}",
                entry.parent
            ),
        ));
    }
}

/// Skippable frames' magic numbers are 0x184D2A50 to 0x184D2A5F.
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE: u32 = 0x184D_2A50;
/// The other implementations' metadata frame: this exact magic, first in
/// the file.
const METADATA_MAGIC: u32 = 0x184D_2A50;

/// Where a file's data is: after a leading metadata frame, if any.
struct Framing {
    /// Bytes of the leading metadata frame (0 without one).
    metadata_len: usize,
}

/// Walks the file's frames. A leading metadata frame is noted; any other
/// skippable frame (a second one, one after a data frame, one with
/// another magic), bytes that are not a frame, and a file without a data
/// frame are problems.
fn read_framing(file: &[u8], out: &mut Vec<Problem>) -> Framing {
    let mut framing = Framing { metadata_len: 0 };
    let mut off = 0usize;
    let mut index = 0usize;
    let mut data_frames = 0usize;
    while off < file.len() {
        let rest = &file[off..];
        let magic = rest
            .get(..4)
            .map(|m| u32::from_le_bytes(m.try_into().expect("four bytes")));
        if magic.is_some_and(|m| m & SKIPPABLE_MASK == SKIPPABLE) {
            let magic = magic.expect("checked");
            let Some(len) = rest.get(4..8) else {
                out.push(Problem::new(
                    "file",
                    format!("a cut-off skippable frame header at byte {off}"),
                ));
                break;
            };
            let len = u32::from_le_bytes(len.try_into().expect("four bytes")) as usize;
            let size = 8usize.saturating_add(len);
            if index == 0 && magic == METADATA_MAGIC {
                framing.metadata_len = size.min(file.len());
            } else {
                out.push(Problem::new(
                    "file",
                    format!(
                        "a skippable frame (magic {magic:#010x}, {len} bytes of hidden payload) at byte {off}: only one leading metadata frame (magic 0x184d2a50) is allowed"
                    ),
                ));
            }
            if size > rest.len() {
                out.push(Problem::new(
                    "file",
                    format!("the skippable frame at byte {off} is cut off"),
                ));
                break;
            }
            off += size;
        } else {
            match zstd::zstd_safe::find_frame_compressed_size(rest) {
                Ok(n) if n > 0 => {
                    off += n;
                    data_frames += 1;
                }
                _ => {
                    out.push(Problem::new(
                        "file",
                        format!("{} bytes at byte {off} are not a zstd frame", rest.len()),
                    ));
                    break;
                }
            }
        }
        index += 1;
    }
    if data_frames == 0 && off >= file.len() {
        out.push(Problem::new("file", "holds no zstd data frame"));
    }
    framing
}

/// The stored file's hash and size against the entry. Returns whether
/// the file is the one the index names (its hash matches).
fn check_stored(
    entry: &BundleEntry,
    file: &[u8],
    whole_hash: &str,
    framing: &Framing,
    out: &mut Vec<Problem>,
) -> bool {
    let data = &file[framing.metadata_len..];
    let hash_ok = entry.compressed_hash == whole_hash
        || (framing.metadata_len > 0 && entry.compressed_hash == sha256_hex(data));
    if !hash_ok {
        out.push(Problem::new(
            "compressed_hash",
            format!(
                "index says {}, file has {whole_hash}",
                entry.compressed_hash
            ),
        ));
    }
    let size = entry.compressed_size;
    if size != file.len() as u64 && (framing.metadata_len == 0 || size != data.len() as u64) {
        out.push(Problem::new(
            "compressed_size",
            format!("index says {size}, file is {} bytes", file.len()),
        ));
    }
    hash_ok
}

/// What reading a bundle's lines found.
#[derive(Default)]
struct Scan {
    operations: u64,
    distinct_dids: u64,
    first: Option<Edge>,
    last: Option<Edge>,
}

/// Problems about malformed lines reported in full before they are only
/// counted.
const BAD_LINES_SHOWN: usize = 3;

/// Content is hashed this many bytes ahead of the line being read: a
/// piece small enough to stay in the core's cache until it is scanned.
const HASH_AHEAD: usize = 256 << 10;

/// A piece is hashed once the next line starts closer than this to its
/// end (most lines are shorter).
const LINE_LEAD: usize = 4 << 10;

/// [`read_lines`] and the content's SHA-256, computed in the same pass.
fn scan_and_hash(content: &[u8]) -> (Scan, String, Vec<Problem>) {
    let mut hasher = Sha256::new();
    let mut problems = Vec::new();
    let scan = read_lines(content, Some(&mut hasher), &mut problems);
    (scan, hex::encode(hasher.finalize()), problems)
}

/// Reads every operation line of `content`: each must parse, and order
/// and repeats inside the bundle are checked; counts the operations and
/// distinct DIDs and notes both ends. With `hasher`, the content is
/// hashed in the same pass, a little ahead of the line being read.
fn read_lines(content: &[u8], mut hasher: Option<&mut Sha256>, out: &mut Vec<Problem>) -> Scan {
    let mut hashed = 0usize;
    if !content.is_empty() && content.last() != Some(&b'\n') {
        out.push(Problem::new(
            "content",
            "the last operation is not followed by a newline",
        ));
    }
    let body = content.strip_suffix(b"\n").unwrap_or(content);
    let mut seq = Sequencer::default();
    let mut parser = OpParser::default();
    let mut dids = crate::index::DistinctDids::with_capacity(crate::index::BUNDLE_SIZE);
    let mut ends = EdgeTracker::default();
    let mut ops = 0u64;
    let mut bad_lines = 0;
    // The lines of `body` as `body.split(b'\n')` gives them (none when
    // it is empty), each found and parsed in one call.
    let mut start = 0;
    let mut i = 0;
    while !body.is_empty() && start <= body.len() {
        // Hashed a piece at a time, ahead of the lines about to be read
        // (a line running past the piece is hashed at the next one).
        if let Some(hasher) = hasher.as_deref_mut().filter(|_| start + LINE_LEAD > hashed) {
            let to = (hashed + HASH_AHEAD).min(content.len());
            hasher.update(&content[hashed..to]);
            hashed = to;
        }
        let (len, parsed) = parser.parse_first(&body[start..]);
        start += len + 1;
        i += 1;
        ops += 1;
        let field = || format!("operation {i}");
        let op = match parsed {
            Ok(op) => op,
            Err(r) => {
                bad_lines += 1;
                if bad_lines <= BAD_LINES_SHOWN {
                    out.push(Problem::new(field(), r));
                }
                continue;
            }
        };
        match seq.observe(&op) {
            Ok(Seen::New) => {}
            Ok(Seen::Duplicate) => out.push(Problem::new(
                field(),
                format!("{} at {} appears twice", op.cid, op.created_at),
            )),
            Err(r) => out.push(Problem::new(field(), r)),
        }
        ends.observe(op.time, op.created_at, op.cid);
        dids.insert(op.did);
    }
    if let Some(hasher) = hasher {
        hasher.update(&content[hashed..]);
    }
    if bad_lines > BAD_LINES_SHOWN {
        out.push(Problem::new(
            "content",
            format!("{} more malformed operations", bad_lines - BAD_LINES_SHOWN),
        ));
    }
    let (first, last) = ends.finish();
    Scan {
        operations: ops,
        distinct_dids: dids.count(),
        first,
        last,
    }
}

/// Follows the first and the last instant of a bundle's operations and
/// the CIDs at each, borrowing until the end.
#[derive(Default)]
struct EdgeTracker<'a> {
    first: Option<(Timestamp, Cow<'a, str>)>,
    first_cids: Vec<Cow<'a, str>>,
    last: Option<(Timestamp, Cow<'a, str>)>,
    last_cids: Vec<Cow<'a, str>>,
}

impl<'a> EdgeTracker<'a> {
    fn observe(&mut self, time: Timestamp, text: Cow<'a, str>, cid: Cow<'a, str>) {
        if self.first.is_none() {
            self.first = Some((time, text.clone()));
        }
        if self.first.as_ref().is_some_and(|(t, _)| *t == time) {
            self.first_cids.push(cid.clone());
        }
        if self.last.as_ref().is_none_or(|(t, _)| *t != time) {
            self.last_cids.clear();
        }
        self.last_cids.push(cid);
        self.last = Some((time, text));
    }

    fn finish(self) -> (Option<Edge>, Option<Edge>) {
        let edge = |end: Option<(Timestamp, Cow<'_, str>)>, cids: Vec<Cow<'_, str>>| {
            end.map(|(t, s)| Edge {
                time: Some(t),
                text: s.into_owned(),
                cids: cids.into_iter().map(Cow::into_owned).collect(),
            })
        };
        (
            edge(self.first, self.first_cids),
            edge(self.last, self.last_cids),
        )
    }
}

/// The entry's counts and times against what the lines hold.
fn compare_with_entry(entry: &BundleEntry, scan: &Scan, out: &mut Vec<Problem>) {
    if entry.operation_count != scan.operations {
        out.push(Problem::new(
            "operation_count",
            format!(
                "index says {}, file holds {}",
                entry.operation_count, scan.operations
            ),
        ));
    }
    if entry.did_count != scan.distinct_dids {
        out.push(Problem::new(
            "did_count",
            format!(
                "index says {}, file holds {}",
                entry.did_count, scan.distinct_dids
            ),
        ));
    }
    for (field, claimed, actual) in [
        ("start_time", &entry.start_time, &scan.first),
        ("end_time", &entry.end_time, &scan.last),
    ] {
        let ok = actual
            .as_ref()
            .is_some_and(|e| *claimed == e.text || same_instant(claimed, &e.text));
        if !ok {
            out.push(Problem::new(
                field,
                format!(
                    "index says {claimed}, file has {}",
                    actual.as_ref().map_or("no operations", |e| e.text.as_str())
                ),
            ));
        }
    }
}

/// Two timestamps naming the same instant (Go trims trailing zeros from
/// the fraction: ".120Z" and ".12Z" are the same).
pub fn same_instant(a: &str, b: &str) -> bool {
    matches!((Timestamp::parse(a), Timestamp::parse(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A helper with a thread of its own for every request.
    fn spawning_helper(content: Arc<Vec<u8>>) -> Option<Receiver<LineScan>> {
        let (reply, answer) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let lines = scan_lines(&content);
            drop(content);
            let _ = reply.send(lines);
        });
        Some(answer)
    }

    fn declining_helper(_: Arc<Vec<u8>>) -> Option<Receiver<LineScan>> {
        None
    }

    #[test]
    fn a_helped_check_finds_exactly_what_a_check_on_one_thread_finds() {
        let ops = crate::synth::generate(300, &crate::synth::SynthOptions::default());
        let lines: Vec<&[u8]> = ops.iter().map(|o| &o.line[..]).collect();
        let join = |lines: &[&[u8]]| lines.iter().flat_map(|l| [*l, b"\n"].concat()).collect();
        let mut swapped = lines.clone();
        swapped.swap(10, 200);
        let mut repeated = lines.clone();
        repeated[50] = lines[49];
        let mut malformed = lines.clone();
        malformed[7] = b"{\"did\":1}";
        let good: Vec<u8> = join(&lines);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("good", good.clone()),
            ("out of order", join(&swapped)),
            ("repeated", join(&repeated)),
            ("malformed", join(&malformed)),
            ("no final newline", good[..good.len() - 1].to_vec()),
        ];
        for (name, content) in cases {
            let file = crate::seal::compress_bundle(&content).unwrap();
            let entry = BundleEntry {
                bundle_number: 1,
                start_time: "2023-01-01T00:00:00.000Z".into(),
                end_time: "2023-01-01T00:00:00.000Z".into(),
                operation_count: 300,
                did_count: 300,
                hash: String::new(),
                content_hash: hex::encode(Sha256::digest(&good)),
                parent: String::new(),
                compressed_hash: hex::encode(Sha256::digest(&file)),
                compressed_size: file.len() as u64,
                uncompressed_size: content.len() as u64,
                cursor: String::new(),
                created_at: String::new(),
            };
            let mut alone = Vec::new();
            let want = check_bundle(&entry, &file, Link::Unchecked, &mut alone);
            assert_eq!(alone, content, "{name}");
            assert_eq!(
                want.content_hash.as_deref(),
                Some(hex::encode(Sha256::digest(&content)).as_str()),
                "{name}"
            );
            assert!(!want.ok(), "{name}: {:?}", want.problems);
            for helper in [spawning_helper as fn(_) -> _, declining_helper] {
                let mut helped = Vec::new();
                let got =
                    check_bundle_helped(&entry, &file, Link::Unchecked, &mut helped, Some(&helper));
                assert_eq!(format!("{got:?}"), format!("{want:?}"), "{name}");
                assert_eq!(helped, content, "{name}: the buffer comes back");
            }
        }
    }
}
