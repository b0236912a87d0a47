//! Chain tests: propose, validate and commit; persistence across reopen;
//! every header field checked; commit certificates; proofs against
//! headers; determinism across nodes; pruning.

use std::sync::Arc;

use redb::backends::InMemoryBackend;
use redb::Database;
use stoq::crypto::{Algorithm, KeyPair};

use super::*;
use crate::modules::{bank, staking::Staking};
use crate::runtime::test_chain::{account, checked, signed, DENOM};
use crate::runtime::{ChainParams, GenesisValidator};
use crate::types::{Call, Transaction};

pub(super) struct Net {
    pub(super) validator: KeyPair,
    pub(super) users: Vec<KeyPair>,
    pub(super) genesis: Genesis,
}

pub(super) fn net() -> Net {
    let validator = KeyPair::generate(Algorithm::FnDsa1024);
    let users: Vec<KeyPair> = (0..3).map(|_| KeyPair::generate(Algorithm::FnDsa1024)).collect();
    let genesis = Genesis {
        params: ChainParams::default(),
        time_ms: 1_000,
        balances: users
            .iter()
            .map(|u| (account(u), DENOM.to_string(), 1_000_000))
            .collect(),
        validators: vec![GenesisValidator::new(validator.public_key().clone(), 500)],
    };
    Net {
        validator,
        users,
        genesis,
    }
}

fn runtime() -> Runtime {
    Runtime::new(ChainParams::default(), vec![Arc::new(Staking::default())]).expect("runtime")
}

pub(super) fn mem_chain(n: &Net, config: ChainConfig) -> Chain {
    let db = Database::builder()
        .create_with_backend(InMemoryBackend::new())
        .expect("db");
    Chain::open_db(Arc::new(db), BlockLog::memory(), runtime(), &n.genesis, config).expect("open")
}

fn transfer(from: &KeyPair, nonce: u64, to: &AccountId, amount: u128) -> Transaction {
    let call = Call {
        module: "bank".into(),
        method: "transfer".into(),
        args: bank::transfer_args(to, DENOM, amount),
    };
    signed(from, nonce, call, 100_000, 1_000)
}

pub(super) fn cert(chain: &Chain, key: &KeyPair, e: &Executed) -> CommitCertificate {
    let tip = chain.tip();
    let h = e.block.header.height;
    CommitCertificate {
        height: h,
        round: 0,
        block_hash: e.hash,
        signatures: vec![CommitCertificate::sign(chain.chain_id(), key, &tip.validators, h, 0, &e.hash).expect("sign")],
    }
}

/// Proposes `txs` at `time` and commits with the validator's signature.
fn produce(chain: &Chain, n: &Net, time: u64, txs: &[Transaction]) -> Committed {
    let p = chain
        .propose(time, account(&n.validator), checked(txs), BlockLimits::default())
        .expect("propose");
    assert!(p.skipped.is_empty(), "{:?}", p.skipped);
    let c = cert(chain, &n.validator, &p.executed);
    chain.commit(p.executed, &c).expect("commit")
}

fn balance(chain: &Chain, who: &AccountId) -> u128 {
    let args = crate::modules::encode(|w| {
        w.fixed(who).str8(DENOM);
    });
    let (_, b) = chain.query("bank", "balance", &args, None).expect("query");
    u128::from_be_bytes(b.try_into().expect("16 bytes"))
}

#[test]
fn blocks_commit_persist_and_resume_after_reopen() {
    let n = net();
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("chain.redb");
    let bob = account(&n.users[1]);
    let first_hash;
    let tx_hash;
    {
        let chain = Chain::open(&path, runtime(), &n.genesis, ChainConfig::default()).expect("open");
        assert_eq!(chain.tip().height, 0);
        assert_eq!(chain.tip().validators.0.len(), 1);
        let t = transfer(&n.users[0], 0, &bob, 250);
        tx_hash = t.hash().expect("hash");
        let c1 = produce(&chain, &n, 5_000, &[t]);
        first_hash = c1.hash;
        assert_eq!(c1.block.header.parent_hash, chain.genesis_hash());
        assert_eq!(c1.next_nonces, vec![(account(&n.users[0]), 1)]);
        let c2 = produce(&chain, &n, 6_000, &[transfer(&n.users[0], 1, &bob, 50)]);
        assert_eq!(c2.block.header.parent_hash, first_hash);
        assert_eq!(chain.tip().height, 2);
    }
    let chain = Chain::open(&path, runtime(), &n.genesis, ChainConfig::default()).expect("reopen");
    let tip = chain.tip();
    assert_eq!(tip.height, 2);
    assert_eq!(chain.height_of(&first_hash).expect("read"), Some(1));
    assert_eq!(balance(&chain, &bob), 1_000_300);
    assert_eq!(chain.next_nonce(&account(&n.users[0])).expect("nonce"), 2);
    let rec = chain.tx(&tx_hash).expect("read").expect("found");
    assert_eq!((rec.height, rec.index), (1, 0));
    assert!(rec.receipt.success());
    assert_eq!(chain.receipts(2).expect("receipts").len(), 1);
    let block = chain.block(1).expect("read").expect("block 1");
    let commit = CommitCertificate::decode(&block.commit).expect("commit stored");
    commit
        .verify(chain.chain_id(), &tip.validators, 1, &first_hash)
        .expect("the stored certificate verifies");
    // The chain goes on from where it stopped.
    produce(&chain, &n, 7_000, &[transfer(&n.users[0], 2, &bob, 1)]);
    assert_eq!(chain.tip().height, 3);

    // Another genesis is refused on this data dir.
    drop(chain);
    let mut other = n.genesis.clone();
    other.time_ms += 1;
    match Chain::open(&path, runtime(), &other, ChainConfig::default()) {
        Err(Error::Genesis(m)) => assert!(m.contains("another genesis"), "{m}"),
        r => panic!("{r:?}"),
    }
}

