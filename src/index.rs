//! The archive index, `plc_bundles.json`, and the hashes it records.
//!
//! Field order follows the plcbundle V1 specification, which is what the
//! struct declaration order produces when serialized. Reading is lenient
//! where other implementations leave fields out (Go omits `parent` on
//! bundle 1, Python writes no `origin`), strict everywhere else: every
//! tool reads the index through [`parse`], so what one tool refuses (a
//! repeated key, a field of the wrong type, text after the object) every
//! tool refuses, `plc-verify` included.

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

/// An index as read by [`parse`], with what the text left out that
/// the typed [`Index`] cannot show.
#[derive(Clone, Debug)]
pub struct ParsedIndex {
    /// The index.
    pub index: Index,
    /// Whether the text had `total_uncompressed_size_bytes` (the Python
    /// reference leaves it out, and `0` would be a wrong total).
    pub has_uncompressed_total: bool,
}

/// The top level as written: the same fields as [`Index`], with the ones
/// other implementations leave out as `Option`. Deriving `Deserialize`
/// makes serde refuse a repeated key (`duplicate field`) and a value of
/// the wrong type; unknown keys are ignored (a newer writer may add some).
#[derive(Deserialize)]
struct WireIndex {
    version: String,
    origin: Option<String>,
    last_bundle: u64,
    updated_at: Option<String>,
    total_size_bytes: Option<u64>,
    total_uncompressed_size_bytes: Option<u64>,
    bundles: Vec<BundleEntry>,
}

/// Reads an index file's bytes with the one set of rules every tool
/// shares: one JSON object and nothing after it; no key twice (serde's
/// derive refuses a repeated field, where a `Value` map would keep the
/// last one silently); each field of its type (`parent`, `cursor`,
/// `created_at`, `updated_at` strings, counts unsigned integers);
/// `origin`, `updated_at`, `total_size_bytes`,
/// `total_uncompressed_size_bytes`, and `parent`, `cursor`, `created_at`
/// of an entry may be absent (other implementations leave them out; an
/// absent string reads as `""`). Consistency between fields (numbering,
/// totals, the chain) is not checked here: see [`check_numbering`] and
/// `plc-verify`.
pub fn parse(bytes: &[u8]) -> std::result::Result<ParsedIndex, String> {
    let w: WireIndex = serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => format!("not a valid index: {e}"),
        _ => format!("not valid JSON: {e}"),
    })?;
    Ok(ParsedIndex {
        has_uncompressed_total: w.total_uncompressed_size_bytes.is_some(),
        index: Index {
            version: w.version,
            origin: w.origin.unwrap_or_default(),
            last_bundle: w.last_bundle,
            updated_at: w.updated_at.unwrap_or_default(),
            total_size_bytes: w.total_size_bytes.unwrap_or_default(),
            total_uncompressed_size_bytes: w.total_uncompressed_size_bytes.unwrap_or_default(),
            bundles: w.bundles,
        },
    })
}

/// Checks that the entries are numbered 1, 2, ... `last_bundle`, the
/// condition under which a tool may trust entry `n - 1` to be bundle `n`.
pub fn check_numbering(idx: &Index) -> std::result::Result<(), String> {
    if idx.bundles.len() as u64 != idx.last_bundle {
        return Err(format!(
            "last_bundle is {} but the index holds {} bundles",
            idx.last_bundle,
            idx.bundles.len()
        ));
    }
    match idx
        .bundles
        .iter()
        .enumerate()
        .find(|(i, b)| b.bundle_number != *i as u64 + 1)
    {
        Some((i, b)) => Err(format!(
            "entry {} is numbered {} (bundles are numbered 1..last_bundle without gaps)",
            i + 1,
            b.bundle_number
        )),
        None => Ok(()),
    }
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
/// `did_count`); see [`DistinctDids`].
pub fn count_distinct<'a>(items: impl Iterator<Item = &'a str>) -> u64 {
    let mut set = DistinctDids::with_capacity(items.size_hint().0);
    for s in items {
        set.insert(std::borrow::Cow::Borrowed(s));
    }
    set.count()
}

