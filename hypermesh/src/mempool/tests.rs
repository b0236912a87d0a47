//! Tests of admission and ordering (each refusal, replacement, nonce
//! order, fee order), and the fixtures the other test files share.
//!
//! Pool tests build transactions with [`CheckedTx::from_committed`], which
//! checks no signature: one real transaction is signed once and its body
//! altered (sender, nonce, fee, ...). Senders are FN-DSA keys derived from
//! one real key by changing coefficients, so hundreds cost nothing.

use std::cmp::Reverse;
use std::sync::OnceLock;

use stoq::crypto::{Algorithm, KeyPair, PublicKey};

use super::*;
use crate::runtime::test_chain::signed;
use crate::types::{Call, Transaction};

/// Gas limit of the test transactions (fee = fee per gas × this).
pub(super) const GAS: u64 = 1_000;
/// Expiry height of the test transactions.
pub(super) const EXPIRY: u64 = 100;

pub(super) fn key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| KeyPair::generate(Algorithm::FnDsa1024))
}

fn transfer() -> Call {
    Call {
        module: "bank".into(),
        method: "transfer".into(),
        args: crate::modules::bank::transfer_args(&[9; 32], "caes", 5),
    }
}

fn template() -> &'static Transaction {
    static TX: OnceLock<Transaction> = OnceLock::new();
    TX.get_or_init(|| signed(key(), 0, transfer(), GAS, 0))
}

/// The `i`-th test sender: the real key with coefficients 0, 4 and 8
/// replaced (any value below q = 12289 is a valid key).
pub(super) fn derive_sender(i: usize) -> PublicKey {
    let mut bytes = key().public_key().as_bytes().to_vec();
    let digit = |d: usize| u8::try_from((i / 192usize.pow(d as u32)) % 192).expect("below 192");
    bytes[1] = digit(0);
    bytes[8] = digit(1);
    bytes[15] = digit(2);
    PublicKey::from_bytes(Algorithm::FnDsa1024, &bytes).expect("a valid key")
}

fn senders() -> &'static [PublicKey] {
    static SENDERS: OnceLock<Vec<PublicKey>> = OnceLock::new();
    SENDERS.get_or_init(|| (0..16).map(derive_sender).collect())
}

/// The account of test sender `i`.
pub(super) fn acct(i: usize) -> AccountId {
    senders()[i].node_id().0
}

/// A transaction of `sender` with every field the pool looks at chosen.
pub(super) fn make(sender: &PublicKey, nonce: u64, fee_per_gas: u128, gas: u64, expiry: u64, pad: usize) -> CheckedTx {
    let mut tx = template().clone();
    tx.body.sender = sender.clone().into();
    tx.body.nonce = nonce;
    tx.body.gas_limit = gas;
    tx.body.fee = fee_per_gas * u128::from(gas);
    tx.body.expiry_height = expiry;
    tx.body.call.args.resize(tx.body.call.args.len() + pad, 0);
    CheckedTx::from_committed(tx, None).expect("encodes")
}

/// Test sender `s`'s transaction at `nonce` paying `fee` per gas.
pub(super) fn tx(s: usize, nonce: u64, fee: u128) -> CheckedTx {
    make(&senders()[s], nonce, fee, GAS, EXPIRY, 0)
}

pub(super) fn pool(max_txs: usize, max_per_sender: usize) -> Mempool {
    Mempool::new(MempoolConfig {
        max_txs,
        max_per_sender,
        ..MempoolConfig::default()
    })
}

pub(super) fn add(pool: &mut Mempool, tx: &CheckedTx) -> Admitted {
    let admitted = pool.insert(tx.clone(), 0, 1).expect("admitted");
    assert_consistent(pool);
    admitted
}

/// Everything ready, in block order.
pub(super) fn select_all(pool: &Mempool) -> Vec<CheckedTx> {
    pool.select(usize::MAX, u64::MAX, usize::MAX)
}

pub(super) fn ids(txs: &[CheckedTx]) -> Vec<Hash> {
    txs.iter().map(CheckedTx::hash).collect()
}