#[test]
fn an_interrupted_commit_leaves_a_log_tail_that_reopening_cuts() {
    let n = net();
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("chain.redb");
    let bob = account(&n.users[1]);
    {
        let chain = Chain::open(&path, runtime(), &n.genesis, ChainConfig::default()).expect("open");
        produce(&chain, &n, 5_000, &[transfer(&n.users[0], 0, &bob, 1)]);
    }
    // A record written, the index never committed (killed in between).
    let log_path = path.with_extension("blocks");
    let good = std::fs::metadata(&log_path).expect("log").len();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log_path).expect("log");
        f.write_all(&[0xAB; 5_000]).expect("write");
    }
    let chain = Chain::open(&path, runtime(), &n.genesis, ChainConfig::default()).expect("reopen");
    assert_eq!(std::fs::metadata(&log_path).expect("log").len(), good);
    assert_eq!(chain.tip().height, 1);
    let c = produce(&chain, &n, 6_000, &[transfer(&n.users[0], 1, &bob, 1)]);
    assert_eq!(chain.block(2).expect("read").expect("block 2").header, c.block.header);
    assert_eq!(chain.block(1).expect("read").expect("block 1").txs.len(), 1);
    drop(chain);
    // A log shorter than the index is damage, not something to paper over.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log_path)
        .expect("log")
        .set_len(good - 1)
        .expect("truncate");
    match Chain::open(&path, runtime(), &n.genesis, ChainConfig::default()) {
        Err(Error::Store(m)) => assert!(m.contains("damaged"), "{m}"),
        r => panic!("{r:?}"),
    }
}

#[test]
fn a_proposal_validates_on_another_node_and_tampered_headers_do_not() {
    let n = net();
    let a = mem_chain(&n, ChainConfig::default());
    let b = mem_chain(&n, ChainConfig::default());
    let carol = account(&n.users[2]);
    let txs = [
        transfer(&n.users[0], 0, &carol, 10),
        transfer(&n.users[1], 0, &carol, 20),
    ];
    let p = a
        .propose(2_000, account(&n.validator), checked(&txs), BlockLimits::default())
        .expect("propose");
    let block = p.executed.block.clone();
    let executed = b.validate(&block, checked(&block.txs), 2_000).expect("valid on b");
    assert_eq!(executed.hash, p.executed.hash);
    assert_eq!(executed.block.header, block.header);

    let check = |what: &str, f: &dyn Fn(&mut Block)| {
        let mut bad = block.clone();
        f(&mut bad);
        let txs = checked(&bad.txs);
        match b.validate(&bad, txs, 2_000) {
            Err(Error::InvalidBlock(m)) => m,
            r => panic!("{what}: {r:?}"),
        }
    };
    assert!(check("chain", &|b| b.header.chain_id = "x".into()).contains("chain"));
    assert!(check("height", &|b| b.header.height = 2).contains("height"));
    assert!(check("parent", &|b| b.header.parent_hash = [1; 32]).contains("parent"));
    assert!(check("time", &|b| b.header.timestamp_ms = 1_000).contains("timestamp"));
    assert!(check("future", &|b| b.header.timestamp_ms = 60_000).contains("ahead"));
    assert!(check("proposer", &|b| b.header.proposer = [3; 32]).contains("proposer"));
    assert!(check("tx root", &|b| b.header.tx_root = [4; 32]).contains("transactions root"));
    assert!(check("state root", &|b| b.header.state_root = [5; 32]).contains("state root"));
    assert!(check("set", &|b| b.header.validator_set_hash = [6; 32]).contains("validator set"));
    assert!(check("results", &|b| b.header.result_root = [7; 32]).contains("result root"));
    assert!(check("dropped tx", &|b| {
        b.txs.pop();
    })
    .contains("transactions root"));
    // A replayed transaction makes the block invalid (not just failed).
    let replay = check("replay", &|b| b.txs.push(b.txs[0].clone()));
    assert!(replay.contains("nonce"), "{replay}");
    assert_eq!(b.tip().height, 0, "validation writes nothing");
}

