//! The per-transaction proof of work, the first of the chain's four proofs
//! ("what"): SHA3-256(sighash || nonce as big-endian u64) must start
//! with at least `d` zero bits, `d` a chain parameter. It prices spam in
//! client CPU and is checked before anything else, for one hash.

use sha3::{Digest, Sha3_256};

/// Leading zero bits of the proof-of-work hash for `nonce`.
pub fn work_bits(signing_bytes: &[u8], nonce: u64) -> u32 {
    leading_zero_bits(&digest(signing_bytes, nonce))
}

fn digest(signing_bytes: &[u8], nonce: u64) -> [u8; 32] {
    let mut h = Sha3_256::new();
    h.update(signing_bytes);
    h.update(nonce.to_be_bytes());
    h.finalize().into()
}

/// Leading zero bits of a digest.
pub fn leading_zero_bits(digest: &[u8]) -> u32 {
    let mut bits = 0;
    for b in digest {
        if *b == 0 {
            bits += 8;
        } else {
            return bits + b.leading_zeros();
        }
    }
    bits
}

/// The first nonce from `start` whose hash has at least `bits` leading
/// zero bits, trying at most `max_tries` nonces (about 2^bits are needed
/// on average); `None` if none was found.
pub fn solve(signing_bytes: &[u8], bits: u32, start: u64, max_tries: u64) -> Option<u64> {
    // Hash the common prefix once; each try only finishes a clone.
    let mut prefix = Sha3_256::new();
    prefix.update(signing_bytes);
    (0..max_tries).map(|i| start.wrapping_add(i)).find(|nonce| {
        let mut h = prefix.clone();
        h.update(nonce.to_be_bytes());
        let d: [u8; 32] = h.finalize().into();
        leading_zero_bits(&d) >= bits
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_zero_bits_counts_across_bytes() {
        assert_eq!(leading_zero_bits(&[0x80]), 0);
        assert_eq!(leading_zero_bits(&[0x01]), 7);
        assert_eq!(leading_zero_bits(&[0x00, 0x00, 0x10]), 19);
        assert_eq!(leading_zero_bits(&[0; 32]), 256);
    }

    #[test]
    fn a_solved_nonce_meets_the_target_only_for_its_own_bytes() {
        let msg = b"signing bytes";
        let nonce = solve(msg, 12, 0, 1 << 20).expect("2^12 expected tries, 2^20 allowed");
        assert!(work_bits(msg, nonce) >= 12);
        // The work is bound to the bytes: it does not carry over to others
        // (deterministic: the nonce found is always the same).
        assert!(work_bits(b"other bytes", nonce) < 12);
        assert_eq!(solve(msg, 64, 0, 100), None, "64 bits in 100 tries: practically never");
    }
}
