//! The DID index's files inside a repository, `DIR/did-index/`, and
//! lookups in them.
//!
//! The index maps each DID to where its operations lie (bundle number and
//! position inside the bundle) and records, per bundle, its zstd frames
//! (byte offset, length, first operation), so that a lookup reads and
//! decompresses only the frames holding that DID's operations.
//!
//! Storage is a small log-structured set of immutable sorted files
//! ("segments"), each covering a contiguous range of bundles, listed by a
//! manifest. A run of `plc-index` writes the new bundles as a segment and
//! merges the newest segments while the newer is at least half the size
//! of the one before it, so a repository of N bundles has about log2(N)
//! segments and each operation is rewritten about log2(N) times over the
//! archive's life. Every file is written under a temporary name, fsynced
//! and renamed; the manifest is replaced last, so a kill at any instant
//! leaves the old manifest naming complete files (strays are removed by
//! the next run). Readers open the files the manifest names; a file
//! removed after a merge stays readable through an open handle.
//!
//! Other implementations and `plc-verify` ignore the directory: they only
//! look at files named like bundles.
//!
//! Segment file layout (integers little-endian unless said):
//! - records, sorted bytewise: 15-byte DID key, bundle (u32 big-endian),
//!   position (u16 big-endian), 21 bytes each;
//! - per bundle of the segment's range, in order: the bundle file's
//!   SHA-256 (32 bytes), frame count (u32), then per frame offset (u32),
//!   length (u32), first position (u16);
//! - fence: the key of every [`FENCE`]th record;
//! - footer: record count (u64), frames offset (u64), fence offset (u64),
//!   first bundle (u32), last bundle (u32), magic `PLCDIDX1`.

use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The index's directory inside a repository.
pub const INDEX_DIR: &str = "did-index";
/// The manifest's name inside [`INDEX_DIR`].
pub const MANIFEST: &str = "manifest.json";
/// Bytes of a DID key.
pub const KEY_LEN: usize = 15;
/// Bytes of a record.
pub const RECORD_LEN: usize = KEY_LEN + 6;
/// One fence key per this many records.
pub const FENCE: usize = 256;
const MAGIC: &[u8; 8] = b"PLCDIDX1";
const FOOTER_LEN: usize = 8 * 3 + 4 * 2 + 8;

/// A DID's 15-byte key: the 120 bits of a `did:plc:` identifier's 24
/// base32 characters, or for any other string the first 15 bytes of its
/// SHA-256. Different strings can share a key only through the hash;
/// readers compare each operation's DID, so a shared key costs a read,
/// never a wrong answer.
pub fn did_key(did: &str) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    if let Some(id) = did.strip_prefix("did:plc:").filter(|s| s.len() == 24) {
        let mut acc: u64 = 0;
        let mut bits = 0;
        let mut out = 0;
        let mut ok = true;
        for c in id.bytes() {
            let v = match c {
                b'a'..=b'z' => c - b'a',
                b'2'..=b'7' => c - b'2' + 26,
                _ => {
                    ok = false;
                    break;
                }
            };
            acc = acc << 5 | u64::from(v);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                key[out] = (acc >> bits) as u8;
                out += 1;
            }
        }
        if ok {
            return key;
        }
    }
    use sha2::{Digest, Sha256};
    key.copy_from_slice(&Sha256::digest(did.as_bytes())[..KEY_LEN]);
    key
}

/// Where an operation lies: bundle number and 0-based position in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    /// Bundle number.
    pub bundle: u32,
    /// 0-based position of the operation in the bundle.
    pub pos: u16,
}

/// A run of zstd frames of a bundle file that holds whole operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Byte offset in the file.
    pub offset: u32,
    /// Length in bytes.
    pub len: u32,
    /// Position of its first operation.
    pub first: u16,
}

/// What the index knows of one bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleFrames {
    /// SHA-256 of the bundle file it was built from.
    pub file_sha256: [u8; 32],
    /// Its frames, in order.
    pub frames: Vec<Frame>,
}

impl BundleFrames {
    /// The frame holding position `pos`.
    pub fn frame_of(&self, pos: u16) -> Option<(usize, Frame)> {
        let i = self.frames.partition_point(|f| f.first <= pos);
        i.checked_sub(1).map(|i| (i, self.frames[i]))
    }
}

