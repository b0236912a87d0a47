//! State proofs in our canonical encoding, verified by jmt.
//!
//! jmt's `SparseMerkleProof` keeps its fields private and only moves as
//! borsh, whose layout is jmt's business. A proof crossing the network
//! uses our encoding instead (big-endian, bounded, strict); we translate
//! to and from jmt's borsh form at the edges and leave the hashing and the
//! verification to jmt.

use jmt::proof::SparseMerkleProof;
use jmt::{KeyHash, RootHash};

use super::{key_hash, StateHasher};
use crate::codec::{Hash, ReadExt, Reader, WriteExt, Writer};
use crate::error::{Error, Result};

/// A tree of 256-bit keys has at most 256 levels of siblings.
const MAX_SIBLINGS: usize = 256;

/// The longest encoding of a [`StateProof`], in bytes.
pub const MAX_PROOF_LEN: usize = 1 + 64 + 2 + MAX_SIBLINGS * 65;

/// A proof that a key has a value, or has none, in the state with a given
/// root. Obtained from [`super::StateStore::get_with_proof`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateProof {
    /// The leaf the search for the key ended at, as (key hash, value
    /// hash): the key's own (inclusion) or another key's (exclusion);
    /// `None` for an empty subtree (exclusion).
    leaf: Option<(Hash, Hash)>,
    /// Siblings from the leaf level up to the root.
    siblings: Vec<Sibling>,
}

/// A sibling on the path, typed so a prover cannot pass a leaf off as an
/// internal node (jmt's rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sibling {
    Null,
    Internal(Hash, Hash),
    Leaf(Hash, Hash),
}

impl StateProof {
    /// Checks that in the state with `root`, `key` has `value` (`None`:
    /// is absent). Fails with [`Error::BadProof`] otherwise.
    pub fn verify(&self, root: Hash, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        self.to_jmt()?
            .verify(RootHash(root), KeyHash(key_hash(key)), value)
            .map_err(|e| Error::BadProof(e.to_string()))
    }

    /// How many siblings the proof carries (its size is about 65 bytes
    /// each).
    pub fn depth(&self) -> usize {
        self.siblings.len()
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match &self.leaf {
            None => w.u8(0),
            Some((k, v)) => w.u8(1).hash(k).hash(v),
        };
        // At most 256 siblings: enforced where proofs are made and read.
        w.u16(self.siblings.len() as u16);
        for s in &self.siblings {
            match s {
                Sibling::Null => w.u8(0),
                Sibling::Internal(l, r) => w.u8(1).hash(l).hash(r),
                Sibling::Leaf(k, v) => w.u8(2).hash(k).hash(v),
            };
        }
        w.finish()
    }

    /// Decodes the canonical encoding, refusing anything else.
    pub fn decode(bytes: &[u8]) -> Result<StateProof> {
        if bytes.len() > MAX_PROOF_LEN {
            return Err(Error::Decode {
                what: "state proof",
                reason: format!("{} bytes exceed the limit of {MAX_PROOF_LEN}", bytes.len()),
            });
        }
        let mut r = Reader::new(bytes, "state proof");
        let leaf = match r.u8()? {
            0 => None,
            1 => Some((r.hash()?, r.hash()?)),
            t => return Err(bad_tag("leaf", t)),
        };
        let n = usize::from(r.u16()?);
        if n > MAX_SIBLINGS {
            return Err(Error::Decode {
                what: "state proof",
                reason: format!("{n} siblings exceed the limit of {MAX_SIBLINGS}"),
            });
        }
        let mut siblings = Vec::with_capacity(n);
        for _ in 0..n {
            siblings.push(match r.u8()? {
                0 => Sibling::Null,
                1 => Sibling::Internal(r.hash()?, r.hash()?),
                2 => Sibling::Leaf(r.hash()?, r.hash()?),
                t => return Err(bad_tag("sibling", t)),
            });
        }
        r.finish()?;
        Ok(StateProof { leaf, siblings })
    }

    /// From jmt's proof, through its borsh form.
    pub(super) fn from_jmt(proof: &SparseMerkleProof<StateHasher>) -> Result<StateProof> {
        let raw = borsh::to_vec(proof).map_err(|e| Error::Store(e.to_string()))?;
        let mut c = Cursor { buf: &raw };
        let leaf = match c.u8()? {
            0 => None,
            1 => Some((c.hash()?, c.hash()?)),
            t => return Err(bad_tag("jmt leaf", t)),
        };
        let n = c.u32_le()? as usize;
        if n > MAX_SIBLINGS {
            return Err(Error::Store(format!("jmt proof with {n} siblings")));
        }
        let mut siblings = Vec::with_capacity(n);
        for _ in 0..n {
            siblings.push(match c.u8()? {
                0 => Sibling::Null,
                1 => Sibling::Internal(c.hash()?, c.hash()?),
                2 => Sibling::Leaf(c.hash()?, c.hash()?),
                t => return Err(bad_tag("jmt sibling", t)),
            });
        }
        if !c.buf.is_empty() {
            return Err(Error::Store("trailing bytes in a jmt proof".into()));
        }
        Ok(StateProof { leaf, siblings })
    }

    /// To jmt's proof: borsh of `Option<leaf>`, `Vec<sibling>` (u32
    /// little-endian length, one-byte variant tags) and nothing for the
    /// hasher marker.
    fn to_jmt(&self) -> Result<SparseMerkleProof<StateHasher>> {
        let mut raw = Vec::with_capacity(70 + 65 * self.siblings.len());
        match &self.leaf {
            None => raw.push(0),
            Some((k, v)) => {
                raw.push(1);
                raw.extend_from_slice(k);
                raw.extend_from_slice(v);
            }
        }
        raw.extend_from_slice(&(self.siblings.len() as u32).to_le_bytes());
        for s in &self.siblings {
            let (tag, a, b) = match s {
                Sibling::Null => (0u8, None, None),
                Sibling::Internal(l, r) => (1, Some(l), Some(r)),
                Sibling::Leaf(k, v) => (2, Some(k), Some(v)),
            };
            raw.push(tag);
            raw.extend(a.into_iter().chain(b).flatten());
        }
        borsh::from_slice(&raw).map_err(|e| Error::BadProof(format!("unusable proof: {e}")))
    }
}

fn bad_tag(what: &str, tag: u8) -> Error {
    Error::Decode {
        what: "state proof",
        reason: format!("unknown {what} tag {tag}"),
    }
}

/// Reads jmt's borsh output (only ever our own, from our tree).
struct Cursor<'a> {
    buf: &'a [u8],
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or_else(|| Error::Store("truncated jmt proof".into()))?;
        self.buf = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take::<1>()?[0])
    }

    fn u32_le(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn hash(&mut self) -> Result<Hash> {
        self.take()
    }
}