/// A set of DIDs, to count a bundle's distinct ones as its lines are read
/// (while each line is still in the cache: read at the end, the DIDs
/// scattered through megabytes of content cost a cache miss each). A
/// `did:plc:` DID of 24 base32 characters is kept as the 120-bit integer
/// it spells (equal integers, equal DIDs), and the integers are sorted
/// once at the end: no allocation, no hashing and no string comparison
/// per DID. Anything else is kept as a string and sorted apart.
#[derive(Default)]
pub struct DistinctDids<'a> {
    plc: Vec<u128>,
    other: Vec<std::borrow::Cow<'a, str>>,
}

impl<'a> DistinctDids<'a> {
    /// An empty set with room for `n` `did:plc:` DIDs.
    pub fn with_capacity(n: usize) -> Self {
        DistinctDids {
            plc: Vec::with_capacity(n),
            other: Vec::new(),
        }
    }

    /// Adds `did` (any string).
    #[inline]
    pub fn insert(&mut self, did: std::borrow::Cow<'a, str>) {
        match plc_key(&did) {
            Some(k) => self.plc.push(k),
            None => self.other.push(did),
        }
    }

    /// How many distinct strings were added.
    pub fn count(mut self) -> u64 {
        self.plc.sort_unstable();
        self.plc.dedup();
        self.other.sort_unstable();
        self.other.dedup();
        (self.plc.len() + self.other.len()) as u64
    }
}

