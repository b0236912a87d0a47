//! Choosing a block's transactions: the senders' next ready transactions
//! in fee order, merged with a priority queue of the successors of those
//! taken.

use std::cmp::Ordering;
use std::collections::{btree_map, BinaryHeap};

use super::queue::Slot;
use super::Mempool;
use crate::types::CheckedTx;

/// A sender's next candidate and the rest of its ready run.
struct Head<'a> {
    slot: &'a Slot,
    rest: btree_map::Range<'a, u64, Slot>,
}

impl Head<'_> {
    /// Highest fee per gas first, then earliest arrival.
    fn rank(&self) -> (u128, std::cmp::Reverse<u64>) {
        (self.slot.fee, std::cmp::Reverse(self.slot.seq))
    }
}

impl PartialEq for Head<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank()
    }
}

impl Eq for Head<'_> {}

impl PartialOrd for Head<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Head<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl Mempool {
    /// Ready transactions for a block, in the order to include them: the
    /// highest fee per gas first (earlier arrival on ties), each sender's
    /// in nonce order from its next nonce, within `max_txs` transactions,
    /// `max_gas` summed gas limits and `max_bytes` encoded bytes. A
    /// transaction that does not fit what is left ends its sender's part
    /// (its later nonces could not be included without it); the others
    /// go on.
    ///
    /// Expects expired transactions to have been dropped by
    /// [`Mempool::on_committed`] for the block's height.
    ///
    /// O(k log k) for k transactions looked at: the senders' next
    /// transactions are kept sorted, and only the successors of those
    /// taken go through a heap.
    pub fn select(&self, max_txs: usize, max_gas: u64, max_bytes: usize) -> Vec<CheckedTx> {
        let mut heads = self.pool.ready_heads.iter().peekable();
        let mut successors: BinaryHeap<Head<'_>> = BinaryHeap::new();
        let mut out = Vec::with_capacity(max_txs.min(self.pool.ready));
        let (mut gas_left, mut bytes_left) = (max_gas, max_bytes);
        while out.len() < max_txs {
            let from_index = match (heads.peek(), successors.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(((fee, seq), _)), Some(next)) => (fee.0, std::cmp::Reverse(*seq)) > next.rank(),
            };
            let head = if from_index {
                let Some((_, ready)) = heads.next() else { break };
                if ready.gas > gas_left || ready.size > bytes_left {
                    continue;
                }
                self.pool.senders.get(&ready.sender).and_then(|s| {
                    let mut rest = s.txs.range(s.expected..s.ready_end);
                    rest.next().map(|(_, slot)| Head { slot, rest })
                })
            } else {
                successors.pop()
            };
            let Some(mut head) = head else { continue };
            let tx = &head.slot.tx;
            let (gas, size) = (tx.tx().body.gas_limit, tx.bytes().len());
            if gas > gas_left || size > bytes_left {
                continue;
            }
            gas_left -= gas;
            bytes_left -= size;
            out.push(tx.clone());
            if let Some((_, next)) = head.rest.next() {
                head.slot = next;
                successors.push(head);
            }
        }
        out
    }
}
