//! Service tests: every kind of bad transaction refused with its own error
//! and nothing changed; admitted ones produced into blocks; subscribers
//! woken by commits; a restarted node resumes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redb::backends::InMemoryBackend;
use redb::Database;
use stoq::crypto::{Algorithm, KeyPair};

use super::*;
use crate::api::{BlockRef, NodeApi, TxStatus};
use crate::chain::ChainConfig;
use crate::modules::staking::Staking;
use crate::runtime::test_chain::{account, DENOM};
use crate::runtime::{ChainParams, Genesis, GenesisValidator, Runtime};
use crate::types::{Call, Transaction, UnsignedTransaction, MAX_TX_BYTES};
use tokio_util::sync::CancellationToken;

struct Fixture {
    validator: KeyPair,
    alice: KeyPair,
    bob: KeyPair,
    genesis: Genesis,
}

fn fixture() -> Fixture {
    let validator = KeyPair::generate(Algorithm::FnDsa1024);
    let alice = KeyPair::generate(Algorithm::FnDsa1024);
    let bob = KeyPair::generate(Algorithm::FnDsa1024);
    let genesis = Genesis {
        params: ChainParams::default(),
        time_ms: 1_000,
        balances: vec![(account(&alice), DENOM.into(), 1_000_000)],
        validators: vec![GenesisValidator::new(validator.public_key().clone(), 100)],
    };
    Fixture {
        validator,
        alice,
        bob,
        genesis,
    }
}

fn runtime() -> Runtime {
    Runtime::new(ChainParams::default(), vec![Arc::new(Staking::default())]).expect("runtime")
}

/// A chain of the fixture's genesis in memory.
fn mem_chain(f: &Fixture) -> Chain {
    Chain::open_db(
        mem_db(),
        crate::chain::BlockLog::memory(),
        runtime(),
        &f.genesis,
        ChainConfig::default(),
    )
    .expect("chain")
}

/// A service producing with the fixture's validator.
fn service(f: &Fixture) -> Arc<NodeService> {
    NodeService::new(mem_chain(f), f.validator.clone(), ServiceConfig::default()).expect("service")
}

fn mem_db() -> Arc<Database> {
    Arc::new(
        Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .expect("db"),
    )
}

/// A transfer with its proof of work, changed by `edit` before signing.
fn tx_with(from: &KeyPair, nonce: u64, to: &KeyPair, edit: impl FnOnce(&mut UnsignedTransaction)) -> Transaction {
    let mut body = UnsignedTransaction {
        chain_id: ChainParams::default().chain_id,
        sender: from.public_key().clone().into(),
        nonce,
        expiry_height: 100,
        gas_limit: 100_000,
        fee: 1_000,
        call: Call {
            module: "bank".into(),
            method: "transfer".into(),
            args: crate::modules::bank::transfer_args(&account(to), DENOM, 10),
        },
    };
    edit(&mut body);
    let mut tx = body.sign(from).expect("sign");
    assert!(tx
        .solve_work(ChainParams::default().pow_bits, 0, 1 << 24)
        .expect("work"));
    tx
}

