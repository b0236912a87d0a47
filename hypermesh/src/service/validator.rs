//! The validator: the async shell around the consensus host
//! ([`Core`]), over STOQ.
//!
//! One task owns the core, its write-ahead log and its timers, and feeds
//! it one input at a time:
//! - consensus messages from peers: broadcasts arrive by gossip (topic
//!   [`consensus_topic`]), replies to one validator (a requested block)
//!   as direct messages;
//! - timer expiries;
//! - the application's answers: building, checking and committing blocks
//!   run on blocking threads ([`BlockApp`] behind a mutex) and come back
//!   as `BlockBuilt`, `BlockChecked` and `Committed`;
//! - blocks synced from a peer that is ahead.
//!
//! Log entries are written as the core emits them and fsynced before any
//! message that follows them leaves the node, so a vote is durable before
//! a peer can see it and a restarted node re-sends the same votes.
//!
//! Transactions a client submits here are checked, admitted and gossiped
//! to the other validators (topic [`tx_topic`]), which check them again:
//! whoever proposes next has them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use malachite_types::Timeout;
use stoq::crypto::{KeyPair, NodeId};
use stoq::endpoint::{Incoming, RpcError, RpcRequest};
use stoq::gossip::Spread;
use stoq::Endpoint;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::block_relay::{BlockRelay, Step, ANSWER_WAIT};
use super::metrics::outcome_label;
use super::{now_ms, NodeService};
use crate::chain::{CommitCertificate, Committed};
use crate::codec::{ReadExt, Reader, Writer};
use crate::consensus::wal_file::WalFile;
use crate::consensus::wire::{decode_message_shared, encode_message};
use crate::consensus::{
    Address, BlockApp, Core, CoreConfig, CoreInput, CoreOutput, Evidence, HmContext, KeySigner, Message, ValidatorSet,
};
use crate::error::{Error, Result};
use crate::runtime::BlockLimits;
use crate::types::{Block, MAX_BLOCK_BYTES};

/// The RPC method serving committed blocks with their certificates.
pub const SYNC_METHOD: &str = "hypermesh.consensus.sync";
/// Most blocks in one sync answer.
const MAX_SYNC_BLOCKS: u32 = 64;
/// Most bytes of blocks in one sync answer (one block may exceed it).
const MAX_SYNC_BYTES: usize = 8 << 20;
/// How long a node that saw a later height waits for its own decision
/// before it syncs.
const SYNC_GRACE: Duration = Duration::from_millis(300);
/// How long a request for a whole proposed block waits, so that a compact
/// block arriving just after its proposal is not fetched again in full.
const BLOCK_REQUEST_GRACE: Duration = Duration::from_millis(100);
/// Queue of inputs to the consensus task.
const INPUT_QUEUE: usize = 8_192;
/// Most equivocation evidence checked at once (see `queue_evidence`).
const MAX_EVIDENCE_CHECKS: usize = 8;
/// Most transactions in one gossip batch.
const TX_BATCH: usize = 512;

/// The gossip topic of consensus messages on `chain_id`.
pub fn consensus_topic(chain_id: &str) -> String {
    format!("hm.{chain_id}.consensus")
}

/// The gossip topic of transactions on `chain_id`.
pub fn tx_topic(chain_id: &str) -> String {
    format!("hm.{chain_id}.txs")
}

/// How the validator runs.
#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    /// The write-ahead log file.
    pub wal_path: PathBuf,
    /// The other validators: address and certificate name.
    pub peers: Vec<(SocketAddr, String)>,
    /// Round timeouts and buffers.
    pub core: CoreConfig,
    /// Longest a proposer waits for transactions before proposing an
    /// empty block (bounded by half the propose timeout).
    pub empty_block_wait: Duration,
    /// How often unreachable peers are dialled again.
    pub redial: Duration,
}

impl Default for ValidatorConfig {
    fn default() -> Self {
        ValidatorConfig {
            wal_path: PathBuf::from("consensus.wal"),
            peers: Vec::new(),
            core: CoreConfig::default(),
            empty_block_wait: Duration::from_millis(300),
            redial: Duration::from_secs(1),
        }
    }
}

