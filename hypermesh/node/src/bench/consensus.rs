//! `hypermesh bench consensus`: validators agreeing by BFT consensus, in
//! this process, each with its own STOQ endpoint on `[::1]` (a certificate
//! from a real TrustChain member), chain database, write-ahead log and
//! storage plot, running the same validator service `hypermesh start`
//! runs. Blocks carry all four proofs with the devnet's parameters.
//!
//! 1. **Verification bound**: FN-DSA-1024 verifications per second on
//!    every core, before and after the transfer rounds, averaged. Every
//!    validator verifies every transaction, so the bound on transfers is
//!    that rate divided by the number of validators. The bound is that of
//!    verification as the primitive is specified and benchmarked (from
//!    the encoded public key, decoded each time); the rate with the key
//!    decoded beforehand, which admission reaches for senders whose keys
//!    it holds decoded (as in this run, after the warm-up), is printed
//!    beside it with the ratio to it.
//! 2. **Finality latency**: single transfers submitted over STOQ one at a
//!    time at a steady rate, round-robin over the validators; from the
//!    submit call to the commit of the block holding it on the validator
//!    it was submitted to. Senders are registered beforehand (a warm-up
//!    round), as a chain's users are.
//! 3. **Throughput**: pre-signed transfers from many accounts submitted in
//!    batches over one connection per validator, from the first
//!    submission until every validator has committed the last one; the
//!    latency of each transfer under that load too.
//! 4. **Equivocation**: one validator signs two different prevotes for
//!    the same height and round and gossips them; the time until a block
//!    carrying the evidence is committed, and whether the offender is out
//!    of the set afterwards.

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hypermesh::api::NodeApi;
use hypermesh::chain::{Chain, ChainConfig};
use hypermesh::client::{build_tx, transfer_call, Client};
use hypermesh::consensus::app::decode_evidence_list;
use hypermesh::consensus::signing::sign_vote;
use hypermesh::consensus::wire::encode_message;
use hypermesh::consensus::{Address, BlockApp, BlockId, Height, HmContext, Message};
use hypermesh::proofs::space::{Plot, SpaceParams};
use hypermesh::runtime::{ChainParams, ConsensusParams, Genesis, GenesisValidator};
use hypermesh::service::validator::consensus_topic;
use hypermesh::service::{NodeService, ServiceApi, ServiceConfig};
use hypermesh::types::{AccountId, Transaction};
use malachite_types::{Context as _, NilOrVal, Round};
use stoq::crypto::{Algorithm, KeyPair};
use stoq::{Endpoint, EndpointConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{pki, process_cpu_secs, VerifySample};
use crate::config::ConsensusSection;

/// Arguments of `bench consensus`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Validators, each with an equal stake.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Transfers sent one at a time for the finality latency.
    #[arg(long, default_value_t = 300)]
    latency_txs: usize,
    /// Rate of those, per second.
    #[arg(long, default_value_t = 20.0)]
    latency_rate: f64,
    /// Transfers of the throughput round (measured; enough for about
    /// 10 s, so that filling the first block and draining the last weigh
    /// little in the sustained rate).
    #[arg(long, default_value_t = 100_000)]
    txs: usize,
    /// Distinct sending accounts of the throughput round.
    #[arg(long, default_value_t = 1_200)]
    senders: usize,
    /// Transfers per submit call in the throughput round.
    #[arg(long, default_value_t = 250)]
    batch: usize,
    /// Most transfers per block.
    #[arg(long, default_value_t = 5_000)]
    block_txs: usize,
    /// Sequential squarings of each block's proof of time.
    #[arg(long, default_value_t = ConsensusParams::devnet().vdf_steps)]
    vdf_steps: u64,
    /// log2 of the leaves of each validator's storage plot (0: blocks
    /// carry no proof of space).
    #[arg(long, default_value_t = 20)]
    plot_log2_leaves: u8,
    /// Seconds to measure the verification bound (half before the
    /// transfer rounds, half after).
    #[arg(long, default_value_t = 4.0)]
    verify_secs: f64,
    /// Skip the equivocation measurement.
    #[arg(long)]
    no_equivocation: bool,
    /// A short run (CI smoke test): 40 latency transfers, 3,000 in the
    /// throughput round, small plots, 2 s of verification.
    #[arg(long)]
    quick: bool,
}

