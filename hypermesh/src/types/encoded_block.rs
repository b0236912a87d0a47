//! A block held together with its canonical encoding.
//!
//! A proposed block is several megabytes. A validator logs it, and may
//! broadcast it and answer requests for it; encoding it again at each of
//! those steps cost more than executing it. A received block keeps the
//! bytes it was decoded from. A block built or rebuilt here from
//! transactions whose encodings are at hand keeps those (shared, not
//! copied) with the few bytes around them: writing it to the log copies
//! each once into the log's buffer, and a fresh multi-megabyte buffer
//! (whose pages the kernel must zero) is made only when the block is sent
//! whole.

use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::block::{Block, BlockHeader, MAX_BLOCK_BYTES, MAX_BLOCK_TXS, MAX_COMMIT_BYTES};
use super::tx::MAX_TX_BYTES;
use crate::codec::{check_len, Hash, Writer};
use crate::error::{Error, Result};

/// A block and its canonical encoding ([`Block::encode`]'s bytes), and
/// its transactions' ids where they are known without hashing again.
#[derive(Debug, Clone)]
pub struct EncodedBlock {
    block: Arc<Block>,
    encoding: Arc<Encoding>,
    tx_ids: Option<Arc<[Hash]>>,
}

/// [`Block::encode`]'s bytes: whole, or as the header and count, each
/// transaction (each after its 4-byte length), and the commit certificate
/// with its length.
#[derive(Debug)]
enum Encoding {
    Whole(Bytes),
    Parts {
        head: Vec<u8>,
        txs: Vec<Bytes>,
        tail: Vec<u8>,
        len: usize,
        whole: OnceLock<Bytes>,
    },
}

impl EncodedBlock {
    /// Encodes `block`.
    pub fn encode(block: Arc<Block>) -> Result<Self> {
        let bytes = Bytes::from(block.encode()?);
        Ok(EncodedBlock {
            block,
            encoding: Arc::new(Encoding::Whole(bytes)),
            tx_ids: None,
        })
    }

    /// `block` with its transactions' encodings, `txs`, in block order
    /// (shared, not copied). Each must be the canonical encoding of the
    /// transaction at its position (as a checked transaction's bytes are:
    /// decoding refuses any other). Fails as [`Block::encode`] would.
    pub fn from_tx_encodings(block: Arc<Block>, txs: Vec<Bytes>) -> Result<Self> {
        let limit = |reason: String| Error::Encode { what: "block", reason };
        if txs.len() != block.txs.len() || txs.len() > MAX_BLOCK_TXS {
            return Err(limit(format!(
                "{} encodings for {} transactions (at most {MAX_BLOCK_TXS})",
                txs.len(),
                block.txs.len()
            )));
        }
        check_len("commit certificate", block.commit.len(), MAX_COMMIT_BYTES)?;
        let head = header_and_count(&block.header, txs.len())?;
        let mut tail = Vec::with_capacity(4 + block.commit.len());
        tail.extend_from_slice(&(block.commit.len() as u32).to_be_bytes());
        tail.extend_from_slice(&block.commit);
        let mut len = head.len() + tail.len();
        for tx in &txs {
            check_len("transaction", tx.len(), MAX_TX_BYTES)?;
            len += 4 + tx.len();
        }
        check_len("block", len, MAX_BLOCK_BYTES)?;
        let encoded = EncodedBlock {
            block,
            encoding: Arc::new(Encoding::Parts {
                head,
                txs,
                tail,
                len,
                whole: OnceLock::new(),
            }),
            tx_ids: None,
        };
        debug_assert_eq!(
            encoded.block.encode().ok().as_deref(),
            Some(&encoded.bytes()[..]),
            "transaction encodings out of step"
        );
        Ok(encoded)
    }

    /// Decodes a block, keeping `bytes` (no copy) as its encoding.
    pub fn decode(bytes: Bytes) -> Result<Self> {
        let block = Arc::new(Block::decode(&bytes)?);
        Ok(EncodedBlock {
            block,
            encoding: Arc::new(Encoding::Whole(bytes)),
            tx_ids: None,
        })
    }

    /// The same block, with its transactions' ids, `ids`, in block order
    /// (as a builder holding checked transactions knows them; these are
    /// taken as given, so they must be right).
    pub fn with_tx_ids(mut self, ids: Vec<Hash>) -> Self {
        debug_assert_eq!(ids.len(), self.block.txs.len(), "one id per transaction");
        self.tx_ids = Some(ids.into());
        self
    }

    /// The transactions' ids, if known.
    pub fn tx_ids(&self) -> Option<&[Hash]> {
        self.tx_ids.as_deref()
    }

    /// The block, shareable.
    pub fn block(&self) -> &Arc<Block> {
        &self.block
    }

    /// The encoding's length in bytes.
    pub fn len(&self) -> usize {
        match &*self.encoding {
            Encoding::Whole(b) => b.len(),
            Encoding::Parts { len, .. } => *len,
        }
    }

