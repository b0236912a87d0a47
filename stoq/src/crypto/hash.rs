//! SHA3-256 helpers: digests, node ids and RFC 6962-shaped Merkle hashing.

use sha3::{Digest, Sha3_256};
use std::fmt;

/// SHA3-256 of `data`.
pub fn sha3_256(data: &[u8]) -> [u8; 32] {
    Sha3_256::digest(data).into()
}

/// SHA3-256 over the concatenation of `parts`, without copying them.
pub fn sha3_256_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha3_256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Merkle leaf hash, `H(0x00 || data)` as in RFC 6962/9162.
pub fn merkle_leaf_hash(data: &[u8]) -> [u8; 32] {
    sha3_256_parts(&[&[0x00], data])
}

/// Merkle interior node hash, `H(0x01 || left || right)` as in RFC 6962/9162.
pub fn merkle_node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    sha3_256_parts(&[&[0x01], left, right])
}

/// Merkle tree hash of a list of leaves (RFC 9162 section 2.1.1): the empty
/// tree hashes to `H()`, a split happens at the largest power of two smaller
/// than the number of leaves.
pub fn merkle_root<T: AsRef<[u8]>>(leaves: &[T]) -> [u8; 32] {
    match leaves.len() {
        0 => sha3_256(&[]),
        1 => merkle_leaf_hash(leaves[0].as_ref()),
        n => {
            let k = (n - 1).ilog2();
            let split = 1usize << k;
            merkle_node_hash(&merkle_root(&leaves[..split]), &merkle_root(&leaves[split..]))
        }
    }
}

/// A node's identity: SHA3-256 of its public key's SubjectPublicKeyInfo DER
/// (so the id also commits to the algorithm).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub [u8; 32]);

impl NodeId {
    /// Full lowercase hex form.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses the 64-character hex form.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(NodeId(out))
    }

    /// The first 8 bytes in hex, for logs.
    pub fn short(&self) -> String {
        hex(&self.0[..8])
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha3_known_answer() {
        // SHA3-256("abc") from FIPS 202 examples.
        assert_eq!(
            hex(&sha3_256(b"abc")),
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"
        );
        assert_eq!(sha3_256_parts(&[b"a", b"bc"]), sha3_256(b"abc"));
    }

    #[test]
    fn merkle_structure_matches_rfc9162() {
        let leaves: Vec<&[u8]> = vec![b"a", b"b", b"c"];
        let ab = merkle_node_hash(&merkle_leaf_hash(b"a"), &merkle_leaf_hash(b"b"));
        let expected = merkle_node_hash(&ab, &merkle_leaf_hash(b"c"));
        assert_eq!(merkle_root(&leaves), expected);
        assert_eq!(merkle_root::<&[u8]>(&[]), sha3_256(b""));
        // Domain separation: a leaf never equals a node over the same bytes.
        assert_ne!(merkle_leaf_hash(&[0u8; 64]), merkle_node_hash(&[0; 32], &[0; 32]));
    }

    #[test]
    fn node_id_hex_round_trip() {
        let id = NodeId(sha3_256(b"x"));
        assert_eq!(NodeId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(NodeId::from_hex("zz"), None);
        assert_eq!(id.short().len(), 16);
    }
}