pub(crate) async fn run(mut a: Args) -> anyhow::Result<()> {
    if a.quick {
        a.latency_txs = a.latency_txs.min(40);
        a.txs = a.txs.min(3_000);
        a.senders = a.senders.min(100);
        a.plot_log2_leaves = a.plot_log2_leaves.min(14);
        a.verify_secs = a.verify_secs.min(2.0);
    }
    anyhow::ensure!(a.validators >= 1, "--validators must be at least 1");
    anyhow::ensure!(a.latency_rate > 0.0, "--latency-rate must be positive");
    a.senders = a.senders.clamp(1, a.txs.max(1));
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "hypermesh bench consensus: {} validators in one process on {cores} cores; proof of time {} steps, plots of 2^{} leaves",
        a.validators, a.vdf_steps, a.plot_log2_leaves
    );

    let verify_for = Duration::from_secs_f64(a.verify_secs / 4.0);
    let before = VerifySample::take(cores, verify_for);
    let net = Network::start(&a).await?;
    let result = measure(&a, &net).await;
    let compact = compact_outcomes(&net);
    net.stop().await;
    let m = result?;
    let after = VerifySample::take(cores, verify_for);
    let mean = before.mean(after);
    let (all_cores, bare) = (mean.decoded_each_time, mean.decoded_before);
    let bound = all_cores / a.validators as f64;

    println!(
        "FN-DSA-1024 verification, key decoded each time: {all_cores:.0}/s on {cores} cores ({:.0}/s before, {:.0}/s after)",
        before.decoded_each_time, after.decoded_each_time
    );
    println!(
        "  bound for {} validators that each verify every transfer: {bound:.0} transfers/s",
        a.validators
    );
    println!(
        "  with the key decoded beforehand: {bare:.0}/s on {cores} cores ({:.0}/s before, {:.0}/s after)",
        before.decoded_before, after.decoded_before
    );
    let l = &m.latency;
    println!(
        "finality latency, submit to commit, {} single transfers at {}/s: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (goals: p50 <= 300 ms, p99 <= 1,000 ms)",
        l.len(),
        a.latency_rate,
        percentile(l, 0.50),
        percentile(l, 0.99),
        percentile(l, 1.0)
    );
    println!(
        "  {} blocks, {:.1} transfers per block",
        m.latency_blocks,
        l.len() as f64 / m.latency_blocks.max(1) as f64
    );
    let t = &m.throughput;
    println!(
        "throughput: {} transfers committed by all validators in {:.2} s = {:.0}/s; ratio to the bound {:.3} (goal >= 0.5)",
        a.txs,
        t.elapsed.as_secs_f64(),
        t.rate,
        t.rate / bound
    );
    println!(
        "  {} blocks, {:.0} transfers per block; admission done after {:.2} s; latency under this load p50 {:.0} ms, p99 {:.0} ms",
        t.blocks,
        a.txs as f64 / t.blocks.max(1) as f64,
        t.admitted_after.as_secs_f64(),
        percentile(&t.latency, 0.50),
        percentile(&t.latency, 0.99)
    );
    if let Some(cpu) = t.cpu_secs {
        println!(
            "  CPU: {:.2} core-seconds ({:.2} of {cores} cores busy, {:.0} us per transfer for all validators and clients)",
            cpu,
            cpu / t.elapsed.as_secs_f64(),
            cpu * 1e6 / a.txs as f64
        );
    }
    println!(
        "  ratio to the bound with keys decoded beforehand: {:.3}",
        t.rate * a.validators as f64 / bare
    );
    println!(
        "  compact blocks received (all validators, whole run): {} rebuilt from the mempool, {} after asking the proposer for some transactions, {} fetched whole",
        compact[0], compact[1], compact[2]
    );
    if let Some(e) = &m.equivocation {
        println!(
            "equivocation: evidence on chain {:.0} ms after the second conflicting prevote was sent (block {}); the offender {} the validator set at height {}",
            e.on_chain_after.as_secs_f64() * 1e3,
            e.height,
            if e.removed { "left" } else { "is still in" },
            e.height + 1
        );
    }
    Ok(())
}