/// The manifest: which segments make the index, and up to which bundle.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version, 1.
    pub version: u32,
    /// The last bundle indexed (0: none).
    pub last_bundle: u64,
    /// That bundle's chain hash, to notice an archive replaced under the
    /// index.
    pub head: String,
    /// Segment file names, oldest bundles first.
    pub segments: Vec<String>,
}

/// The index directory of `repo`.
pub fn index_dir(repo: &Path) -> PathBuf {
    repo.join(INDEX_DIR)
}

/// Reads the manifest; `None` when there is no index yet.
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    match fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Archive(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// An open segment.
pub struct Segment {
    /// Its file name.
    pub name: String,
    file: File,
    records: u64,
    fence: Vec<[u8; KEY_LEN]>,
    /// First bundle it covers.
    pub first_bundle: u32,
    /// Its bundles' frames, `first_bundle` first.
    pub bundles: Vec<BundleFrames>,
}

fn corrupt(path: &Path, what: &str) -> Error {
    Error::Archive(format!(
        "{}: {what}; remove {} and run plc-index again",
        path.display(),
        path.parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    ))
}

impl Segment {
    /// Opens a segment file and loads its fence and frame tables.
    pub fn open(path: &Path) -> std::io::Result<Segment> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        let bad = |w: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, w.to_string());
        if size < FOOTER_LEN as u64 {
            return Err(bad("too short for a segment"));
        }
        let mut footer = [0u8; FOOTER_LEN];
        file.read_exact_at(&mut footer, size - FOOTER_LEN as u64)?;
        if &footer[32..] != MAGIC {
            return Err(bad("not a segment (no magic)"));
        }
        let u64_at = |i: usize| u64::from_le_bytes(footer[i..i + 8].try_into().unwrap());
        let u32_at = |i: usize| u32::from_le_bytes(footer[i..i + 4].try_into().unwrap());
        let (records, frames_at, fence_at) = (u64_at(0), u64_at(8), u64_at(16));
        let (first_bundle, last_bundle) = (u32_at(24), u32_at(28));
        let fence_len = records.div_ceil(FENCE as u64) * KEY_LEN as u64;
        if frames_at != records * RECORD_LEN as u64
            || fence_at < frames_at
            || fence_at + fence_len + FOOTER_LEN as u64 != size
            || last_bundle < first_bundle
        {
            return Err(bad("sizes in the footer do not add up"));
        }
        let mut tables = vec![0u8; (fence_at - frames_at) as usize];
        file.read_exact_at(&mut tables, frames_at)?;
        let mut bundles = Vec::new();
        let mut rest = &tables[..];
        for _ in first_bundle..=last_bundle {
            if rest.len() < 36 {
                return Err(bad("frame tables cut short"));
            }
            let file_sha256: [u8; 32] = rest[..32].try_into().unwrap();
            let n = u32::from_le_bytes(rest[32..36].try_into().unwrap()) as usize;
            rest = &rest[36..];
            if rest.len() < n * 10 {
                return Err(bad("frame tables cut short"));
            }
            let frames = rest[..n * 10]
                .chunks_exact(10)
                .map(|f| Frame {
                    offset: u32::from_le_bytes(f[..4].try_into().unwrap()),
                    len: u32::from_le_bytes(f[4..8].try_into().unwrap()),
                    first: u16::from_le_bytes(f[8..].try_into().unwrap()),
                })
                .collect();
            rest = &rest[n * 10..];
            bundles.push(BundleFrames {
                file_sha256,
                frames,
            });
        }
        if !rest.is_empty() {
            return Err(bad("frame tables too long"));
        }
        let mut fence_bytes = vec![0u8; fence_len as usize];
        file.read_exact_at(&mut fence_bytes, fence_at)?;
        let fence = fence_bytes
            .chunks_exact(KEY_LEN)
            .map(|k| k.try_into().unwrap())
            .collect();
        Ok(Segment {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            file,
            records,
            fence,
            first_bundle,
            bundles,
        })
    }

    /// The last bundle it covers.
    pub fn last_bundle(&self) -> u32 {
        self.first_bundle + self.bundles.len() as u32 - 1
    }

    /// Records in the segment.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Appends the locations recorded for `key` to `out`, in order.
    pub fn lookup(&self, key: &[u8; KEY_LEN], out: &mut Vec<Loc>) -> std::io::Result<()> {
        // The first block whose fence key is >= key may start after the
        // key's first record: begin one block earlier.
        let mut block = self.fence.partition_point(|f| f < key).saturating_sub(1);
        let mut buf = vec![0u8; FENCE * RECORD_LEN];
        loop {
            let start = (block * FENCE) as u64;
            if start >= self.records {
                return Ok(());
            }
            let n = (self.records - start).min(FENCE as u64) as usize;
            let bytes = &mut buf[..n * RECORD_LEN];
            self.file.read_exact_at(bytes, start * RECORD_LEN as u64)?;
            for r in bytes.chunks_exact(RECORD_LEN) {
                match r[..KEY_LEN].cmp(&key[..]) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => out.push(record_loc(r)),
                    std::cmp::Ordering::Greater => return Ok(()),
                }
            }
            block += 1;
        }
    }
}