pub(super) fn hashes(txs: &[&CheckedTx]) -> Vec<Hash> {
    txs.iter().map(|t| t.hash()).collect()
}

/// Inserts `tx` expecting a refusal that leaves the pool as it was.
pub(super) fn refused(pool: &mut Mempool, tx: &CheckedTx, next: u64, height: u64) -> TxError {
    let before = (pool.stats(), ids(&select_all(pool)), pool.contains(&tx.hash()));
    let err = pool.insert(tx.clone(), next, height).expect_err("refused");
    let after = (pool.stats(), ids(&select_all(pool)), pool.contains(&tx.hash()));
    assert_eq!(after, before, "refusal {err} changed the pool");
    assert_consistent(pool);
    err
}

/// Recomputes every index and count from the queues and compares.
pub(super) fn assert_consistent(pool: &Mempool) {
    let p = &pool.pool;
    let (mut count, mut bytes, mut ready) = (0, 0, 0);
    for (id, s) in &p.senders {
        let (&tail, last) = s.txs.last_key_value().expect("no empty queue is kept");
        assert!(s.txs.keys().all(|n| *n >= s.expected), "a nonce below the expected one");
        let mut end = s.expected;
        while s.txs.contains_key(&end) {
            end += 1;
        }
        assert_eq!(s.ready_end, end, "ready run");
        ready += usize::try_from(end - s.expected).expect("small");
        for (n, slot) in &s.txs {
            assert_eq!(
                (slot.tx.sender(), slot.tx.nonce(), slot.fee),
                (*id, *n, slot.tx.fee_per_gas())
            );
            assert_eq!(p.by_hash.get(&slot.tx.hash()), Some(&(*id, *n)));
            let expiry = slot.tx.tx().body.expiry_height;
            assert_eq!(p.by_expiry.get(&(expiry, slot.seq)), Some(&(*id, *n)));
            count += 1;
            bytes += slot.tx.bytes().len();
        }
        if end > s.expected {
            let head = &s.txs[&s.expected];
            let listed = p
                .ready_heads
                .get(&(Reverse(head.fee), head.seq))
                .expect("ready head listed");
            let (gas, size) = (head.tx.tx().body.gas_limit, head.tx.bytes().len());
            assert_eq!(
                (listed.sender, listed.gas, listed.size),
                (*id, gas, size),
                "ready head index"
            );
        }
        let index = if tail < end { &p.evict_ready } else { &p.evict_future };
        assert_eq!(index.get(&(last.fee, Reverse(last.seq))), Some(id), "eviction index");
    }
    assert_eq!((p.by_hash.len(), p.by_expiry.len()), (count, count));
    assert_eq!(p.evict_ready.len() + p.evict_future.len(), p.senders.len());
    let ready_senders = p.senders.values().filter(|s| s.ready_end > s.expected).count();
    assert_eq!(p.ready_heads.len(), ready_senders);
    assert_eq!((pool.len(), pool.bytes(), pool.ready_count()), (count, bytes, ready));
    assert!(count <= pool.config().max_txs && bytes <= pool.config().max_bytes);
}

#[test]
fn one_senders_txs_come_out_in_nonce_order_whatever_the_arrival_and_fees() {
    let mut pool = Mempool::default();
    let txs: Vec<_> = (0..4).map(|n| tx(0, n, 10 + u128::from(n) * 10)).collect();
    for n in [3, 1, 0, 2] {
        add(&mut pool, &txs[n]);
    }
    assert_eq!(ids(&select_all(&pool)), hashes(&txs.iter().collect::<Vec<_>>()));
    assert_eq!(pool.pending_nonce(&acct(0)), Some(4));
}

