//! Runtime tests: fees and nonces, failed calls leave nothing but their fee,
//! gas, refusals by kind, determinism.

use stoq::crypto::{Algorithm, KeyPair};

use super::*;
use crate::error::{Error, TxError};
use crate::modules::bank;
use crate::types::{Call, Transaction};

use super::test_chain::{account as id, checked, signed as tx, TestChain as Chain, DENOM};

fn key() -> KeyPair {
    KeyPair::generate(Algorithm::FnDsa1024)
}

fn chain(funded: &[(&KeyPair, u128)]) -> Chain {
    Chain::new(Vec::new(), funded, &[])
}

fn transfer(from: &KeyPair, nonce: u64, to: &KeyPair, amount: u128) -> Transaction {
    let call = Call {
        module: "bank".into(),
        method: "transfer".into(),
        args: bank::transfer_args(&id(to), DENOM, amount),
    };
    tx(from, nonce, call, 100_000, 1_000)
}

impl Chain {
    fn balance(&self, k: &KeyPair) -> u128 {
        let args = crate::modules::encode(|w| {
            w.fixed(&id(k)).str8(DENOM);
        });
        let b = self
            .runtime
            .query(&self.state, "bank", "balance", &args)
            .expect("query");
        u128::from_be_bytes(b.try_into().expect("16 bytes"))
    }
}

#[test]
fn a_transfer_pays_its_fee_bumps_the_nonce_and_emits_an_event() {
    let (alice, bob) = (key(), key());
    let mut c = chain(&[(&alice, 10_000)]);
    let out = c.block(&[transfer(&alice, 0, &bob, 2_500)]).expect("block");
    let r = &out.receipts[0];
    assert!(r.success(), "{r:?}");
    assert!(r.gas_used > 0 && r.gas_used <= 100_000);
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.events[0].kind, "transfer");
    assert_eq!(c.balance(&alice), 10_000 - 2_500 - 1_000);
    assert_eq!(c.balance(&bob), 2_500);
    assert_eq!(c.runtime.nonce(&c.state, &id(&alice)).expect("nonce"), 1);
    let fees = crate::modules::encode(|w| {
        w.fixed(&bank::fee_collector()).str8(DENOM);
    });
    let collected = c.runtime.query(&c.state, "bank", "balance", &fees).expect("query");
    assert_eq!(u128::from_be_bytes(collected.try_into().expect("16")), 1_000);
    // Receipts round-trip through their encoding.
    assert_eq!(&Receipt::decode(&r.encode()).expect("decode"), r);
}

#[test]
fn a_failed_call_pays_its_fee_and_writes_nothing_else() {
    let (alice, bob) = (key(), key());
    let mut c = chain(&[(&alice, 5_000)]);
    // Spends more than the balance left after the fee.
    let out = c.block(&[transfer(&alice, 0, &bob, 4_500)]).expect("block");
    let r = &out.receipts[0];
    let (code, msg) = r.error.clone().expect("failed");
    assert_eq!(code, 100);
    assert!(msg.contains("insufficient funds"), "{msg}");
    assert!(r.events.is_empty());
    assert_eq!(c.balance(&alice), 4_000, "only the fee left");
    assert_eq!(c.balance(&bob), 0);
    assert_eq!(c.runtime.nonce(&c.state, &id(&alice)).expect("nonce"), 1);

    // Out of gas: a limit that covers the size but not the call.
    let bytes = transfer(&alice, 1, &bob, 1).encode().expect("encode").len();
    let limit = c.runtime.params().gas.intrinsic(bytes) + 10;
    let call = Call {
        module: "bank".into(),
        method: "transfer".into(),
        args: bank::transfer_args(&id(&bob), DENOM, 1),
    };
    let out = c.block(&[tx(&alice, 1, call, limit, 1_000)]).expect("block");
    assert_eq!(out.receipts[0].error.as_ref().map(|e| e.0), Some(101));
    assert_eq!(out.receipts[0].gas_used, limit);
    assert_eq!(c.balance(&alice), 3_000);
    assert_eq!(c.balance(&bob), 0);

    // Unknown module and method.
    let nowhere = Call {
        module: "nowhere".into(),
        method: "x".into(),
        args: vec![],
    };
    let out = c.block(&[tx(&alice, 2, nowhere, 100_000, 10)]).expect("block");
    assert!(out.receipts[0]
        .error
        .as_ref()
        .is_some_and(|e| e.1.contains("no such module")));
}

/// Whether a refusal is the one expected.
type IsRefusal = fn(&TxError) -> bool;

#[test]
fn transactions_a_proposer_must_not_include_invalidate_the_block() {
    let (alice, bob, poor) = (key(), key(), key());
    let mut c = chain(&[(&alice, 100_000), (&poor, 10)]);
    c.block(&[transfer(&alice, 0, &bob, 1)]).expect("block 1");
    let before = c.state.0.clone();
    let cases: Vec<(Transaction, IsRefusal)> = vec![
        (transfer(&alice, 0, &bob, 1), |e| {
            matches!(e, TxError::NonceReplayed { got: 0, expected: 1 })
        }),
        (transfer(&alice, 5, &bob, 1), |e| {
            matches!(e, TxError::NonceGap { got: 5, expected: 1 })
        }),
        (transfer(&poor, 0, &bob, 1), |e| {
            matches!(e, TxError::InsufficientFee { fee: 1_000, .. })
        }),
    ];
    for (t, expected) in cases {
        let info = BlockInfo {
            height: 2,
            time_ms: 5,
            proposer: [7; 32],
            slashed: Vec::new(),
        };
        let mut ctx = Ctx::new(&c.state, info.clone(), DENOM.into());
        let bytes = t.encode().expect("encode").len();
        let refusal = c.runtime.check_tx(&mut ctx, &t, bytes).expect_err("refused");
        assert!(expected(&refusal), "{refusal:?}");
        match c.runtime.execute_block(&c.state, info, &checked(&[t])) {
            Err(Error::InvalidBlock(_)) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(c.state.0, before, "nothing applied");
    }
    // Expired: valid until height 10.
    c.height = 10;
    match c.block(&[transfer(&alice, 1, &bob, 1)]) {
        Err(Error::InvalidBlock(m)) => assert!(m.contains("expired"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Two transactions of one sender in one block need consecutive nonces.
    c.height = 1;
    let out = c
        .block(&[transfer(&alice, 1, &bob, 1), transfer(&alice, 2, &bob, 1)])
        .expect("consecutive nonces in one block");
    assert!(out.receipts.iter().all(Receipt::success));
}

#[test]
fn the_same_blocks_give_the_same_state_on_two_nodes() {
    let (alice, bob, carol) = (key(), key(), key());
    let blocks = vec![
        vec![transfer(&alice, 0, &bob, 100), transfer(&alice, 1, &carol, 7)],
        vec![transfer(&bob, 0, &carol, 50), transfer(&alice, 2, &bob, 999_999_999)],
    ];
    let run = || {
        let mut c = chain(&[(&alice, 1_000_000), (&bob, 5_000)]);
        let mut receipts = Vec::new();
        for b in &blocks {
            receipts.push(Receipt::root(&c.block(b).expect("block").receipts));
        }
        (c.state.0, receipts)
    };
    assert_eq!(run(), run());
}