fn record_loc(r: &[u8]) -> Loc {
    Loc {
        bundle: u32::from_be_bytes(r[KEY_LEN..KEY_LEN + 4].try_into().unwrap()),
        pos: u16::from_be_bytes(r[KEY_LEN + 4..].try_into().unwrap()),
    }
}

/// One record's bytes.
pub fn record(key: &[u8; KEY_LEN], loc: Loc) -> [u8; RECORD_LEN] {
    let mut r = [0u8; RECORD_LEN];
    r[..KEY_LEN].copy_from_slice(key);
    r[KEY_LEN..KEY_LEN + 4].copy_from_slice(&loc.bundle.to_be_bytes());
    r[KEY_LEN + 4..].copy_from_slice(&loc.pos.to_be_bytes());
    r
}

/// Writes a segment file from sorted records, streaming (the records are
/// not held), crash-safely: temporary name, fsync, rename, directory
/// fsync.
pub struct SegmentWriter {
    dir: PathBuf,
    name: String,
    out: BufWriter<File>,
    records: u64,
    fence: Vec<u8>,
    last: Option<[u8; RECORD_LEN]>,
}

/// A segment's file name for a range of bundles.
pub fn segment_name(first: u32, last: u32) -> String {
    format!("seg-{first:06}-{last:06}.dix")
}

impl SegmentWriter {
    /// Starts `dir/seg-FIRST-LAST.dix`.
    pub fn create(dir: &Path, first: u32, last: u32) -> Result<SegmentWriter> {
        let name = segment_name(first, last);
        let tmp = dir.join(crate::repo::tmp_name(&name));
        let f = File::create(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
        Ok(SegmentWriter {
            dir: dir.to_path_buf(),
            name,
            out: BufWriter::with_capacity(1 << 20, f),
            records: 0,
            fence: Vec::new(),
            last: None,
        })
    }

    /// Appends one record; records must come in sorted order.
    pub fn push(&mut self, r: &[u8; RECORD_LEN]) -> Result<()> {
        if self.last.is_some_and(|l| l >= *r) {
            return Err(Error::Archive(format!(
                "{}: records out of order (a bundle listed twice?)",
                self.name
            )));
        }
        if self.records.is_multiple_of(FENCE as u64) {
            self.fence.extend_from_slice(&r[..KEY_LEN]);
        }
        self.last = Some(*r);
        self.records += 1;
        self.out.write_all(r).map_err(|e| self.io(e))
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::io(
            format!("writing {}", self.dir.join(&self.name).display()),
            e,
        )
    }

    /// Writes the frame tables, fence and footer, and puts the file in
    /// place. Returns its name.
    pub fn finish(mut self, first: u32, bundles: &[BundleFrames]) -> Result<String> {
        let frames_at = self.records * RECORD_LEN as u64;
        let mut tail = Vec::new();
        for b in bundles {
            tail.extend_from_slice(&b.file_sha256);
            tail.extend_from_slice(&(b.frames.len() as u32).to_le_bytes());
            for f in &b.frames {
                tail.extend_from_slice(&f.offset.to_le_bytes());
                tail.extend_from_slice(&f.len.to_le_bytes());
                tail.extend_from_slice(&f.first.to_le_bytes());
            }
        }
        let fence_at = frames_at + tail.len() as u64;
        tail.extend_from_slice(&self.fence);
        tail.extend_from_slice(&self.records.to_le_bytes());
        tail.extend_from_slice(&frames_at.to_le_bytes());
        tail.extend_from_slice(&fence_at.to_le_bytes());
        tail.extend_from_slice(&first.to_le_bytes());
        tail.extend_from_slice(&(first + bundles.len() as u32 - 1).to_le_bytes());
        tail.extend_from_slice(MAGIC);
        self.out.write_all(&tail).map_err(|e| self.io(e))?;
        let f = self
            .out
            .into_inner()
            .map_err(|e| Error::io("flushing a segment", e.into_error()))?;
        let tmp = self.dir.join(crate::repo::tmp_name(&self.name));
        f.sync_all().ctx(|| format!("syncing {}", tmp.display()))?;
        drop(f);
        let target = self.dir.join(&self.name);
        fs::rename(&tmp, &target).ctx(|| format!("renaming into {}", target.display()))?;
        crate::repo::sync_dir(&self.dir)?;
        Ok(self.name)
    }
}

/// The index as a reader sees it: the segments of one manifest.
pub struct DidIndex {
    dir: PathBuf,
    /// The manifest the segments were opened from.
    pub manifest: Manifest,
    segments: Vec<Segment>,
}

impl DidIndex {
    /// Opens `repo`'s index. An index being rewritten at the same time is
    /// read from the manifest that was current (retrying when a merge
    /// removed a segment between reading the manifest and opening it).
    /// No index is an error saying to run plc-index.
    pub fn open(repo: &Path) -> Result<DidIndex> {
        let dir = index_dir(repo);
        let mut tries = 0;
        loop {
            let Some(manifest) = read_manifest(&dir)? else {
                return Err(Error::Archive(format!(
                    "{} has no DID index; run plc-index --repo {}",
                    repo.display(),
                    repo.display()
                )));
            };
            match Self::open_segments(&dir, &manifest) {
                Ok(segments) => {
                    return Ok(DidIndex {
                        dir,
                        manifest,
                        segments,
                    })
                }
                Err((path, e)) if e.kind() == std::io::ErrorKind::NotFound && tries < 20 => {
                    tries += 1;
                    let _ = path;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err((path, e)) => {
                    return Err(corrupt(&path, &format!("cannot be read: {e}")));
                }
            }
        }
    }

    fn open_segments(
        dir: &Path,
        manifest: &Manifest,
    ) -> std::result::Result<Vec<Segment>, (PathBuf, std::io::Error)> {
        let mut segments: Vec<Segment> = Vec::new();
        let mut next = 1u32;
        for name in &manifest.segments {
            let path = dir.join(name);
            let s = Segment::open(&path).map_err(|e| (path.clone(), e))?;
            if s.first_bundle != next {
                let e = std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "segments do not cover the bundles in order",
                );
                return Err((path, e));
            }
            next = s.last_bundle() + 1;
            segments.push(s);
        }
        if u64::from(next - 1) != manifest.last_bundle {
            let e = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "segments do not end at the manifest's last bundle",
            );
            return Err((dir.join(MANIFEST), e));
        }
        Ok(segments)
    }

