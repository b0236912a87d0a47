//! A deterministic simulation of validators: the real consensus host and
//! engine ([`Core`]), the real block application ([`BlockApp`]) over real
//! chains (redb in memory), and a simulated network with virtual time,
//! latency, drops, partitions, crashes and an equivocating validator.
//!
//! Everything random comes from one seed (keys, signatures, latencies,
//! drops), and events are ordered by (time, sequence number), so a seed
//! gives the same trace every run. After every event the safety invariant
//! is checked: no two nodes commit different blocks at one height.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use malachite_types::{NilOrVal, SignedMessage, Timeout, VoteType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redb::backends::InMemoryBackend;
use redb::Database;
use stoq::crypto::{Algorithm, KeyPair};

use super::app::BlockApp;
use super::context::{Address, BlockId, ConsensusSignature, HmContext};
use super::core::{Core, CoreConfig, CoreInput, CoreOutput, Message, SeededSigner, WalEntry};
use super::signing::vote_bytes;
use crate::chain::{BlockLog, Chain, ChainConfig, CommitCertificate};
use crate::modules::staking::Staking;
use crate::proofs::space::{self, Plot, SpaceParams};
use crate::runtime::{BlockLimits, ChainParams, ConsensusParams, Genesis, GenesisValidator, Runtime};
use crate::types::Block;

/// How long a node that saw a later height waits for its own decision
/// before it syncs.
const SYNC_GRACE: Millis = 300;
/// Most blocks in one sync answer.
const MAX_SYNC_BLOCKS: usize = 64;

/// Virtual milliseconds.
pub(super) type Millis = u64;

/// What happens at a point of virtual time.
#[derive(Debug)]
enum Event {
    Deliver {
        to: usize,
        from: usize,
        msg: Message,
    },
    Timer {
        node: usize,
        timeout: Timeout,
        generation: u64,
    },
    App {
        node: usize,
        epoch: u64,
        input: CoreInput,
    },
    SyncReply {
        node: usize,
        epoch: u64,
        blocks: Vec<Arc<Block>>,
        peer: usize,
    },
    SyncCheck {
        node: usize,
        epoch: u64,
        height: u64,
        peer: usize,
    },
}

/// Network conditions.
#[derive(Debug, Clone, Copy)]
pub(super) struct NetConfig {
    /// Least one-way latency.
    pub(super) min_latency: Millis,
    /// Most one-way latency.
    pub(super) max_latency: Millis,
    /// Probability that a message is lost.
    pub(super) drop_rate: f64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            min_latency: 2,
            max_latency: 30,
            drop_rate: 0.0,
        }
    }
}

struct Node {
    key: KeyPair,
    plot: Arc<Plot>,
    address: Address,
    chain: Arc<Chain>,
    /// The write-ahead log survives crashes (it is on disk in a node).
    wal: Vec<WalEntry>,
    wal_height: u64,
    /// Volatile: gone while crashed.
    core: Option<Core>,
    app: Option<BlockApp>,
    /// Incremented on every crash, so events of a past life are ignored.
    epoch: u64,
    timers: HashMap<Timeout, u64>,
    timer_generation: u64,
    syncing: bool,
    byzantine: bool,
}

/// The simulation.
pub(super) struct Sim {
    seed: u64,
    now: Millis,
    seq: u64,
    rng: StdRng,
    queue: BinaryHeap<Reverse<(Millis, u64)>>,
    events: BTreeMap<u64, Event>,
    nodes: Vec<Node>,
    net: NetConfig,
    /// Partition group of each node (messages cross no groups); `None`:
    /// everyone reaches everyone.
    groups: Option<Vec<u8>>,
    genesis_time: Millis,
    /// The first block committed at each height, and by whom.
    committed: BTreeMap<u64, (BlockId, usize)>,
    /// Human-readable record of what happened (compared across runs).
    pub(super) trace: Vec<String>,
    /// Equivocations detected: (time, detecting node, offender).
    pub(super) evidence: Vec<(Millis, usize, Address)>,
    /// When the byzantine node first sent a conflicting vote.
    pub(super) first_equivocation: Option<Millis>,
}

/// Proof-of-work bits of the simulated chain's transactions.
pub(super) const SIM_POW_BITS: u32 = 4;

/// Small plots: the simulation checks the proofs, not their cost.
const SIM_SPACE: SpaceParams = SpaceParams {
    log2_leaves: 6,
    leaf_rounds: 0,
    challenges: 2,
};