/// Percentile `q` (0 to 1) of latencies, in milliseconds.
fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

/// A validator in this process.
struct Node {
    key: KeyPair,
    service: Arc<NodeService>,
    endpoint: Endpoint,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

/// The validators, a client connection to each, and the accounts that
/// send.
struct Network {
    pki: super::Pki,
    nodes: Vec<Node>,
    clients: Vec<Client>,
    shutdown: CancellationToken,
    /// Commits seen on every validator.
    watchers: Vec<Arc<Watcher>>,
    watch_tasks: Vec<JoinHandle<()>>,
    throughput_senders: Vec<KeyPair>,
    latency_senders: Vec<KeyPair>,
    recipient: AccountId,
    _dir: tempfile::TempDir,
}

impl Network {
    async fn start(a: &Args) -> anyhow::Result<Network> {
        let started = Instant::now();
        let n = a.validators;
        let keys: Vec<KeyPair> = (0..n).map(|_| KeyPair::generate(Algorithm::FnDsa1024)).collect();
        let names: Vec<String> = (0..n).map(|i| format!("hypermesh-{i}.mesh")).collect();
        let enroll: Vec<(&KeyPair, String)> = keys.iter().zip(names.iter().cloned()).collect();
        eprintln!("starting a TrustChain member and enrolling {n} validators...");
        let pki = pki(&enroll)
            .await
            .context("starting TrustChain for the validators' certificates")?;
        let dir = tempfile::tempdir()?;

        let space = ConsensusParams::devnet()
            .space
            .filter(|_| a.plot_log2_leaves > 0)
            .map(|devnet| SpaceParams {
                log2_leaves: a.plot_log2_leaves,
                ..devnet
            });
        let plots: Vec<Option<Arc<Plot>>> = match space {
            None => vec![None; n],
            Some(params) => {
                eprintln!("creating {n} storage plots of {} MiB...", params.plot_bytes() >> 20);
                let dir = dir.path();
                let keys = &keys;
                std::thread::scope(|s| {
                    let handles: Vec<_> = (0..n)
                        .map(|i| {
                            s.spawn(move || {
                                let account = keys[i].public_key().node_id().0;
                                Plot::open_or_create(&dir.join(format!("plot-{i}")), &account, params, &mut |_, _| {})
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| {
                            let plot = h.join().map_err(|_| anyhow::anyhow!("plot thread panicked"))??;
                            Ok(Some(Arc::new(plot)))
                        })
                        .collect::<anyhow::Result<Vec<_>>>()
                })?
            }
        };

        let throughput_senders: Vec<KeyPair> = (0..a.senders)
            .map(|_| KeyPair::generate(Algorithm::FnDsa1024))
            .collect();
        let latency_senders: Vec<KeyPair> = (0..a.latency_txs)
            .map(|_| KeyPair::generate(Algorithm::FnDsa1024))
            .collect();
        let recipient = KeyPair::generate(Algorithm::FnDsa1024).public_key().node_id().0;
        let params = ChainParams {
            consensus: ConsensusParams {
                vdf_steps: a.vdf_steps,
                space,
                ..ConsensusParams::devnet()
            },
            ..ChainParams::default()
        };
        let genesis = Genesis {
            params: params.clone(),
            time_ms: hypermesh::service::now_ms(),
            balances: throughput_senders
                .iter()
                .chain(&latency_senders)
                .map(|k| (k.public_key().node_id().0, params.native_denom.clone(), 1u128 << 60))
                .collect(),
            validators: keys
                .iter()
                .zip(&plots)
                .map(|(k, plot)| GenesisValidator {
                    plot_root: plot.as_ref().map(|p| p.root()).unwrap_or_default(),
                    ip: Ipv6Addr::LOCALHOST,
                    ..GenesisValidator::new(k.public_key().clone(), 1_000_000)
                })
                .collect(),
        };

        let mut endpoints = Vec::with_capacity(n);
        for tls in &pki.tls {
            let mut config = EndpointConfig {
                listen: SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
                ..EndpointConfig::default()
            };
            crate::start::raise_limits_for_blocks(&mut config);
            endpoints.push(Endpoint::bind(config, tls.clone())?);
        }
        let addrs: Vec<SocketAddr> = endpoints.iter().map(|e| e.local_addr()).collect::<Result<_, _>>()?;
        let shutdown = CancellationToken::new();
        let defaults = ConsensusSection::default().validator();
        let mut nodes = Vec::with_capacity(n);
        for (i, (endpoint, plot)) in endpoints.into_iter().zip(plots).enumerate() {
            let key = keys[i].clone();
            let chain = Chain::open(
                &dir.path().join(format!("chain-{i}.redb")),
                crate::start::runtime(&genesis)?,
                &genesis,
                ChainConfig::default(),
            )?;
            let service = NodeService::for_validator(
                chain,
                key.clone(),
                ServiceConfig {
                    max_block_txs: a.block_txs,
                    ..ServiceConfig::default()
                },
            )?;
            let mut app = BlockApp::new(
                service.chain().clone(),
                service.account(),
                hypermesh::mempool::default_threads(),
            );
            if let Some(plot) = plot {
                app = app.with_plot(plot);
            }
            let api: Arc<dyn NodeApi> = Arc::new(ServiceApi(service.clone()));
            hypermesh::api::stoq_rpc::register(&endpoint, api);
            service.register_sync(&endpoint);
            let peers = (0..n)
                .filter(|&j| j != i)
                .map(|j| (addrs[j], names[j].clone()))
                .collect();
            let task = service.spawn_validator(
                endpoint.clone(),
                app,
                key.clone(),
                hypermesh::service::ValidatorConfig {
                    wal_path: dir.path().join(format!("consensus-{i}.wal")),
                    peers,
                    ..defaults.clone()
                },
                shutdown.clone(),
            )?;
            nodes.push(Node {
                key,
                service,
                endpoint,
                addr: addrs[i],
                task,
            });
        }
        let mut clients = Vec::with_capacity(n);
        for (node, name) in nodes.iter().zip(&names) {
            let key = KeyPair::generate(Algorithm::FnDsa1024);
            clients.push(Client::connect_with_bundle(&key, pki.bundle.clone(), node.addr, name).await?);
        }
        let watchers: Vec<Arc<Watcher>> = (0..n).map(|_| Arc::new(Watcher::default())).collect();
        let watch_tasks = nodes
            .iter()
            .zip(&watchers)
            .map(|(node, w)| tokio::spawn(Arc::clone(w).run(node.service.clone(), shutdown.clone())))
            .collect();
        let net = Network {
            pki,
            nodes,
            clients,
            shutdown,
            watchers,
            watch_tasks,
            throughput_senders,
            latency_senders,
            recipient,
            _dir: dir,
        };
        // Live: every validator has committed two blocks (so every one of
        // them has heard the others).
        net.wait_all(2, Duration::from_secs(60))
            .await
            .context("the validators did not start committing blocks")?;
        println!(
            "  {n} validators started and committing in {:.1} s (enrolment, plots, first blocks)",
            started.elapsed().as_secs_f64()
        );
        Ok(net)
    }

    /// Waits until every validator's tip is at least `height`.
    async fn wait_all(&self, height: u64, limit: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        for (i, node) in self.nodes.iter().enumerate() {
            let mut tip = node.service.subscribe_tip();
            while *tip.borrow_and_update() < height {
                tokio::time::timeout_at(deadline, tip.changed())
                    .await
                    .with_context(|| format!("validator {i} did not reach height {height}"))??;
            }
        }
        Ok(())
    }

    /// Waits until every validator has committed `target` transactions
    /// in all.
    async fn wait_committed(&self, target: u64, limit: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        for (i, node) in self.nodes.iter().enumerate() {
            let mut tip = node.service.subscribe_tip();
            while node.service.metrics().committed_txs.get() < target {
                tokio::time::timeout_at(deadline, tip.changed())
                    .await
                    .with_context(|| {
                        format!(
                            "validator {i} committed {} of {target} transactions",
                            node.service.metrics().committed_txs.get()
                        )
                    })??;
            }
        }
        Ok(())
    }

    fn committed(&self) -> u64 {
        self.nodes[0].service.metrics().committed_txs.get()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        for t in self.watch_tasks {
            let _ = t.await;
        }
        for c in &self.clients {
            c.shutdown().await;
        }
        for node in self.nodes {
            let _ = node.task.await;
            node.endpoint.shutdown().await;
        }
        self.pki.shutdown().await;
    }
}

/// What a validator's commits showed: when each watched transfer was
/// committed, and the first block with equivocation evidence.
#[derive(Default)]
struct Watcher {
    state: Mutex<WatchState>,
    /// Signalled whenever the watcher has gone through new blocks.
    progressed: tokio::sync::Notify,
}

#[derive(Default)]
struct WatchState {
    /// Transfers waiting for their commit: (sender, nonce) to submission.
    pending: HashMap<(AccountId, u64), Instant>,
    /// Submission to commit of each watched transfer, in commit order.
    latencies: Vec<Duration>,
    /// The first block seen with evidence: its height and when.
    evidence: Option<(u64, Instant)>,
}

impl Watcher {
    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn expect(&self, txs: impl IntoIterator<Item = (AccountId, u64)>, at: Instant) {
        let mut s = self.lock();
        for t in txs {
            s.pending.insert(t, at);
        }
    }

    /// The latencies recorded since the last call.
    fn take(&self) -> Vec<Duration> {
        std::mem::take(&mut self.lock().latencies)
    }

    /// Waits until every expected transfer was seen committed (the
    /// watcher runs behind the commits that the caller waited for).
    async fn drained(&self, limit: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Registered before the check, so progress in between is seen.
            let progressed = self.progressed.notified();
            let left = self.lock().pending.len();
            if left == 0 {
                return Ok(());
            }
            tokio::time::timeout_at(deadline, progressed)
                .await
                .map_err(|_| anyhow::anyhow!("{left} committed transfers not seen in blocks"))?;
        }
    }

    async fn run(self: Arc<Self>, service: Arc<NodeService>, shutdown: CancellationToken) {
        let mut tip = service.subscribe_tip();
        let mut seen = *tip.borrow_and_update();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = tip.changed() => if r.is_err() { return },
            }
            let now = Instant::now();
            let height = *tip.borrow_and_update();
            for h in seen + 1..=height {
                let Ok(Some(block)) = service.block_at(h) else {
                    continue;
                };
                let mut s = self.lock();
                if !s.pending.is_empty() {
                    for tx in &block.txs {
                        if let Some(at) = s.pending.remove(&(tx.body.sender_id(), tx.body.nonce)) {
                            s.latencies.push(now - at);
                        }
                    }
                }
                if s.evidence.is_none()
                    && decode_evidence_list(&block.header.proofs.evidence).is_ok_and(|e| !e.is_empty())
                {
                    s.evidence = Some((h, now));
                }
            }
            seen = height;
            self.progressed.notify_waiters();
        }
    }
}

/// Results of the measured rounds.
struct Measured {
    latency: Vec<Duration>,
    latency_blocks: u64,
    throughput: Throughput,
    equivocation: Option<Equivocation>,
}

struct Throughput {
    elapsed: Duration,
    admitted_after: Duration,
    rate: f64,
    blocks: u64,
    latency: Vec<Duration>,
    cpu_secs: Option<f64>,
}

struct Equivocation {
    on_chain_after: Duration,
    height: u64,
    removed: bool,
}

async fn measure(a: &Args, net: &Network) -> anyhow::Result<Measured> {
    let status = ServiceApi(net.nodes[0].service.clone()).status()?;
    let n = net.nodes.len();
    // Sign everything up front: signing is the clients' work.
    let per_sender = a.txs.div_ceil(a.senders);
    eprintln!(
        "signing {} transfers...",
        net.throughput_senders.len() * (per_sender + 1) + net.latency_senders.len() * 2
    );
    let transfer = transfer_call(&net.recipient, "caes", 1);
    let sign_all = |senders: &[KeyPair], count: &(dyn Fn(usize) -> u64 + Sync)| -> Vec<Vec<Transaction>> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let mut out: Vec<Vec<Transaction>> = vec![Vec::new(); senders.len()];
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..cores)
                .map(|c| {
                    let (status, transfer) = (&status, &transfer);
                    s.spawn(move || {
                        let mut part = Vec::new();
                        for (i, k) in senders.iter().enumerate().skip(c).step_by(cores) {
                            let txs: Vec<Transaction> = (0..count(i))
                                .map(|nonce| {
                                    build_tx(k, status, nonce, transfer.clone(), 100_000, 0, 1_000_000).expect("build")
                                })
                                .collect();
                            part.push((i, txs));
                        }
                        part
                    })
                })
                .collect();
            for h in handles {
                for (i, txs) in h.join().expect("signer") {
                    out[i] = txs;
                }
            }
        });
        out
    };
    let latency_txs = sign_all(&net.latency_senders, &|_| 2);
    let throughput_txs = sign_all(&net.throughput_senders, &|i| {
        1 + per_sender.min(a.txs.saturating_sub(i * per_sender)) as u64
    });

    // Warm-up: every account's first transfer registers its key.
    let mut warm: Vec<Vec<Transaction>> = vec![Vec::new(); n];
    for (i, txs) in latency_txs.iter().chain(&throughput_txs).enumerate() {
        warm[i % n].extend(txs.first().cloned());
    }
    let warmed: usize = warm.iter().map(Vec::len).sum();
    eprintln!("warming up: the first transfer of {warmed} accounts...");
    let before = net.committed();
    let w = submit_round(net, warm, a.batch, None).await?;
    net.wait_committed(before + warmed as u64, Duration::from_secs(120))
        .await?;
    println!(
        "  warm-up: {warmed} transfers (each carrying its sender's key) admitted in {:.2} s",
        w.as_secs_f64()
    );

    // Finality latency at a steady, light rate.
    eprintln!(
        "finality: {} single transfers at {}/s...",
        latency_txs.len(),
        a.latency_rate
    );
    for w in &net.watchers {
        w.take();
    }
    let before = net.committed();
    let height_before = net.nodes[0].service.chain().tip().height;
    let interval = Duration::from_secs_f64(1.0 / a.latency_rate);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sends = Vec::with_capacity(latency_txs.len());
    for (i, txs) in latency_txs.iter().enumerate() {
        let Some(tx) = txs.get(1) else { continue };
        ticker.tick().await;
        let v = i % n;
        let (client, watcher) = (net.clients[v].clone(), Arc::clone(&net.watchers[v]));
        let bytes = bytes::Bytes::from(tx.encode()?);
        let id = (tx.body.sender_id(), tx.body.nonce);
        sends.push(tokio::spawn(async move {
            watcher.expect([id], Instant::now());
            client.submit_raw(vec![bytes]).await
        }));
    }
    for s in sends {
        for r in s.await?? {
            r.map_err(|e| anyhow::anyhow!("a latency transfer was refused: {e}"))?;
        }
    }
    net.wait_committed(before + latency_txs.len() as u64, Duration::from_secs(60))
        .await?;
    let mut latency = Vec::with_capacity(latency_txs.len());
    for w in &net.watchers {
        w.drained(Duration::from_secs(10)).await?;
        latency.extend(w.take());
    }
    latency.sort();
    let latency_blocks = net.nodes[0].service.chain().tip().height - height_before;

    // Throughput.
    let total: usize = throughput_txs.iter().map(|t| t.len().saturating_sub(1)).sum();
    let mut shares: Vec<Vec<Transaction>> = vec![Vec::new(); n];
    for (i, txs) in throughput_txs.into_iter().enumerate() {
        shares[i % n].extend(txs.into_iter().skip(1));
    }
    eprintln!("throughput: {total} transfers over {n} connections...");
    let before = net.committed();
    let height_before = net.nodes[0].service.chain().tip().height;
    let cpu_before = process_cpu_secs();
    let started = Instant::now();
    let admitted_after = submit_round(net, shares, a.batch, Some(&net.watchers[0])).await?;
    net.wait_committed(before + total as u64, Duration::from_secs(300))
        .await?;
    let elapsed = started.elapsed();
    let cpu_secs = process_cpu_secs().zip(cpu_before).map(|(after, before)| after - before);
    net.watchers[0].drained(Duration::from_secs(10)).await?;
    let mut under_load = net.watchers[0].take();
    under_load.sort();
    let throughput = Throughput {
        elapsed,
        admitted_after,
        rate: total as f64 / elapsed.as_secs_f64(),
        blocks: net.nodes[0].service.chain().tip().height - height_before,
        latency: under_load,
        cpu_secs,
    };

    let equivocation = if a.no_equivocation || n < 4 {
        None
    } else {
        Some(equivocate(net).await?)
    };
    Ok(Measured {
        latency,
        latency_blocks,
        throughput,
        equivocation,
    })
}

