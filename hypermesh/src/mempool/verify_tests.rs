//! Tests of the batch admission checks, on real signatures and work.

use super::tests::{key, GAS};
use super::*;
use crate::runtime::test_chain::signed;
use crate::runtime::ChainParams;
use crate::types::{Call, Transaction};

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
