//! The transaction pool: transactions that passed the stateless checks
//! (see [`check_batch`]), waiting for a block.
//!
//! Sans-IO: the node reads what the pool needs from the committed state
//! (a sender's next nonce, the next height) and passes it in; nothing here
//! waits, reads a clock or spawns a thread ([`check_batch`] aside).
//!
//! Each sender has a queue ordered by nonce. The transactions at the
//! sender's next nonce and the ones contiguous after it are *ready*; those
//! after a gap are *future* and wait for the gap to fill (or to be evicted
//! first when the pool is full). Blocks take ready transactions, highest
//! fee per gas first, each sender's in nonce order ([`Mempool::select`]).
//!
//! Every refusal leaves the pool as it was.

mod queue;
mod select;
mod verify;

#[cfg(test)]
mod block_tests;
#[cfg(test)]
mod evict_tests;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod verify_tests;

pub(crate) use verify::par_map;
pub use verify::{check_batch, check_batch_with, default_threads, KeyLookup};

use queue::{Journal, Pool, Slot};

use crate::codec::Hash;
use crate::error::TxError;
use crate::types::{AccountId, CheckedTx, Transaction};

/// How much more per gas (in percent) a transaction must offer to replace
/// a pending one with the same sender and nonce.
pub const REPLACE_BUMP_PERCENT: u128 = 10;

/// The pool's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct MempoolConfig {
    /// Most transactions held.
    pub max_txs: usize,
    /// Most bytes of encoded transactions held.
    pub max_bytes: usize,
    /// Most transactions held per sender; also how far past the sender's
    /// next nonce a transaction may be.
    pub max_per_sender: usize,
    /// Lowest fee per unit of gas admitted.
    pub min_fee_per_gas: u128,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            max_txs: 50_000,
            max_bytes: 256 * 1024 * 1024,
            max_per_sender: 1_024,
            min_fee_per_gas: 0,
        }
    }
}

/// What admitting a transaction changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The pending transaction with the same sender and nonce it replaced.
    pub replaced: Option<Hash>,
    /// Transactions evicted to make room, cheapest first.
    pub evicted: Vec<Hash>,
    /// Pending transactions of the sender dropped because the given next
    /// nonce shows theirs already used (the pool had not yet learnt of
    /// the block that used them).
    pub replayed: Vec<Hash>,
    /// Whether it is ready (no nonce gap before it).
    pub ready: bool,
}

/// What [`Mempool::on_committed`] removed, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Included in the block.
    pub included: usize,
    /// Nonce already used (another transaction with it was included).
    pub replayed: usize,
    /// Expired for the next height.
    pub expired: usize,
}

/// The pool's size, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MempoolStats {
    /// Transactions held.
    pub txs: usize,
    /// Bytes of encoded transactions held.
    pub bytes: usize,
    /// Transactions ready for a block.
    pub ready: usize,
    /// Transactions waiting for a nonce gap to fill.
    pub future: usize,
    /// Senders with a transaction held.
    pub senders: usize,
}

/// The transaction pool (see the [module documentation](self)).
#[derive(Debug, Default)]
pub struct Mempool {
    config: MempoolConfig,
    pool: Pool,
    next_seq: u64,
}

/// The lowest fee per gas that replaces a pending transaction paying `old`:
/// [`REPLACE_BUMP_PERCENT`] more, rounded up, and at least one more.
pub fn replacement_fee(old: u128) -> u128 {
    let bump = old.saturating_mul(REPLACE_BUMP_PERCENT).div_ceil(100).max(1);
    old.saturating_add(bump)
}

impl Mempool {
    /// An empty pool with `config`'s limits.
    pub fn new(config: MempoolConfig) -> Self {
        Mempool {
            config,
            pool: Pool::default(),
            next_seq: 0,
        }
    }

    /// How many of `s`'s transactions a next nonce of `expected` leaves.
    fn live(s: &queue::Sender, expected: u64) -> usize {
        if expected <= s.expected {
            s.txs.len()
        } else {
            s.txs.range(expected..).count()
        }
    }

