//! Reads of committed blocks, transactions, receipts, events and state.

use redb::ReadableDatabase;

use super::tables::{db_err, parse_position, read_results, Location, BLOCKS, HASHES, TXS};
use super::Chain;
use crate::codec::Hash;
use crate::error::{Error, Result};
use crate::runtime::{Event, Receipt};
use crate::state::StateProof;
use crate::types::{AccountId, Block, BlockHeader, Transaction};

/// A committed transaction and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRecord {
    /// The block's height.
    pub height: u64,
    /// Its position in the block.
    pub index: u32,
    /// The transaction.
    pub tx: Transaction,
    /// Its receipt.
    pub receipt: Receipt,
}

/// An event and where it was emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// The block's height.
    pub height: u64,
    /// The transaction that emitted it (`None`: a block hook).
    pub tx: Option<(u32, Hash)>,
    /// The event.
    pub event: Event,
}

/// Most events one [`Chain::events`] call returns.
pub const MAX_EVENTS_PER_READ: usize = 10_000;

impl Chain {
    /// Where block `height`'s record is in the log.
    pub(super) fn location(&self, height: u64) -> Result<Option<Location>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let blocks = txn.open_table(BLOCKS).map_err(db_err)?;
        Ok(blocks
            .get(height)
            .map_err(db_err)?
            .map(|v| Location::decode(&v.value())))
    }

    /// The encoded committed block at `height` (as stored, with its commit).
    pub fn block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>> {
        let Some(at) = self.location(height)? else {
            return Ok(None);
        };
        self.log.read(at.offset, at.block_len).map(Some)
    }

    /// The committed block at `height` (1 and up).
    pub fn block(&self, height: u64) -> Result<Option<Block>> {
        match self.block_bytes(height)? {
            Some(b) => Block::decode(&b).map(Some),
            None => Ok(None),
        }
    }

    /// The header of the committed block at `height`.
    pub fn header(&self, height: u64) -> Result<Option<BlockHeader>> {
        Ok(self.block(height)?.map(|b| b.header))
    }

    /// The height of the committed block with header hash `hash`.
    pub fn height_of(&self, hash: &Hash) -> Result<Option<u64>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let hashes = txn.open_table(HASHES).map_err(db_err)?;
        Ok(hashes.get(*hash).map_err(db_err)?.map(|v| v.value()))
    }

    /// The receipts and hook events of the committed block at `height`.
    fn results(&self, height: u64) -> Result<Option<(Vec<Receipt>, Vec<Event>)>> {
        let Some(at) = self.location(height)? else {
            return Ok(None);
        };
        let raw = self
            .log
            .read(at.offset + at.block_len, at.record_len.saturating_sub(at.block_len))?;
        read_results(&raw).map(Some)
    }

    /// A committed transaction by id, with its receipt.
    pub fn tx(&self, hash: &Hash) -> Result<Option<TxRecord>> {
        let pos = {
            let txn = self.db.begin_read().map_err(db_err)?;
            let txs = txn.open_table(TXS).map_err(db_err)?;
            let Some(pos) = txs.get(*hash).map_err(db_err)?.map(|v| v.value()) else {
                return Ok(None);
            };
            pos
        };
        let (height, index) = parse_position(&pos);
        let missing = || Error::Store(format!("transaction {height}/{index} is missing"));
        let (receipts, _) = self.results(height)?.ok_or_else(missing)?;
        let receipt = receipts.into_iter().nth(index as usize).ok_or_else(missing)?;
        let block = self.block(height)?.ok_or_else(missing)?;
        let tx = block.txs.into_iter().nth(index as usize).ok_or_else(missing)?;
        let tx = std::sync::Arc::unwrap_or_clone(tx);
        Ok(Some(TxRecord {
            height,
            index,
            tx,
            receipt,
        }))
    }

    /// The receipts of the committed block at `height`, in order (empty
    /// if there is no such block).
    pub fn receipts(&self, height: u64) -> Result<Vec<Receipt>> {
        Ok(self.results(height)?.map(|(r, _)| r).unwrap_or_default())
    }

    /// Events of committed blocks `from..=to` (clamped to the tip), in
    /// chain order, optionally only those of `module` and `kind`; at most
    /// `limit` (capped at [`MAX_EVENTS_PER_READ`]), but whole blocks only
    /// (the first block's events are returned even if more). Returns the
    /// events and the height to resume from (one past the last block read).
    pub fn events(
        &self,
        from: u64,
        to: u64,
        module: Option<&str>,
        kind: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<EventRecord>, u64)> {
        let limit = limit.clamp(1, MAX_EVENTS_PER_READ);
        let to = to.min(self.tip().height);
        let from = from.max(1);
        let keep = |e: &Event| module.is_none_or(|m| e.module == m) && kind.is_none_or(|k| e.kind == k);
        let mut out = Vec::new();
        let mut height = from;
        while height <= to {
            let Some((receipts, hooks)) = self.results(height)? else {
                break;
            };
            let mut found = Vec::new();
            for (index, r) in receipts.into_iter().enumerate() {
                for event in r.events.into_iter().filter(|e| keep(e)) {
                    found.push(EventRecord {
                        height,
                        tx: Some((index as u32, r.tx_hash)),
                        event,
                    });
                }
            }
            for event in hooks.into_iter().filter(|e| keep(e)) {
                found.push(EventRecord {
                    height,
                    tx: None,
                    event,
                });
            }
            // A block is returned whole or not at all, so resuming from the
            // returned height neither skips nor repeats an event.
            if !out.is_empty() && out.len() + found.len() > limit {
                break;
            }
            out.extend(found);
            height += 1;
            if out.len() >= limit {
                break;
            }
        }
        Ok((out, height))
    }

    /// Answers a query to `module` at the state after block `height` (the
    /// tip when `None`). Returns the height answered at.
    pub fn query(&self, module: &str, path: &str, args: &[u8], height: Option<u64>) -> Result<(u64, Vec<u8>)> {
        let height = height.unwrap_or_else(|| self.tip().height);
        let reader = self.state.reader(height)?;
        Ok((height, self.runtime.query(&reader, module, path, args)?))
    }

    /// The value of state `key` after block `height` (the tip when
    /// `None`), with a proof against the state root in that block's header
    /// (returned too; `None` at height 0, whose root is the genesis
    /// state's).
    pub fn prove(&self, key: &[u8], height: Option<u64>) -> Result<StateProofAt> {
        let height = height.unwrap_or_else(|| self.tip().height);
        let (value, proof) = self.state.get_with_proof(key, height)?;
        let header = match height {
            0 => None,
            h => Some(
                self.header(h)?
                    .ok_or_else(|| Error::Store(format!("block {h} is missing")))?,
            ),
        };
        Ok(StateProofAt {
            height,
            root: self.state.root(height)?,
            value,
            proof,
            header,
        })
    }

    /// The next nonce of `account` at the tip.
    pub fn next_nonce(&self, account: &AccountId) -> Result<u64> {
        let reader = self.state.reader(self.tip().height)?;
        self.runtime.nonce(&reader, account)
    }
}

/// A state value with its proof, as [`Chain::prove`] returns it.
#[derive(Debug, Clone)]
pub struct StateProofAt {
    /// The height whose state it is.
    pub height: u64,
    /// That state's root.
    pub root: Hash,
    /// The value (`None`: absent, and the proof shows it).
    pub value: Option<Vec<u8>>,
    /// Inclusion or exclusion proof against `root`.
    pub proof: StateProof,
    /// The block header committing to `root` (`None` at height 0).
    pub header: Option<BlockHeader>,
}

impl StateProofAt {
    /// Checks the proof for `key` against the header's state root (or the
    /// root alone at height 0).
    pub fn verify(&self, key: &[u8]) -> Result<()> {
        if let Some(h) = &self.header {
            if h.state_root != self.root || h.height != self.height {
                return Err(Error::BadProof("the header does not commit to this root".into()));
            }
        }
        self.proof.verify(self.root, key, self.value.as_deref())
    }
}
