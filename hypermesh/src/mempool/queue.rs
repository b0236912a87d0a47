//! The pool's state: one nonce-ordered queue per sender and the indexes
//! kept over them (by id, by expiry, eviction candidates), with the few
//! primitives that change it while keeping every index consistent.
//!
//! Each change to a sender goes through [`Pool::detach`] / [`Pool::attach`]
//! so that its entries in the aggregate indexes (its eviction candidate,
//! its next ready transaction, its ready count) are recomputed from the
//! queue rather than patched.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use crate::fast_map::FastMap;

use crate::codec::Hash;
use crate::types::{AccountId, CheckedTx};

/// A pending transaction with what the pool orders it by.
#[derive(Debug, Clone)]
pub(super) struct Slot {
    pub(super) tx: CheckedTx,
    /// `tx.fee_per_gas()`, computed once.
    pub(super) fee: u128,
    /// Arrival order: breaks fee ties (earlier first for inclusion, later
    /// first for eviction).
    pub(super) seq: u64,
}

impl Slot {
    pub(super) fn new(tx: CheckedTx, seq: u64) -> Self {
        let fee = tx.fee_per_gas();
        Slot { tx, fee, seq }
    }

    fn expiry(&self) -> u64 {
        self.tx.tx().body.expiry_height
    }

    fn evict_key(&self) -> EvictKey {
        (self.fee, Reverse(self.seq))
    }
}

/// One sender's pending transactions.
#[derive(Debug)]
pub(super) struct Sender {
    /// The sender's next nonce in the committed state, as last learnt.
    pub(super) expected: u64,
    /// The first nonce from `expected` on that the queue lacks: the
    /// transactions at `expected..ready_end` are ready, the rest future.
    pub(super) ready_end: u64,
    pub(super) txs: BTreeMap<u64, Slot>,
}

impl Sender {
    fn advance(&mut self) {
        while self.txs.contains_key(&self.ready_end) {
            self.ready_end += 1;
        }
    }

    fn ready_count(&self) -> usize {
        usize::try_from(self.ready_end - self.expected).unwrap_or(usize::MAX)
    }

    /// The transaction at the sender's next nonce, if any is ready.
    fn head(&self) -> Option<&Slot> {
        if self.ready_end > self.expected {
            self.txs.get(&self.expected)
        } else {
            None
        }
    }
}

/// Inclusion order among senders' next transactions: highest fee per gas,
/// then earliest arrival.
pub(super) type HeadKey = (Reverse<u128>, u64);

fn head_key(slot: &Slot) -> HeadKey {
    (Reverse(slot.fee), slot.seq)
}

/// A sender's next ready transaction, as [`Pool::ready_heads`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReadyHead {
    pub(super) sender: AccountId,
    pub(super) gas: u64,
    pub(super) size: usize,
}

/// Eviction order among senders' last transactions: lowest fee per gas,
/// then latest arrival.
type EvictKey = (u128, Reverse<u64>);

/// A transaction removed while admitting another, kept so that a refusal
/// can put everything back.
#[derive(Debug, Default)]
pub(super) struct Journal {
    /// A sender whose expected nonce was raised, and the old value.
    pub(super) sync: Option<(AccountId, u64)>,
    /// Removed transactions in order, with their sender's expected nonce
    /// at the time (to rebuild a queue that emptied).
    pub(super) removed: Vec<(AccountId, u64, Slot)>,
}

/// Everything the pool holds.
#[derive(Debug, Default)]
pub(super) struct Pool {
    pub(super) senders: FastMap<AccountId, Sender>,
    pub(super) by_hash: FastMap<Hash, (AccountId, u64)>,
    /// (expiry height, seq) of every transaction.
    pub(super) by_expiry: BTreeMap<(u64, u64), (AccountId, u64)>,
    /// The last transaction of each sender whose queue has a gap.
    pub(super) evict_future: BTreeMap<EvictKey, AccountId>,
    /// The last transaction of each sender whose queue is all ready.
    pub(super) evict_ready: BTreeMap<EvictKey, AccountId>,
    /// The next transaction of each sender that has one ready, with its
    /// gas limit and size (so a selection can pass over it unread).
    pub(super) ready_heads: BTreeMap<HeadKey, ReadyHead>,
    pub(super) bytes: usize,
    pub(super) ready: usize,
}

impl Pool {
    /// Takes `id`'s entries out of the aggregate indexes.
    fn detach(&mut self, id: &AccountId) {
        let Some(s) = self.senders.get(id) else { return };
        self.ready -= s.ready_count();
        if let Some(head) = s.head() {
            self.ready_heads.remove(&head_key(head));
        }
        if let Some((nonce, slot)) = s.txs.last_key_value() {
            if *nonce < s.ready_end {
                self.evict_ready.remove(&slot.evict_key());
            } else {
                self.evict_future.remove(&slot.evict_key());
            }
        }
    }