    /// The pool's limits.
    pub fn config(&self) -> &MempoolConfig {
        &self.config
    }

    /// Admits `tx` for a block at `height`, given its sender's next nonce
    /// in the committed state.
    ///
    /// Refuses, leaving the pool unchanged: [`TxError::Duplicate`] (known),
    /// [`TxError::Expired`] (`height` past its expiry),
    /// [`TxError::Oversized`] (larger than the whole pool),
    /// [`TxError::NonceReplayed`] (nonce below the next),
    /// [`TxError::FeeTooLow`] (below the minimum fee per gas, or not
    /// [`REPLACE_BUMP_PERCENT`] above the pending transaction with the same
    /// nonce; `minimum` is what would do), [`TxError::NonceGap`] (more than
    /// `max_per_sender` past the next nonce), [`TxError::MempoolFull`]
    /// (the pool is full and it pays too little to evict: `floor` is the
    /// fee per gas it must exceed, `u128::MAX` when nothing is evictable),
    /// [`TxError::SenderLimit`] (the sender already holds
    /// `max_per_sender`).
    ///
    /// When full, evicts the cheapest transactions that end their
    /// sender's queue (so no ready transaction loses a predecessor),
    /// future ones first, and only if the newcomer pays strictly more per
    /// gas. A future newcomer evicts only future transactions, and none
    /// evicts its own sender's.
    pub fn insert(&mut self, tx: CheckedTx, sender_next_nonce: u64, height: u64) -> Result<Admitted, TxError> {
        let hash = tx.hash();
        if self.pool.by_hash.contains_key(&hash) {
            return Err(TxError::Duplicate);
        }
        let expiry = tx.tx().body.expiry_height;
        if height > expiry {
            return Err(TxError::Expired { expiry, height });
        }
        let size = tx.bytes().len();
        if size > self.config.max_bytes {
            return Err(TxError::Oversized {
                size,
                limit: self.config.max_bytes,
            });
        }
        let (id, nonce, fee) = (tx.sender(), tx.nonce(), tx.fee_per_gas());
        let queue = self.pool.senders.get(&id);
        let expected = queue.map_or(sender_next_nonce, |s| s.expected.max(sender_next_nonce));
        if nonce < expected {
            return Err(TxError::NonceReplayed { got: nonce, expected });
        }
        if fee < self.config.min_fee_per_gas {
            return Err(TxError::FeeTooLow {
                offered: fee,
                minimum: self.config.min_fee_per_gas,
            });
        }
        if nonce - expected > u64::try_from(self.config.max_per_sender).unwrap_or(u64::MAX) {
            return Err(TxError::NonceGap { got: nonce, expected });
        }
        let pending = queue.and_then(|s| s.txs.get(&nonce));
        if let Some(old) = pending {
            let minimum = replacement_fee(old.fee);
            if fee < minimum {
                return Err(TxError::FeeTooLow { offered: fee, minimum });
            }
        } else if queue.map_or(0, |s| Self::live(s, expected)) >= self.config.max_per_sender {
            return Err(TxError::SenderLimit {
                limit: self.config.max_per_sender,
            });
        }

        let mut journal = Journal::default();
        if let Some(old) = queue.map(|s| s.expected).filter(|old| *old < expected) {
            journal.sync = Some((id, old));
            let stale = self.pool.raise_expected(&id, expected);
            journal.removed.extend(stale.into_iter().map(|slot| (id, old, slot)));
        }
        let replayed: Vec<Hash> = journal.removed.iter().map(|(_, _, s)| s.tx.hash()).collect();
        let ready = nonce <= self.pool.senders.get(&id).map_or(expected, |s| s.ready_end);
        let replaced = self.pool.take(&id, nonce).map(|slot| {
            let replaced = slot.tx.hash();
            journal.removed.push((id, expected, slot));
            replaced
        });
        let mut evicted = Vec::new();
        while self.pool.by_hash.len() >= self.config.max_txs || self.pool.bytes + size > self.config.max_bytes {
            let chosen = self.pool.victim(&id, fee, ready).and_then(|(victim, victim_nonce)| {
                let expected_then = self.pool.senders.get(&victim).map_or(0, |s| s.expected);
                let slot = self.pool.take(&victim, victim_nonce).ok_or(u128::MAX)?;
                Ok((victim, expected_then, slot))
            });
            match chosen {
                Ok((victim, expected_then, slot)) => {
                    evicted.push(slot.tx.hash());
                    journal.removed.push((victim, expected_then, slot));
                }
                Err(floor) => {
                    self.pool.rollback(journal);
                    return Err(TxError::MempoolFull { floor });
                }
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pool.put(id, expected, Slot::new(tx, seq));
        Ok(Admitted {
            replaced,
            evicted,
            replayed,
            ready,
        })
    }

    /// Updates the pool after a block: removes the `committed`
    /// transactions, raises each sender's next nonce to the one given
    /// (dropping pending transactions below it, and promoting future ones
    /// a filled gap makes ready), and drops what expired for a block at
    /// `height` (the next block's height).
    pub fn on_committed(
        &mut self,
        committed: &[Hash],
        next_nonces: impl IntoIterator<Item = (AccountId, u64)>,
        height: u64,
    ) -> PruneReport {
        let mut report = PruneReport::default();
        let mut seen = Vec::new();
        for hash in committed {
            if let Some((id, nonce)) = self.pool.locate(hash) {
                if self.pool.take(&id, nonce).is_some() {
                    report.included += 1;
                    // Its sender's next nonce is now past it at least.
                    seen.push((id, nonce.saturating_add(1)));
                }
            }
        }
        for (id, next) in seen.into_iter().chain(next_nonces) {
            report.replayed += self.pool.raise_expected(&id, next).len();
        }
        for (id, nonce) in self.pool.expired(height) {
            if self.pool.take(&id, nonce).is_some() {
                report.expired += 1;
            }
        }
        report
    }

    /// Removes a transaction; its sender's later ones become future.
    pub fn remove(&mut self, hash: &Hash) -> Option<CheckedTx> {
        let (id, nonce) = self.pool.locate(hash)?;
        self.pool.take(&id, nonce).map(|slot| slot.tx)
    }

    /// The transaction `hash`, if held.
    pub fn get(&self, hash: &Hash) -> Option<&CheckedTx> {
        let (id, nonce) = self.pool.locate(hash)?;
        self.pool.senders.get(&id)?.txs.get(&nonce).map(|slot| &slot.tx)
    }

    /// The held transaction identical to `tx` (same sender and nonce, and
    /// equal in every field), found without hashing it.
    pub fn get_same(&self, tx: &Transaction) -> Option<&CheckedTx> {
        let held = self.pool.senders.get(&tx.body.sender_id())?.txs.get(&tx.body.nonce)?;
        // A block rebuilt from this pool shares the very copy: no need to
        // compare kilobytes.
        (std::ptr::eq(held.tx.tx(), tx) || held.tx.tx() == tx).then_some(&held.tx)
    }

    /// Whether `hash` is held.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.pool.by_hash.contains_key(hash)
    }

    /// Transactions held.
    pub fn len(&self) -> usize {
        self.pool.by_hash.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.pool.by_hash.is_empty()
    }

    /// Bytes of encoded transactions held.
    pub fn bytes(&self) -> usize {
        self.pool.bytes
    }

    /// The nonce a sender's next transaction should carry: the one after
    /// its contiguous run of pending transactions (`None` if it has none
    /// pending; use the committed state's next nonce then).
    pub fn pending_nonce(&self, sender: &AccountId) -> Option<u64> {
        self.pool.senders.get(sender).map(|s| s.ready_end)
    }

    /// Transactions ready for a block.
    pub fn ready_count(&self) -> usize {
        self.pool.ready
    }

    /// The pool's size, for metrics.
    pub fn stats(&self) -> MempoolStats {
        MempoolStats {
            txs: self.len(),
            bytes: self.pool.bytes,
            ready: self.pool.ready,
            future: self.len() - self.pool.ready,
            senders: self.pool.senders.len(),
        }
    }
}