fn chain_params() -> ChainParams {
    ChainParams {
        chain_id: "sim".into(),
        pow_bits: SIM_POW_BITS,
        consensus: ConsensusParams {
            vdf_steps: 300,
            space: Some(SIM_SPACE),
            max_prefix_power_bps: 10_000,
        },
        ..ChainParams::default()
    }
}

/// A fresh path for a node's plot (simulations run in parallel, some
/// with the same seed).
fn plot_path() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("hm-sim-{}-{n}.plot", std::process::id()))
}

impl Drop for Sim {
    fn drop(&mut self) {
        for n in &self.nodes {
            let _ = std::fs::remove_file(n.plot.path());
        }
    }
}

impl Sim {
    /// `n` validators with equal stake, on a network with `net`.
    pub(super) fn new(seed: u64, n: usize, net: NetConfig) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let keys: Vec<KeyPair> = (0..n)
            .map(|_| KeyPair::generate_with(Algorithm::FnDsa1024, &mut rng))
            .collect();
        let genesis_time = 1_700_000_000_000;
        let genesis = Genesis {
            params: chain_params(),
            time_ms: genesis_time,
            balances: Vec::new(),
            validators: keys
                .iter()
                .enumerate()
                .map(|(i, k)| GenesisValidator {
                    key: k.public_key().clone(),
                    stake: 100,
                    plot_root: space::plot_root(&k.public_key().node_id().0, &SIM_SPACE).expect("plot root"),
                    // Each in its own /48.
                    ip: std::net::Ipv6Addr::new(0x2001, 0xdb8, i as u16, 0, 0, 0, 0, 1),
                })
                .collect(),
        };
        let nodes = keys
            .into_iter()
            .map(|key| {
                let plot = Plot::create(&plot_path(), &key.public_key().node_id().0, SIM_SPACE, &mut |_, _| {})
                    .map(Arc::new)
                    .expect("plot");
                let db = Database::builder()
                    .create_with_backend(InMemoryBackend::new())
                    .expect("in-memory database");
                let runtime = Runtime::new(chain_params(), vec![Arc::new(Staking::default())]).expect("runtime");
                let chain = Chain::open_db(
                    Arc::new(db),
                    BlockLog::memory(),
                    runtime,
                    &genesis,
                    ChainConfig::default(),
                )
                .expect("chain");
                Node {
                    address: Address(key.public_key().node_id().0),
                    plot,
                    key,
                    chain: Arc::new(chain),
                    wal: Vec::new(),
                    wal_height: 0,
                    core: None,
                    app: None,
                    epoch: 0,
                    timers: HashMap::new(),
                    timer_generation: 0,
                    syncing: false,
                    byzantine: false,
                }
            })
            .collect();
        let mut sim = Sim {
            seed,
            now: 0,
            seq: 0,
            rng,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            nodes,
            net,
            groups: None,
            genesis_time,
            committed: BTreeMap::new(),
            trace: Vec::new(),
            evidence: Vec::new(),
            first_equivocation: None,
        };
        for i in 0..n {
            sim.boot(i);
        }
        sim
    }

    /// Makes node `i` equivocate: each of its votes is also sent, for
    /// the other value (a block instead of nil and the reverse), to half
    /// of its peers.
    pub(super) fn set_byzantine(&mut self, i: usize) {
        self.nodes[i].byzantine = true;
    }

    /// Splits the network into groups (`groups[i]` is node i's group).
    pub(super) fn partition(&mut self, groups: Vec<u8>) {
        self.trace.push(format!("{} partition {groups:?}", self.now));
        self.groups = Some(groups);
    }

    /// Heals any partition.
    pub(super) fn heal(&mut self) {
        self.trace.push(format!("{} heal", self.now));
        self.groups = None;
    }

    /// Crashes node `i`: its volatile state is lost, its chain and log kept.
    pub(super) fn crash(&mut self, i: usize) {
        self.trace.push(format!("{} crash {i}", self.now));
        let n = &mut self.nodes[i];
        n.core = None;
        n.app = None;
        n.epoch += 1;
        n.timers.clear();
        n.syncing = false;
    }

    /// Restarts a crashed node from its chain and write-ahead log.
    pub(super) fn restart(&mut self, i: usize) {
        self.trace.push(format!("{} restart {i}", self.now));
        self.boot(i);
    }

    fn boot(&mut self, i: usize) {
        let seed = self.seed ^ ((i as u64) << 32) ^ self.nodes[i].epoch;
        let n = &mut self.nodes[i];
        let me = n.address;
        let app = BlockApp::new(Arc::clone(&n.chain), me.0, 1).with_plot(n.plot.clone());
        let height = app.next_height();
        let validators = app.validators();
        let signer = Box::new(SeededSigner::new(n.key.clone(), seed));
        let core = Core::new(
            HmContext::new("sim"),
            me,
            signer,
            CoreConfig::default(),
            validators.clone(),
        );
        let wal = if n.wal_height == height {
            n.wal.clone()
        } else {
            Vec::new()
        };
        n.core = Some(core);
        n.app = Some(app);
        self.feed(
            i,
            CoreInput::Start {
                height,
                validators,
                wal,
            },
        );
    }

    fn index_of(&self, a: &Address) -> Option<usize> {
        self.nodes.iter().position(|n| &n.address == a)
    }

    /// The height each live node is deciding (`None` if crashed).
    pub(super) fn heights(&self) -> Vec<Option<u64>> {
        self.nodes.iter().map(|n| n.core.as_ref().map(Core::height)).collect()
    }

    /// The (height, round) each live node is at.
    pub(super) fn rounds(&self) -> Vec<Option<(u64, i64)>> {
        self.nodes
            .iter()
            .map(|n| n.core.as_ref().map(|c| (c.height(), c.round().as_i64())))
            .collect()
    }

    /// The committed height of node `i`'s chain.
    pub(super) fn tip(&self, i: usize) -> u64 {
        self.nodes[i].chain.tip().height
    }

    /// Runs until virtual time `until`.
    pub(super) fn run_until(&mut self, until: Millis) {
        while let Some(Reverse((at, seq))) = self.queue.peek().copied() {
            if at > until {
                break;
            }
            self.queue.pop();
            self.now = at;
            if let Some(event) = self.events.remove(&seq) {
                self.dispatch(event);
            }
        }
        self.now = self.now.max(until);
    }

    /// Runs for `ms` more milliseconds.
    pub(super) fn run_for(&mut self, ms: Millis) {
        let until = self.now + ms;
        self.run_until(until);
    }

    fn schedule(&mut self, after: Millis, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((self.now + after, self.seq)));
        self.events.insert(self.seq, event);
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Deliver { to, from, msg } => {
                if let (Message::Evidence(e), Some(app)) = (&msg, self.nodes[to].app.as_mut()) {
                    // Refused evidence (forged, or about a punished
                    // offence) is dropped, as the shell drops it.
                    let _ = app.add_evidence(e.clone());
                }
                let from = self.nodes[from].address;
                self.feed(to, CoreInput::Message { from, msg });
            }
            Event::Timer {
                node,
                timeout,
                generation,
            } => {
                if self.nodes[node].timers.get(&timeout) == Some(&generation) {
                    self.nodes[node].timers.remove(&timeout);
                    self.feed(node, CoreInput::Timeout(timeout));
                }
            }
            Event::App { node, epoch, input } => {
                if self.nodes[node].epoch == epoch {
                    self.feed(node, input);
                }
            }
            Event::SyncCheck {
                node,
                epoch,
                height,
                peer,
            } => {
                let still = self.nodes[node].core.as_ref().map(Core::height) == Some(height);
                if self.nodes[node].epoch == epoch && still {
                    self.request_sync(node, peer);
                }
            }
            Event::SyncReply {
                node,
                epoch,
                blocks,
                peer,
            } => {
                if self.nodes[node].epoch == epoch {
                    let full = blocks.len() == MAX_SYNC_BLOCKS;
                    self.apply_sync(node, blocks);
                    // More to fetch: ask again at once.
                    if full {
                        self.request_sync(node, peer);
                    }
                }
            }
        }
    }

    fn feed(&mut self, i: usize, input: CoreInput) {
        let Some(core) = self.nodes[i].core.as_mut() else {
            return;
        };
        let _span = tracing::info_span!("n", i, t = self.now).entered();
        let outputs = match core.handle(input) {
            Ok(o) => o,
            Err(e) => panic!(
                "seed {}: node {i} consensus failed: {e}\n{}",
                self.seed,
                self.trace.join("\n")
            ),
        };
        for o in outputs {
            self.carry_out(i, o);
        }
    }

    fn latency(&mut self) -> Millis {
        self.rng.gen_range(self.net.min_latency..=self.net.max_latency)
    }

    fn reaches(&self, from: usize, to: usize) -> bool {
        self.groups.as_ref().is_none_or(|g| g[from] == g[to])
    }

    fn send(&mut self, from: usize, to: usize, msg: Message) {
        if !self.reaches(from, to) || self.rng.gen_bool(self.net.drop_rate) {
            return;
        }
        let after = self.latency();
        self.schedule(after, Event::Deliver { to, from, msg });
    }

    fn broadcast(&mut self, from: usize, msg: Message) {
        for to in 0..self.nodes.len() {
            if to != from {
                self.send(from, to, msg.clone());
            }
        }
    }

    fn carry_out(&mut self, i: usize, output: CoreOutput) {
        let epoch = self.nodes[i].epoch;
        match output {
            CoreOutput::Broadcast(msg) => {
                if self.nodes[i].byzantine {
                    if let Message::Vote(v) = &msg {
                        self.equivocate(i, v);
                    }
                }
                self.broadcast(i, msg);
            }
            CoreOutput::Wal(entry) => self.nodes[i].wal.push(entry),
            CoreOutput::WalReset(h) => {
                let n = &mut self.nodes[i];
                n.wal.clear();
                n.wal_height = h;
            }
            CoreOutput::Schedule(timeout, after) => {
                let n = &mut self.nodes[i];
                n.timer_generation += 1;
                let generation = n.timer_generation;
                n.timers.insert(timeout, generation);
                self.schedule(
                    after.as_millis() as Millis,
                    Event::Timer {
                        node: i,
                        timeout,
                        generation,
                    },
                );
            }
            CoreOutput::Cancel(t) => {
                self.nodes[i].timers.remove(&t);
            }
            CoreOutput::CancelAll => self.nodes[i].timers.clear(),
            CoreOutput::Build { height, round, .. } => {
                let now = self.genesis_time + self.now;
                let app = self.nodes[i].app.as_mut().expect("a live node has its app");
                let (block, hash) = app.build(now, Vec::new(), BlockLimits::default()).expect("build");
                self.trace
                    .push(format!("{} n{i} built h{height} r{round} {}", self.now, BlockId(hash)));
                self.schedule(
                    5,
                    Event::App {
                        node: i,
                        epoch,
                        input: CoreInput::BlockBuilt {
                            height,
                            round,
                            block,
                            hash,
                        },
                    },
                );
            }
            CoreOutput::Check { height, block, hash } => {
                let now = self.genesis_time + self.now;
                let app = self.nodes[i].app.as_mut().expect("a live node has its app");
                let valid = app.check(&block, now).is_ok();
                self.schedule(
                    5,
                    Event::App {
                        node: i,
                        epoch,
                        input: CoreInput::BlockChecked { height, hash, valid },
                    },
                );
            }
            CoreOutput::Decide {
                block,
                hash,
                certificate,
            } => self.commit(i, &block, hash, &certificate),
            CoreOutput::Evidence(e) => {
                self.trace
                    .push(format!("{} n{i} evidence against {}", self.now, e.offender()));
                self.evidence.push((self.now, i, e.offender()));
                if let Some(app) = self.nodes[i].app.as_mut() {
                    let _ = app.add_evidence(e);
                }
            }
            CoreOutput::Send { to, msg } => {
                if let Some(j) = self.index_of(&to) {
                    self.send(i, j, msg);
                }
            }
            CoreOutput::Behind { height, peer, .. } => {
                // The peer whose message showed the later height has the blocks.
                let peer = self.index_of(&peer).unwrap_or((i + 1) % self.nodes.len());
                self.schedule(
                    SYNC_GRACE,
                    Event::SyncCheck {
                        node: i,
                        epoch,
                        height,
                        peer,
                    },
                );
            }
        }
    }

    fn commit(&mut self, i: usize, block: &Block, hash: [u8; 32], certificate: &CommitCertificate) {
        let now = self.genesis_time + self.now;
        let height = block.header.height;
        let app = self.nodes[i].app.as_mut().expect("a live node has its app");
        if let Err(e) = app.commit(block, &hash, certificate, now) {
            panic!("seed {}: node {i} cannot commit h{height}: {e}", self.seed);
        }
        let next_validators = app.validators();
        self.check_safety(i, height, BlockId(hash));
        self.schedule(
            1,
            Event::App {
                node: i,
                epoch: self.nodes[i].epoch,
                input: CoreInput::Committed {
                    height,
                    next_validators,
                },
            },
        );
    }

    /// The safety invariant: one block per height across all nodes.
    fn check_safety(&mut self, i: usize, height: u64, id: BlockId) {
        self.trace.push(format!("{} n{i} commit h{height} {id}", self.now));
        match self.committed.get(&height) {
            None => {
                self.committed.insert(height, (id, i));
            }
            Some((other, j)) => assert_eq!(
                *other, id,
                "seed {}: SAFETY VIOLATED at height {height}: node {j} committed {other}, node {i} {id}",
                self.seed
            ),
        }
    }

    /// Asks `peer` for the blocks from the node's tip on (a request to an
    /// unreachable or crashed peer gets no answer).
    fn request_sync(&mut self, i: usize, peer: usize) {
        if self.nodes[i].syncing || !self.reaches(i, peer) || self.nodes[peer].core.is_none() {
            return;
        }
        let from = self.nodes[i].chain.tip().height + 1;
        let peer_chain = &self.nodes[peer].chain;
        let to = peer_chain.tip().height;
        let blocks: Vec<Arc<Block>> = (from..=to.min(from + MAX_SYNC_BLOCKS as u64 - 1))
            .filter_map(|h| peer_chain.block(h).ok().flatten().map(Arc::new))
            .collect();
        self.trace
            .push(format!("{} n{i} sync from n{peer}: {} blocks", self.now, blocks.len()));
        self.nodes[i].syncing = true;
        let rtt = self.latency() * 2;
        let epoch = self.nodes[i].epoch;
        self.schedule(
            rtt,
            Event::SyncReply {
                node: i,
                epoch,
                blocks,
                peer,
            },
        );
    }

    /// Applies synced blocks: each certificate is verified by the commit
    /// against the set of the node's own tip.
    fn apply_sync(&mut self, i: usize, blocks: Vec<Arc<Block>>) {
        self.nodes[i].syncing = false;
        for block in blocks {
            let height = block.header.height;
            if height != self.nodes[i].chain.tip().height + 1 {
                continue;
            }
            let Ok(hash) = block.header.hash() else { return };
            let Ok(cert) = CommitCertificate::decode(&block.commit) else {
                return;
            };
            let now = self.genesis_time + self.now;
            let app = self.nodes[i].app.as_mut().expect("a live node has its app");
            if let Err(e) = app.commit(&block, &hash, &cert, now) {
                self.trace
                    .push(format!("{} n{i} synced block h{height} refused: {e}", self.now));
                return;
            }
            let next_validators = app.validators();
            self.check_safety(i, height, BlockId(hash));
            self.feed(
                i,
                CoreInput::Committed {
                    height,
                    next_validators,
                },
            );
        }
    }

    /// Sends a conflicting copy of the byzantine node's vote to half its peers.
    fn equivocate(&mut self, i: usize, v: &SignedMessage<HmContext, super::context::Vote>) {
        let mut other = v.message.clone();
        other.value = match other.value {
            NilOrVal::Nil => NilOrVal::Val(BlockId([0xEE; 32])),
            NilOrVal::Val(_) => NilOrVal::Nil,
        };
        let bytes = vote_bytes("sim", &other);
        let sig = self.nodes[i].key.sign_with(&mut self.rng, &bytes).expect("sign");
        let conflicting = SignedMessage::new(other, ConsensusSignature(sig));
        if v.message.vote_type == VoteType::Prevote && self.first_equivocation.is_none() {
            self.first_equivocation = Some(self.now);
        }
        for to in 0..self.nodes.len() {
            if to != i && to % 2 == 0 {
                self.send(i, to, Message::Vote(conflicting.clone()));
            }
        }
    }

    /// Node `i`'s block application (it must be live).
    pub(super) fn app(&mut self, i: usize) -> &mut BlockApp {
        self.nodes[i].app.as_mut().expect("a live node has its app")
    }

    /// Node `i`'s key.
    pub(super) fn key(&self, i: usize) -> &KeyPair {
        &self.nodes[i].key
    }

    /// Node `i`'s validator address.
    pub(super) fn address(&self, i: usize) -> Address {
        self.nodes[i].address
    }

    /// The virtual wall clock, ms since the Unix epoch.
    pub(super) fn now_ms(&self) -> u64 {
        self.genesis_time + self.now
    }

    /// The highest height committed by any node.
    pub(super) fn max_committed(&self) -> u64 {
        self.committed.keys().next_back().copied().unwrap_or(0)
    }
}
