//! The key registry: an account's first transaction carries its key and
//! registers it; later ones name the account, and every node finds the key
//! (in the block, in its cache, or in the registry) to check them.

use std::sync::Arc;

use stoq::crypto::KeyPair;

use super::tests::{cert, mem_chain, net};
use super::*;
use crate::modules::bank;
use crate::runtime::test_chain::{account, signed, DENOM};
use crate::runtime::ChainParams;
use crate::types::{Call, Sender, Transaction};

/// A transfer of 1 to `[9; 32]` from `from`, naming it by account unless
/// `with_key`.
fn transfer(from: &KeyPair, nonce: u64, with_key: bool) -> Transaction {
    let call = Call {
        module: "bank".into(),
        method: "transfer".into(),
        args: bank::transfer_args(&[9; 32], DENOM, 1),
    };
    let mut tx = signed(from, nonce, call, 100_000, 1_000);
    if !with_key {
        tx.body.sender = Sender::Account(account(from));
        tx = tx.body.sign(from).expect("sign");
    }
    solve(tx)
}

fn solve(mut tx: Transaction) -> Transaction {
    let bits = ChainParams::default().pow_bits;
    assert!(tx.solve_work(bits, 0, 1 << 24).expect("work"));
    tx
}

fn commit(chain: &Chain, validator: &KeyPair, executed: Executed) -> Committed {
    let c = cert(chain, validator, &executed);
    chain.commit(executed, &c).expect("commit")
}

#[test]
fn the_first_transaction_registers_the_key_and_later_ones_name_the_account() {
    let n = net();
    let (validator, alice, bob) = (&n.validator, &n.users[0], &n.users[1]);
    let (a, b) = (
        mem_chain(&n, ChainConfig::default()),
        mem_chain(&n, ChainConfig::default()),
    );
    let with =
        |tx: &Transaction, k: &KeyPair| CheckedTx::from_committed(tx.clone(), Some(k.public_key())).expect("wrap");

    // Block 1: alice's first (with her key) and second (by account); bob's
    // first names only his account, which has no key yet: left out.
    let (a0, a1, b0) = (
        transfer(alice, 0, true),
        transfer(alice, 1, false),
        transfer(bob, 0, false),
    );
    let p = a
        .propose(
            2_000,
            account(validator),
            vec![with(&a0, alice), with(&a1, alice), with(&b0, bob)],
            BlockLimits::default(),
        )
        .expect("propose");
    assert_eq!(p.executed.txs.len(), 2);
    assert_eq!(p.skipped.len(), 1);
    assert_eq!(p.skipped[0].1.code(), 15, "{}", p.skipped[0].1);
    let block = p.executed.block.clone();

    // Node B checks it with an empty cache: alice's key is in the block.
    let checked = b.check_txs(&block, &KeyCache::new(8), 2).expect("stateless checks");
    assert_eq!(checked[1].key(), alice.public_key());
    let on_b = b.validate(&block, checked, 2_000).expect("valid on b");
    commit(&a, validator, p.executed);
    commit(&b, validator, on_b);
    for node in [&a, &b] {
        let reader = node.state().reader(1).expect("reader");
        let runtime = node.runtime();
        assert_eq!(
            runtime.registered_key(&reader, &account(alice)).expect("read").as_ref(),
            Some(alice.public_key())
        );
        assert_eq!(runtime.registered_key(&reader, &account(bob)).expect("read"), None);
    }

    // Block 2: alice by account only; B finds her key in its registry.
    let a2 = transfer(alice, 2, false);
    let p = a
        .propose(
            3_000,
            account(validator),
            vec![with(&a2, alice)],
            BlockLimits::default(),
        )
        .expect("propose");
    let block = p.executed.block.clone();
    let checked = b.check_txs(&block, &KeyCache::new(8), 1).expect("from the registry");
    b.validate(&block, checked, 3_000).expect("valid on b");

    // A block naming alice's account under bob's signature, or an account
    // with no key at all, is refused by the stateless checks.
    let mut forged = block.clone();
    let mut theirs = transfer(bob, 0, false);
    theirs.body.sender = Sender::Account(account(alice));
    theirs.signature = bob.sign(&theirs.body.sighash().expect("sighash")).expect("sign");
    forged.txs = vec![Arc::new(solve(theirs))];
    assert_eq!(
        b.check_txs(&forged, &KeyCache::new(8), 1).map(|_| ()),
        Err((0, TxError::BadSignature))
    );
    forged.txs = vec![Arc::new(transfer(bob, 0, false))];
    assert!(matches!(
        b.check_txs(&forged, &KeyCache::new(8), 1),
        Err((0, TxError::UnknownSender { .. }))
    ));

    // With B's mempool holding alice's transfer, the block's identical copy
    // is taken from there unverified; a copy with the same sender and nonce
    // under another signature is not, and is refused.
    let mut pool = crate::mempool::Mempool::new(crate::mempool::MempoolConfig::default());
    pool.insert(with(&a2, alice), 2, 1).expect("admitted");
    let known = |txs: &[Arc<Transaction>]| txs.iter().map(|t| pool.get_same(t).cloned()).collect();
    let reused = b.check_txs_known(&block, &KeyCache::new(8), 1, &known).expect("known");
    let held = pool.get_same(&block.txs[0]).expect("held");
    assert!(
        Arc::ptr_eq(reused[0].shared_tx(), held.shared_tx()),
        "the mempool's copy"
    );
    let mut evil = a2.clone();
    evil.signature = bob.sign(&evil.body.sighash().expect("sighash")).expect("sign");
    assert!(pool.get_same(&evil).is_none());
    forged.txs = vec![Arc::new(evil)];
    assert_eq!(
        b.check_txs_known(&forged, &KeyCache::new(8), 1, &known).map(|_| ()),
        Err((0, TxError::BadSignature))
    );
}