/// What the consensus task is told.
// Inputs are moved through a channel one at a time: a box would cost
// more than the size.
#[allow(clippy::large_enum_variant)]
enum Input {
    Core(CoreInput),
    /// A decided or synced block was committed (or failed to).
    Committed(Result<(u64, ValidatorSet)>),
    /// Blocks a peer sent in answer to a sync request.
    Synced(Vec<Block>),
    /// The synced blocks are committed (or refused).
    SyncDone,
    SyncDue {
        height: u64,
        peer: Address,
    },
    /// A compact block's wait is over (see [`BlockRelay::due`]).
    RelayDue([u8; 32]),
    /// The core's request for a whole block, after its grace.
    BlockRequestDue {
        to: Address,
        height: u64,
        hash: [u8; 32],
    },
}

/// Encodes a sync request: the first height wanted and how many.
fn sync_request(from: u64, max: u32) -> Bytes {
    let mut w = Writer::new();
    w.u64(from).u32(max);
    Bytes::from(w.finish())
}

/// Encodes a batch of transactions for gossip.
fn tx_batch(txs: &[Bytes]) -> Bytes {
    let mut w = Writer::with_capacity(4 + txs.iter().map(|t| 4 + t.len()).sum::<usize>());
    w.u32(txs.len() as u32);
    for t in txs {
        w.bytes32(t);
    }
    Bytes::from(w.finish())
}

fn decode_tx_batch(buf: &Bytes) -> Result<Vec<Bytes>> {
    let mut r = Reader::new(buf, "transaction batch");
    let n = r.count32(TX_BATCH)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        // Slices of the batch, not copies.
        out.push(buf.slice_ref(r.bytes32(crate::types::MAX_TX_BYTES)?));
    }
    r.finish()?;
    Ok(out)
}

/// Decodes a sync answer: encoded blocks.
fn decode_blocks(buf: &[u8]) -> Result<Vec<Block>> {
    let mut r = Reader::new(buf, "sync answer");
    let n = r.count32(MAX_SYNC_BLOCKS as usize)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Block::decode(r.bytes32(MAX_BLOCK_BYTES)?)?);
    }
    r.finish()?;
    Ok(out)
}

impl NodeService {
    /// Serves committed blocks with their certificates to syncing peers
    /// (validators only: other nodes read blocks through the node API).
    pub fn register_sync(self: &Arc<Self>, endpoint: &Endpoint) {
        let this = self.clone();
        endpoint.register(SYNC_METHOD, move |req: RpcRequest| {
            let this = this.clone();
            async move {
                let mut r = Reader::new(&req.body, "sync request");
                let (from, max) = match (r.u64(), r.u32(), r.finish()) {
                    (Ok(f), Ok(m), Ok(())) => (f, m.min(MAX_SYNC_BLOCKS)),
                    _ => return Err(RpcError::BadRequest("expected a height (u64) and a count (u32)".into())),
                };
                let answer = tokio::task::spawn_blocking(move || this.sync_answer(from, max))
                    .await
                    .map_err(|e| RpcError::Internal(e.to_string()))?;
                answer.map_err(|e| RpcError::Internal(e.to_string()))
            }
        });
    }

    fn sync_answer(&self, from: u64, max: u32) -> Result<Bytes> {
        let tip = self.chain.tip().height;
        let mut blocks = Vec::new();
        let mut bytes = 0;
        let mut h = from.max(1);
        while h <= tip && blocks.len() < max as usize && (bytes < MAX_SYNC_BYTES || blocks.is_empty()) {
            // As stored: no decode and re-encode per block served.
            let Some(encoded) = self.chain.block_bytes(h)? else {
                break;
            };
            bytes += encoded.len();
            blocks.push(encoded);
            h += 1;
        }
        let mut w = Writer::new();
        w.u32(blocks.len() as u32);
        for b in &blocks {
            w.bytes32(b);
        }
        Ok(Bytes::from(w.finish()))
    }