/// Compact blocks the validators received, summed, by outcome: rebuilt
/// from the mempool, after fetching transactions, fetched whole.
fn compact_outcomes(net: &Network) -> [u64; 3] {
    let mut out = [0; 3];
    for node in &net.nodes {
        let family = &node.service.metrics().compact_blocks;
        for (i, outcome) in ["mempool", "fetched", "whole"].into_iter().enumerate() {
            out[i] += family.get_or_create(&hypermesh::service::outcome_label(outcome)).get();
        }
    }
    out
}

/// Submits each validator's share in calls of `batch` (all validators at
/// once), returning when all are admitted; with a watcher, each transfer's
/// submission time is recorded there.
async fn submit_round(
    net: &Network,
    shares: Vec<Vec<Transaction>>,
    batch: usize,
    watcher: Option<&Arc<Watcher>>,
) -> anyhow::Result<Duration> {
    // Encoded up front: encoding is the clients' work.
    let mut encoded = Vec::with_capacity(shares.len());
    for share in shares {
        let mut calls = Vec::new();
        for chunk in share.chunks(batch.max(1)) {
            let ids: Vec<(AccountId, u64)> = chunk.iter().map(|t| (t.body.sender_id(), t.body.nonce)).collect();
            let bytes = chunk
                .iter()
                .map(|t| t.encode().map(bytes::Bytes::from))
                .collect::<Result<Vec<_>, _>>()?;
            calls.push((ids, bytes));
        }
        encoded.push(calls);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (client, calls) in net.clients.iter().cloned().zip(encoded) {
        let watcher = watcher.cloned();
        tasks.push(tokio::spawn(async move {
            for (ids, bytes) in calls {
                if let Some(w) = &watcher {
                    w.expect(ids, Instant::now());
                }
                for r in client.submit_raw(bytes).await? {
                    if let Err(e) = r {
                        anyhow::bail!("a transfer was refused: {e}; the run is not comparable");
                    }
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

/// The last validator signs and gossips two different prevotes for round
/// 0 of the height after next (it is at most one height ahead of the
/// others, so every honest validator sees both within its window of
/// future heights); measures until validator 0 commits a block with the
/// evidence, and checks the offender is gone from the next set.
async fn equivocate(net: &Network) -> anyhow::Result<Equivocation> {
    let offender = net.nodes.last().context("no validators")?;
    let chain_id = offender.service.chain().chain_id().to_string();
    let address = Address(offender.service.account());
    let height = offender.service.chain().tip().height + 2;
    eprintln!("equivocation: the last validator signs two prevotes for height {height}, round 0...");
    let ctx = HmContext::new(&chain_id);
    let votes = [NilOrVal::Nil, NilOrVal::Val(BlockId(rand::random()))].map(|value| {
        let vote = ctx.new_prevote(Height(height), Round::new(0), value, address);
        sign_vote(&offender.key, &chain_id, vote).map(Message::Vote)
    });
    let topic = consensus_topic(&chain_id);
    let mut sent = Instant::now();
    for vote in votes {
        let bytes = encode_message(&vote?)?;
        offender.endpoint.gossip().publish(&topic, bytes::Bytes::from(bytes))?;
        sent = Instant::now();
    }
    let watcher = &net.watchers[0];
    let service = &net.nodes[0].service;
    let mut tip = service.subscribe_tip();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (at_height, at) = loop {
        if let Some(e) = watcher.lock().evidence {
            break e;
        }
        tokio::time::timeout_at(deadline, tip.changed())
            .await
            .context("no block with the evidence within 30 s")??;
    };
    net.wait_all(at_height + 1, Duration::from_secs(30)).await?;
    let removed = !service
        .chain()
        .tip()
        .validators
        .0
        .iter()
        .any(|(a, _, _)| *a == address.0);
    Ok(Equivocation {
        on_chain_after: at.saturating_duration_since(sent),
        height: at_height,
        removed,
    })
}
