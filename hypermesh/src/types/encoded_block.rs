//! A block held together with its canonical encoding.
//!
//! A proposed block is several megabytes. A validator logs it, broadcasts
//! it and answers requests for it; encoding it again at each of those
//! steps cost more than executing it. The encoding is made once (from the
//! transactions' own encodings when the builder has them) or kept from the
//! bytes it was decoded from.

use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;

use super::block::Block;
use crate::error::Result;

/// A block and its canonical encoding ([`Block::encode`]'s bytes).
#[derive(Debug, Clone)]
pub struct EncodedBlock {
    block: Arc<Block>,
    bytes: Bytes,
}

impl EncodedBlock {
    /// Encodes `block`.
    pub fn encode(block: Arc<Block>) -> Result<Self> {
        let bytes = Bytes::from(block.encode()?);
        Ok(EncodedBlock { block, bytes })
    }

    /// Encodes `block` from its transactions' encodings, `txs`, in block
    /// order, without encoding the transactions again. Each must be the
    /// canonical encoding of the transaction at its position (as a checked
    /// transaction's bytes are: decoding refuses any other).
    pub fn from_tx_encodings<'a>(block: Arc<Block>, txs: impl ExactSizeIterator<Item = &'a [u8]>) -> Result<Self> {
        let bytes = Bytes::from(Block::encode_parts(&block.header, txs, &block.commit)?);
        debug_assert_eq!(
            block.encode().ok().as_deref(),
            Some(&bytes[..]),
            "tx encodings out of step"
        );
        Ok(EncodedBlock { block, bytes })
    }

    /// Decodes a block, keeping `bytes` (no copy) as its encoding.
    pub fn decode(bytes: Bytes) -> Result<Self> {
        let block = Arc::new(Block::decode(&bytes)?);
        Ok(EncodedBlock { block, bytes })
    }

    /// The block, shareable.
    pub fn block(&self) -> &Arc<Block> {
        &self.block
    }

    /// Its canonical encoding.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
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
        self.bytes == other.bytes
    }
}

impl Eq for EncodedBlock {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::BlockHeader;

    fn block(commit: Vec<u8>) -> Arc<Block> {
        Arc::new(Block {
            header: BlockHeader {
                chain_id: "hypermesh-test".into(),
                height: 3,
                parent_hash: [1; 32],
                timestamp_ms: 7,
                proposer: [2; 32],
                tx_root: [3; 32],
                state_root: [4; 32],
                validator_set_hash: [5; 32],
                result_root: [6; 32],
                proofs: Default::default(),
            },
            txs: Vec::new(),
            commit,
        })
    }

    #[test]
    fn encoding_once_gives_the_canonical_bytes_and_decoding_keeps_them() {
        let b = block(vec![9; 40]);
        let encoded = EncodedBlock::encode(Arc::clone(&b)).unwrap();
        assert_eq!(&encoded.bytes()[..], &b.encode().unwrap()[..]);
        let parts = EncodedBlock::from_tx_encodings(Arc::clone(&b), std::iter::empty()).unwrap();
        assert_eq!(parts, encoded);

        let decoded = EncodedBlock::decode(encoded.bytes().clone()).unwrap();
        assert_eq!(**decoded.block(), *b);
        // The same allocation, not a copy.
        assert_eq!(decoded.bytes().as_ptr(), encoded.bytes().as_ptr());
        assert_eq!(decoded.header.height, 3);
    }

    #[test]
    fn blocks_that_differ_anywhere_are_unequal() {
        let a = EncodedBlock::encode(block(vec![1])).unwrap();
        let b = EncodedBlock::encode(block(vec![2])).unwrap();
        assert_ne!(a, b);
        assert!(EncodedBlock::decode(Bytes::from_static(b"\x01not a block")).is_err());
    }
}
