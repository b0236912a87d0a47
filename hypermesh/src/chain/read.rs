//! Reads of committed blocks, transactions, receipts, events and state.

use redb::ReadableDatabase;

use super::tables::{db_err, decode_events, parse_position, position, BLOCKS, BLOCK_EVENTS, HASHES, RECEIPTS, TXS};
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
    /// The committed block at `height` (1 and up).
    pub fn block(&self, height: u64) -> Result<Option<Block>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let blocks = txn.open_table(BLOCKS).map_err(db_err)?;
        let Some(raw) = blocks.get(height).map_err(db_err)? else {
            return Ok(None);
        };
        Block::decode(raw.value()).map(Some)
    }

    /// The encoded committed block at `height` (as stored, with its commit).
    pub fn block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let blocks = txn.open_table(BLOCKS).map_err(db_err)?;
        Ok(blocks.get(height).map_err(db_err)?.map(|v| v.value().to_vec()))
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

    /// A committed transaction by id, with its receipt.
    pub fn tx(&self, hash: &Hash) -> Result<Option<TxRecord>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let txs = txn.open_table(TXS).map_err(db_err)?;
        let Some(pos) = txs.get(*hash).map_err(db_err)?.map(|v| v.value()) else {
            return Ok(None);
        };
        let (height, index) = parse_position(&pos);
        let receipts = txn.open_table(RECEIPTS).map_err(db_err)?;
        let receipt = receipts
            .get(pos)
            .map_err(db_err)?
            .ok_or_else(|| Error::Store(format!("receipt {height}/{index} is missing")))?;
        let receipt = Receipt::decode(receipt.value())?;
        let block = self
            .block(height)?
            .ok_or_else(|| Error::Store(format!("block {height} is missing")))?;
        let tx = block
            .txs
            .into_iter()
            .nth(index as usize)
            .ok_or_else(|| Error::Store(format!("transaction {height}/{index} is missing")))?;
        Ok(Some(TxRecord {
            height,
            index,
            tx,
            receipt,
        }))
    }

    /// The receipts of the committed block at `height`, in order.
    pub fn receipts(&self, height: u64) -> Result<Vec<Receipt>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let receipts = txn.open_table(RECEIPTS).map_err(db_err)?;
        let mut out = Vec::new();
        for row in receipts
            .range(position(height, 0)..position(height, BLOCK_EVENTS))
            .map_err(db_err)?
        {
            let (_, v) = row.map_err(db_err)?;
            out.push(Receipt::decode(v.value())?);
        }
        Ok(out)
    }

    /// Events of committed blocks `from..=to` (clamped to the tip), in
    /// chain order, optionally only those of `module` and `kind`; at most
    /// `limit` (capped at [`MAX_EVENTS_PER_READ`]). Returns the events and
    /// the height to resume from (one past the last block fully read).
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
        let txn = self.db.begin_read().map_err(db_err)?;
        let receipts = txn.open_table(RECEIPTS).map_err(db_err)?;
        let keep = |e: &Event| module.is_none_or(|m| e.module == m) && kind.is_none_or(|k| e.kind == k);
        let mut out = Vec::new();
        let mut height = from;
        while height <= to {
            let mut found = Vec::new();
            for row in receipts
                .range(position(height, 0)..=position(height, BLOCK_EVENTS))
                .map_err(db_err)?
            {
                let (k, v) = row.map_err(db_err)?;
                let (_, index) = parse_position(&k.value());
                if index == BLOCK_EVENTS {
                    for event in decode_events(v.value())?.into_iter().filter(|e| keep(e)) {
                        found.push(EventRecord {
                            height,
                            tx: None,
                            event,
                        });
                    }
                } else {
                    let r = Receipt::decode(v.value())?;
                    for event in r.events.into_iter().filter(|e| keep(e)) {
                        found.push(EventRecord {
                            height,
                            tx: Some((index, r.tx_hash)),
                            event,
                        });
                    }
                }
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