/// Block 1 proposed (not committed) on `chain` with each user's first
/// transfer (carrying the key), and each user's second transfer checked.
fn first_block_and_second_txs(chain: &Chain, validator: &KeyPair, users: &[KeyPair]) -> (Proposal, Vec<CheckedTx>) {
    let with =
        |tx: &Transaction, k: &KeyPair| CheckedTx::from_committed(tx.clone(), Some(k.public_key())).expect("wrap");
    let first: Vec<CheckedTx> = users.iter().map(|u| with(&transfer(u, 0, true), u)).collect();
    let second: Vec<CheckedTx> = users.iter().map(|u| with(&transfer(u, 1, false), u)).collect();
    let p1 = chain
        .propose(2_000, account(validator), first, BlockLimits::default())
        .expect("propose 1");
    (p1, second)
}

#[test]
fn a_block_built_on_one_still_committing_equals_one_built_after() {
    let n = net();
    let (validator, users) = (&n.validator, &n.users);
    let (a, b) = (
        mem_chain(&n, ChainConfig::default()),
        mem_chain(&n, ChainConfig::default()),
    );
    // On A: block 2 is built while block 1 is not yet committed.
    let (p1, second) = first_block_and_second_txs(&a, validator, users);
    let pending = a.pending(None, &p1.executed).expect("pending");
    assert_eq!(pending.height(), 1);
    let p2 = a
        .propose_on(
            Some(&pending),
            3_000,
            account(validator),
            second,
            BlockLimits::default(),
        )
        .expect("propose 2 on 1");
    assert!(p2.skipped.is_empty(), "{:?}", p2.skipped);
    assert_eq!(p2.executed.block.header.parent_hash, pending.hash());
    // Block 2 can become the parent of block 3 while block 1 is still
    // uncommitted (its state is read through both staged versions).
    let pending2 = a
        .pending(Some(&pending), &p2.executed)
        .expect("pending 2 over pending 1");
    assert_eq!(pending2.height(), 2);
    assert_eq!(pending2.tip().validators, pending.tip().validators);
    assert!(
        a.pending(None, &p2.executed).is_err(),
        "without its parent, block 2's state is not readable yet"
    );
    let (block1, block2) = (p1.executed.block.clone(), p2.executed.block.clone());
    // Out of order, a child does not commit.
    let twin = a
        .propose_on(
            Some(&pending),
            3_000,
            account(validator),
            vec![],
            BlockLimits::default(),
        )
        .expect("another block 2");
    let cert = CommitCertificate {
        height: 2,
        round: 0,
        block_hash: twin.executed.hash,
        signatures: vec![CommitCertificate::sign(
            a.chain_id(),
            validator,
            &a.tip().validators,
            2,
            0,
            &twin.executed.hash,
        )
        .expect("sign")],
    };
    assert!(matches!(a.commit(twin.executed, &cert), Err(Error::InvalidBlock(_))));
    assert_eq!(a.tip().height, 0);
    commit(&a, validator, p1.executed);
    commit(&a, validator, p2.executed);

    // On B, one after the other: the same blocks validate and give the
    // same state.
    for block in [&block1, &block2] {
        let checked = b.check_txs(block, &KeyCache::new(8), 1).expect("checks");
        let e = b.validate(block, checked, block.header.timestamp_ms).expect("valid");
        commit(&b, validator, e);
    }
    assert_eq!(a.tip().hash, b.tip().hash);
    assert_eq!(a.tip().state_root, b.tip().state_root);
    let (ra, rb) = (a.state().reader(2).expect("a"), b.state().reader(2).expect("b"));
    for u in users {
        let (na, nb) = (a.runtime().nonce(&ra, &account(u)), b.runtime().nonce(&rb, &account(u)));
        assert_eq!((na.expect("a"), nb.expect("b")), (2, 2));
    }
    // Block 1 is now below the tip: nothing can be built on it.
    let refused = a.propose_on(
        Some(&pending),
        4_000,
        account(validator),
        vec![],
        BlockLimits::default(),
    );
    assert!(matches!(refused, Err(Error::InvalidBlock(_))), "{refused:?}");
}

#[test]
fn a_pending_child_survives_its_parent_committing_with_a_one_version_history() {
    // With one version of history, committing block 1 prunes the state
    // below it, which the two-layer reader of block 2 would start from.
    let n = net();
    let (validator, users) = (&n.validator, &n.users);
    let a = mem_chain(
        &n,
        ChainConfig {
            state_history: 1,
            ..ChainConfig::default()
        },
    );
    let (p1, second) = first_block_and_second_txs(&a, validator, users);
    let pending1 = a.pending(None, &p1.executed).expect("pending 1");
    let p2 = a
        .propose_on(
            Some(&pending1),
            3_000,
            account(validator),
            second,
            BlockLimits::default(),
        )
        .expect("propose 2 on 1");
    commit(&a, validator, p1.executed);
    assert!(a.state().reader(0).is_err(), "version 0 was pruned");
    let pending2 = a
        .pending(Some(&pending1), &p2.executed)
        .expect("pending 2 after 1 committed");
    assert_eq!(pending2.height(), 2);
    commit(&a, validator, p2.executed);
    assert_eq!(a.tip().hash, pending2.hash());
}
