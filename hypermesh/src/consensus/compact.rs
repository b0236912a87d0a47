//! Compact block relay: a proposed block sent as its header and its
//! transactions' ids.
//!
//! Every validator already holds almost every transaction of a proposal:
//! transactions are gossiped as they are admitted, and each validator
//! verified them then. Sending the whole block again (megabytes, to every
//! validator) cost more than anything but signature checks. Receivers
//! rebuild the block from their mempools and ask the proposer for what
//! they lack, by position ([`Message::BlockTxsRequest`], answered with
//! [`Message::BlockTxs`]); the transactions' ids (which cover signature
//! and proof of work) make the rebuilt block the proposer's, and the
//! header's transactions root, checked with the block, binds the list.
//!
//! # Layout (after the message's version and tag, see [`super::wire`])
//! - compact block: u32 length and the header's encoding, u32 count (at
//!   most [`MAX_BLOCK_TXS`]) and the 32-byte ids, u32 length and the
//!   commit certificate;
//! - request: height, block hash, u32 count (at least 1, at most
//!   [`MAX_BLOCK_TXS`]) and the u32 positions, strictly increasing;
//! - transactions: height, block hash, u32 count (as above), then per
//!   transaction its u32 position (strictly increasing) and u32 length
//!   and encoding.
//!
//! [`Message::BlockTxsRequest`]: super::core::Message::BlockTxsRequest
//! [`Message::BlockTxs`]: super::core::Message::BlockTxs

use bytes::Bytes;

use crate::codec::{check_len, Hash, ReadExt, Reader, WriteExt, Writer};
use crate::error::{Error, Result};
use crate::types::{BlockHeader, EncodedBlock, MAX_BLOCK_TXS, MAX_COMMIT_BYTES, MAX_TX_BYTES};

/// Largest encoded header (four proofs at their limit, and the rest).
const MAX_HEADER_BYTES: usize = 4 * crate::types::MAX_PROOF_BYTES + 1024;

/// Transactions' encodings with their positions in a block.
pub type PositionedTxs = Vec<(u32, Bytes)>;

/// A proposed block named by its header and its transactions' ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactBlock {
    /// The header (its hash is the block's).
    pub header: BlockHeader,
    /// The transactions' ids ([`crate::types::Transaction::hash`]), in
    /// block order.
    pub tx_ids: Vec<Hash>,
    /// The commit certificate (empty in a proposal).
    pub commit: Vec<u8>,
}

impl CompactBlock {
    /// The compact form of `block`, if its transactions' ids are known
    /// (it was built or rebuilt here; ids are not computed again).
    pub fn of(block: &EncodedBlock) -> Option<Self> {
        Some(CompactBlock {
            header: block.header.clone(),
            tx_ids: block.tx_ids()?.to_vec(),
            commit: block.commit.clone(),
        })
    }
}

/// Writes a compact block.
pub(super) fn write_compact(w: &mut Writer, c: &CompactBlock) -> Result<()> {
    if c.tx_ids.len() > MAX_BLOCK_TXS {
        return Err(Error::Encode {
            what: "compact block",
            reason: format!("{} transactions exceed the limit of {MAX_BLOCK_TXS}", c.tx_ids.len()),
        });
    }
    check_len("commit certificate", c.commit.len(), MAX_COMMIT_BYTES)?;
    w.bytes32(&c.header.encode()?);
    w.u32(c.tx_ids.len() as u32);
    for id in &c.tx_ids {
        w.hash(id);
    }
    w.bytes32(&c.commit);
    Ok(())
}

/// Reads a compact block.
pub(super) fn read_compact(r: &mut Reader<'_>) -> Result<CompactBlock> {
    let header = BlockHeader::decode(r.bytes32(MAX_HEADER_BYTES)?)?;
    let n = r.count32(MAX_BLOCK_TXS)?;
    if n.saturating_mul(32) > r.remaining() {
        return Err(malformed(format!("{n} ids cannot fit in {} bytes", r.remaining())));
    }
    let tx_ids = (0..n).map(|_| r.hash()).collect::<Result<Vec<_>>>()?;
    let commit = r.bytes32(MAX_COMMIT_BYTES)?.to_vec();
    Ok(CompactBlock { header, tx_ids, commit })
}