#[test]
fn commit_requires_a_certificate_for_this_block_from_the_validators() {
    let n = net();
    let chain = mem_chain(&n, ChainConfig::default());
    let carol = account(&n.users[2]);
    let propose = || {
        chain
            .propose(
                2_000,
                account(&n.validator),
                checked(&[transfer(&n.users[0], 0, &carol, 10)]),
                BlockLimits::default(),
            )
            .expect("propose")
            .executed
    };
    let e = propose();
    let mut wrong = cert(&chain, &n.validator, &e);
    wrong.block_hash = [9; 32];
    assert!(matches!(chain.commit(e, &wrong), Err(Error::InvalidBlock(_))));
    let e = propose();
    let outsider = KeyPair::generate(Algorithm::FnDsa1024);
    let forged = CommitCertificate {
        height: 1,
        round: 0,
        block_hash: e.hash,
        signatures: vec![CommitSignature {
            validator: 0,
            signature: outsider
                .sign(&vote_signing_bytes(
                    chain.chain_id(),
                    VoteKind::Precommit,
                    1,
                    0,
                    Some(&e.hash),
                ))
                .expect("sign"),
        }],
    };
    assert!(matches!(chain.commit(e, &forged), Err(Error::InvalidBlock(_))));
    let e = propose();
    let empty = CommitCertificate {
        height: 1,
        round: 0,
        block_hash: e.hash,
        signatures: vec![],
    };
    assert!(matches!(chain.commit(e, &empty), Err(Error::InvalidBlock(_))));
    assert_eq!(chain.tip().height, 0);
    assert_eq!(balance(&chain, &carol), 1_000_000, "nothing was written");
    assert!(chain.block(1).expect("read").is_none());

    // An executed block goes stale once another commits at its height.
    let first = propose();
    let second = propose();
    let c = cert(&chain, &n.validator, &first);
    chain.commit(first, &c).expect("commit");
    let c = cert(&chain, &n.validator, &second);
    assert!(matches!(chain.commit(second, &c), Err(Error::InvalidBlock(_))));
}

#[test]
fn the_builder_skips_what_cannot_be_included_and_reports_why() {
    let n = net();
    let chain = mem_chain(&n, ChainConfig::default());
    let carol = account(&n.users[2]);
    let broke = KeyPair::generate(Algorithm::FnDsa1024);
    let good = transfer(&n.users[0], 0, &carol, 10);
    let gap = transfer(&n.users[1], 5, &carol, 10);
    let unfunded = transfer(&broke, 0, &carol, 10);
    let next = transfer(&n.users[0], 1, &carol, 10);
    let p = chain
        .propose(
            2_000,
            account(&n.validator),
            checked(&[good.clone(), gap.clone(), unfunded.clone(), next.clone()]),
            BlockLimits::default(),
        )
        .expect("propose");
    assert_eq!(p.executed.block.txs, vec![Arc::new(good), Arc::new(next)]);
    let reasons: Vec<u16> = p.skipped.iter().map(|(_, e)| e.code()).collect();
    assert_eq!(reasons, vec![TxError::NonceGap { got: 0, expected: 0 }.code(), 10]);
    assert_eq!(p.skipped[0].0, gap.hash().expect("hash"));
    assert_eq!(p.skipped[1].0, unfunded.hash().expect("hash"));
    // Limits: one transaction per block.
    let p = chain
        .propose(
            2_000,
            account(&n.validator),
            checked(&[transfer(&n.users[0], 0, &carol, 1), transfer(&n.users[1], 0, &carol, 1)]),
            BlockLimits {
                max_txs: 1,
                ..BlockLimits::default()
            },
        )
        .expect("propose");
    assert_eq!(p.executed.block.txs.len(), 1);
    assert!(p.skipped.is_empty(), "what does not fit is not a refusal");
}

