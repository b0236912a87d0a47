//! Tests of what happens around a block: selection within limits, pruning
//! after a commit, removal, and the selection speed (ignored benchmark).

use super::tests::{
    acct, assert_consistent, assert_contiguous, derive_sender, hashes, ids, make, select_all, tx, EXPIRY, GAS,
};
use super::*;

fn insert_all(pool: &mut Mempool, txs: &[&CheckedTx]) {
    for t in txs {
        pool.insert((*t).clone(), 0, 1).expect("admitted");
    }
    assert_consistent(pool);
}

#[test]
fn select_respects_the_count_gas_and_byte_limits() {
    let s = |i: usize| derive_sender(i);
    let a0 = make(&s(0), 0, 30, 1_000, EXPIRY, 0);
    let a1 = make(&s(0), 1, 30, 4_000, EXPIRY, 0);
    let a2 = make(&s(0), 2, 30, 100, EXPIRY, 0);
    let c0 = make(&s(2), 0, 10, 1_000, EXPIRY, 0);
    let mut pool = Mempool::default();
    insert_all(&mut pool, &[&a0, &a1, &a2, &c0]);
    assert_eq!(ids(&select_all(&pool)), hashes(&[&a0, &a1, &a2, &c0]));
    assert_eq!(ids(&pool.select(2, u64::MAX, usize::MAX)), hashes(&[&a0, &a1]));
    assert!(pool.select(0, u64::MAX, usize::MAX).is_empty());
    // A's 4,000 does not fit in what is left of 2,500: A stops there (its
    // nonce 2 would fit but cannot go without 1), C goes on.
    assert_eq!(ids(&pool.select(usize::MAX, 2_500, usize::MAX)), hashes(&[&a0, &c0]));
    assert_eq!(ids(&pool.select(usize::MAX, 999, usize::MAX)), Vec::<Hash>::new());
    let size = a0.bytes().len();
    assert_eq!(
        ids(&pool.select(usize::MAX, u64::MAX, 2 * size + 1)),
        hashes(&[&a0, &a1])
    );
    assert_eq!(ids(&pool.select(usize::MAX, u64::MAX, size - 1)), Vec::<Hash>::new());
}

#[test]
fn on_committed_removes_included_replayed_and_expired_and_promotes() {
    let mut pool = Mempool::default();
    let (a0, a1, a3) = (tx(0, 0, 9), tx(0, 1, 9), tx(0, 3, 9));
    let (b0, b1, b2) = (tx(1, 0, 8), tx(1, 1, 8), tx(1, 2, 8));
    let c0 = make(&derive_sender(2), 0, 50, GAS, 5, 0);
    let d2 = tx(3, 2, 7);
    let (e0, e1) = (tx(4, 0, 6), tx(4, 1, 6));
    insert_all(&mut pool, &[&a0, &a1, &a3, &b0, &b1, &b2, &c0, &d2, &e0, &e1]);
    assert_eq!((pool.stats().ready, pool.stats().future), (8, 2));

    // The block held A's 0 and 1, E's 0, and B's 0 and 1 in versions
    // this pool never saw; D's 0 and 1 came in other blocks.
    let committed = [a0.hash(), a1.hash(), e0.hash(), [0xee; 32]];
    let next = [(acct(0), 2), (acct(1), 2), (acct(3), 2), ([0xaa; 32], 4)];
    let report = pool.on_committed(&committed, next, 6);
    assert_consistent(&pool);
    assert_eq!(
        report,
        PruneReport {
            included: 3,
            replayed: 2,
            expired: 1
        }
    );
    for gone in [&a0, &a1, &b0, &b1, &c0, &e0] {
        assert!(!pool.contains(&gone.hash()));
    }
    // D's 2 is promoted; E's 1 follows its included 0 without being told;
    // A's 3 still waits for 2.
    assert_eq!(ids(&select_all(&pool)), hashes(&[&b2, &d2, &e1]));
    assert_eq!(
        (pool.stats().ready, pool.stats().future, pool.stats().senders),
        (3, 1, 4)
    );
    assert_eq!(pool.pending_nonce(&acct(0)), Some(2));
    assert_eq!(pool.pending_nonce(&acct(4)), Some(2));
    assert_contiguous(&pool);

    // Everything expires past height 100; nothing is left behind.
    let report = pool.on_committed(&[], [], EXPIRY + 1);
    assert_eq!(report.expired, 4);
    assert!(pool.is_empty() && pool.bytes() == 0 && pool.stats() == MempoolStats::default());
    assert_consistent(&pool);
}