    /// True when the manifest on disk is no longer the one this index was
    /// opened from (plc-index has run since).
    pub fn is_stale(&self) -> Result<bool> {
        Ok(read_manifest(&self.dir)?.as_ref() != Some(&self.manifest))
    }

    /// The last bundle indexed.
    pub fn last_bundle(&self) -> u64 {
        self.manifest.last_bundle
    }

    /// The open segments, oldest bundles first.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Where `did`'s operations lie (candidates: a DID that is not a
    /// `did:plc:` identifier may share its hashed key with another),
    /// in archive order.
    pub fn lookup(&self, did: &str) -> Result<Vec<Loc>> {
        let key = did_key(did);
        let mut out = Vec::new();
        for s in &self.segments {
            s.lookup(&key, &mut out).map_err(|e| {
                Error::io(format!("reading {}", self.dir.join(&s.name).display()), e)
            })?;
        }
        Ok(out)
    }

    /// The frame table of bundle `n`.
    pub fn frames(&self, n: u32) -> Option<&BundleFrames> {
        let i = self.segments.partition_point(|s| s.last_bundle() < n);
        let s = self.segments.get(i)?;
        s.bundles.get(n.checked_sub(s.first_bundle)? as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plc_keys_are_the_identifiers_bits_and_others_are_hashed() {
        let a = did_key("did:plc:aaaaaaaaaaaaaaaaaaaaaaab");
        assert_eq!(a[..14], [0u8; 14]);
        assert_eq!(a[14], 1);
        let z = did_key("did:plc:777777777777777777777777");
        assert_eq!(z, [0xff; 15]);
        // Not canonical: hashed, and different from the canonical ones.
        assert_ne!(did_key("did:plc:AAAAAAAAAAAAAAAAAAAAAAAB"), a);
        assert_ne!(
            did_key("did:web:example.com"),
            did_key("did:web:example.org")
        );
    }
}
