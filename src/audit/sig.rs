//! Rotation keys and signatures: parsing a `did:key`, decoding a `sig`
//! strictly, and finding which allowed key signed an operation.
//!
//! The PLC specification accepts only raw 64-byte r||s signatures in low-S
//! form, written base64url without padding and without stray trailing bits,
//! made by a secp256k1 or P-256 key given as a compressed `did:key`. Every
//! one of those conditions is checked here, on both curves, before the
//! curve library is asked: libsecp256k1 would refuse high-S by itself, ring
//! would not.

use data_encoding::BASE64URL_NOPAD;
use std::cell::RefCell;
use std::collections::HashMap;

/// Multicodec prefix of a secp256k1 public key (varint 0xe7).
const K256_PREFIX: [u8; 2] = [0xe7, 0x01];
/// Multicodec prefix of a P-256 public key (varint 0x1200).
const P256_PREFIX: [u8; 2] = [0x80, 0x24];
/// How many parsed keys each worker keeps; operations reuse a few PDS keys
/// very often, and the cache is cleared whole when it fills.
const KEY_CACHE: usize = 8192;

/// The two curves the PLC allows for rotation keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// secp256k1 (multicodec 0xe7).
    K256,
    /// NIST P-256 (multicodec 0x1200).
    P256,
}

/// Parses a `did:key` rotation key: `did:key:z` + base58btc of the
/// multicodec prefix and a 33-byte compressed point.
pub fn parse_did_key(key: &str) -> Result<(Curve, [u8; 33]), String> {
    let b58 = key
        .strip_prefix("did:key:z")
        .ok_or_else(|| format!("{key:?} is not a did:key in base58btc (did:key:z...)"))?;
    let bytes = bs58::decode(b58)
        .into_vec()
        .map_err(|e| format!("{key:?}: not base58btc: {e}"))?;
    let curve = match bytes.get(..2) {
        Some(p) if p == K256_PREFIX => Curve::K256,
        Some(p) if p == P256_PREFIX => Curve::P256,
        _ => return Err(format!("{key:?} is neither a secp256k1 nor a P-256 key")),
    };
    let point: [u8; 33] = bytes[2..]
        .try_into()
        .map_err(|_| format!("{key:?}: not a 33-byte compressed point"))?;
    if point[0] != 2 && point[0] != 3 {
        return Err(format!("{key:?}: not a compressed point"));
    }
    Ok((curve, point))
}

/// Decodes a `sig` field into raw r||s, naming the rule it breaks.
pub fn decode_sig(sig: &str) -> Result<[u8; 64], String> {
    if sig.ends_with('=') {
        return Err("signature: base64url padding ('=') is not allowed".into());
    }
    let bytes = BASE64URL_NOPAD
        .decode(sig.as_bytes())
        .map_err(|e| match e.kind {
            data_encoding::DecodeKind::Trailing => {
                "signature: base64url with non-zero trailing bits".to_string()
            }
            _ => format!("signature: not base64url without padding ({e})"),
        })?;
    if bytes.len() != 64 {
        if bytes.first() == Some(&0x30) && (8..=72).contains(&bytes.len()) {
            return Err(format!(
                "signature: DER encoding ({} bytes); raw 64-byte r||s is required",
                bytes.len()
            ));
        }
        return Err(format!(
            "signature: {} bytes; raw 64-byte r||s is required",
            bytes.len()
        ));
    }
    let mut out = [0u8; 64];
    out.copy_from_slice(&bytes);
    Ok(out)
}

/// A rotation key ready for verification.
enum Parsed {
    K256(secp256k1::PublicKey),
    /// The uncompressed SEC1 point, which is what ring takes.
    P256(Box<[u8; 65]>),
    /// Not a usable key (a bad point); it verifies nothing.
    Unusable,
}

fn parse_for_verify(key: &str) -> Parsed {
    match parse_did_key(key) {
        Ok((Curve::K256, point)) => secp256k1::PublicKey::from_slice(&point)
            .map(Parsed::K256)
            .unwrap_or(Parsed::Unusable),
        Ok((Curve::P256, point)) => match p256::PublicKey::from_sec1_bytes(&point) {
            Ok(pk) => {
                use p256::elliptic_curve::sec1::ToEncodedPoint;
                let ep = pk.to_encoded_point(false);
                let mut out = [0u8; 65];
                out.copy_from_slice(ep.as_bytes());
                Parsed::P256(Box::new(out))
            }
            Err(_) => Parsed::Unusable,
        },
        Err(_) => Parsed::Unusable,
    }
}

thread_local! {
    static KEYS: RefCell<HashMap<String, std::rc::Rc<Parsed>>> = RefCell::new(HashMap::new());
    static SECP: secp256k1::Secp256k1<secp256k1::VerifyOnly> = secp256k1::Secp256k1::verification_only();
}

fn cached(key: &str) -> std::rc::Rc<Parsed> {
    KEYS.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(p) = c.get(key) {
            return p.clone();
        }
        if c.len() >= KEY_CACHE {
            c.clear();
        }
        let p = std::rc::Rc::new(parse_for_verify(key));
        c.insert(key.to_string(), p.clone());
        p
    })
}