#[test]
fn state_proofs_verify_against_the_header_and_tampering_fails() {
    let n = net();
    let chain = mem_chain(&n, ChainConfig::default());
    let carol = account(&n.users[2]);
    produce(&chain, &n, 2_000, &[transfer(&n.users[0], 0, &carol, 10)]);
    let key = bank::balance_key(&carol, DENOM);
    let at = chain.prove(&key, None).expect("prove");
    assert_eq!(at.height, 1);
    let header = at.header.clone().expect("header");
    assert_eq!(header.state_root, at.root);
    at.verify(&key).expect("inclusion proof verifies");
    assert_eq!(
        at.value
            .as_deref()
            .map(|v| u128::from_be_bytes(v.try_into().expect("16"))),
        Some(1_000_010)
    );
    let mut forged = at.clone();
    forged.value = Some(2_000_000u128.to_be_bytes().to_vec());
    assert!(matches!(forged.verify(&key), Err(Error::BadProof(_))));
    let mut other_root = at.clone();
    other_root.root = [1; 32];
    assert!(matches!(other_root.verify(&key), Err(Error::BadProof(_))));
    // Absent keys come with an exclusion proof; claiming a value fails.
    let absent = bank::balance_key(&[0xAB; 32], DENOM);
    let none = chain.prove(&absent, Some(1)).expect("prove");
    assert_eq!(none.value, None);
    none.verify(&absent).expect("exclusion proof verifies");
    let mut lie = none.clone();
    lie.value = Some(vec![1]);
    assert!(lie.verify(&absent).is_err());
    // The genesis state proves too.
    chain
        .prove(&key, Some(0))
        .expect("genesis")
        .verify(&key)
        .expect("verifies");
}

#[test]
fn the_same_blocks_give_the_same_roots_on_two_fresh_nodes() {
    let n = net();
    let a = mem_chain(&n, ChainConfig::default());
    let b = mem_chain(&n, ChainConfig::default());
    let carol = account(&n.users[2]);
    for height in 1..=4u64 {
        let txs: Vec<Transaction> = (0..2)
            .map(|u| transfer(&n.users[u], height - 1, &carol, height as u128 * 7 + u as u128))
            .collect();
        let committed = produce(&a, &n, 1_000 + height * 1_000, &txs);
        let block = (*committed.block).clone();
        let executed = b
            .validate(&block, checked(&block.txs), 1_000 + height * 1_000)
            .expect("valid");
        let cert = CommitCertificate::decode(&block.commit).expect("cert");
        b.commit(executed, &cert).expect("commit on b");
        assert_eq!(a.tip().state_root, b.tip().state_root, "height {height}");
        assert_eq!(a.tip().hash, b.tip().hash);
    }
    assert_eq!(a.state().root(4).expect("root"), b.state().root(4).expect("root"));
}

#[test]
fn state_older_than_the_history_window_is_pruned() {
    let n = net();
    let chain = mem_chain(
        &n,
        ChainConfig {
            state_history: 2,
            ..ChainConfig::default()
        },
    );
    let carol = account(&n.users[2]);
    for h in 0..4u64 {
        produce(&chain, &n, 2_000 + h * 1_000, &[transfer(&n.users[0], h, &carol, 1)]);
    }
    chain.state().reader(4).expect("the tip is readable");
    chain.state().reader(3).expect("kept");
    assert!(matches!(chain.state().reader(2), Err(Error::VersionUnavailable { .. })));
    assert!(matches!(
        chain.prove(b"bank/x", Some(1)),
        Err(Error::VersionUnavailable { .. })
    ));
    // Blocks and receipts are kept whatever the window.
    assert!(chain.block(1).expect("read").is_some());
}

#[test]
fn events_are_read_by_module_and_kind_block_by_block() {
    let n = net();
    let chain = mem_chain(&n, ChainConfig::default());
    let carol = account(&n.users[2]);
    for h in 0..3u64 {
        produce(
            &chain,
            &n,
            2_000 + h * 1_000,
            &[transfer(&n.users[0], h, &carol, 1), transfer(&n.users[1], h, &carol, 1)],
        );
    }
    let (all, next) = chain.events(1, u64::MAX, Some("bank"), None, 1_000).expect("events");
    assert_eq!(next, 4);
    assert!(all.len() >= 6, "{}", all.len());
    assert!(all.iter().all(|e| e.event.module == "bank"));
    let (none, _) = chain.events(1, 3, Some("nope"), None, 10).expect("events");
    assert!(none.is_empty());
    // A small limit returns whole blocks and a height to resume from.
    let per_block = all.iter().filter(|e| e.height == 1).count();
    let (first, resume) = chain.events(1, 3, Some("bank"), None, 1).expect("events");
    assert_eq!((first.len(), resume), (per_block, 2));
    let (rest, end) = chain.events(resume, 3, Some("bank"), None, 1_000).expect("events");
    assert_eq!(first.len() + rest.len(), all.len());
    assert_eq!(end, 4);
}
