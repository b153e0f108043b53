//! The archive index, `plc_bundles.json`, and the hashes it records.
//!
//! Field order follows the plcbundle V1 specification, which is what the
//! struct declaration order produces when serialized. Reading is lenient
//! where other implementations leave fields out (Go omits `parent` on
//! bundle 1, Python writes no `origin`); `plc-verify` reads the raw JSON
//! itself so that it can name every missing or wrong field.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The index file's name inside a repository.
pub const INDEX_FILE: &str = "plc_bundles.json";
/// Operations in every bundle.
pub const BUNDLE_SIZE: usize = 10_000;
/// The format version written to the index.
pub const VERSION: &str = "1.0";
/// The official directory, the default origin.
pub const DEFAULT_ORIGIN: &str = "https://plc.directory";

/// The whole index.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Index {
    /// Format version, "1.0".
    pub version: String,
    /// Base URL of the directory the operations came from.
    #[serde(default)]
    pub origin: String,
    /// Number of the newest bundle (0 when there is none).
    pub last_bundle: u64,
    /// When the index was last written.
    #[serde(default)]
    pub updated_at: String,
    /// Sum of the compressed sizes.
    #[serde(default)]
    pub total_size_bytes: u64,
    /// Sum of the uncompressed sizes.
    #[serde(default)]
    pub total_uncompressed_size_bytes: u64,
    /// One entry per bundle, in order.
    pub bundles: Vec<BundleEntry>,
}

/// One bundle's entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BundleEntry {
    /// 1-based bundle number.
    pub bundle_number: u64,
    /// createdAt of the first operation, verbatim.
    pub start_time: String,
    /// createdAt of the last operation, verbatim.
    pub end_time: String,
    /// Operations in the bundle.
    pub operation_count: u64,
    /// Distinct DIDs in the bundle.
    pub did_count: u64,
    /// Chain hash.
    pub hash: String,
    /// SHA-256 of the uncompressed content.
    pub content_hash: String,
    /// The previous bundle's chain hash ("" for bundle 1).
    #[serde(default)]
    pub parent: String,
    /// SHA-256 of the file as stored.
    pub compressed_hash: String,
    /// Size of the file as stored.
    pub compressed_size: u64,
    /// Size of the content.
    pub uncompressed_size: u64,
    /// The previous bundle's end_time ("" for bundle 1).
    #[serde(default)]
    pub cursor: String,
    /// When the bundle was sealed.
    #[serde(default)]
    pub created_at: String,
}

impl Index {
    /// An empty index for `origin`.
    pub fn new(origin: &str) -> Index {
        Index {
            version: VERSION.to_string(),
            origin: origin.to_string(),
            last_bundle: 0,
            updated_at: String::new(),
            total_size_bytes: 0,
            total_uncompressed_size_bytes: 0,
            bundles: Vec::new(),
        }
    }

    /// The index as written to disk: pretty JSON with a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("index serializes");
        v.push(b'\n');
        v
    }
}

/// The number of distinct strings in `items` (a bundle's DIDs, for
/// `did_count`), by sorting: no hashing, no allocation per string. Each
/// string is sorted under a 128-bit key made of its bytes 8 to 24 (for
/// `did:plc:` DIDs, the first 16 of their 24 random characters), with the
/// whole string breaking ties, so most comparisons are one integer
/// comparison instead of a `memcmp`. Equal strings have equal keys, so
/// they still end up side by side.
pub fn count_distinct<'a>(items: impl Iterator<Item = &'a str>) -> u64 {
    fn key(s: &str) -> u128 {
        let mut k = [0u8; 16];
        let tail = s.as_bytes().get(8..).unwrap_or_default();
        let n = tail.len().min(16);
        k[..n].copy_from_slice(&tail[..n]);
        u128::from_be_bytes(k)
    }
    let mut all: Vec<(u128, &str)> = items.map(|s| (key(s), s)).collect();
    all.sort_unstable();
    all.dedup();
    all.len() as u64
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The chain hash of a bundle whose content hash is `content_hash`, after
/// the bundle whose chain hash is `parent` (`None` for bundle 1).
pub fn chain_hash(parent: Option<&str>, content_hash: &str) -> String {
    let mut h = Sha256::new();
    match parent {
        None => h.update(b"plcbundle:genesis:"),
        Some(p) => {
            h.update(p.as_bytes());
            h.update(b":");
        }
    }
    h.update(content_hash.as_bytes());
    hex::encode(h.finalize())
}

/// A bundle's file name: `000042.jsonl.zst`.
pub fn bundle_file_name(n: u64) -> String {
    format!("{n:06}.jsonl.zst")
}

/// The bundle number a file name stands for, if it is one.
pub fn parse_bundle_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".jsonl.zst")?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Compares two origins, ignoring a trailing slash.
pub fn same_origin(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_strings_are_counted_whatever_their_keys() {
        // Strings sharing bytes 8..24 differ only after the key; strings
        // shorter than the key; the empty string; repeats far apart.
        let long_a = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaaX";
        let long_b = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaaY";
        let items = [
            long_a,
            "did:web:x",
            long_b,
            "",
            "short",
            long_a,
            "did:web:x",
            "",
            "did:plc:a",
            "did:plc:a\0",
            long_b,
        ];
        let mut expected: Vec<&str> = items.to_vec();
        expected.sort();
        expected.dedup();
        assert_eq!(expected.len(), 7);
        assert_eq!(count_distinct(items.iter().copied()), 7);
        assert_eq!(count_distinct(std::iter::empty()), 0);
    }

    #[test]
    fn serializes_in_spec_key_order() {
        let mut idx = Index::new(DEFAULT_ORIGIN);
        idx.bundles.push(BundleEntry {
            bundle_number: 1,
            start_time: "a".into(),
            end_time: "b".into(),
            operation_count: 1,
            did_count: 1,
            hash: "h".into(),
            content_hash: "c".into(),
            parent: String::new(),
            compressed_hash: "x".into(),
            compressed_size: 1,
            uncompressed_size: 2,
            cursor: String::new(),
            created_at: "t".into(),
        });
        let text = String::from_utf8(idx.to_bytes()).unwrap();
        let keys = [
            "\"version\"",
            "\"origin\"",
            "\"last_bundle\"",
            "\"updated_at\"",
            "\"total_size_bytes\"",
            "\"total_uncompressed_size_bytes\"",
            "\"bundles\"",
            "\"bundle_number\"",
            "\"start_time\"",
            "\"end_time\"",
            "\"operation_count\"",
            "\"did_count\"",
            "\"hash\"",
            "\"content_hash\"",
            "\"parent\"",
            "\"compressed_hash\"",
            "\"compressed_size\"",
            "\"uncompressed_size\"",
            "\"cursor\"",
            "\"created_at\"",
        ];
        let pos: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn chain_hash_follows_the_spec_strings() {
        let c = "ab".repeat(32);
        assert_eq!(
            chain_hash(None, &c),
            sha256_hex(format!("plcbundle:genesis:{c}").as_bytes())
        );
        assert_eq!(
            chain_hash(Some("p"), &c),
            sha256_hex(format!("p:{c}").as_bytes())
        );
    }

    #[test]
    fn bundle_file_names() {
        assert_eq!(bundle_file_name(7), "000007.jsonl.zst");
        assert_eq!(parse_bundle_file_name("000007.jsonl.zst"), Some(7));
        assert_eq!(parse_bundle_file_name("1234567.jsonl.zst"), Some(1234567));
        assert_eq!(parse_bundle_file_name("7.jsonl.zst"), None);
        assert_eq!(parse_bundle_file_name(".000007.jsonl.zst.tmp"), None);
    }
}