    /// Runs this node as a validator until `shutdown`: consensus over
    /// `endpoint` with the other validators, building, checking and
    /// committing blocks through `app`.
    pub fn spawn_validator(
        self: &Arc<Self>,
        endpoint: Endpoint,
        app: BlockApp,
        key: KeyPair,
        config: ValidatorConfig,
        shutdown: CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>> {
        let chain_id = self.chain.chain_id().to_string();
        // A proposed block's transactions admitted here were verified on
        // admission; checking the block skips them. Weak: the app must not
        // keep the service alive.
        let service = Arc::downgrade(self);
        let app = app.with_known_txs(Arc::new(move |txs: &[Arc<crate::types::Transaction>]| {
            let Some(service) = service.upgrade() else {
                return vec![None; txs.len()];
            };
            let pool = service.mempool();
            txs.iter().map(|tx| pool.get_same(tx).cloned()).collect()
        }));
        let (wal, wal_height, entries) = WalFile::open(&config.wal_path)?;
        let next = app.next_height();
        let validators = app.validators();
        let me = Address(key.public_key().node_id().0);
        let core = Core::new(
            HmContext::new(&chain_id),
            me,
            Box::new(KeySigner(key)),
            config.core,
            validators.clone(),
        );
        let wal_entries = if wal_height == Some(next) { entries } else { Vec::new() };
        if !wal_entries.is_empty() {
            info!(
                height = next,
                entries = wal_entries.len(),
                "replaying the write-ahead log"
            );
        }
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        let gossip = endpoint.gossip();
        let consensus = gossip
            .subscribe(&consensus_topic(&chain_id))
            .map_err(|e| Error::Store(format!("subscribing to consensus gossip: {e}")))?;
        let txs = gossip
            .subscribe(&tx_topic(&chain_id))
            .map_err(|e| Error::Store(format!("subscribing to transaction gossip: {e}")))?;
        let incoming = endpoint
            .take_incoming()
            .ok_or_else(|| Error::Store("the endpoint's incoming messages are taken already".into()))?;
        self.set_tx_forward(&endpoint, &chain_id);
        spawn_receivers(self.clone(), tx.clone(), consensus, txs, incoming, shutdown.clone());
        spawn_dialer(endpoint.clone(), config.peers.clone(), config.redial, shutdown.clone());
        let task = ValidatorTask {
            service: self.clone(),
            endpoint,
            topic: consensus_topic(&chain_id),
            core,
            app: Arc::new(Mutex::new(app)),
            wal,
            wal_dirty: false,
            timers: HashMap::new(),
            inputs: tx,
            config,
            syncing: false,
            relay: BlockRelay::default(),
            evidence_checks: Arc::new(AtomicUsize::new(0)),
        };
        let start = CoreInput::Start {
            height: next,
            validators,
            wal: wal_entries,
        };
        Ok(tokio::spawn(task.run(rx, start, shutdown)))
    }

    /// Makes transactions admitted through the API go to the other
    /// validators too.
    fn set_tx_forward(&self, endpoint: &Endpoint, chain_id: &str) {
        let endpoint = endpoint.clone();
        let topic = tx_topic(chain_id);
        let forward: super::TxForward = Box::new(move |txs: &[Bytes]| {
            for chunk in txs.chunks(TX_BATCH) {
                // Straight to every validator: relaying batches that every
                // validator already got from the publisher only costs.
                if let Err(e) = endpoint.gossip().publish_with(&topic, tx_batch(chunk), Spread::Direct) {
                    warn!(error = %e, "gossiping transactions failed");
                }
            }
        });
        *super::lock(&self.tx_forward) = Some(forward);
    }
}

/// Feeds the consensus task from gossip and direct messages, and admits
/// gossiped transactions.
fn spawn_receivers(
    service: Arc<NodeService>,
    inputs: mpsc::Sender<Input>,
    mut consensus: mpsc::Receiver<stoq::endpoint::GossipMessage>,
    mut txs: mpsc::Receiver<stoq::endpoint::GossipMessage>,
    mut incoming: mpsc::Receiver<Incoming>,
    shutdown: CancellationToken,
) {
    let to_input = |from: [u8; 32], payload: &Bytes| match decode_message_shared(payload) {
        Ok(msg) => Some(Input::Core(CoreInput::Message {
            from: Address(from),
            msg,
        })),
        Err(e) => {
            debug!(error = %e, "dropping a malformed consensus message");
            None
        }
    };
    tokio::spawn(async move {
        let mut forwarded = ForwardedQueues::default();
        loop {
            let input = tokio::select! {
                () = shutdown.cancelled() => break,
                m = consensus.recv() => match m {
                    Some(m) => {
                        let Ok(origin) = <[u8; 32]>::try_from(m.origin.as_ref()) else { continue };
                        to_input(origin, &m.payload)
                    }
                    None => break,
                },
                m = incoming.recv() => match m {
                    Some(Incoming::Message { from, payload }) => to_input(from.node_id().0, &payload),
                    Some(Incoming::Datagram { .. }) => None,
                    None => break,
                },
                m = txs.recv() => {
                    let Some(m) = m else { break };
                    match decode_tx_batch(&m.payload) {
                        Ok(batch) => forwarded.admit(&service, &m.origin, batch),
                        Err(e) => debug!(error = %e, "dropping a malformed transaction batch"),
                    }
                    None
                }
            };
            if let Some(input) = input {
                if inputs.send(input).await.is_err() {
                    break;
                }
            }
        }
    });
}

/// Batches a validator forwards are admitted one after the other, in the
/// order they came: a sender's later nonces must not reach the mempool
/// before its earlier ones (they would be refused as gaps, and blocks
/// with them would have to fetch them). Batches from different origins
/// are admitted side by side.
#[derive(Default)]
struct ForwardedQueues {
    queues: HashMap<Bytes, mpsc::Sender<Vec<Bytes>>>,
}

/// Batches waiting per origin; more are dropped (a block holding their
/// transactions fetches them from its proposer).
const FORWARDED_QUEUE: usize = 64;
/// Origins given a queue of their own (validators); batches from any
/// more are admitted unordered.
const MAX_FORWARD_ORIGINS: usize = 256;

impl ForwardedQueues {
    fn admit(&mut self, service: &Arc<NodeService>, origin: &Bytes, batch: Vec<Bytes>) {
        if !self.queues.contains_key(origin) {
            if self.queues.len() >= MAX_FORWARD_ORIGINS {
                let service = service.clone();
                tokio::spawn(async move { service.admit_forwarded(batch).await });
                return;
            }
            let (tx, mut rx) = mpsc::channel::<Vec<Bytes>>(FORWARDED_QUEUE);
            let service = service.clone();
            tokio::spawn(async move {
                while let Some(batch) = rx.recv().await {
                    service.admit_forwarded(batch).await;
                }
            });
            self.queues.insert(origin.clone(), tx);
        }
        if let Some(queue) = self.queues.get(origin) {
            if queue.try_send(batch).is_err() {
                debug!("dropping a forwarded transaction batch: its origin's queue is full");
            }
        }
    }
}

/// The mempool's copies of the transactions with these ids.
fn pool_lookup(service: &NodeService, ids: &[[u8; 32]]) -> Vec<Option<crate::types::CheckedTx>> {
    let pool = service.mempool();
    ids.iter().map(|id| pool.get(id).cloned()).collect()
}

/// Keeps a connection to every peer, dialling again those that dropped.
fn spawn_dialer(endpoint: Endpoint, peers: Vec<(SocketAddr, String)>, every: Duration, shutdown: CancellationToken) {
    for (addr, name) in peers {
        let endpoint = endpoint.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut warned = false;
            loop {
                match endpoint.connect(addr, &name).await {
                    Ok(conn) => {
                        if warned {
                            info!(%addr, %name, "connected to validator");
                        }
                        warned = false;
                        // Wait for it to close, then dial again.
                        while !conn.is_closed() {
                            tokio::select! {
                                () = shutdown.cancelled() => return,
                                () = tokio::time::sleep(every) => {}
                            }
                        }
                    }
                    Err(e) => {
                        if !warned {
                            warn!(%addr, %name, error = %e, "validator unreachable; retrying");
                            warned = true;
                        }
                    }
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
            }
        });
    }
}

