//! Transparency log: appends per second with one FN-DSA head signature per
//! batch and the batch committed to redb, and proof generation at
//! 1,000,000 entries.

use std::time::{Duration, Instant};

use stoq::crypto::{merkle_leaf_hash, Algorithm, KeyPair};
use trustchain::checkpoint::{Checkpoint, CheckpointBody};
use trustchain::log::{Frontier, MerkleTree};
use trustchain::store::{BatchCommit, Store};

use super::{progress, row};

const BATCH: usize = 256;
/// About the size of a precertificate entry.
const ENTRY_LEN: usize = 3_400;

pub(crate) async fn run(quick: bool) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || appends(quick)).await??;
    tokio::task::spawn_blocking(move || proofs(quick)).await??;
    Ok(())
}

fn appends(quick: bool) -> anyhow::Result<()> {
    progress("log: appends with batched head signing and redb commits");
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("bench.redb"))?;
    let key = KeyPair::generate(Algorithm::FnDsa1024);
    let mut tree = MerkleTree::new();
    let duration = Duration::from_secs(if quick { 2 } else { 6 });
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < duration {
        let begin = tree.size();
        let mut frontier = Frontier::from_tree(&tree, begin)?;
        let entries: Vec<(Vec<u8>, [u8; 32])> = (0..BATCH)
            .map(|i| {
                let mut e = vec![1u8; ENTRY_LEN];
                e[..8].copy_from_slice(&(begin + i as u64).to_be_bytes());
                let h = merkle_leaf_hash(&e);
                (e, h)
            })
            .collect();
        for (_, h) in &entries {
            frontier.push(*h);
        }
        let body = CheckpointBody {
            bundle_id: [0; 32],
            log_id: 0,
            tree_size: begin + BATCH as u64,
            root: frontier.root(),
            timestamp_ms: trustchain::time::now_ms(),
            batch_start: begin,
            batch_root: MerkleTree::from_leaf_hashes(entries.iter().map(|(_, h)| *h)).root(),
        };
        let signatures = vec![body.sign(0, &key)?];
        let commit = BatchCommit {
            start: begin,
            entries,
            checkpoint: Some(Checkpoint { body, signatures }),
            ..Default::default()
        };
        store.commit_batch(&commit)?;
        for (_, h) in &commit.entries {
            tree.push_leaf_hash(*h);
        }
        n += BATCH as u64;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    row(
        &format!("log appends/s (batches of {BATCH}, head signed, redb commit)"),
        format!("{rate:.0}/s"),
        "goal 5,000/s".into(),
        Some(rate / 5000.0),
        ">= 1.0",
    );
    Ok(())
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p) as usize]
}

fn proofs(quick: bool) -> anyhow::Result<()> {
    let size: u64 = 1_000_000;
    progress("log: building a 1,000,000-entry tree");
    let t = Instant::now();
    let tree = MerkleTree::from_leaf_hashes((0..size).map(|i| merkle_leaf_hash(&i.to_be_bytes())));
    progress(&format!("log: built in {:.2} s", t.elapsed().as_secs_f64()));
    let samples = if quick { 2_000 } else { 20_000 };
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |m: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % m
    };
    let (mut inc, mut con) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for _ in 0..samples {
        let s = 1 + next(size);
        let i = next(s);
        let t = Instant::now();
        let p = tree.inclusion_proof(i, s)?;
        inc.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(p);
        let old = 1 + next(size);
        let t = Instant::now();
        let p = tree.consistency_proof(old.min(size), size)?;
        con.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(p);
    }
    for (name, v) in [("inclusion", &mut inc), ("consistency", &mut con)] {
        let p50 = percentile(v, 0.5);
        let p99 = percentile(v, 0.99);
        row(
            &format!("{name} proof at 1M entries, p50 / p99 (µs)"),
            format!("{p50:.1} / {p99:.1}"),
            "goal 1,000 µs".into(),
            Some(p99 / 1000.0),
            "<= 1.0 (p99/goal)",
        );
    }
    Ok(())
}