#[test]
fn a_gapped_tx_is_held_until_the_gap_fills() {
    let mut pool = Mempool::default();
    let (t0, t1, t2) = (tx(0, 0, 5), tx(0, 1, 5), tx(0, 2, 50));
    assert!(add(&mut pool, &t0).ready);
    assert!(!add(&mut pool, &t2).ready, "nonce 2 waits for 1");
    assert_eq!(ids(&select_all(&pool)), hashes(&[&t0]));
    assert_eq!((pool.stats().ready, pool.stats().future), (1, 1));
    assert_eq!(
        pool.pending_nonce(&acct(0)),
        Some(1),
        "the wallet's next nonce is the gap"
    );
    assert!(add(&mut pool, &t1).ready);
    assert_eq!(ids(&select_all(&pool)), hashes(&[&t0, &t1, &t2]));
    assert_eq!(
        pool.stats(),
        MempoolStats {
            txs: 3,
            bytes: t0.bytes().len() * 3,
            ready: 3,
            future: 0,
            senders: 1
        }
    );
    assert_eq!(pool.pending_nonce(&acct(0)), Some(3));
    assert_eq!(pool.pending_nonce(&acct(1)), None);
}

#[test]
fn senders_interleave_by_fee_within_nonce_order() {
    let mut pool = Mempool::default();
    let (a0, a1) = (tx(0, 0, 10), tx(0, 1, 50));
    let (b0, b1) = (tx(1, 0, 30), tx(1, 1, 20));
    let c0 = tx(2, 0, 5);
    for t in [&a1, &c0, &b1, &a0, &b0] {
        add(&mut pool, t);
    }
    // A's 50 waits behind its 10; B's two go first.
    assert_eq!(ids(&select_all(&pool)), hashes(&[&b0, &b1, &a0, &a1, &c0]));
}

#[test]
fn fee_ties_go_to_the_earlier_arrival() {
    let mut pool = Mempool::default();
    let (late, early) = (tx(0, 0, 7), tx(1, 0, 7));
    add(&mut pool, &early);
    add(&mut pool, &late);
    assert_eq!(ids(&select_all(&pool)), hashes(&[&early, &late]));
}

#[test]
fn expired_is_refused() {
    let mut pool = Mempool::default();
    add(&mut pool, &tx(1, 0, 1));
    let t = tx(0, 0, 9);
    let err = refused(&mut pool, &t, 0, EXPIRY + 1);
    assert_eq!(
        err,
        TxError::Expired {
            expiry: EXPIRY,
            height: EXPIRY + 1
        }
    );
    pool.insert(t, 0, EXPIRY).expect("valid up to its expiry height");
}

#[test]
fn replayed_nonce_is_refused_against_the_state_or_the_pools_knowledge() {
    let mut pool = Mempool::default();
    add(&mut pool, &tx(1, 0, 1));
    let err = refused(&mut pool, &tx(0, 4, 9), 5, 1);
    assert_eq!(err, TxError::NonceReplayed { got: 4, expected: 5 });
    // The pool learnt from a block that sender 0's next nonce is 3.
    pool.insert(tx(0, 3, 9), 0, 1).expect("future");
    pool.on_committed(&[], [(acct(0), 3)], 2);
    let err = refused(&mut pool, &tx(0, 2, 9), 0, 2);
    assert_eq!(err, TxError::NonceReplayed { got: 2, expected: 3 });
}

#[test]
fn duplicate_is_refused() {
    let mut pool = Mempool::default();
    let t = tx(0, 0, 9);
    add(&mut pool, &t);
    assert_eq!(refused(&mut pool, &t, 0, 1), TxError::Duplicate);
}

#[test]
fn fee_below_the_minimum_is_refused() {
    let mut pool = Mempool::new(MempoolConfig {
        min_fee_per_gas: 5,
        ..MempoolConfig::default()
    });
    let err = refused(&mut pool, &tx(0, 0, 4), 0, 1);
    assert_eq!(err, TxError::FeeTooLow { offered: 4, minimum: 5 });
    add(&mut pool, &tx(0, 0, 5));
}