fn bytes(tx: &Transaction) -> Bytes {
    Bytes::from(tx.encode().expect("encode"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_transaction_is_refused_with_its_own_error_and_changes_nothing() {
    let f = fixture();
    let s = service(&f);
    let api = ServiceApi(s.clone());
    // One good transaction committed, so that its nonce can be replayed.
    let good = tx_with(&f.alice, 0, &f.bob, |_| {});
    assert!(api.submit(vec![bytes(&good)]).await.expect("submit")[0].is_ok());
    s.produce_block(5_000).expect("block");
    let tip = s.chain().tip();

    let mut bad_sig = tx_with(&f.alice, 1, &f.bob, |_| {});
    bad_sig.signature = f.bob.sign(b"something else").expect("sign");
    let wrong_chain = tx_with(&f.alice, 1, &f.bob, |b| b.chain_id = "other-chain".into());
    let replayed = tx_with(&f.alice, 0, &f.bob, |b| b.fee = 2_000);
    let gapped = tx_with(&f.alice, 5, &f.bob, |_| {});
    let expired = tx_with(&f.alice, 1, &f.bob, |b| b.expiry_height = 1);
    let mut lazy = tx_with(&f.alice, 1, &f.bob, |_| {});
    lazy.pow_nonce = (0..u64::MAX)
        .find(|n| crate::pow::work_bits(&lazy.body.sighash().expect("sighash"), *n) < 8)
        .expect("a nonce without work");
    let broke = tx_with(&f.bob, 0, &f.alice, |_| {});
    let mut oversized = bytes(&good).to_vec();
    oversized.resize(MAX_TX_BYTES + 1, 0);
    let mut malformed = bytes(&good).to_vec();
    malformed.truncate(malformed.len() / 2);

    let cases: Vec<(&str, Bytes, u16)> = vec![
        ("bad signature", bytes(&bad_sig), 5),
        ("wrong chain", bytes(&wrong_chain), 3),
        ("replayed nonce", bytes(&replayed), 8),
        ("gapped nonce", bytes(&gapped), 9),
        ("expired", bytes(&expired), 7),
        ("insufficient work", bytes(&lazy), 4),
        ("cannot pay the fee", bytes(&broke), 10),
        ("oversized", Bytes::from(oversized), 2),
        ("malformed", Bytes::from(malformed), 1),
        ("duplicate of itself", bytes(&good), 8),
    ];
    for (what, raw, code) in cases {
        let out = api.submit(vec![raw]).await.expect("submit");
        match &out[0] {
            Err(e) => assert_eq!(e.code(), code, "{what}: {e}"),
            Ok(_) => panic!("{what} was admitted"),
        }
        assert_eq!(s.mempool().len(), 0, "{what} left something in the mempool");
    }
    // Refused transactions never reach a block.
    s.produce_block(6_000).expect("block");
    let after = s.chain().tip();
    assert_eq!(after.height, tip.height + 1);
    let block = api.block(BlockRef::Latest).expect("read").expect("block");
    assert!(block.txs.is_empty());
    let info = api.account(&account(&f.alice)).expect("account");
    assert_eq!(info.next_nonce, 1);
    assert_eq!(info.balance, 1_000_000 - 10 - 1_000);
    // Too many at once is a bad request, not a refusal per transaction.
    let many = vec![bytes(&good); crate::api::MAX_SUBMIT_BATCH + 1];
    assert!(matches!(
        api.submit(many).await,
        Err(crate::api::ApiError::BadRequest(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admitted_transactions_are_produced_and_subscribers_wake() {
    let f = fixture();
    let s = service(&f);
    let api = Arc::new(ServiceApi(s.clone()));
    let txs: Vec<Transaction> = (0..5).map(|n| tx_with(&f.alice, n, &f.bob, |_| {})).collect();
    let out = api.submit(txs.iter().map(bytes).collect()).await.expect("submit");
    let hashes: Vec<_> = out.into_iter().map(|r| r.expect("admitted")).collect();
    assert_eq!(api.tx(&hashes[4]).expect("status"), TxStatus::Pending);
    assert_eq!(api.account(&account(&f.alice)).expect("account").pending_nonce, 5);

    let waiter = {
        let api = api.clone();
        tokio::spawn(async move { api.blocks_from(1, 10, Duration::from_secs(10)).await })
    };
    let events = {
        let api = api.clone();
        tokio::spawn(async move {
            api.events_from(
                1,
                Some("bank".into()),
                Some("transfer".into()),
                100,
                Duration::from_secs(10),
            )
            .await
        })
    };
    // Let both start waiting, so that the commit is what wakes them (had
    // they not started, they would find the block at once: the answers
    // checked below are the same either way).
    tokio::time::sleep(Duration::from_millis(50)).await;
    let step = s.clone();
    tokio::task::spawn_blocking(move || step.produce_block(now_ms()))
        .await
        .expect("join")
        .expect("block");
    let blocks = waiter.await.expect("join").expect("blocks");
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].txs.len(), 5);
    let (events, next) = events.await.expect("join").expect("events");
    assert_eq!(next, 2);
    assert_eq!(events.len(), 5, "{events:?}");
    match api.tx(&hashes[4]).expect("status") {
        TxStatus::Committed(rec) => assert_eq!((rec.height, rec.index), (1, 4)),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.mempool().len(), 0);
    // Nothing new: an empty answer after the wait.
    let none = api.blocks_from(2, 10, Duration::from_millis(50)).await.expect("blocks");
    assert!(none.is_empty());
    let receipts = api.receipts(1).expect("receipts");
    assert!(receipts.iter().all(|r| r.success()));
    assert!(matches!(api.receipts(9), Err(crate::api::ApiError::NotFound(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producer_fills_blocks_on_its_timer_and_stops_on_shutdown() {
    let f = fixture();
    let chain = mem_chain(&f);
    let s = NodeService::new(
        chain,
        f.validator.clone(),
        ServiceConfig {
            block_interval: Duration::from_millis(50),
            empty_blocks: false,
            max_block_txs: 2,
            ..ServiceConfig::default()
        },
    )
    .expect("service");
    let stop = CancellationToken::new();
    let producer = s.spawn_producer(stop.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.chain().tip().height, 0, "no empty blocks");
    let txs: Vec<Bytes> = (0..5).map(|n| bytes(&tx_with(&f.alice, n, &f.bob, |_| {}))).collect();
    assert!(s.admit(txs).await.iter().all(Result::is_ok));
    let mut tip = s.subscribe_tip();
    tokio::time::timeout(Duration::from_secs(10), tip.wait_for(|h| *h >= 3))
        .await
        .expect("three blocks of at most two")
        .expect("watch");
    let sizes: Vec<usize> = (1..=3)
        .map(|h| s.chain().block(h).expect("read").expect("block").txs.len())
        .collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), producer)
        .await
        .expect("stops")
        .expect("join");
}

#[test]
fn only_a_key_with_a_quorum_may_produce_alone() {
    let f = fixture();
    let chain = mem_chain(&f);
    match NodeService::new(chain, f.alice.clone(), ServiceConfig::default()) {
        Err(Error::Genesis(m)) => assert!(m.contains("two thirds"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_validator_outside_the_active_set_starts_as_a_follower_and_a_stranger_is_refused() {
    use crate::modules::staking::StakingParams;
    // Bob bonded at genesis, below the minimum stake: a validator record
    // but no seat, as after a slashing jailed it.
    let mut f = fixture();
    f.genesis
        .validators
        .push(GenesisValidator::new(f.bob.public_key().clone(), 10));
    let chain = || {
        let staking = Staking {
            params: StakingParams {
                min_stake: 50,
                ..StakingParams::default()
            },
        };
        let runtime = Runtime::new(ChainParams::default(), vec![Arc::new(staking)]).expect("runtime");
        Chain::open_db(
            mem_db(),
            crate::chain::BlockLog::memory(),
            runtime,
            &f.genesis,
            ChainConfig::default(),
        )
        .expect("chain")
    };
    let bob = account(&f.bob);
    assert!(!chain().tip().validators.0.iter().any(|(a, _, _)| *a == bob));
    let s = NodeService::for_validator(chain(), f.bob.clone(), ServiceConfig::default()).expect("a follower");
    assert_eq!(s.account(), bob);
    match NodeService::for_validator(chain(), f.alice.clone(), ServiceConfig::default()) {
        Err(Error::Genesis(m)) => assert!(m.contains("never bonded"), "{m}"),
        other => panic!("a key that never bonded started: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_keeps_sending_while_its_blocks_commit_behind_the_producer() {
    // Small blocks, built while the one before commits: the next nonces
    // of a sender whose transactions are in flight (out of the mempool,
    // not yet in the state) must still be accepted in order, and a
    // resubmitted in-flight one refused as a replay.
    let f = fixture();
    let s = NodeService::new(
        mem_chain(&f),
        f.validator.clone(),
        ServiceConfig {
            block_interval: Duration::from_millis(20),
            empty_blocks: false,
            max_block_txs: 3,
            ..ServiceConfig::default()
        },
    )
    .expect("service");
    let stop = CancellationToken::new();
    let producer = s.spawn_producer(stop.clone());
    let txs: Vec<Transaction> = (0..40).map(|n| tx_with(&f.alice, n, &f.bob, |_| {})).collect();
    let mut replays = 0;
    for (i, chunk) in txs.chunks(4).enumerate() {
        let results = s.admit(chunk.iter().map(bytes).collect()).await;
        assert!(results.iter().all(Result::is_ok), "chunk {i}: {results:?}");
        if i > 0 {
            // The chunk before, again: committed, in flight or pending.
            let again = s.admit(txs[(i - 1) * 4..i * 4].iter().map(bytes).collect()).await;
            assert!(again.iter().all(Result::is_err), "{again:?}");
            replays += again.len();
        }
    }
    assert_eq!(replays, 36);
    let mut tip = s.subscribe_tip();
    tokio::time::timeout(Duration::from_secs(20), async {
        while s.metrics().committed_txs.get() < 40 {
            let _ = tip.changed().await;
        }
    })
    .await
    .expect("all 40 committed");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), producer)
        .await
        .expect("stops")
        .expect("join");
    let height = s.chain().tip().height;
    assert!(height >= 14, "blocks of at most 3: {height}");
    let reader = s.chain().state().reader(height).expect("reader");
    assert_eq!(
        s.chain().runtime().nonce(&reader, &account(&f.alice)).expect("nonce"),
        40
    );
    let mut seen = 0;
    for h in 1..=height {
        for t in &s.chain().block(h).expect("read").expect("block").txs {
            assert_eq!(t.body.nonce, seen, "in order, each once");
            seen += 1;
        }
    }
    assert_eq!(seen, 40);
    assert_eq!(
        s.metrics().production_failures.get(),
        0,
        "no block was thrown away (e.g. for reading a parent still committing)"
    );
}

#[test]
fn recent_blocks_stay_consecutive_and_within_their_count_and_byte_bounds() {
    let block = |height: u64| {
        Arc::new(Block {
            header: crate::types::BlockHeader {
                chain_id: "c".into(),
                height,
                parent_hash: [0; 32],
                timestamp_ms: height,
                proposer: [0; 32],
                tx_root: [0; 32],
                state_root: [0; 32],
                validator_set_hash: [0; 32],
                result_root: [0; 32],
                proofs: crate::types::ProofSection::default(),
            },
            txs: vec![],
            commit: vec![],
        })
    };
    let mut recent = RecentBlocks::default();
    // By count: small blocks, the oldest go past RECENT_BLOCKS.
    for h in 1..=(RECENT_BLOCKS as u64 + 10) {
        recent.push(block(h), 100);
    }
    assert!(recent.get(10).is_none());
    assert_eq!(recent.get(11).map(|b| b.header.height), Some(11));
    assert_eq!(
        recent.get(RECENT_BLOCKS as u64 + 10).map(|b| b.header.height),
        Some(RECENT_BLOCKS as u64 + 10)
    );
    assert!(recent.get(RECENT_BLOCKS as u64 + 11).is_none());
    // By bytes: three blocks of a third of the budget each fit, a fourth
    // pushes the oldest out.
    let third = RECENT_BYTES / 3;
    let base = RECENT_BLOCKS as u64 + 11;
    for h in base..base + 4 {
        recent.push(block(h), third);
    }
    assert!(recent.get(base).is_none(), "the oldest big block was dropped");
    assert!(recent.get(base - 1).is_none(), "small ones before it too");
    for h in base + 1..base + 4 {
        assert!(recent.get(h).is_some(), "block {h} kept");
    }
    // A block over the whole budget is still kept, alone.
    recent.push(block(base + 4), RECENT_BYTES * 2);
    assert!(recent.get(base + 3).is_none());
    assert!(recent.get(base + 4).is_some());
    // A gap (a restart, a sync) starts over rather than misnumbering.
    recent.push(block(base + 9), 10);
    assert!(recent.get(base + 4).is_none());
    assert_eq!(recent.get(base + 9).map(|b| b.header.height), Some(base + 9));
}