/// Writes a request for the transactions at `indices`.
pub(super) fn write_request(w: &mut Writer, height: u64, hash: &Hash, indices: &[u32]) -> Result<()> {
    check_indices(indices.iter().copied()).map_err(|reason| Error::Encode {
        what: "transactions request",
        reason,
    })?;
    w.u64(height).hash(hash).u32(indices.len() as u32);
    for i in indices {
        w.u32(*i);
    }
    Ok(())
}

/// Reads a request: height, block hash and positions.
pub(super) fn read_request(r: &mut Reader<'_>) -> Result<(u64, Hash, Vec<u32>)> {
    let (height, hash) = (r.u64()?, r.hash()?);
    let n = r.count32(MAX_BLOCK_TXS)?;
    if n.saturating_mul(4) > r.remaining() {
        return Err(malformed(format!(
            "{n} positions cannot fit in {} bytes",
            r.remaining()
        )));
    }
    let indices = (0..n).map(|_| r.u32()).collect::<std::result::Result<Vec<_>, _>>()?;
    check_indices(indices.iter().copied()).map_err(malformed)?;
    Ok((height, hash, indices))
}

/// Writes transactions of a block with their positions.
pub(super) fn write_txs(w: &mut Writer, height: u64, hash: &Hash, txs: &[(u32, Bytes)]) -> Result<()> {
    check_indices(txs.iter().map(|(i, _)| *i)).map_err(|reason| Error::Encode {
        what: "block transactions",
        reason,
    })?;
    w.u64(height).hash(hash).u32(txs.len() as u32);
    for (i, tx) in txs {
        check_len("transaction", tx.len(), MAX_TX_BYTES)?;
        w.u32(*i).bytes32(tx);
    }
    Ok(())
}

/// Reads transactions of a block with their positions; with `shared`
/// (the whole input), each keeps a slice of it instead of a copy.
pub(super) fn read_txs(r: &mut Reader<'_>, shared: Option<&Bytes>) -> Result<(u64, Hash, PositionedTxs)> {
    let (height, hash) = (r.u64()?, r.hash()?);
    let n = r.count32(MAX_BLOCK_TXS)?;
    if n.saturating_mul(8) > r.remaining() {
        return Err(malformed(format!(
            "{n} transactions cannot fit in {} bytes",
            r.remaining()
        )));
    }
    let mut txs = Vec::with_capacity(n);
    for _ in 0..n {
        let i = r.u32()?;
        let tx = r.bytes32(MAX_TX_BYTES)?;
        let tx = match shared {
            Some(whole) => whole.slice_ref(tx),
            None => Bytes::copy_from_slice(tx),
        };
        txs.push((i, tx));
    }
    check_indices(txs.iter().map(|(i, _)| *i)).map_err(malformed)?;
    Ok((height, hash, txs))
}

/// Positions must be below [`MAX_BLOCK_TXS`], strictly increasing, and
/// at least one (one encoding per set, and no empty requests).
fn check_indices(indices: impl Iterator<Item = u32>) -> std::result::Result<(), String> {
    let mut last: Option<u32> = None;
    for i in indices {
        if i as usize >= MAX_BLOCK_TXS {
            return Err(format!("position {i} is past the largest block"));
        }
        if last.is_some_and(|l| i <= l) {
            return Err(format!("position {i} does not follow {}", last.unwrap_or(0)));
        }
        last = Some(i);
    }
    match last {
        Some(_) => Ok(()),
        None => Err("no positions".into()),
    }
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::Decode {
        what: "consensus message",
        reason: reason.into(),
    }
}
