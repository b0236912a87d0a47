//! Tests of the compact relay state machine: rebuilding from the mempool,
//! asking the proposer for what is missing, refusing wrong or unasked
//! answers, falling back to the whole block, and its bounds.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use stoq::crypto::{Algorithm, KeyPair};

use super::*;
use crate::types::test_fixtures::{header, signed_call};

const CHAIN: &str = "relay-test";

fn key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| KeyPair::generate(Algorithm::FnDsa1024))
}

/// `n` checked transfers (signed once, shared by the tests).
fn txs(n: usize) -> Vec<CheckedTx> {
    static TXS: OnceLock<Vec<CheckedTx>> = OnceLock::new();
    let all = TXS.get_or_init(|| {
        (0..6u64)
            .map(|nonce| {
                let tx = signed_call(key(), CHAIN, nonce, vec![nonce as u8; 8]);
                CheckedTx::admit(&tx.encode().expect("encode"), CHAIN, 0).expect("admit")
            })
            .collect()
    });
    all[..n].to_vec()
}

fn block_of(height: u64, txs: &[CheckedTx]) -> (Hash, EncodedBlock) {
    let block = Arc::new(Block {
        header: header(CHAIN, height, 9),
        txs: txs.iter().map(|t| Arc::clone(t.shared_tx())).collect(),
        commit: Vec::new(),
    });
    let encoded = EncodedBlock::from_tx_encodings(block, txs.iter().map(|t| t.shared_bytes().clone()).collect())
        .expect("encode")
        .with_tx_ids(txs.iter().map(CheckedTx::hash).collect());
    (encoded.header.hash().expect("hash"), encoded)
}

/// A mempool holding `held`.
fn pool(held: &[CheckedTx]) -> impl Fn(&[Hash]) -> Vec<Option<CheckedTx>> {
    let by_id: HashMap<Hash, CheckedTx> = held.iter().map(|t| (t.hash(), t.clone())).collect();
    move |ids| ids.iter().map(|id| by_id.get(id).cloned()).collect()
}

const PROPOSER: Address = Address([7; 32]);
const OTHER: Address = Address([8; 32]);

fn relay_at(height: u64) -> BlockRelay {
    let mut r = BlockRelay::default();
    r.set_height(height);
    r
}

fn delivered(step: Step) -> (EncodedBlock, bool) {
    match step {
        Step::Deliver { from, block, fetched } => {
            assert_eq!(from, PROPOSER);
            (block, fetched)
        }
        other => panic!("expected a delivery, got {other:?}"),
    }
}

#[test]
fn a_block_whose_transactions_are_all_held_is_rebuilt_at_once() {
    let all = txs(4);
    let (hash, original) = block_of(5, &all);
    let compact = CompactBlock::of(&original).expect("ids known");
    let mut relay = relay_at(5);
    let (block, fetched) = delivered(relay.on_compact(PROPOSER, hash, compact.clone(), pool(&all)));
    assert!(!fetched);
    assert_eq!(block, original);
    assert_eq!(
        block.bytes(),
        EncodedBlock::encode(Arc::clone(original.block()))
            .expect("encode")
            .bytes()
    );
    assert_eq!(block.tx_ids(), original.tx_ids());
    // Shared with the pool, not copied.
    assert!(Arc::ptr_eq(&block.txs[0], all[0].shared_tx()));
    // Delivered: a second copy, or a request for the whole, is moot.
    assert!(relay.has(&hash));
    assert!(matches!(
        relay.on_compact(PROPOSER, hash, compact, pool(&all)),
        Step::Nothing
    ));
}

#[test]
fn missing_transactions_are_awaited_then_asked_of_the_proposer_and_checked() {
    let all = txs(5);
    let (hash, original) = block_of(5, &all);
    let compact = CompactBlock::of(&original).expect("ids known");
    let held = [all[0].clone(), all[2].clone()];
    let mut relay = relay_at(5);
    assert!(matches!(
        relay.on_compact(PROPOSER, hash, compact, pool(&held)),
        Step::Wait { after, .. } if after == ADMISSION_GRACE
    ));
    assert!(relay.has(&hash));

    // One more was admitted meanwhile: only the rest is asked for.
    let held = [all[0].clone(), all[2].clone(), all[3].clone()];
    match relay.due(hash, pool(&held)) {
        Step::Ask {
            to,
            height,
            hash: h,
            indices,
        } => {
            assert_eq!((to, height, h), (PROPOSER, 5, hash));
            assert_eq!(indices, vec![1, 4]);
        }
        other => panic!("expected a request, got {other:?}"),
    }

    // The proposer answers from its own block.
    let mut proposer = relay_at(5);
    assert!(proposer.proposed(hash, &original).is_some());
    let answer = proposer.answer(&hash, &[1, 4]).expect("own block");
    assert_eq!(answer[0].0, 1);
    assert_eq!(&answer[1].1[..], all[4].bytes());
    assert!(proposer.answer(&hash, &[5]).is_none(), "past the block");
    assert!(proposer.answer(&[0; 32], &[0]).is_none(), "not its block");

    // An answer from anyone else is ignored, and the request stands.
    assert!(matches!(
        relay.on_txs(OTHER, hash, answer.clone(), pool(&held)),
        Step::Nothing
    ));
    let (block, fetched) = delivered(relay.on_txs(PROPOSER, hash, answer, pool(&held)));
    assert!(fetched);
    assert_eq!(block, original);
    assert_eq!(block.tx_ids(), original.tx_ids());
}