/// The 120 bits a `did:plc:` DID's 24 base32 characters (`a-z2-7`)
/// spell, or `None` for any other string.
#[inline]
fn plc_key(s: &str) -> Option<u128> {
    const INVALID: u8 = 0xff;
    const VALUE: [u8; 256] = {
        let mut t = [INVALID; 256];
        let mut i = 0;
        while i < 26 {
            t[b'a' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            t[b'2' as usize + i] = 26 + i as u8;
            i += 1;
        }
        t
    };
    let rest = s.strip_prefix("did:plc:")?.as_bytes();
    let chars: &[u8; 24] = rest.try_into().ok()?;
    // Two independent halves, so the shifts of one overlap the other's.
    let (mut hi, mut lo, mut bad) = (0u64, 0u64, 0u8);
    for i in 0..12 {
        let (a, b) = (VALUE[chars[i] as usize], VALUE[chars[12 + i] as usize]);
        bad |= a | b;
        hi = hi << 5 | u64::from(a);
        lo = lo << 5 | u64::from(b);
    }
    // A valid value is below 32; INVALID has bit 7 set.
    (bad & 0x80 == 0).then_some(u128::from(hi) << 60 | u128::from(lo))
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
    fn did_plc_dids_and_near_misses_are_counted_as_a_set_counts_them() {
        // 32-byte `did:plc:` strings over the base32 alphabet (decoded to
        // integers) mixed with ones that differ by one character outside
        // it ('0', '1', '8', '9', upper case, '='), by length or by
        // prefix (kept as strings), drawn from few characters so that
        // many repeat.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..300 {
            let items: Vec<String> = (0..(next() % 400) as usize)
                .map(|_| {
                    let mut s: Vec<u8> = b"did:plc:".to_vec();
                    s.extend((0..24).map(|i| {
                        if i < 20 {
                            b"a7"[(next() % 2) as usize]
                        } else {
                            b"abz27"[(next() % 5) as usize]
                        }
                    }));
                    match next() % 10 {
                        0 => s[8 + (next() % 24) as usize] = b"0189A=Z"[(next() % 7) as usize],
                        1 => s.truncate(31),
                        2 => s.push(b'a'),
                        3 => s[4] = b'P',
                        _ => {}
                    }
                    String::from_utf8(s).expect("ASCII")
                })
                .collect();
            let set: std::collections::BTreeSet<&str> = items.iter().map(|s| &**s).collect();
            assert_eq!(
                count_distinct(items.iter().map(|s| &**s)),
                set.len() as u64,
                "round {round}"
            );
        }
        // Two neighbouring characters over the whole alphabet and some
        // bytes outside it, at the start, across the two halves of the
        // decoding and at the end: every string is different, so a
        // decoding that loses or overlaps bits, or lets an invalid
        // character through as a value, counts fewer.
        let chars = b"abcdefghijklmnopqrstuvwxyz2345670189A=";
        for at in [9, 20, 31] {
            let dids: Vec<String> = chars
                .iter()
                .flat_map(|&c| chars.iter().map(move |&d| (c, d)))
                .map(|(c, d)| {
                    let mut s = *b"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa";
                    s[at - 1] = c;
                    s[at] = d;
                    String::from_utf8(s.to_vec()).expect("ASCII")
                })
                .collect();
            assert_eq!(
                dids.iter().filter(|d| plc_key(d).is_some()).count(),
                32 * 32
            );
            assert_eq!(
                count_distinct(dids.iter().map(|s| &**s)),
                (chars.len() * chars.len()) as u64
            );
        }
    }

    #[test]
    fn distinct_strings_sharing_keys_are_counted_as_a_set_counts_them() {
        // Strings drawn from a small alphabet at lengths around the key's
        // bytes 8 to 24, so that many share a key and many repeat.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..200 {
            let items: Vec<String> = (0..(next() % 300) as usize)
                .map(|_| {
                    let len = [0, 5, 8, 9, 20, 24, 25, 32, 40][(next() % 9) as usize];
                    let fixed = (next() % 4) as usize;
                    (0..len)
                        .map(|i| {
                            if i < 8 + fixed * 4 {
                                b"did:plc:abcdefghijklmnop"[i.min(23)] as char
                            } else {
                                b"ab\0z"[(next() % 4) as usize] as char
                            }
                        })
                        .collect()
                })
                .collect();
            let set: std::collections::BTreeSet<&str> = items.iter().map(|s| &**s).collect();
            assert_eq!(
                count_distinct(items.iter().map(|s| &**s)),
                set.len() as u64,
                "round {round}: {items:?}"
            );
        }
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
    fn one_reader_refuses_repeats_and_wrong_types_and_accepts_omissions() {
        let entry = |extra: &str| {
            format!(
                r#"{{"bundle_number":1,"start_time":"a","end_time":"b","operation_count":1,"did_count":1,"hash":"h","content_hash":"c",{extra}"compressed_hash":"x","compressed_size":1,"uncompressed_size":2}}"#
            )
        };
        let index = |top: &str, e: &str| {
            format!(r#"{{"version":"1.0",{top}"last_bundle":1,"bundles":[{e}]}}"#)
        };
        // Go: no parent; Python: no origin, no uncompressed total.
        let p = parse(index("", &entry("")).as_bytes()).unwrap();
        assert_eq!(p.index.bundles[0].parent, "");
        assert_eq!(p.index.origin, "");
        assert!(!p.has_uncompressed_total);
        let p =
            parse(index(r#""total_uncompressed_size_bytes":2,"#, &entry("")).as_bytes()).unwrap();
        assert!(p.has_uncompressed_total);
        for (top, extra, want) in [
            ("", r#""content_hash":"bogus","#, "duplicate field"),
            ("", r#""parent":null,"#, "invalid type"),
            ("", r#""cursor":0,"#, "invalid type"),
            ("", r#""created_at":{},"#, "invalid type"),
            (r#""updated_at":[],"#, "", "invalid type"),
            (r#""version":"1.0","#, "", "duplicate field"),
        ] {
            let text = index(top, &entry(extra));
            let err = parse(text.as_bytes()).unwrap_err();
            assert!(err.starts_with("not a valid index: "), "{text}: {err}");
            assert!(err.contains(want), "{text}: {err}");
        }
        let err = parse(b"{\"version\":").unwrap_err();
        assert!(err.starts_with("not valid JSON: "), "{err}");
        let err = parse(format!("{} x", index("", &entry(""))).as_bytes()).unwrap_err();
        assert!(err.starts_with("not valid JSON: "), "{err}");
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