#[test]
fn an_insert_with_a_newer_next_nonce_drops_the_stale_ones() {
    let mut pool = Mempool::default();
    let (a0, a1, a2) = (tx(0, 0, 9), tx(0, 1, 9), tx(0, 2, 9));
    insert_all(&mut pool, &[&a0, &a1]);
    let admitted = pool.insert(a2.clone(), 2, 1).expect("admitted");
    assert_eq!(admitted.replayed, hashes(&[&a0, &a1]));
    assert!(admitted.ready);
    assert_eq!(ids(&select_all(&pool)), hashes(&[&a2]));
    assert_consistent(&pool);
}

#[test]
fn removing_a_tx_makes_its_senders_later_ones_future() {
    let mut pool = Mempool::default();
    let (a0, a1, a2) = (tx(0, 0, 9), tx(0, 1, 9), tx(0, 2, 9));
    insert_all(&mut pool, &[&a0, &a1, &a2]);
    assert_eq!(pool.remove(&a1.hash()), Some(a1.clone()));
    assert_eq!(pool.remove(&a1.hash()), None);
    assert_eq!(ids(&select_all(&pool)), hashes(&[&a0]));
    assert_eq!((pool.stats().ready, pool.stats().future), (1, 1));
    assert_eq!(pool.pending_nonce(&acct(0)), Some(1));
    assert_consistent(&pool);
    // Resubmitting the missing nonce restores the run.
    pool.insert(a1.clone(), 0, 1).expect("admitted");
    assert_eq!(ids(&select_all(&pool)), hashes(&[&a0, &a1, &a2]));
}

fn timed<T>(runs: usize, mut f: impl FnMut() -> T) -> (std::time::Duration, std::time::Duration, T) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let start = std::time::Instant::now();
        last = Some(f());
        times.push(start.elapsed());
    }
    times.sort();
    (times[0], times[runs / 2], last.expect("ran"))
}

/// Fills a default pool with 50,000 transactions (`per_sender` per sender,
/// pseudo-random fees), times choosing 5,000 of them and committing them.
fn time_select(per_sender: u64) {
    let senders: Vec<_> = (0..50_000 / per_sender as usize).map(derive_sender).collect();
    let mut fee = 1u128;
    let mut txs = Vec::new();
    for s in &senders {
        for n in 0..per_sender {
            fee = (fee * 6_364_136_223_846_793_005 + 1_442_695_040_888_963_407) % (1 << 61);
            txs.push(make(s, n, 1 + fee % 10_000, GAS, EXPIRY, 0));
        }
    }
    let mut pool = Mempool::default();
    let start = std::time::Instant::now();
    for t in txs {
        pool.insert(t, 0, 1).expect("admitted");
    }
    let inserted = start.elapsed();
    assert_eq!(pool.len(), 50_000);
    let (min, median, chosen) = timed(21, || pool.select(5_000, u64::MAX, usize::MAX));
    assert_eq!(chosen.len(), 5_000);
    // Gas for 100: every sender's head is looked at and refused.
    let (gmin, gmedian, few) = timed(21, || pool.select(5_000, 100 * GAS, usize::MAX));
    assert_eq!(few.len(), 100);
    let committed: Vec<Hash> = chosen.iter().map(CheckedTx::hash).collect();
    let start = std::time::Instant::now();
    let report = pool.on_committed(&committed, [], 2);
    let pruned = start.elapsed();
    assert_eq!(report.included, 5_000);
    println!(
        "{} senders x {per_sender}: insert 50,000 in {inserted:?} ({:?}/tx); select 5,000: min {min:?} median {median:?}; \
         select with gas for 100: min {gmin:?} median {gmedian:?}; on_committed(5,000) {pruned:?}",
        senders.len(),
        inserted / 50_000,
    );
}

#[test]
#[ignore = "benchmark: cargo test --release -p hypermesh mempool -- --ignored --nocapture"]
fn select_5000_of_50000_is_fast() {
    time_select(1);
    time_select(10);
}