    /// Whether the encoding is empty (never: a block has a header).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoding in one buffer (joined once, on first use, for a block
    /// held in parts).
    pub fn bytes(&self) -> Bytes {
        match &*self.encoding {
            Encoding::Whole(b) => b.clone(),
            Encoding::Parts { whole, len, .. } => whole
                .get_or_init(|| {
                    let mut out = Vec::with_capacity(*len);
                    self.for_each_part(|p| out.extend_from_slice(p));
                    Bytes::from(out)
                })
                .clone(),
        }
    }

    /// The encoding of the transaction at `index`: the part held, or (for
    /// a block held whole) encoded anew.
    pub fn tx_encoding(&self, index: usize) -> Option<Bytes> {
        match &*self.encoding {
            Encoding::Parts { txs, .. } => txs.get(index).cloned(),
            Encoding::Whole(_) => self.block.txs.get(index)?.encode().ok().map(Bytes::from),
        }
    }

    /// Calls `f` on consecutive pieces of the encoding, in order.
    pub fn for_each_part(&self, mut f: impl FnMut(&[u8])) {
        match &*self.encoding {
            Encoding::Whole(b) => f(b),
            Encoding::Parts { head, txs, tail, .. } => {
                f(head);
                for tx in txs {
                    f(&(tx.len() as u32).to_be_bytes());
                    f(tx);
                }
                f(tail);
            }
        }
    }
}

/// The header's encoding and the transaction count, as a block starts.
fn header_and_count(header: &BlockHeader, count: usize) -> Result<Vec<u8>> {
    let mut w = Writer::new();
    w.fixed(&header.encode()?);
    w.u32(count as u32);
    Ok(w.finish())
}

impl Deref for EncodedBlock {
    type Target = Block;

    fn deref(&self) -> &Block {
        &self.block
    }
}

/// Equal blocks have equal canonical encodings, and only they do.
impl PartialEq for EncodedBlock {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for EncodedBlock {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::test_fixtures::{header, signed_call};
    use stoq::crypto::{Algorithm, KeyPair};

    fn block(commit: Vec<u8>, txs: usize) -> Arc<Block> {
        let key = KeyPair::generate(Algorithm::FnDsa1024);
        let txs = (0..txs as u64)
            .map(|nonce| Arc::new(signed_call(&key, "hypermesh-test", nonce, vec![nonce as u8; 3])))
            .collect();
        Arc::new(Block {
            header: header("hypermesh-test", 3, 7),
            txs,
            commit,
        })
    }

    fn tx_encodings(b: &Block) -> Vec<Bytes> {
        b.txs.iter().map(|t| Bytes::from(t.encode().expect("encode"))).collect()
    }

    #[test]
    fn every_form_gives_the_canonical_bytes_and_decoding_keeps_them() {
        let b = block(vec![9; 40], 3);
        let canonical = b.encode().unwrap();
        let whole = EncodedBlock::encode(Arc::clone(&b)).unwrap();
        let parts = EncodedBlock::from_tx_encodings(Arc::clone(&b), tx_encodings(&b)).unwrap();
        for e in [&whole, &parts] {
            assert_eq!(&e.bytes()[..], &canonical[..]);
            assert_eq!(e.len(), canonical.len());
            for (i, tx) in b.txs.iter().enumerate() {
                assert_eq!(&e.tx_encoding(i).unwrap()[..], &tx.encode().unwrap()[..]);
            }
            assert!(e.tx_encoding(b.txs.len()).is_none());
            let mut joined = Vec::new();
            e.for_each_part(|p| joined.extend_from_slice(p));
            assert_eq!(joined, canonical);
        }
        assert_eq!(parts, whole);
        // Joined once: the same buffer each time.
        assert_eq!(parts.bytes().as_ptr(), parts.bytes().as_ptr());

        let decoded = EncodedBlock::decode(whole.bytes()).unwrap();
        assert_eq!(**decoded.block(), *b);
        // The same allocation, not a copy.
        assert_eq!(decoded.bytes().as_ptr(), whole.bytes().as_ptr());
        assert_eq!(decoded.header.height, 3);
        assert!(decoded.tx_ids().is_none());
        let ids = vec![[7; 32]; 3];
        assert_eq!(decoded.with_tx_ids(ids.clone()).tx_ids(), Some(&ids[..]));
    }

    #[test]
    fn encodings_that_do_not_fit_the_block_are_refused() {
        let b = block(Vec::new(), 2);
        let mut short = tx_encodings(&b);
        short.pop();
        assert!(EncodedBlock::from_tx_encodings(Arc::clone(&b), short).is_err());
        let huge = vec![Bytes::from(vec![0; MAX_TX_BYTES + 1]); 2];
        assert!(EncodedBlock::from_tx_encodings(b, huge).is_err());
    }

    #[test]
    fn blocks_that_differ_anywhere_are_unequal() {
        let a = EncodedBlock::encode(block(vec![1], 0)).unwrap();
        let b = EncodedBlock::encode(block(vec![2], 0)).unwrap();
        assert_ne!(a, b);
        assert!(EncodedBlock::decode(Bytes::from_static(b"\x01not a block")).is_err());
    }
}
