//! The validator shell's half of compact block relay (the wire half and
//! the reasons are in [`crate::consensus::compact`]).
//!
//! Sans-IO: each call takes what arrived and a lookup into the mempool,
//! and returns one [`Step`] for the shell to carry out. A compact block
//! missing transactions first waits [`ADMISSION_GRACE`] (they are usually
//! being verified from gossip as it arrives), then asks the proposer for
//! what is still missing, and after [`ANSWER_WAIT`] without an answer, or
//! on a wrong one, falls back to asking for the whole block.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::codec::Hash;
use crate::consensus::compact::CompactBlock;
use crate::consensus::context::Address;
use crate::types::{Block, CheckedTx, EncodedBlock, Transaction};

/// How long a compact block missing transactions waits for them to be
/// admitted from gossip before asking its proposer.
pub(super) const ADMISSION_GRACE: Duration = Duration::from_millis(30);
/// How long an answer to a transactions request is awaited.
pub(super) const ANSWER_WAIT: Duration = Duration::from_millis(500);
/// Compact blocks (of any height in the window) held while incomplete.
const MAX_PENDING: usize = 16;
/// Own proposals remembered to answer requests.
const MAX_OWN: usize = 16;
/// Heights above the current one compact blocks are taken for (as the
/// core keeps early messages for).
const FUTURE_HEIGHTS: u64 = 4;

/// What the shell does next.
#[derive(Debug)]
pub(super) enum Step {
    /// Hand the rebuilt block to the core, as a block from `from`.
    Deliver {
        /// The proposer that sent it.
        from: Address,
        /// The block.
        block: EncodedBlock,
        /// Whether transactions had to be fetched.
        fetched: bool,
    },
    /// Call [`BlockRelay::due`] for `hash` after `after`.
    Wait {
        /// The block.
        hash: Hash,
        /// How long.
        after: Duration,
    },
    /// Ask `to` for the transactions at `indices`, then wait.
    Ask {
        /// The proposer.
        to: Address,
        /// Height.
        height: u64,
        /// The block.
        hash: Hash,
        /// Positions still missing.
        indices: Vec<u32>,
    },
    /// Give up on the compact form: ask `to` for the whole block.
    AskBlock {
        /// The proposer.
        to: Address,
        /// Height.
        height: u64,
        /// The block.
        hash: Hash,
    },
    /// Nothing to do.
    Nothing,
}

/// A transaction of a block being rebuilt.
#[derive(Clone)]
enum Slot {
    /// Held in the mempool (verified on admission).
    Held(CheckedTx),
    /// Fetched from the proposer (the block check verifies it).
    Fetched(Arc<Transaction>, Bytes),
}

impl Slot {
    fn tx(&self) -> &Arc<Transaction> {
        match self {
            Slot::Held(c) => c.shared_tx(),
            Slot::Fetched(t, _) => t,
        }
    }

    fn bytes(&self) -> Bytes {
        match self {
            Slot::Held(c) => c.shared_bytes().clone(),
            Slot::Fetched(_, b) => b.clone(),
        }
    }
}

struct Pending {
    from: Address,
    hash: Hash,
    compact: CompactBlock,
    slots: Vec<Option<Slot>>,
    asked: bool,
    fetched: bool,
}

/// Compact relay state of one validator.
#[derive(Default)]
pub(super) struct BlockRelay {
    height: u64,
    own: HashMap<Hash, EncodedBlock>,
    pending: HashMap<Hash, Pending>,
    /// Blocks handed to the core, with their heights.
    delivered: HashMap<Hash, u64>,
}

impl BlockRelay {
    /// Moves to `height`, dropping what is below it.
    pub(super) fn set_height(&mut self, height: u64) {
        if height == self.height {
            return;
        }
        self.height = height;
        self.own.retain(|_, b| b.header.height >= height);
        self.pending.retain(|_, p| p.compact.header.height >= height);
        self.delivered.retain(|_, h| *h >= height);
    }

    /// Remembers a block this node proposed (to answer requests) and
    /// returns its compact form, if its transactions' ids are known.
    pub(super) fn proposed(&mut self, hash: Hash, block: &EncodedBlock) -> Option<CompactBlock> {
        let compact = CompactBlock::of(block)?;
        if self.own.len() >= MAX_OWN {
            return None;
        }
        self.own.insert(hash, block.clone());
        Some(compact)
    }

    /// Notes a whole block handed to the core.
    pub(super) fn note_delivered(&mut self, hash: Hash, height: u64) {
        self.pending.remove(&hash);
        if height >= self.height && height <= self.height + FUTURE_HEIGHTS {
            self.delivered.insert(hash, height);
        }
    }

    /// Whether the block `hash` has reached the core or is on its way
    /// (a request for the whole of it would be wasted).
    pub(super) fn has(&self, hash: &Hash) -> bool {
        self.delivered.contains_key(hash) || self.pending.contains_key(hash)
    }