/// The consensus task's state.
struct ValidatorTask {
    service: Arc<NodeService>,
    endpoint: Endpoint,
    topic: String,
    core: Core,
    app: Arc<Mutex<BlockApp>>,
    wal: WalFile,
    /// Entries appended since the last fsync.
    wal_dirty: bool,
    timers: HashMap<Timeout, Instant>,
    inputs: mpsc::Sender<Input>,
    config: ValidatorConfig,
    syncing: bool,
    relay: BlockRelay,
    /// Evidence being checked on blocking threads (bounded: each check is
    /// two signature verifications, and peers choose how much they send).
    evidence_checks: Arc<AtomicUsize>,
}

impl ValidatorTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Input>, start: CoreInput, shutdown: CancellationToken) {
        self.feed(start);
        loop {
            let next_timer = self.timers.iter().min_by_key(|(_, at)| **at).map(|(t, at)| (*t, *at));
            let sleep = async {
                match next_timer {
                    Some((_, at)) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = sleep => {
                    if let Some((t, _)) = next_timer {
                        self.timers.remove(&t);
                        self.feed(CoreInput::Timeout(t));
                    }
                }
                input = rx.recv() => match input {
                    Some(input) => self.on_input(input),
                    None => break,
                },
            }
        }
        if let Err(e) = self.wal.flush_sync() {
            warn!(error = %e, "flushing the write-ahead log at shutdown failed");
        }
        info!("validator stopped");
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Core(CoreInput::Message { from, msg }) => self.on_message(from, msg),
            Input::Core(i) => self.feed(i),
            Input::RelayDue(hash) => {
                let service = Arc::clone(&self.service);
                let step = self.relay.due(hash, |ids| pool_lookup(&service, ids));
                self.carry_relay(step);
            }
            Input::BlockRequestDue { to, height, hash } => {
                if self.core.height() == height && !self.relay.has(&hash) {
                    self.send_to(to, &Message::BlockRequest { height, hash });
                }
            }
            Input::Committed(Ok((height, next_validators))) => {
                self.feed(CoreInput::Committed {
                    height,
                    next_validators,
                });
            }
            Input::Committed(Err(e)) => {
                warn!(error = %e, "committing a block failed");
            }
            Input::Synced(blocks) => self.commit_synced(blocks),
            Input::SyncDone => self.syncing = false,
            Input::SyncDue { height, peer } => {
                if self.core.height() == height && !self.syncing {
                    self.request_sync(peer);
                }
            }
        }
    }

    /// A message from a validator: compact relay is handled here, the
    /// rest goes to the core.
    fn on_message(&mut self, from: Address, msg: Message) {
        match msg {
            Message::CompactBlock(c) => {
                let Ok(hash) = c.header.hash() else { return };
                let service = Arc::clone(&self.service);
                let step = self.relay.on_compact(from, hash, c, |ids| pool_lookup(&service, ids));
                self.carry_relay(step);
            }
            Message::BlockTxsRequest { height, hash, indices } => {
                if let Some(txs) = self.relay.answer(&hash, &indices) {
                    self.send_to(from, &Message::BlockTxs { height, hash, txs });
                }
            }
            Message::BlockTxs { hash, txs, .. } => {
                let service = Arc::clone(&self.service);
                let step = self.relay.on_txs(from, hash, txs, |ids| pool_lookup(&service, ids));
                self.carry_relay(step);
            }
            msg => {
                match &msg {
                    Message::Evidence(e) => self.queue_evidence(e.clone(), from),
                    Message::Block(b) => {
                        if let Ok(hash) = b.header.hash() {
                            self.relay.note_delivered(hash, b.header.height);
                        }
                    }
                    _ => {}
                }
                self.feed(CoreInput::Message { from, msg });
            }
        }
    }

    /// Feeds `input` back to this task after `after`: the one timer of
    /// the shell's own waits (each caller names why it waits).
    fn input_after(&self, input: Input, after: Duration) {
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = inputs.send(input).await;
        });
    }

    fn carry_relay(&mut self, step: Step) {
        match step {
            Step::Deliver { from, block, fetched } => {
                let outcome = if fetched { "fetched" } else { "mempool" };
                self.service
                    .metrics
                    .compact_blocks
                    .get_or_create(&outcome_label(outcome))
                    .inc();
                self.feed(CoreInput::Message {
                    from,
                    msg: Message::Block(block),
                });
            }
            Step::Wait { hash, after } => self.input_after(Input::RelayDue(hash), after),
            Step::Ask {
                to,
                height,
                hash,
                indices,
            } => {
                debug!(
                    height,
                    missing = indices.len(),
                    "asking the proposer for transactions of its block"
                );
                self.send_to(to, &Message::BlockTxsRequest { height, hash, indices });
                self.input_after(Input::RelayDue(hash), ANSWER_WAIT);
            }
            Step::AskBlock { to, height, hash } => {
                self.service
                    .metrics
                    .compact_blocks
                    .get_or_create(&outcome_label("whole"))
                    .inc();
                self.send_to(to, &Message::BlockRequest { height, hash });
            }
            Step::Nothing => {}
        }
    }

    /// Sends `msg` to the validator `to` over its connection (after the
    /// log is durable).
    fn send_to(&mut self, to: Address, msg: &Message) {
        self.sync_wal();
        let Some(conn) = self.endpoint.connection_to(&NodeId(to.0)) else {
            debug!(peer = %to, "no connection to send to");
            return;
        };
        match encode_message(msg) {
            Ok(bytes) => {
                tokio::spawn(async move {
                    if let Err(e) = conn.send_message(Bytes::from(bytes)).await {
                        debug!(error = %e, "send failed");
                    }
                });
            }
            Err(e) => warn!(error = %e, "encoding a consensus message failed"),
        }
    }

    fn feed(&mut self, input: CoreInput) {
        match self.core.handle(input) {
            Ok(outputs) => {
                for o in outputs {
                    self.carry_out(o);
                }
                self.sync_wal();
            }
            Err(e) => warn!(error = %e, height = self.core.height(), "consensus input failed"),
        }
        self.relay.set_height(self.core.height());
    }

    /// Makes appended entries durable (before anything that follows them
    /// leaves the node).
    fn sync_wal(&mut self) {
        if self.wal_dirty {
            if let Err(e) = self.wal.flush_sync() {
                // Sending a vote that is not durable could let a restart
                // sign a different one: stop rather than risk it.
                tracing::error!(error = %e, "the write-ahead log cannot be written; stopping");
                std::process::abort();
            }
            self.wal_dirty = false;
        }
    }

    /// Checks evidence (detected here, or sent by `from`) and queues it
    /// for this validator's next block, waking a proposer that waits for
    /// something to include. Evidence that fails the check is dropped with
    /// a log line naming the sender; so is evidence beyond
    /// [`MAX_EVIDENCE_CHECKS`] checks at once.
    fn queue_evidence(&self, e: Evidence, from: Address) {
        let checks = Arc::clone(&self.evidence_checks);
        if checks.fetch_add(1, Ordering::AcqRel) >= MAX_EVIDENCE_CHECKS {
            checks.fetch_sub(1, Ordering::AcqRel);
            debug!(%from, "equivocation evidence dropped: too many being checked");
            return;
        }
        let app = self.app.clone();
        let service = self.service.clone();
        tokio::task::spawn_blocking(move || {
            let (offender, height) = (e.offender(), e.height());
            match super::lock(&app).add_evidence(e) {
                Ok(true) => service.admitted.notify_waiters(),
                Ok(false) => {}
                Err(error) => warn!(%from, %offender, height, %error, "equivocation evidence refused"),
            }
            checks.fetch_sub(1, Ordering::AcqRel);
        });
    }

    fn carry_out(&mut self, output: CoreOutput) {
        match output {
            CoreOutput::Wal(entry) => {
                if let Err(e) = self.wal.append(&entry) {
                    tracing::error!(error = %e, "appending to the write-ahead log failed; stopping");
                    std::process::abort();
                }
                self.wal_dirty = true;
            }
            CoreOutput::WalReset(height) => {
                if let Err(e) = self.wal.reset(height) {
                    tracing::error!(error = %e, "resetting the write-ahead log failed; stopping");
                    std::process::abort();
                }
                self.wal_dirty = false;
            }
            CoreOutput::Broadcast(msg) => {
                self.sync_wal();
                // A block goes by its transactions' ids where they are
                // known (the others rebuild it from their mempools).
                let msg = match msg {
                    Message::Block(b) => match b.header.hash().ok().and_then(|h| self.relay.proposed(h, &b)) {
                        Some(compact) => Message::CompactBlock(compact),
                        None => Message::Block(b),
                    },
                    msg => msg,
                };
                // Blocks go straight to every validator (one that misses
                // one asks the proposer for it); votes and the rest, small,
                // are relayed through the mesh too.
                let spread = match msg {
                    Message::Block(_) | Message::CompactBlock(_) => Spread::Direct,
                    _ => Spread::Mesh,
                };
                match encode_message(&msg) {
                    Ok(bytes) => {
                        if let Err(e) = self
                            .endpoint
                            .gossip()
                            .publish_with(&self.topic, Bytes::from(bytes), spread)
                        {
                            debug!(error = %e, "broadcast failed");
                        }
                    }
                    Err(e) => warn!(error = %e, "encoding a consensus message failed"),
                }
            }
            CoreOutput::Send {
                to,
                msg: Message::BlockRequest { height, hash },
            } => {
                // A compact block on its way makes the request moot; one
                // just behind the proposal gets a moment to arrive.
                if !self.relay.has(&hash) {
                    self.input_after(Input::BlockRequestDue { to, height, hash }, BLOCK_REQUEST_GRACE);
                }
            }
            CoreOutput::Send { to, msg } => self.send_to(to, &msg),
            CoreOutput::Schedule(t, after) => {
                self.timers.insert(t, Instant::now() + after);
            }
            CoreOutput::Cancel(t) => {
                self.timers.remove(&t);
            }
            CoreOutput::CancelAll => self.timers.clear(),
            CoreOutput::Build { height, round, within } => self.build(height, round, within),
            CoreOutput::Check { height, block, hash } => {
                let app = self.app.clone();
                let inputs = self.inputs.clone();
                tokio::task::spawn_blocking(move || {
                    let valid = match super::lock(&app).check(&block, now_ms()) {
                        Ok(_) => true,
                        Err(e) => {
                            warn!(height, error = %e, "refusing a proposed block");
                            false
                        }
                    };
                    let _ = inputs.blocking_send(Input::Core(CoreInput::BlockChecked { height, hash, valid }));
                });
            }
            CoreOutput::Decide {
                block,
                hash,
                certificate,
            } => {
                let app = self.app.clone();
                let inputs = self.inputs.clone();
                let service = self.service.clone();
                tokio::task::spawn_blocking(move || {
                    let mut app = super::lock(&app);
                    let result = app.commit(&block, &hash, &certificate, now_ms()).map(|c| {
                        service.on_block_committed(&c);
                        let (height, txs) = (c.block.header.height, c.block.txs.len());
                        let hash = stoq::crypto::hex(&c.hash[..6]);
                        // Empty blocks every few hundred ms would drown the
                        // log: they, and only they, are at debug.
                        if txs > 0 || certificate.round > 0 {
                            info!(height, round = certificate.round, txs, %hash, "committed");
                        } else {
                            debug!(height, %hash, "committed an empty block");
                        }
                        (c.block.header.height, app.validators())
                    });
                    let _ = inputs.blocking_send(Input::Committed(result));
                });
            }
            CoreOutput::Evidence(e) => {
                warn!(offender = %e.offender(), height = e.height(), "equivocation detected");
                self.service.metrics.evidence.inc();
                self.queue_evidence(e, self.core.address());
            }
            CoreOutput::Behind { height, peer, .. } => {
                self.input_after(Input::SyncDue { height, peer }, SYNC_GRACE);
            }
        }
    }

    /// Builds a block when transactions or equivocation evidence are
    /// ready, or after `empty_block_wait` (within the engine's deadline)
    /// without any.
    fn build(&mut self, height: u64, round: malachite_types::Round, within: Duration) {
        let app = self.app.clone();
        let inputs = self.inputs.clone();
        let service = self.service.clone();
        let wait = self.config.empty_block_wait.min(within / 2);
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                // Registered before the check, so an admission in between
                // is not missed.
                let admitted = service.admitted.notified();
                // The app is busy (locked) only while checking or
                // committing: then it has nothing new to include.
                let evidence = app.try_lock().is_ok_and(|a| a.pending_evidence() > 0);
                if evidence || service.mempool().ready_count() > 0 {
                    break;
                }
                tokio::select! {
                    () = admitted => {}
                    () = tokio::time::sleep_until(deadline) => break,
                }
            }
            let built = tokio::task::spawn_blocking(move || {
                let limits = BlockLimits {
                    max_txs: service.config.max_block_txs.min(BlockLimits::default().max_txs),
                    ..BlockLimits::default()
                };
                let gas = service.chain.runtime().params().block_gas_limit;
                let candidates = service.mempool().select(limits.max_txs, gas, limits.max_bytes);
                let mut app = super::lock(&app);
                if app.next_height() != height {
                    return None;
                }
                match app.build(now_ms(), candidates, limits) {
                    Ok((block, hash)) => Some(CoreInput::BlockBuilt {
                        height,
                        round,
                        block,
                        hash,
                    }),
                    Err(e) => {
                        warn!(height, error = %e, "building a block failed");
                        None
                    }
                }
            })
            .await;
            if let Ok(Some(input)) = built {
                let _ = inputs.send(Input::Core(input)).await;
            }
        });
    }

    /// Asks `peer` for the committed blocks from this node's height on.
    fn request_sync(&mut self, peer: Address) {
        let Some(conn) = self.endpoint.connection_to(&NodeId(peer.0)) else {
            debug!(%peer, "cannot sync: no connection");
            return;
        };
        self.syncing = true;
        let from = self.core.height();
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            let answer = conn
                .call(
                    SYNC_METHOD,
                    sync_request(from, MAX_SYNC_BLOCKS),
                    Some(Duration::from_secs(10)),
                )
                .await;
            let blocks = match answer
                .map_err(|e| Error::Store(e.to_string()))
                .and_then(|b| decode_blocks(&b))
            {
                Ok(b) => b,
                Err(e) => {
                    warn!(%peer, error = %e, "sync failed");
                    Vec::new()
                }
            };
            let _ = inputs.send(Input::Synced(blocks)).await;
        });
    }

    /// Commits synced blocks in order, each with its own certificate
    /// (checked against the set of its height by the commit).
    fn commit_synced(&mut self, blocks: Vec<Block>) {
        if blocks.is_empty() {
            self.syncing = false;
            return;
        }
        let app = self.app.clone();
        let inputs = self.inputs.clone();
        let service = self.service.clone();
        tokio::task::spawn_blocking(move || {
            let mut app = super::lock(&app);
            for block in blocks {
                let height = block.header.height;
                if height < app.next_height() {
                    continue; // committed meanwhile by consensus
                }
                let result = (|| {
                    let hash = block.header.hash()?;
                    let cert = CommitCertificate::decode(&block.commit)?;
                    app.commit(&block, &hash, &cert, now_ms())
                })();
                match result {
                    Ok(c) => {
                        service.on_block_committed(&c);
                        debug!(height, "synced");
                        let _ = inputs.blocking_send(Input::Committed(Ok((height, app.validators()))));
                    }
                    Err(e) => {
                        warn!(height, error = %e, "a synced block was refused");
                        break;
                    }
                }
            }
            // A full answer leaves more to fetch: the peers' messages for
            // later heights ask for it again.
            let _ = inputs.blocking_send(Input::SyncDone);
        });
    }
}

impl NodeService {
    /// Updates the mempool, metrics and subscribers after a commit (by
    /// consensus or sync).
    pub(crate) fn on_block_committed(&self, committed: &Committed) {
        let height = committed.block.header.height;
        {
            let mut pool = self.mempool();
            pool.on_committed(&committed.tx_hashes, committed.next_nonces.iter().copied(), height + 1);
            self.metrics.mempool_txs.set(pool.len() as i64);
            self.metrics.mempool_bytes.set(pool.bytes() as i64);
        }
        self.record(committed);
    }
}
