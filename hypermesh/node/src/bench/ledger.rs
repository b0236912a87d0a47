//! `hypermesh bench`: one node's speed beside its baselines, in one run on
//! the same cores.
//!
//! 1. **FN-DSA verification bound**: FN-DSA-1024 verifications per second
//!    on every core, the way admission checks a transaction: the key
//!    decoded from its encoding each time, the signature over a 64-byte
//!    sighash.
//! 2. **Transfers end to end**: a node in this process (real STOQ endpoint
//!    on `[::1]` with a certificate from a real TrustChain member, redb on
//!    disk) and clients submitting pre-signed, pre-encoded transfers over
//!    STOQ; the clock runs from the first submission to the commit of the
//!    last transfer. A warm-up round first sends each account's first
//!    transfers (the one that registers its key among them), so the
//!    measured round is the steady state of a chain whose senders are
//!    known. Reported as a ratio of the verification bound, with the CPU
//!    the process used (clients included: they share the cores).
//! 3. **State**: a Jellyfish Merkle tree commit of 10,000 new keys and of
//!    10,000 updates, and state proofs per second.

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hypermesh::api::NodeApi;
use hypermesh::chain::{Chain, ChainConfig};
use hypermesh::client::{build_tx, transfer_call, Client};
use hypermesh::runtime::{ChainParams, Genesis, GenesisValidator};
use hypermesh::service::{NodeService, ServiceApi, ServiceConfig};
use hypermesh::state::StateStore;
use hypermesh::types::Transaction;
use stoq::crypto::{Algorithm, KeyPair};
use stoq::{Endpoint, EndpointConfig};

use super::{pki, process_cpu_secs, VerifySample};

/// Arguments of `bench` (the ledger benchmark).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Transfers to send end to end (measured).
    #[arg(long, default_value_t = 60_000)]
    txs: usize,
    /// Transfers sent first, not measured: each account's first transfer
    /// (which carries its key) and the node's first blocks.
    #[arg(long, default_value_t = 20_000)]
    warmup: usize,
    /// Distinct sending accounts.
    #[arg(long, default_value_t = 1_200)]
    senders: usize,
    /// Transfers per submit call.
    #[arg(long, default_value_t = 250)]
    batch: usize,
    /// Client connections submitting at once.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Most transfers per block.
    #[arg(long, default_value_t = 5_000)]
    block_txs: usize,
    /// Longest wait, in milliseconds, before a block that is not full.
    #[arg(long, default_value_t = 100)]
    block_ms: u64,
    /// Seconds to measure the verification bound (half before the
    /// end-to-end run, half after).
    #[arg(long, default_value_t = 4.0)]
    verify_secs: f64,
    /// A short run (CI smoke test): 2,000 transfers after 200, 2 s of
    /// verification.
    #[arg(long)]
    quick: bool,
}

pub(crate) async fn run(mut a: Args) -> anyhow::Result<()> {
    if a.quick {
        a.txs = a.txs.min(2_000);
        a.warmup = a.warmup.min(200);
        a.senders = a.senders.min(100);
        a.verify_secs = a.verify_secs.min(2.0);
    }
    a.senders = a.senders.clamp(1, a.txs.max(1));
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!("hypermesh bench on {cores} cores");

    let verify_for = Duration::from_secs_f64(a.verify_secs / 2.0);
    let before = VerifySample::take(cores, verify_for);
    let e2e = end_to_end(&a).await?;
    let after = VerifySample::take(cores, verify_for);
    let mean = before.mean(after);
    let (bound, bare) = (mean.decoded_each_time, mean.decoded_before);
    println!(
        "FN-DSA-1024 verification of a 64-byte sighash, key decoded each time: {bound:.0}/s on {cores} cores ({:.0}/s per core; {:.0}/s before the run, {:.0}/s after)",
        bound / cores as f64,
        before.decoded_each_time,
        after.decoded_each_time
    );
    println!(
        "FN-DSA-1024 verification of a 64-byte sighash, key decoded beforehand: {bare:.0}/s on {cores} cores ({:.0}/s per core; {:.0}/s before, {:.0}/s after)",
        bare / cores as f64,
        before.decoded_before,
        after.decoded_before
    );
    println!(
        "transfers end to end (submit over STOQ, admitted, executed, committed): {} in {:.2} s = {:.0}/s",
        a.txs,
        e2e.elapsed.as_secs_f64(),
        e2e.rate
    );
    println!(
        "  admission finished after {:.2} s; {} blocks, {:.0} transfers per block; execution {:.1} ms and commit {:.1} ms per block on average",
        e2e.admitted_after.as_secs_f64(),
        e2e.blocks,
        a.txs as f64 / e2e.blocks.max(1) as f64,
        e2e.execution_ms,
        e2e.commit_ms
    );
    if let Some(cpu) = e2e.cpu_secs {
        println!(
            "  CPU: {:.2} core-seconds ({:.2} of {cores} cores busy, {:.0} us per transfer; clients included)",
            cpu,
            cpu / e2e.elapsed.as_secs_f64(),
            cpu * 1e6 / a.txs as f64
        );
    }
    println!(
        "ratio to the verification bound: {:.3} (goal >= 0.5); {:.3} of verification with keys decoded beforehand",
        e2e.rate / bound,
        e2e.rate / bare
    );
    println!(
        "  sender keys decoded {} times for {} transfers ({} senders)",
        e2e.key_misses, a.txs, a.senders
    );

    state_bench()?;
    Ok(())
}