    /// A compact block from `from`, its hash `hash` (of its header).
    pub(super) fn on_compact(
        &mut self,
        from: Address,
        hash: Hash,
        compact: CompactBlock,
        lookup: impl Fn(&[Hash]) -> Vec<Option<CheckedTx>>,
    ) -> Step {
        let h = compact.header.height;
        if h < self.height || h > self.height + FUTURE_HEIGHTS || self.has(&hash) {
            return Step::Nothing;
        }
        if self.pending.len() >= MAX_PENDING {
            return Step::Nothing;
        }
        let slots = lookup(&compact.tx_ids).into_iter().map(|c| c.map(Slot::Held)).collect();
        let pending = Pending {
            from,
            hash,
            compact,
            slots,
            asked: false,
            fetched: false,
        };
        if pending.slots.iter().all(Option::is_some) {
            return self.deliver(pending);
        }
        self.pending.insert(hash, pending);
        Step::Wait {
            hash,
            after: ADMISSION_GRACE,
        }
    }

    /// The wait for `hash` is over: fill from the mempool again, then ask
    /// the proposer for the rest, or (already asked) for the whole block.
    pub(super) fn due(&mut self, hash: Hash, lookup: impl Fn(&[Hash]) -> Vec<Option<CheckedTx>>) -> Step {
        let Some(mut p) = self.pending.remove(&hash) else {
            return Step::Nothing;
        };
        fill_from_pool(&mut p, lookup);
        let missing = missing(&p);
        if missing.is_empty() {
            return self.deliver(p);
        }
        let (to, height) = (p.from, p.compact.header.height);
        if p.asked {
            // No answer in time: the whole block, through the core's path.
            return Step::AskBlock { to, height, hash };
        }
        p.asked = true;
        self.pending.insert(hash, p);
        Step::Ask {
            to,
            height,
            hash,
            indices: missing,
        }
    }

    /// Transactions of `hash` from `from` (answering a request). Each must
    /// have the id the compact block lists at its position; a wrong or
    /// short answer gives up on the compact form.
    pub(super) fn on_txs(
        &mut self,
        from: Address,
        hash: Hash,
        txs: Vec<(u32, Bytes)>,
        lookup: impl Fn(&[Hash]) -> Vec<Option<CheckedTx>>,
    ) -> Step {
        match self.pending.get(&hash) {
            Some(p) if p.from == from && p.asked => {}
            // Unasked, or not from the proposer asked: ignored.
            _ => return Step::Nothing,
        }
        let Some(mut p) = self.pending.remove(&hash) else {
            return Step::Nothing;
        };
        let (to, height) = (p.from, p.compact.header.height);
        for (i, bytes) in txs {
            let Some(want) = p.compact.tx_ids.get(i as usize) else {
                return Step::AskBlock { to, height, hash };
            };
            match Transaction::decode(&bytes)
                .ok()
                .filter(|t| t.hash().ok().as_ref() == Some(want))
            {
                Some(tx) => p.slots[i as usize] = Some(Slot::Fetched(Arc::new(tx), bytes)),
                None => return Step::AskBlock { to, height, hash },
            }
        }
        p.fetched = true;
        fill_from_pool(&mut p, lookup);
        if missing(&p).is_empty() {
            self.deliver(p)
        } else {
            Step::AskBlock { to, height, hash }
        }
    }

    /// The transactions at `indices` of a block this node proposed, if it
    /// did (and every position is in it).
    pub(super) fn answer(&self, hash: &Hash, indices: &[u32]) -> Option<Vec<(u32, Bytes)>> {
        let block = self.own.get(hash)?;
        indices
            .iter()
            .map(|&i| block.tx_encoding(i as usize).map(|b| (i, b)))
            .collect()
    }

    fn deliver(&mut self, p: Pending) -> Step {
        let slots: Vec<Slot> = p.slots.into_iter().flatten().collect();
        let block = Arc::new(Block {
            header: p.compact.header,
            txs: slots.iter().map(|s| Arc::clone(s.tx())).collect(),
            commit: p.compact.commit,
        });
        match EncodedBlock::from_tx_encodings(block, slots.iter().map(Slot::bytes).collect()) {
            Ok(b) => {
                self.delivered.insert(p.hash, b.header.height);
                Step::Deliver {
                    from: p.from,
                    block: b.with_tx_ids(p.compact.tx_ids),
                    fetched: p.fetched,
                }
            }
            // Over the block limits: the proposer's block is no block.
            Err(_) => Step::Nothing,
        }
    }
}

fn fill_from_pool(p: &mut Pending, lookup: impl Fn(&[Hash]) -> Vec<Option<CheckedTx>>) {
    let idx: Vec<usize> = (0..p.slots.len()).filter(|&i| p.slots[i].is_none()).collect();
    let ids: Vec<Hash> = idx.iter().map(|&i| p.compact.tx_ids[i]).collect();
    for (i, found) in idx.into_iter().zip(lookup(&ids)) {
        p.slots[i] = found.map(Slot::Held);
    }
}

fn missing(p: &Pending) -> Vec<u32> {
    (0..p.slots.len())
        .filter(|&i| p.slots[i].is_none())
        .map(|i| i as u32)
        .collect()
}

#[cfg(test)]
#[path = "block_relay_tests.rs"]
mod tests;
