//! Honest validators refuse blocks whose proofs do not check out: each
//! test builds a block on a live simulated chain, tampers with one proof
//! and has another validator check it.

use std::sync::Arc;

use super::evidence::Evidence;
use super::sim::{NetConfig, Sim, SIM_POW_BITS};
use crate::chain::CommitCertificate;
use crate::modules::bank;
use crate::runtime::BlockLimits;
use crate::types::{Block, Call, CheckedTx, Sender, UnsignedTransaction};

/// A simulation past height 3, and a block node 0 built on it.
fn setup() -> (Sim, Block) {
    let mut sim = Sim::new(11, 4, NetConfig::default());
    while sim.tip(0) < 3 || sim.tip(1) != sim.tip(0) {
        let t = sim.now_ms() + 100;
        sim.run_until(t - 1_700_000_000_000);
    }
    let now = sim.now_ms();
    let (block, _) = sim
        .app(0)
        .build(now, Vec::new(), BlockLimits::default())
        .expect("build");
    let block = (*block).clone();
    // The untampered block passes, so each refusal below is the tampering's.
    sim.app(1).check(&block, now).expect("an honest block is accepted");
    (sim, block)
}

fn refused(sim: &mut Sim, block: &Block, why: &str) {
    let now = sim.now_ms();
    match sim.app(1).check(block, now) {
        Ok(_) => panic!("a block with {why} was accepted"),
        Err(e) => assert!(e.to_string().contains(why), "refused for {e}, expected {why:?}"),
    }
}

#[test]
fn a_bad_or_missing_proof_of_time_is_refused() {
    let (mut sim, block) = setup();
    let mut bad = block.clone();
    let n = bad.header.proofs.time.len();
    bad.header.proofs.time[n / 2] ^= 1;
    refused(&mut sim, &bad, "proof of time");
    let mut missing = block;
    missing.header.proofs.time.clear();
    refused(&mut sim, &missing, "missing the proof of time");
}

#[test]
fn a_bad_missing_or_borrowed_proof_of_space_is_refused() {
    let (mut sim, block) = setup();
    let mut bad = block.clone();
    let n = bad.header.proofs.space.len();
    bad.header.proofs.space[n - 1] ^= 1;
    refused(&mut sim, &bad, "proof of space");
    let mut missing = block.clone();
    missing.header.proofs.space.clear();
    refused(&mut sim, &missing, "missing the proof of space");
    // Another validator's answer to the same challenge is not node 0's.
    let now = sim.now_ms();
    let (theirs, _) = sim
        .app(2)
        .build(now, Vec::new(), BlockLimits::default())
        .expect("build");
    let mut borrowed = block;
    borrowed.header.proofs.space = theirs.header.proofs.space.clone();
    refused(&mut sim, &borrowed, "proof of space");
}

#[test]
fn a_missing_or_short_commit_certificate_is_refused() {
    let (mut sim, block) = setup();
    let mut missing = block.clone();
    missing.header.proofs.stake.clear();
    refused(&mut sim, &missing, "missing the parent's commit certificate");
    let mut cert = CommitCertificate::decode(&block.header.proofs.stake).expect("certificate");
    assert!(cert.signatures.len() >= 3);
    // Two of four equal validators: not more than two thirds.
    cert.signatures.truncate(2);
    let mut short = block;
    short.header.proofs.stake = cert.encode().expect("encode");
    let now = sim.now_ms();
    assert!(
        sim.app(1).check(&short, now).is_err(),
        "a short certificate was accepted"
    );
}

#[test]
fn a_transaction_with_too_little_work_is_refused() {
    let (mut sim, block) = setup();
    let key = sim.key(3).clone();
    let mut tx = UnsignedTransaction {
        chain_id: "sim".into(),
        sender: Sender::Key(key.public_key().clone()),
        nonce: 0,
        expiry_height: 1_000,
        gas_limit: 100_000,
        fee: 0,
        call: Call {
            module: "bank".into(),
            method: "transfer".into(),
            args: bank::transfer_args(&[1; 32], "caes", 1),
        },
    }
    .sign(&key)
    .expect("sign");
    let sighash = tx.body.sighash().expect("sighash");
    // The first nonce whose work falls short.
    tx.pow_nonce = (0..)
        .find(|n| crate::pow::work_bits(&sighash, *n) < SIM_POW_BITS)
        .expect("a short nonce");
    let short = Arc::new(tx);
    assert!(CheckedTx::check_shared(Arc::clone(&short), "sim", SIM_POW_BITS, None).is_err());
    let mut bad = block;
    bad.txs.push(short);
    bad.header.tx_root = Block::tx_root(&bad.txs).expect("root");
    refused(&mut sim, &bad, "transaction 0");
}

/// Two conflicting prevotes for `height`, round 0, naming node
/// `offender` as their author, signed with node `signer`'s key.
fn double_vote(sim: &Sim, offender: usize, signer: usize, height: u64) -> Evidence {
    use super::context::{BlockId, Height, HmContext};
    use super::signing::sign_vote;
    use malachite_types::{Context, NilOrVal, Round};
    let address = sim.address(offender);
    let [a, b] = [NilOrVal::Nil, NilOrVal::Val(BlockId([7; 32]))].map(|value| {
        let vote = HmContext::new("sim").new_prevote(Height(height), Round::new(0), value, address);
        sign_vote(sim.key(signer), "sim", vote).expect("sign")
    });
    Evidence::DoubleVote(a, b)
}

#[test]
fn forged_evidence_is_refused_and_cannot_take_the_real_offenders_place() {
    let (mut sim, _) = setup();
    let height = sim.app(1).next_height() - 1;
    // Signed by node 3 but naming node 2: a peer framing node 2, or trying
    // to occupy the queue slot of node 2's real offence.
    let forged = double_vote(&sim, 2, 3, height);
    let err = sim.app(1).add_evidence(forged).expect_err("forged evidence was queued");
    assert!(err.to_string().contains("signature"), "refused for {err}");
    assert_eq!(sim.app(1).pending_evidence(), 0);

    let real = double_vote(&sim, 2, 2, height);
    assert!(sim.app(1).add_evidence(real.clone()).expect("real evidence"));
    // The same offence again is not queued twice.
    assert!(!sim.app(1).add_evidence(real).expect("a repeat is not an error"));
    assert_eq!(sim.app(1).pending_evidence(), 1);

    // Evidence of an offence too far ahead to check is refused too.
    let future = double_vote(&sim, 2, 2, height + 5);
    assert!(sim.app(1).add_evidence(future).is_err());
    assert_eq!(sim.app(1).pending_evidence(), 1);
}
