//! Blocks: a header that commits to everything (transactions, state after
//! executing them, results, validator set, the proofs), the transactions,
//! and the commit certificate, which signs the header's hash and so cannot
//! be inside it.

use std::sync::Arc;

use stoq::crypto::{merkle_root, sha3_256};

use super::tx::{AccountId, Transaction, MAX_TX_BYTES};
use super::{check_version, ENCODING_VERSION, MAX_CHAIN_ID};
use crate::codec::{check_len, Hash, ReadExt, Reader, WriteExt, Writer};
use crate::error::{Error, Result};

/// Most transactions in one block.
pub const MAX_BLOCK_TXS: usize = 8_192;
/// Largest encoded block, in bytes.
pub const MAX_BLOCK_BYTES: usize = 16 * 1024 * 1024;
/// Largest proof in the proof section, in bytes.
pub const MAX_PROOF_BYTES: usize = 64 * 1024;
/// Largest commit certificate, in bytes (about 150 FN-DSA signatures).
pub const MAX_COMMIT_BYTES: usize = 256 * 1024;

const HEADER_DOMAIN: &[u8] = b"hypermesh/header/v1";

/// The consensus proofs a header carries. The proof of work travels in
/// each transaction; space and time proofs and the stake evidence are
/// filled in by the BFT engine (empty on a single-validator chain).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProofSection {
    /// Proof of space: the answer to the parent-derived plot challenge.
    pub space: Vec<u8>,
    /// Proof of time: the VDF output and proof over the parent hash.
    pub time: Vec<u8>,
    /// Proof of stake: the parent's commit certificate, so a block binds
    /// the signatures that finalized its parent.
    pub stake: Vec<u8>,
    /// Equivocation evidence: each item convicts a validator, which the
    /// block's execution slashes and jails (empty: none).
    pub evidence: Vec<u8>,
}

impl ProofSection {
    fn write(&self, w: &mut Writer) -> Result<()> {
        for (what, p) in [
            ("space proof", &self.space),
            ("time proof", &self.time),
            ("stake proof", &self.stake),
            ("evidence", &self.evidence),
        ] {
            check_len(what, p.len(), MAX_PROOF_BYTES)?;
            w.bytes32(p);
        }
        Ok(())
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(ProofSection {
            space: r.bytes32(MAX_PROOF_BYTES)?.to_vec(),
            time: r.bytes32(MAX_PROOF_BYTES)?.to_vec(),
            stake: r.bytes32(MAX_PROOF_BYTES)?.to_vec(),
            evidence: r.bytes32(MAX_PROOF_BYTES)?.to_vec(),
        })
    }
}

/// A block header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHeader {
    /// The chain.
    pub chain_id: String,
    /// Height (genesis state is height 0; the first block is 1).
    pub height: u64,
    /// Hash of the parent header (the genesis hash for the first block).
    pub parent_hash: Hash,
    /// Proposer's clock, ms since the Unix epoch; above the parent's.
    pub timestamp_ms: u64,
    /// The proposing validator's account.
    pub proposer: AccountId,
    /// Merkle root (RFC 9162, SHA3-256) of the transactions' encodings.
    pub tx_root: Hash,
    /// State root after executing this block.
    pub state_root: Hash,
    /// Hash of the validator set that must commit this block.
    pub validator_set_hash: Hash,
    /// Merkle root of the transactions' receipts.
    pub result_root: Hash,
    /// The consensus proofs.
    pub proofs: ProofSection,
}

impl BlockHeader {
    fn write(&self, w: &mut Writer) -> Result<()> {
        check_len("chain id", self.chain_id.len(), MAX_CHAIN_ID)?;
        w.u8(ENCODING_VERSION)
            .str8(&self.chain_id)
            .u64(self.height)
            .hash(&self.parent_hash)
            .u64(self.timestamp_ms)
            .hash(&self.proposer)
            .hash(&self.tx_root)
            .hash(&self.state_root)
            .hash(&self.validator_set_hash)
            .hash(&self.result_root);
        self.proofs.write(w)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        check_version("block header", r.u8()?)?;
        Ok(BlockHeader {
            chain_id: r.str8(MAX_CHAIN_ID)?,
            height: r.u64()?,
            parent_hash: r.hash()?,
            timestamp_ms: r.u64()?,
            proposer: r.hash()?,
            tx_root: r.hash()?,
            state_root: r.hash()?,
            validator_set_hash: r.hash()?,
            result_root: r.hash()?,
            proofs: ProofSection::read(r)?,
        })
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer::new();
        self.write(&mut w)?;
        Ok(w.finish())
    }

    /// Decodes a header, refusing trailing bytes.
    pub fn decode(buf: &[u8]) -> Result<Self> {
        let mut r = Reader::new(buf, "block header");
        let h = Self::read(&mut r)?;
        r.finish()?;
        Ok(h)
    }

    /// The block hash: SHA3-256 of the domain and the header's encoding
    /// (what votes and the commit certificate sign).
    pub fn hash(&self) -> Result<Hash> {
        let mut w = Writer::with_domain(HEADER_DOMAIN);
        self.write(&mut w)?;
        Ok(sha3_256(w.as_slice()))
    }
}