    /// Puts `id`'s entries back from its queue, dropping it if empty.
    fn attach(&mut self, id: &AccountId) {
        let Some(s) = self.senders.get(id) else { return };
        let Some((nonce, slot)) = s.txs.last_key_value() else {
            self.senders.remove(id);
            return;
        };
        self.ready += s.ready_count();
        if let Some(head) = s.head() {
            let ready = ReadyHead {
                sender: *id,
                gas: head.tx.tx().body.gas_limit,
                size: head.tx.bytes().len(),
            };
            self.ready_heads.insert(head_key(head), ready);
        }
        if *nonce < s.ready_end {
            self.evict_ready.insert(slot.evict_key(), *id);
        } else {
            self.evict_future.insert(slot.evict_key(), *id);
        }
    }

    fn unindex(&mut self, slot: &Slot) {
        self.by_hash.remove(&slot.tx.hash());
        self.by_expiry.remove(&(slot.expiry(), slot.seq));
        self.bytes -= slot.tx.bytes().len();
    }

    /// Where the transaction `hash` is: its sender and nonce.
    pub(super) fn locate(&self, hash: &Hash) -> Option<(AccountId, u64)> {
        self.by_hash.get(hash).copied()
    }

    /// Adds `slot` to `id`'s queue (created with `expected` if absent). The
    /// nonce must be free.
    pub(super) fn put(&mut self, id: AccountId, expected: u64, slot: Slot) {
        self.detach(&id);
        let s = self.senders.entry(id).or_insert_with(|| Sender {
            expected,
            ready_end: expected,
            txs: BTreeMap::new(),
        });
        let nonce = slot.tx.nonce();
        self.by_hash.insert(slot.tx.hash(), (id, nonce));
        self.by_expiry.insert((slot.expiry(), slot.seq), (id, nonce));
        self.bytes += slot.tx.bytes().len();
        let previous = s.txs.insert(nonce, slot);
        debug_assert!(previous.is_none(), "put over a pending nonce");
        if nonce == s.ready_end {
            s.advance();
        }
        self.attach(&id);
    }

    /// Removes `id`'s transaction at `nonce`; later ones become future.
    pub(super) fn take(&mut self, id: &AccountId, nonce: u64) -> Option<Slot> {
        self.detach(id);
        let s = self.senders.get_mut(id)?;
        let slot = s.txs.remove(&nonce);
        if (s.expected..s.ready_end).contains(&nonce) {
            s.ready_end = nonce;
        }
        if let Some(slot) = &slot {
            self.unindex(slot);
        }
        self.attach(id);
        slot
    }

    /// Raises `id`'s expected nonce to `next` (never lowers it), dropping
    /// the transactions below it. Returns them, in nonce order.
    pub(super) fn raise_expected(&mut self, id: &AccountId, next: u64) -> Vec<Slot> {
        if self.senders.get(id).is_none_or(|s| next <= s.expected) {
            return Vec::new();
        }
        self.detach(id);
        let mut stale = Vec::new();
        if let Some(s) = self.senders.get_mut(id) {
            let keep = s.txs.split_off(&next);
            stale.extend(std::mem::replace(&mut s.txs, keep).into_values());
            s.expected = next;
            if s.ready_end < next {
                s.ready_end = next;
                s.advance();
            }
        }
        for slot in &stale {
            self.unindex(slot);
        }
        self.attach(id);
        stale
    }

    /// Undoes the removals and the expected-nonce raise of `journal`.
    pub(super) fn rollback(&mut self, journal: Journal) {
        for (id, expected, slot) in journal.removed.into_iter().rev() {
            self.put(id, expected, slot);
        }
        if let Some((id, old)) = journal.sync {
            self.detach(&id);
            if let Some(s) = self.senders.get_mut(&id) {
                s.expected = old;
                s.ready_end = old;
                s.advance();
            }
            self.attach(&id);
        }
    }

    /// The transaction to evict to make room for one of sender `own`
    /// paying `fee` per gas (`ready` if it would be ready): the cheapest
    /// future tail, else (for a ready newcomer only) the cheapest ready
    /// tail, provided it pays strictly less; never one of `own`'s. On
    /// refusal, the fee per gas the newcomer must exceed (`u128::MAX` if
    /// there is nothing it may evict).
    pub(super) fn victim(&self, own: &AccountId, fee: u128, ready: bool) -> Result<(AccountId, u64), u128> {
        let cheapest =
            |m: &BTreeMap<EvictKey, AccountId>| m.iter().find(|(_, id)| *id != own).map(|(k, id)| (k.0, *id));
        let future = cheapest(&self.evict_future);
        let ready = if ready { cheapest(&self.evict_ready) } else { None };
        let chosen = [future, ready].into_iter().flatten().find(|(f, _)| *f < fee);
        match chosen {
            Some((_, id)) => {
                let nonce = self
                    .senders
                    .get(&id)
                    .and_then(|s| s.txs.last_key_value())
                    .map(|(n, _)| *n);
                nonce.map(|n| (id, n)).ok_or(u128::MAX)
            }
            None => Err([future, ready]
                .into_iter()
                .flatten()
                .map(|(f, _)| f)
                .min()
                .unwrap_or(u128::MAX)),
        }
    }

    /// The transactions expired for a block at `height` (expiry below it).
    pub(super) fn expired(&self, height: u64) -> Vec<(AccountId, u64)> {
        self.by_expiry.range(..(height, 0)).map(|(_, v)| *v).collect()
    }
}