/// What checking one signature against one key found.
#[derive(Debug, PartialEq, Eq)]
enum Check {
    Valid,
    HighS,
    Invalid,
}

fn check(key: &Parsed, unsigned: &[u8], digest: &[u8; 32], sig: &[u8; 64]) -> Check {
    match key {
        Parsed::K256(pk) => {
            let Ok(s) = secp256k1::ecdsa::Signature::from_compact(sig) else {
                return Check::Invalid;
            };
            let mut low = s;
            low.normalize_s();
            if low != s {
                return Check::HighS;
            }
            let msg = secp256k1::Message::from_digest(*digest);
            match SECP.with(|ctx| ctx.verify_ecdsa(&msg, &s, pk)) {
                Ok(()) => Check::Valid,
                Err(_) => Check::Invalid,
            }
        }
        Parsed::P256(point) => {
            let Ok(s) = p256::ecdsa::Signature::from_slice(sig) else {
                return Check::Invalid;
            };
            if s.normalize_s().is_some() {
                return Check::HighS;
            }
            let pk = ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                &point[..],
            );
            match pk.verify(unsigned, sig) {
                Ok(()) => Check::Valid,
                Err(_) => Check::Invalid,
            }
        }
        Parsed::Unusable => Check::Invalid,
    }
}

/// The index of the first key in `keys` whose signature over `unsigned`
/// (whose SHA-256 is `digest`) `sig` is; the first index is the highest
/// priority, and a key listed twice counts at its first place. The error
/// names the rule: no allowed key, or high-S.
pub fn find_signer(
    keys: &[String],
    unsigned: &[u8],
    digest: &[u8; 32],
    sig: &[u8; 64],
) -> Result<usize, String> {
    if keys.is_empty() {
        return Err("signature: no rotation key is allowed to sign here".into());
    }
    let mut high_s = false;
    for (i, key) in keys.iter().enumerate() {
        match check(&cached(key), unsigned, digest, sig) {
            Check::Valid => return Ok(i),
            Check::HighS => high_s = true,
            Check::Invalid => {}
        }
    }
    if high_s {
        Err("signature: high-S (s > n/2); only low-S signatures are valid".into())
    } else if looks_like_der(sig) {
        Err("signature: DER encoding (64 bytes that parse as DER), verified by no allowed key as raw r||s".into())
    } else {
        Err(format!(
            "signature: made by none of the {} allowed rotation key(s)",
            keys.len()
        ))
    }
}

/// True when 64 bytes are a DER SEQUENCE of two INTEGERs (a DER signature
/// whose r and s are short enough to fit), so the reason can say so.
fn looks_like_der(b: &[u8; 64]) -> bool {
    if b[0] != 0x30 || b[1] as usize != 62 || b[2] != 0x02 {
        return false;
    }
    let rlen = b[3] as usize;
    let at = 4 + rlen;
    at + 2 <= 64 && b[at] == 0x02 && at + 2 + b[at + 1] as usize == 64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_trailing_bits_and_der_are_named() {
        let raw = [7u8; 64];
        let good = BASE64URL_NOPAD.encode(&raw);
        assert_eq!(decode_sig(&good).unwrap(), raw);
        assert!(decode_sig(&format!("{good}=="))
            .unwrap_err()
            .contains("padding"));
        // 64 bytes = 85 full characters + one with 4 significant bits; the
        // last character's low 2 bits must be zero.
        let mut bits = good.clone().into_bytes();
        let last = bits.last_mut().unwrap();
        // 'B' is 1: its low bits, which must be zero, are not.
        *last = b'B';
        let e = decode_sig(std::str::from_utf8(&bits).unwrap()).unwrap_err();
        assert!(
            e.contains("trailing bits") || e.contains("base64url"),
            "{e}"
        );
        let mut der = vec![0x30, 68, 0x02, 32];
        der.extend_from_slice(&[1u8; 32]);
        der.extend_from_slice(&[0x02, 32]);
        der.extend_from_slice(&[1u8; 32]);
        assert!(decode_sig(&BASE64URL_NOPAD.encode(&der))
            .unwrap_err()
            .contains("DER"));
    }

    #[test]
    fn did_key_prefixes() {
        let mut b = vec![0xe7, 0x01, 0x02];
        b.extend_from_slice(&[9u8; 32]);
        let k = format!("did:key:z{}", bs58::encode(&b).into_string());
        assert_eq!(parse_did_key(&k).unwrap().0, Curve::K256);
        b[0] = 0x80;
        b[1] = 0x24;
        let k = format!("did:key:z{}", bs58::encode(&b).into_string());
        assert_eq!(parse_did_key(&k).unwrap().0, Curve::P256);
        b[0] = 0xed;
        let k = format!("did:key:z{}", bs58::encode(&b).into_string());
        assert!(parse_did_key(&k).is_err());
    }
}