#[test]
fn a_wrong_answer_or_none_in_time_falls_back_to_the_whole_block() {
    let all = txs(3);
    let (hash, original) = block_of(5, &all);
    let compact = CompactBlock::of(&original).expect("ids known");
    let held = [all[0].clone()];
    let whole = |s: Step| matches!(s, Step::AskBlock { to: PROPOSER, height: 5, hash: h } if h == hash);

    // Another transaction at the asked position.
    let mut relay = relay_at(5);
    relay.on_compact(PROPOSER, hash, compact.clone(), pool(&held));
    assert!(matches!(relay.due(hash, pool(&held)), Step::Ask { .. }));
    let wrong = vec![(1, all[2].shared_bytes().clone()), (2, all[2].shared_bytes().clone())];
    assert!(whole(relay.on_txs(PROPOSER, hash, wrong, pool(&held))));
    assert!(!relay.has(&hash), "given up: the core's request may go");

    // Bytes that are no transaction, and a position past the block.
    for bad in [
        vec![(1, Bytes::from_static(b"junk"))],
        vec![(9, all[1].shared_bytes().clone())],
    ] {
        let mut relay = relay_at(5);
        relay.on_compact(PROPOSER, hash, compact.clone(), pool(&held));
        relay.due(hash, pool(&held));
        assert!(whole(relay.on_txs(PROPOSER, hash, bad, pool(&held))));
    }

    // No answer before the second deadline.
    let mut relay = relay_at(5);
    relay.on_compact(PROPOSER, hash, compact.clone(), pool(&held));
    relay.due(hash, pool(&held));
    assert!(whole(relay.due(hash, pool(&held))));

    // An answer nobody asked for is ignored.
    let mut relay = relay_at(5);
    relay.on_compact(PROPOSER, hash, compact, pool(&held));
    let right = vec![(1, all[1].shared_bytes().clone()), (2, all[2].shared_bytes().clone())];
    assert!(matches!(
        relay.on_txs(PROPOSER, hash, right, pool(&held)),
        Step::Nothing
    ));
}

#[test]
fn only_heights_in_the_window_are_taken_and_pending_blocks_are_bounded() {
    let all = txs(2);
    let mut relay = relay_at(10);
    for (height, taken) in [(9, false), (10, true), (14, true), (15, false)] {
        let (hash, b) = block_of(height, &all);
        let step = relay.on_compact(PROPOSER, hash, CompactBlock::of(&b).expect("ids"), pool(&all));
        assert_eq!(matches!(step, Step::Deliver { .. }), taken, "height {height}");
    }

    // Incomplete ones wait, up to the bound.
    let mut relay = relay_at(10);
    let mut hashes = Vec::new();
    for i in 0..MAX_PENDING + 1 {
        let (_, b) = block_of(10, &all);
        let mut compact = CompactBlock::of(&b).expect("ids");
        compact.header.timestamp_ms = i as u64;
        let hash = compact.header.hash().expect("hash");
        let step = relay.on_compact(PROPOSER, hash, compact, pool(&[]));
        assert_eq!(matches!(step, Step::Wait { .. }), i < MAX_PENDING, "block {i}");
        hashes.push(hash);
    }
    assert!(relay.has(&hashes[0]));
    // A new height drops what is below it.
    relay.set_height(11);
    assert!(!relay.has(&hashes[0]));
    assert!(matches!(relay.due(hashes[0], pool(&all)), Step::Nothing));
}

#[test]
fn a_block_without_known_ids_goes_whole() {
    let all = txs(2);
    let (hash, b) = block_of(3, &all);
    let received = EncodedBlock::decode(b.bytes()).expect("decode");
    let mut relay = relay_at(3);
    assert!(relay.proposed(hash, &received).is_none());
    assert!(relay.answer(&hash, &[0]).is_none());
    let compact = relay.proposed(hash, &b).expect("ids known");
    assert_eq!(compact.tx_ids, b.tx_ids().expect("ids").to_vec());
}
