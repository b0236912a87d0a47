//! Tests of eviction from a full pool: cheapest tail first, future
//! before ready, never a newcomer's own sender's, all or nothing.

use super::tests::{
    add, assert_consistent, assert_contiguous, derive_sender, hashes, ids, make, pool, refused, select_all, tx, EXPIRY,
    GAS,
};
use super::*;

#[test]
fn a_full_pool_evicts_the_cheapest_tail_never_a_predecessor() {
    let mut pool = pool(3, 16);
    let (a0, a1, b0) = (tx(0, 0, 1), tx(0, 1, 50), tx(1, 0, 20));
    for t in [&a0, &a1, &b0] {
        add(&mut pool, t);
    }
    // A's 1 is cheapest but A's 50 needs it: B's 20 goes.
    let c0 = tx(2, 0, 30);
    let admitted = add(&mut pool, &c0);
    assert_eq!((admitted.evicted, admitted.ready), (vec![b0.hash()], true));
    assert!(pool.contains(&a0.hash()));
    assert_eq!(
        refused(&mut pool, &tx(3, 0, 29), 0, 1),
        TxError::MempoolFull { floor: 30 }
    );
    // Equal fees: the later arrival goes first.
    let mut pool2 = super::tests::pool(2, 16);
    let (first, second) = (tx(0, 0, 5), tx(1, 0, 5));
    add(&mut pool2, &first);
    add(&mut pool2, &second);
    assert_eq!(add(&mut pool2, &tx(2, 0, 6)).evicted, vec![second.hash()]);
}

#[test]
fn future_txs_are_evicted_first_and_a_future_newcomer_evicts_only_them() {
    let mut pool = pool(2, 16);
    let (a0, b1) = (tx(0, 0, 5), tx(1, 1, 40));
    add(&mut pool, &a0);
    add(&mut pool, &b1);
    let c0 = tx(2, 0, 45);
    assert_eq!(
        add(&mut pool, &c0).evicted,
        vec![b1.hash()],
        "the future one, though dearer"
    );
    // Only ready ones are left: a future newcomer may not displace them.
    let err = refused(&mut pool, &tx(3, 1, 1_000), 0, 1);
    assert_eq!(err, TxError::MempoolFull { floor: u128::MAX });
    // A ready one pays more than a ready tail and no future one is left.
    assert_eq!(add(&mut pool, &tx(3, 0, 20)).evicted, vec![a0.hash()]);
}

#[test]
fn a_newcomer_never_evicts_its_own_senders_txs() {
    let mut pool = pool(2, 16);
    let (a0, b0) = (tx(0, 0, 1), tx(1, 0, 50));
    add(&mut pool, &a0);
    add(&mut pool, &b0);
    let a1 = tx(0, 1, 100);
    assert_eq!(add(&mut pool, &a1).evicted, vec![b0.hash()]);
    assert_eq!(ids(&select_all(&pool)), hashes(&[&a0, &a1]));
    let err = refused(&mut pool, &tx(0, 2, 1_000), 0, 1);
    assert_eq!(err, TxError::MempoolFull { floor: u128::MAX });
}

#[test]
fn a_refused_multiple_eviction_puts_everything_back() {
    let small = tx(0, 0, 1);
    let size = small.bytes().len();
    let mut pool = Mempool::new(MempoolConfig {
        max_bytes: 2 * size + 100,
        ..MempoolConfig::default()
    });
    let b0 = tx(1, 0, 50);
    add(&mut pool, &small);
    add(&mut pool, &b0);
    // Twice the size: both must go, and B pays more than it.
    let big = make(&derive_sender(2), 0, 10, GAS, EXPIRY, size);
    assert_eq!(refused(&mut pool, &big, 0, 1), TxError::MempoolFull { floor: 50 });
    let big = make(&derive_sender(2), 0, 60, GAS, EXPIRY, size);
    assert_eq!(add(&mut pool, &big).evicted, vec![small.hash(), b0.hash()]);
    assert_eq!(pool.len(), 1);
}

#[test]
fn eviction_keeps_every_ready_queue_contiguous() {
    let mut pool = pool(12, 16);
    let (mut fee, mut evicted, mut refusals) = (7u128, 0, 0);
    for nonce in [0, 2, 1, 4, 3, 5] {
        for s in 0..5 {
            fee = (fee * 31 + 11) % 97 + 1;
            match pool.insert(tx(s, nonce, fee), 0, 1) {
                Ok(admitted) => evicted += admitted.evicted.len(),
                Err(err) => {
                    assert!(matches!(err, TxError::MempoolFull { floor } if floor >= fee), "{err}");
                    refusals += 1;
                }
            }
            assert_consistent(&pool);
            assert_contiguous(&pool);
        }
    }
    assert_eq!(pool.len(), 12);
    assert!(evicted > 0 && refusals > 0, "{evicted} evicted, {refusals} refused");
}