struct EndToEnd {
    key_misses: u64,
    elapsed: Duration,
    admitted_after: Duration,
    rate: f64,
    blocks: u64,
    execution_ms: f64,
    commit_ms: f64,
    /// CPU seconds the process used over the run (node and clients).
    cpu_secs: Option<f64>,
}

async fn end_to_end(a: &Args) -> anyhow::Result<EndToEnd> {
    let node_key = KeyPair::generate(Algorithm::FnDsa1024);
    let pki = pki(&[(&node_key, "bench-node.mesh".to_string())])
        .await
        .context("starting TrustChain for the node's certificate")?;
    let senders: Vec<KeyPair> = (0..a.senders)
        .map(|_| KeyPair::generate(Algorithm::FnDsa1024))
        .collect();
    let recipient = KeyPair::generate(Algorithm::FnDsa1024).public_key().node_id().0;
    let params = ChainParams::default();
    let genesis = Genesis {
        params: params.clone(),
        time_ms: hypermesh::service::now_ms(),
        balances: senders
            .iter()
            .map(|k| (k.public_key().node_id().0, params.native_denom.clone(), 1u128 << 60))
            .collect(),
        validators: vec![GenesisValidator::new(node_key.public_key().clone(), 1)],
    };
    let data = tempfile::tempdir()?;
    let chain = Chain::open(
        &data.path().join("chain.redb"),
        crate::start::runtime(&genesis)?,
        &genesis,
        ChainConfig::default(),
    )?;
    let service = NodeService::new(
        chain,
        node_key.clone(),
        ServiceConfig {
            block_interval: Duration::from_millis(a.block_ms),
            max_block_txs: a.block_txs,
            empty_blocks: false,
            ..ServiceConfig::default()
        },
    )?;
    let endpoint = Endpoint::bind(
        EndpointConfig {
            listen: SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
            ..EndpointConfig::default()
        },
        pki.tls[0].clone(),
    )?;
    let api: Arc<dyn NodeApi> = Arc::new(ServiceApi(service.clone()));
    hypermesh::api::stoq_rpc::register(&endpoint, api);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let producer = service.spawn_producer(shutdown.clone());
    let addr = endpoint.local_addr()?;

    // Sign everything up front: signing is the clients' cost, not the node's.
    // Each sender's first `warm_per` transfers warm the node up (its first
    // one registers its key); the rest are measured.
    let warm_per = a.warmup.div_ceil(a.senders);
    let per_sender = a.txs.div_ceil(a.senders);
    eprintln!(
        "signing {} transfers from {} accounts...",
        (warm_per + per_sender) * a.senders,
        a.senders
    );
    let status = ServiceApi(service.clone()).status()?;
    let txs: Vec<Transaction> = {
        let senders = &senders;
        let status = &status;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let chunks: Vec<Vec<Transaction>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..cores)
                .map(|c| {
                    s.spawn(move || {
                        let mut out = Vec::new();
                        for (i, k) in senders.iter().enumerate().skip(c).step_by(cores) {
                            let n = per_sender.min(a.txs.saturating_sub(i * per_sender));
                            for nonce in 0..(warm_per + n) as u64 {
                                out.push(
                                    build_tx(
                                        k,
                                        status,
                                        nonce,
                                        transfer_call(&recipient, "caes", 1),
                                        100_000,
                                        0,
                                        1_000_000,
                                    )
                                    .expect("build"),
                                );
                            }
                        }
                        out
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("signer")).collect()
        });
        chunks.into_iter().flatten().collect()
    };
    // Each connection takes whole senders, so nonces arrive in order.
    // Encoded up front too: encoding is the clients' work.
    let connections = a.connections.max(1);
    let mut warm: Vec<Vec<bytes::Bytes>> = vec![Vec::new(); connections];
    let mut measured: Vec<Vec<bytes::Bytes>> = vec![Vec::new(); connections];
    let mut by_sender: std::collections::BTreeMap<[u8; 32], Vec<Transaction>> = Default::default();
    for t in txs {
        by_sender.entry(t.body.sender_id()).or_default().push(t);
    }
    for (i, (_, list)) in by_sender.into_iter().enumerate() {
        for t in list {
            let round = if t.body.nonce < warm_per as u64 {
                &mut warm
            } else {
                &mut measured
            };
            round[i % connections].push(bytes::Bytes::from(t.encode()?));
        }
    }
    let mut clients = Vec::new();
    for _ in 0..connections {
        let key = KeyPair::generate(Algorithm::FnDsa1024);
        clients.push(Client::connect_with_bundle(&key, pki.bundle.clone(), addr, "bench-node.mesh").await?);
    }
    let warmed = warm.iter().map(Vec::len).sum::<usize>();
    if warmed > 0 {
        eprintln!("warming up with {warmed} transfers...");
        let r = round(&service, &clients, warm, a.batch).await?;
        println!(
            "  warm-up: {warmed} transfers in {:.2} s = {:.0}/s (first transfers of each account, carrying its key)",
            r.elapsed.as_secs_f64(),
            warmed as f64 / r.elapsed.as_secs_f64()
        );
    }
    let total = measured.iter().map(Vec::len).sum::<usize>();
    eprintln!("submitting {total} transfers over {connections} connections...");
    let r = round(&service, &clients, measured, a.batch).await?;
    shutdown.cancel();
    let _ = producer.await;
    for c in &clients {
        c.shutdown().await;
    }
    endpoint.shutdown().await;
    pki.shutdown().await;
    Ok(EndToEnd {
        key_misses: service.key_cache_stats().1,
        elapsed: r.elapsed,
        admitted_after: r.admitted_after,
        rate: total as f64 / r.elapsed.as_secs_f64(),
        blocks: r.blocks,
        execution_ms: r.execution_secs * 1_000.0 / r.blocks.max(1) as f64,
        commit_ms: r.commit_secs * 1_000.0 / r.blocks.max(1) as f64,
        cpu_secs: r.cpu_secs,
    })
}

