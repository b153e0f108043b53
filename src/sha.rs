//! SHA-256 of the two things every bundle is hashed as: its content and
//! its file.
//!
//! The `sha2` crate does the work; it picks the CPU's SHA extensions at
//! run time (through `cpufeatures`) and has a portable fallback. This file
//! used to interleave the two messages by hand with SHA-NI intrinsics
//! (150 lines, seven `unsafe` blocks, and a path tested only on CPUs that
//! have the extensions); measured with scripts/bench.sh, what it saved
//! (a few percent of plc-verify, about 1% of sealing) did not pay for
//! that risk.

use sha2::{Digest, Sha256};

/// The lowercase hex SHA-256 of `a` and of `b`.
pub fn sha256_hex_pair(a: &[u8], b: &[u8]) -> (String, String) {
    let (ha, hb) = sha256_pair(a, b);
    (hex::encode(ha), hex::encode(hb))
}

/// The SHA-256 of `a` and of `b`.
pub fn sha256_pair(a: &[u8], b: &[u8]) -> ([u8; 32], [u8; 32]) {
    (Sha256::digest(a).into(), Sha256::digest(b).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_test_vectors() {
        // FIPS 180-2's "abc" and the empty message.
        let (abc, empty) = sha256_hex_pair(b"abc", b"");
        assert_eq!(
            abc,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            empty,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let (a, b) = sha256_pair(b"", b"abc");
        assert_eq!((hex::encode(a), hex::encode(b)), (empty, abc));
    }
}
