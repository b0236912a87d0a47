//! Tests of the batch admission checks, on real signatures and work.

use super::tests::{key, GAS};
use super::*;
use crate::runtime::test_chain::signed;
use crate::runtime::ChainParams;
use crate::types::{Call, KeyCache, Transaction};
use bytes::Bytes;

const BITS: u32 = 8;

fn solve(mut tx: Transaction) -> Transaction {
    assert!(tx.solve_work(BITS, 0, 1 << 24).expect("work"));
    tx
}

fn good(nonce: u64) -> Transaction {
    let call = Call {
        module: "bank".into(),
        method: "transfer".into(),
        args: crate::modules::bank::transfer_args(&[9; 32], "caes", 5),
    };
    solve(signed(key(), nonce, call, GAS, 10 * u128::from(GAS)))
}

#[test]
fn check_batch_keeps_input_order_and_refuses_each_bad_one() {
    let chain = ChainParams::default().chain_id;
    let encode = |t: &Transaction| t.encode().expect("encode");
    let mut batch: Vec<Vec<u8>> = (0..6).map(|n| encode(&good(n))).collect();
    // Malformed: truncated.
    batch[2].pop();
    // Bad signature: the fee changed after signing (with fresh work).
    let mut forged = good(3);
    forged.body.fee += 1;
    batch[3] = encode(&solve(forged));
    // Another chain's.
    let mut other = good(4);
    other.body.chain_id = "elsewhere".into();
    batch[4] = encode(&solve(other));

    let results = check_batch(&batch, &chain, BITS, 1);
    assert_eq!(results.len(), batch.len());
    for i in [0, 1, 5] {
        let ok = results[i].as_ref().expect("admitted");
        assert_eq!(
            (ok.bytes(), ok.nonce()),
            (&batch[i][..], i as u64),
            "result {i} is input {i}'s"
        );
    }
    assert!(matches!(results[2], Err(TxError::Malformed(_))), "{:?}", results[2]);
    assert_eq!(results[3], Err(TxError::BadSignature));
    assert!(
        matches!(results[4], Err(TxError::WrongChain { .. })),
        "{:?}",
        results[4]
    );

    for threads in [2, 4, 5, 64] {
        assert_eq!(check_batch(&batch, &chain, BITS, threads), results, "{threads} threads");
    }
    assert_eq!(check_batch(&batch, &chain, BITS, 0), results);
    let slices: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
    assert_eq!(check_batch(&slices, &chain, BITS, 3), results);
    assert!(check_batch::<Vec<u8>>(&[], &chain, BITS, 4).is_empty());
    assert!(default_threads() >= 1);
}

/// `good(nonce)` naming its sender by account.
fn by_account(nonce: u64, from: &stoq::crypto::KeyPair) -> Transaction {
    let mut tx = good(nonce);
    tx.body.sender = crate::types::Sender::Account(from.public_key().node_id().0);
    solve(tx.body.sign(from).expect("sign"))
}

#[test]
fn senders_named_by_account_are_found_in_the_batch_the_cache_or_the_lookup() {
    let chain = ChainParams::default().chain_id;
    let stranger = stoq::crypto::KeyPair::generate(stoq::crypto::Algorithm::FnDsa1024);
    let encode = |t: &Transaction| Bytes::from(t.encode().expect("encode"));
    // The key arrives after the transactions that need it, in another
    // chunk: the second pass finds it.
    let batch = vec![
        encode(&by_account(1, key())),
        encode(&by_account(2, key())),
        encode(&by_account(1, &stranger)),
        encode(&good(0)),
    ];
    for threads in [1, 2, 4] {
        let results = check_batch(&batch, &chain, BITS, threads);
        assert!(
            results[0].is_ok() && results[1].is_ok() && results[3].is_ok(),
            "{results:?}"
        );
        assert_eq!(
            results[0].as_ref().map(|c| c.key().clone()).ok().as_ref(),
            Some(key().public_key())
        );
        assert!(
            matches!(results[2], Err(TxError::UnknownSender { .. })),
            "{:?}",
            results[2]
        );
    }
    // With a cache that holds the key and a lookup (a registry) that
    // knows the stranger, everything passes and the lookup's answer is
    // kept.
    let keys = KeyCache::new(16);
    keys.insert(key().public_key().clone());
    let asked = std::sync::atomic::AtomicUsize::new(0);
    let registry = |a: &crate::types::AccountId| {
        asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (*a == stranger.public_key().node_id().0).then(|| stranger.public_key().clone())
    };
    let results = check_batch_with(&batch[..3], &chain, BITS, 2, &keys, &registry);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(
        keys.get(&stranger.public_key().node_id().0).as_ref(),
        Some(stranger.public_key())
    );
    // A forged signature under a registered key is still refused.
    let mut forged = by_account(3, key());
    forged.body.fee += 1;
    let forged = encode(&solve(forged));
    let results = check_batch_with(&[forged], &chain, BITS, 1, &keys, &registry);
    assert_eq!(results[0], Err(TxError::BadSignature));
}