/// One round of submissions: its timings.
struct Round {
    elapsed: Duration,
    admitted_after: Duration,
    blocks: u64,
    execution_secs: f64,
    commit_secs: f64,
    cpu_secs: Option<f64>,
}

/// Submits each connection's share in calls of `batch`, all connections
/// at once, and waits until everything is committed.
async fn round(
    service: &Arc<NodeService>,
    clients: &[Client],
    shares: Vec<Vec<bytes::Bytes>>,
    batch: usize,
) -> anyhow::Result<Round> {
    let total: usize = shares.iter().map(Vec::len).sum();
    let committed_before = service.metrics().committed_txs.get();
    let height_before = service.chain().tip().height;
    let sums_before = (histogram_sum(service, "execution"), histogram_sum(service, "commit"));
    let cpu_before = process_cpu_secs();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (client, share) in clients.iter().cloned().zip(shares) {
        let batch = batch.max(1);
        tasks.push(tokio::spawn(async move {
            let mut refused = 0usize;
            for chunk in share.chunks(batch) {
                for r in client.submit_raw(chunk.to_vec()).await? {
                    if r.is_err() {
                        refused += 1;
                    }
                }
            }
            Ok::<usize, hypermesh::client::ClientError>(refused)
        }));
    }
    let mut refused = 0;
    for t in tasks {
        refused += t.await??;
    }
    let admitted_after = started.elapsed();
    if refused > 0 {
        anyhow::bail!("{refused} transfers were refused; the run is not comparable");
    }
    let target = committed_before + total as u64;
    let mut tip = service.subscribe_tip();
    while service.metrics().committed_txs.get() < target {
        tokio::time::timeout(Duration::from_secs(60), tip.changed())
            .await
            .context("no block for 60 s")??;
    }
    let elapsed = started.elapsed();
    let cpu_secs = process_cpu_secs().zip(cpu_before).map(|(after, before)| after - before);
    Ok(Round {
        elapsed,
        admitted_after,
        blocks: service.chain().tip().height - height_before,
        execution_secs: histogram_sum(service, "execution") - sums_before.0,
        commit_secs: histogram_sum(service, "commit") - sums_before.1,
        cpu_secs,
    })
}

/// The sum of a service histogram, read through its text exposition.
fn histogram_sum(service: &NodeService, name: &str) -> f64 {
    let mut registry = prometheus_client::registry::Registry::default();
    service.metrics().register(&mut registry);
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        return 0.0;
    }
    let prefix = format!("hypermesh_{name}_seconds_sum ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn state_bench() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Arc::new(redb::Database::create(dir.path().join("state.redb"))?);
    let store = StateStore::open(db)?;
    let keys: Vec<Vec<u8>> = (0..10_000u32)
        .map(|i| format!("bench/key/{i:08}").into_bytes())
        .collect();
    let write = |version: u64, tag: u8| -> anyhow::Result<Duration> {
        let writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = keys.iter().map(|k| (k.clone(), Some(vec![tag; 48]))).collect();
        let started = Instant::now();
        let staged = store.stage(version, writes)?;
        store.commit(&staged)?;
        Ok(started.elapsed())
    };
    let insert = write(1, 1)?;
    let update = write(2, 2)?;
    println!(
        "state: JMT commit of 10,000 new keys {:.0} ms ({:.0} keys/s), of 10,000 updates {:.0} ms ({:.0} updates/s)",
        insert.as_secs_f64() * 1e3,
        10_000.0 / insert.as_secs_f64(),
        update.as_secs_f64() * 1e3,
        10_000.0 / update.as_secs_f64()
    );
    let started = Instant::now();
    let mut proofs = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        let k = &keys[(proofs as usize * 7_919) % keys.len()];
        let (_, proof) = store.get_with_proof(k, 2)?;
        std::hint::black_box(proof.encode());
        proofs += 1;
    }
    println!(
        "state: {:.0} proofs generated per second (one thread, 10,000 keys)",
        proofs as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}