#[test]
fn nonce_too_far_ahead_is_refused() {
    let mut pool = pool(100, 4);
    add(&mut pool, &tx(0, 4, 9));
    let err = refused(&mut pool, &tx(0, 5, 9), 0, 1);
    assert_eq!(err, TxError::NonceGap { got: 5, expected: 0 });
    // The window moves with the sender's next nonce.
    pool.insert(tx(0, 5, 9), 1, 1).expect("within 4 of 1");
}

#[test]
fn a_sender_over_its_limit_is_refused_but_may_still_replace() {
    let mut pool = pool(100, 2);
    add(&mut pool, &tx(0, 0, 9));
    add(&mut pool, &tx(0, 1, 9));
    let err = refused(&mut pool, &tx(0, 2, 1_000), 0, 1);
    assert_eq!(err, TxError::SenderLimit { limit: 2 });
    let admitted = add(&mut pool, &tx(0, 1, 10));
    assert_eq!(admitted.replaced, Some(tx(0, 1, 9).hash()));
    add(&mut pool, &tx(1, 0, 9));
}

#[test]
fn a_full_pool_refuses_what_pays_too_little_with_the_floor() {
    let mut pool = pool(2, 16);
    add(&mut pool, &tx(0, 0, 10));
    add(&mut pool, &tx(1, 0, 20));
    let err = refused(&mut pool, &tx(2, 0, 10), 0, 1);
    assert_eq!(err, TxError::MempoolFull { floor: 10 }, "must beat 10 strictly");
    assert_eq!(
        refused(&mut pool, &tx(2, 0, 3), 0, 1),
        TxError::MempoolFull { floor: 10 }
    );
}

#[test]
fn a_tx_larger_than_the_pool_is_refused() {
    let t = tx(0, 0, 9);
    let mut pool = Mempool::new(MempoolConfig {
        max_bytes: t.bytes().len() - 1,
        ..MempoolConfig::default()
    });
    let err = refused(&mut pool, &t, 0, 1);
    assert_eq!(
        err,
        TxError::Oversized {
            size: t.bytes().len(),
            limit: t.bytes().len() - 1
        }
    );
}

#[test]
fn replace_by_fee_needs_ten_percent_more() {
    assert_eq!(
        (replacement_fee(0), replacement_fee(15), replacement_fee(100)),
        (1, 17, 110)
    );
    let mut pool = Mempool::default();
    let old = tx(0, 0, 100);
    add(&mut pool, &old);
    add(&mut pool, &tx(0, 1, 1));
    let err = refused(&mut pool, &tx(0, 0, 109), 0, 1);
    assert_eq!(
        err,
        TxError::FeeTooLow {
            offered: 109,
            minimum: 110
        }
    );
    let new = make(&senders()[0], 0, 110, GAS, EXPIRY, 64);
    let admitted = add(&mut pool, &new);
    assert_eq!(
        admitted,
        Admitted {
            replaced: Some(old.hash()),
            evicted: vec![],
            replayed: vec![],
            ready: true
        }
    );
    assert!(!pool.contains(&old.hash()) && pool.get(&new.hash()) == Some(&new));
    assert_eq!((pool.len(), pool.bytes()), (2, new.bytes().len() + old.bytes().len()));
    assert_eq!(ids(&select_all(&pool)), hashes(&[&new, &tx(0, 1, 1)]));
}

/// Everything ready is selected (without limits), each sender's run
/// from its next nonce to the end of its ready run, with no gap.
pub(super) fn assert_contiguous(pool: &Mempool) {
    let selected = select_all(pool);
    let mut next: std::collections::HashMap<AccountId, u64> = std::collections::HashMap::new();
    for t in &selected {
        let expected = pool.pool.senders[&t.sender()].expected;
        let n = next.entry(t.sender()).or_insert(expected);
        assert_eq!(t.nonce(), *n, "a gap in a sender's selected run");
        *n += 1;
    }
    assert_eq!(selected.len(), pool.ready_count());
    for (id, s) in &pool.pool.senders {
        assert_eq!(
            next.get(id).copied().unwrap_or(s.expected),
            s.ready_end,
            "the whole ready run"
        );
    }
}
