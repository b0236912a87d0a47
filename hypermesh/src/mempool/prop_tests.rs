//! Property test: random inserts, blocks, removals and state the pool has
//! not yet heard of, checking after each step that the indexes and counts
//! match the contents, that selection gives every sender's ready run from
//! its next nonce without gap or duplicate, and that refusals change
//! nothing.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::tests::{acct, assert_consistent, assert_contiguous, derive_sender, make, select_all, GAS};
use super::*;

const SENDERS: usize = 4;
const PAD: usize = 600;

#[derive(Debug, Clone)]
enum Op {
    /// A transaction `ahead` past the sender's committed next nonce.
    Insert {
        sender: usize,
        ahead: u64,
        fee: u128,
        pad: usize,
        lasts: u64,
    },
    /// A block of up to `take` selected transactions.
    Commit { take: usize },
    /// The sender's nonce used by a transaction the pool never saw; the
    /// pool hears of it only at the next block.
    Elsewhere { sender: usize, by: u64 },
    /// Removal of the `pick`-th selected transaction.
    Remove { pick: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..SENDERS, prop_oneof![3 => Just(0u64), 2 => 1u64..3, 1 => 3u64..6], 1u128..30, 0usize..3, 0u64..12)
            .prop_map(|(sender, ahead, fee, pad, lasts)| Op::Insert { sender, ahead, fee, pad, lasts }),
        1 => (0usize..6).prop_map(|take| Op::Commit { take }),
        1 => (0..SENDERS, 1u64..3).prop_map(|(sender, by)| Op::Elsewhere { sender, by }),
        1 => (0usize..8).prop_map(|pick| Op::Remove { pick }),
    ]
}

fn snapshot(pool: &Mempool) -> (MempoolStats, Vec<Hash>) {
    (pool.stats(), select_all(pool).iter().map(CheckedTx::hash).collect())
}

/// Checks what holds after every step.
fn check(pool: &Mempool) {
    assert_consistent(pool);
    assert_contiguous(pool);
    let selected = select_all(pool);
    let unique: HashSet<Hash> = selected.iter().map(CheckedTx::hash).collect();
    assert_eq!(unique.len(), selected.len(), "a transaction selected twice");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn the_pool_stays_consistent(ops in proptest::collection::vec(op(), 1..120)) {
        let keys: Vec<_> = (0..SENDERS).map(derive_sender).collect();
        let base = make(&keys[0], 0, 1, GAS, 1, 0).bytes().len();
        let mut pool = Mempool::new(MempoolConfig {
            max_txs: 10,
            max_bytes: 8 * base + 2 * PAD,
            max_per_sender: 4,
            min_fee_per_gas: 2,
        });
        let mut next = [0u64; SENDERS];
        let mut height = 1u64;
        for op in ops {
            match op {
                Op::Insert { sender, ahead, fee, pad, lasts } => {
                    let tx = make(&keys[sender], next[sender] + ahead, fee, GAS, height + lasts, pad * PAD);
                    let before = snapshot(&pool);
                    let (len, known) = (pool.len(), pool.contains(&tx.hash()));
                    match pool.insert(tx.clone(), next[sender], height) {
                        Ok(admitted) => {
                            prop_assert!(!known && pool.contains(&tx.hash()));
                            let gone = admitted.evicted.len() + admitted.replayed.len()
                                + usize::from(admitted.replaced.is_some());
                            prop_assert_eq!(pool.len() + gone, len + 1);
                            for h in admitted.evicted.iter().chain(&admitted.replayed).chain(&admitted.replaced) {
                                prop_assert!(!pool.contains(h));
                            }
                            prop_assert_eq!(admitted.ready, tx.nonce() < pool.pending_nonce(&tx.sender()).unwrap_or(0));
                        }
                        Err(err) => {
                            prop_assert_eq!(snapshot(&pool), before, "refusal {} changed the pool", err);
                            prop_assert_eq!(known, err == TxError::Duplicate);
                        }
                    }
                }
                Op::Commit { take } => {
                    // Executed as the runtime would: a nonce already used
                    // elsewhere is skipped, the next one included.
                    let mut committed = Vec::new();
                    for tx in pool.select(take, u64::MAX, usize::MAX) {
                        let s = (0..SENDERS).position(|i| acct(i) == tx.sender()).expect("a test sender");
                        prop_assert!(tx.nonce() <= next[s], "a selected nonce past the sender's next");
                        if tx.nonce() == next[s] {
                            committed.push(tx.hash());
                            next[s] += 1;
                        }
                    }
                    height += 1;
                    let report = pool.on_committed(&committed, (0..SENDERS).map(|s| (acct(s), next[s])), height);
                    prop_assert_eq!(report.included, committed.len());
                    // Told everything: nothing stale or expired is left.
                    let told: HashMap<AccountId, u64> = (0..SENDERS).map(|s| (acct(s), next[s])).collect();
                    for (id, s) in &pool.pool.senders {
                        prop_assert_eq!(s.expected, told[id]);
                        for slot in s.txs.values() {
                            prop_assert!(slot.tx.tx().body.expiry_height >= height);
                        }
                    }
                }
                Op::Elsewhere { sender, by } => next[sender] += by,
                Op::Remove { pick } => {
                    let selected = select_all(&pool);
                    if let Some(tx) = selected.get(pick) {
                        let removed = pool.remove(&tx.hash());
                        prop_assert_eq!(removed.as_ref(), Some(tx));
                        prop_assert!(!pool.contains(&tx.hash()));
                    }
                }
            }
            check(&pool);
        }
    }
}