/// A block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions, in execution order (shared with the node's
    /// checked copies, not cloned).
    pub txs: Vec<Arc<Transaction>>,
    /// The commit certificate for this block (signatures over its hash by
    /// more than 2/3 of the voting power); empty until committed.
    pub commit: Vec<u8>,
}

impl Block {
    /// The canonical encoding.
    pub fn encode(&self) -> Result<Vec<u8>> {
        if self.txs.len() > MAX_BLOCK_TXS {
            return Err(Error::Encode {
                what: "block",
                reason: format!("{} transactions exceed the limit of {MAX_BLOCK_TXS}", self.txs.len()),
            });
        }
        check_len("commit certificate", self.commit.len(), MAX_COMMIT_BYTES)?;
        let mut w = Writer::new();
        self.header.write(&mut w)?;
        w.u32(self.txs.len() as u32);
        for tx in &self.txs {
            w.bytes32(&tx.encode()?);
        }
        w.bytes32(&self.commit);
        let out = w.finish();
        check_len("block", out.len(), MAX_BLOCK_BYTES)?;
        Ok(out)
    }

    /// Decodes a block, refusing anything but its canonical encoding
    /// within the limits. Checks nothing else (not even the roots).
    pub fn decode(buf: &[u8]) -> Result<Self> {
        if buf.len() > MAX_BLOCK_BYTES {
            return Err(Error::Decode {
                what: "block",
                reason: format!("{} bytes exceed the limit of {MAX_BLOCK_BYTES}", buf.len()),
            });
        }
        let mut r = Reader::new(buf, "block");
        let header = BlockHeader::read(&mut r)?;
        let n = r.count32(MAX_BLOCK_TXS)?;
        // Each transaction takes at least its 4-byte length: refuse a count
        // the remaining bytes cannot hold before reserving for it.
        if n.saturating_mul(4) > r.remaining() {
            return Err(Error::Decode {
                what: "block",
                reason: format!("{n} transactions cannot fit in {} bytes", r.remaining()),
            });
        }
        let mut txs = Vec::with_capacity(n);
        for i in 0..n {
            let bytes = r.bytes32(MAX_TX_BYTES)?;
            txs.push(Arc::new(Transaction::decode(bytes).map_err(|e| Error::Decode {
                what: "block",
                reason: format!("transaction {i}: {e}"),
            })?));
        }
        let commit = r.bytes32(MAX_COMMIT_BYTES)?.to_vec();
        r.finish()?;
        Ok(Block { header, txs, commit })
    }

    /// The Merkle root (RFC 9162 shape, SHA3-256) of `txs`' ids, as the
    /// header's `tx_root`: a transaction's inclusion is proved with its id
    /// and a path.
    pub fn tx_root<T: AsRef<Transaction>>(txs: &[T]) -> Result<Hash> {
        let ids = txs.iter().map(|t| t.as_ref().hash()).collect::<Result<Vec<_>>>()?;
        Ok(Self::tx_root_of_ids(&ids))
    }

    /// The transactions root of transactions with these ids.
    pub fn tx_root_of_ids(ids: &[Hash]) -> Hash {
        merkle_root(ids)
    }

    /// The canonical encoding of a block whose transactions are already
    /// encoded (what a node that built or checked them holds), without
    /// encoding them again. Same bytes as [`Block::encode`].
    pub fn encode_parts<'a>(
        header: &BlockHeader,
        txs: impl ExactSizeIterator<Item = &'a [u8]>,
        commit: &[u8],
    ) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        Self::write_parts(&mut out, header, txs, commit)?;
        Ok(out)
    }

    /// Writes [`Block::encode_parts`]'s bytes to `out` as they are made
    /// (a full block is large: no buffer of the whole of it); returns how
    /// many were written.
    pub fn write_parts<'a>(
        out: &mut dyn std::io::Write,
        header: &BlockHeader,
        txs: impl ExactSizeIterator<Item = &'a [u8]>,
        commit: &[u8],
    ) -> Result<u64> {
        let io = |e: std::io::Error| Error::Store(format!("writing a block: {e}"));
        if txs.len() > MAX_BLOCK_TXS {
            return Err(Error::Encode {
                what: "block",
                reason: format!("{} transactions exceed the limit of {MAX_BLOCK_TXS}", txs.len()),
            });
        }
        check_len("commit certificate", commit.len(), MAX_COMMIT_BYTES)?;
        let mut w = Writer::new();
        header.write(&mut w)?;
        w.u32(txs.len() as u32);
        let head = w.finish();
        out.write_all(&head).map_err(io)?;
        let mut total = head.len() as u64;
        for tx in txs {
            check_len("transaction", tx.len(), MAX_TX_BYTES)?;
            out.write_all(&(tx.len() as u32).to_be_bytes()).map_err(io)?;
            out.write_all(tx).map_err(io)?;
            total += 4 + tx.len() as u64;
        }
        out.write_all(&(commit.len() as u32).to_be_bytes()).map_err(io)?;
        out.write_all(commit).map_err(io)?;
        total += 4 + commit.len() as u64;
        check_len("block", usize::try_from(total).unwrap_or(usize::MAX), MAX_BLOCK_BYTES)?;
        Ok(total)
    }
}
