//! The sans-IO consensus host: Malachite's core plus everything the
//! engine asks of its host, without sockets, disks, threads or clocks.
//!
//! [`Core::handle`] takes one [`CoreInput`] and returns the
//! [`CoreOutput`]s it causes, in order. The shell (the validator service,
//! or the simulator) carries them out:
//! - `Wal` entries are appended, and made durable before any later
//!   `Broadcast` is sent: a vote reaches the log before it reaches a peer,
//!   so a node restarted from its log cannot sign a different one;
//! - `Build` and `Check` run the application (build a block with its
//!   proofs; check a proposed block's four proofs and execute it) and
//!   answer with `BlockBuilt` / `BlockChecked`;
//! - `Decide` commits a block with its certificate and answers with
//!   `Committed`, which starts the next height.
//!
//! Messages are checked here before the engine sees them: signatures by
//! members of the height's validator set, so that two different signed
//! messages from one validator for one height, round and step are caught
//! on receipt as [`Evidence`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use malachite_core::{
    process, Effect, Input as EngineInput, LivenessMsg, LocallyProposedValue, Params, ProposedValue, Resume,
    SignedConsensusMsg, State, ValuePayload,
};
use malachite_types::{
    LinearTimeouts, PolkaCertificate, Round, RoundCertificate, SignedMessage, SignedProposal, SignedVote,
    ThresholdParams, Timeout, Validity, ValueOrigin, VoteExtensionPolicy,
};
use stoq::crypto::Signature;

use super::compact::CompactBlock;
use super::context::{Address, BlockId, ConsensusSignature, Height, HmContext, ValidatorSet};
use super::evidence::Evidence;
use super::signing::{
    proposal_signing_bytes, to_block_certificate, verify_commit, verify_polka, verify_round, vote_bytes,
};
use crate::chain::CommitCertificate;
use crate::error::{Error, Result};
use crate::types::{Block, EncodedBlock};

/// The step byte of a proposal offence (votes use their vote type).
const PROPOSAL_STEP: u8 = u8::MAX;

/// Signs consensus messages with the validator's key.
pub trait Signer: Send {
    /// Signs `bytes`.
    fn sign(&mut self, bytes: &[u8]) -> Result<Signature>;
}

/// A [`Signer`] over a key pair (the OS supplies signing randomness).
pub struct KeySigner(pub stoq::crypto::KeyPair);

impl Signer for KeySigner {
    fn sign(&mut self, bytes: &[u8]) -> Result<Signature> {
        self.0.sign(bytes).map_err(|e| Error::Signing(e.to_string()))
    }
}

/// A [`Signer`] whose signatures are reproducible from a seed, for
/// deterministic simulations.
pub struct SeededSigner {
    key: stoq::crypto::KeyPair,
    rng: rand::rngs::StdRng,
}

impl SeededSigner {
    /// Signs with `key`, drawing randomness from a generator seeded with `seed`.
    pub fn new(key: stoq::crypto::KeyPair, seed: u64) -> Self {
        use rand::SeedableRng;
        SeededSigner {
            key,
            rng: rand::rngs::StdRng::seed_from_u64(seed),
        }
    }
}

impl Signer for SeededSigner {
    fn sign(&mut self, bytes: &[u8]) -> Result<Signature> {
        self.key
            .sign_with(&mut self.rng, bytes)
            .map_err(|e| Error::Signing(e.to_string()))
    }
}

/// A gossip message between validators.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A signed proposal (names the block by hash).
    Proposal(SignedProposal<HmContext>),
    /// A signed prevote or precommit.
    Vote(SignedVote<HmContext>),
    /// A proposed block, whole (with its encoding).
    Block(EncodedBlock),
    /// Prevotes of a quorum for one block (liveness).
    Polka(PolkaCertificate<HmContext>),
    /// Votes that justify entering a round (liveness).
    Round(RoundCertificate<HmContext>),
    /// Proof that a validator equivocated.
    Evidence(Evidence),
    /// A request for a proposed block this node has a proposal but not the
    /// block for (the block message was lost or is late).
    BlockRequest {
        /// Height.
        height: u64,
        /// The block's hash.
        hash: [u8; 32],
    },
    /// A proposed block by its transactions' ids (the shell rebuilds it
    /// from its mempool; see [`super::compact`]).
    CompactBlock(CompactBlock),
    /// A request to a block's proposer for some of its transactions.
    BlockTxsRequest {
        /// Height.
        height: u64,
        /// The block's hash.
        hash: [u8; 32],
        /// Positions in the block, strictly increasing.
        indices: Vec<u32>,
    },
    /// Transactions of a block, answering a [`Message::BlockTxsRequest`].
    BlockTxs {
        /// Height.
        height: u64,
        /// The block's hash.
        hash: [u8; 32],
        /// Position and encoding of each.
        txs: Vec<(u32, bytes::Bytes)>,
    },
}

/// A write-ahead log entry.
#[derive(Debug, Clone, PartialEq)]
pub enum WalEntry {
    /// An input the engine asked to persist.
    Engine(EngineInput<HmContext>),
    /// A block this node built at the log's height, so that a restarted
    /// node can still propose again and commit it (blocks it received
    /// come back from the validators that hold them).
    Block(EncodedBlock),
}

/// What the core is told.
// Inputs are handled one at a time and moved in, so a large variant
// costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum CoreInput {
    /// Start at `height` with its validator set, first replaying the
    /// write-ahead log of that height (empty on a clean start).
    Start {
        /// The height to decide (the tip's height + 1).
        height: u64,
        /// Its validator set.
        validators: ValidatorSet,
        /// The log recorded at this height before a restart.
        wal: Vec<WalEntry>,
    },
    /// A message from the validator `from`.
    Message {
        /// The sender (authenticated by the transport).
        from: Address,
        /// The message.
        msg: Message,
    },
    /// A scheduled timeout fired.
    Timeout(Timeout),
    /// The block this node was asked to build.
    BlockBuilt {
        /// Its height.
        height: u64,
        /// The round it was built for.
        round: Round,
        /// The block with its proofs.
        block: EncodedBlock,
        /// Its header hash.
        hash: [u8; 32],
    },
    /// The verdict on a block this node was asked to check.
    BlockChecked {
        /// Its height.
        height: u64,
        /// Its hash.
        hash: [u8; 32],
        /// Whether all four proofs and its execution check out.
        valid: bool,
    },
    /// The decided block of `height` is committed; start the next height
    /// with `next_validators`.
    Committed {
        /// The committed height.
        height: u64,
        /// The validator set of `height + 1`.
        next_validators: ValidatorSet,
    },
}

/// What the core asks of its shell.
#[derive(Debug, Clone, PartialEq)]
pub enum CoreOutput {
    /// Send to every validator.
    Broadcast(Message),
    /// Send to one validator.
    Send {
        /// The recipient.
        to: Address,
        /// The message.
        msg: Message,
    },
    /// Append to the write-ahead log (durable before a later broadcast).
    Wal(WalEntry),
    /// A new height starts: the log of earlier heights can be dropped.
    WalReset(u64),
    /// Fire `Timeout` after the duration (replacing one already set).
    Schedule(Timeout, Duration),
    /// Cancel a timeout.
    Cancel(Timeout),
    /// Cancel all timeouts.
    CancelAll,
    /// Build a block for `height` and `round` (answer with `BlockBuilt`).
    Build {
        /// Height.
        height: u64,
        /// Round.
        round: Round,
        /// The engine moves on without it after this long.
        within: Duration,
    },
    /// Check a proposed block (answer with `BlockChecked`).
    Check {
        /// Height.
        height: u64,
        /// The block.
        block: Arc<Block>,
        /// Its hash.
        hash: [u8; 32],
    },
    /// Commit `block` with `certificate` (answer with `Committed`).
    Decide {
        /// The block.
        block: Arc<Block>,
        /// Its hash.
        hash: [u8; 32],
        /// The precommits of a quorum, as the block stores them.
        certificate: CommitCertificate,
    },
    /// A validator equivocated (gossip it, put it in a block).
    Evidence(Evidence),
    /// A peer is at a later height (it sent a message for `seen`), so
    /// the current height is decided. If this node is still at `height`
    /// a moment later (it did not get the votes in time, or was down),
    /// fetch the committed blocks from it on (sync) and answer each
    /// commit with `Committed`.
    Behind {
        /// The height being decided here.
        height: u64,
        /// The highest height seen in a peer's message.
        seen: u64,
        /// The peer that sent it (it has the blocks).
        peer: Address,
    },
}

/// Settings of the core.
#[derive(Debug, Clone, Copy)]
pub struct CoreConfig {
    /// Round timeouts.
    pub timeouts: LinearTimeouts,
    /// Blocks kept per height (proposals of several rounds, and junk).
    pub max_blocks_per_height: usize,
    /// Messages kept for heights above the current one.
    pub max_future_messages: usize,
    /// How many heights ahead messages are kept for.
    pub future_heights: u64,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            timeouts: LinearTimeouts {
                propose: Duration::from_millis(1_000),
                propose_delta: Duration::from_millis(250),
                prevote: Duration::from_millis(500),
                prevote_delta: Duration::from_millis(250),
                precommit: Duration::from_millis(500),
                precommit_delta: Duration::from_millis(250),
                rebroadcast: Duration::from_millis(2_000),
                max_timeout: Duration::from_secs(30),
            },
            max_blocks_per_height: 16,
            max_future_messages: 4_096,
            future_heights: 4,
        }
    }
}

/// A block known at the current height.
struct KnownBlock {
    block: EncodedBlock,
    verdict: Option<bool>,
    asked: bool,
}

/// Everything but the engine's state (so effects can borrow it while the
/// engine runs).
struct Host {
    ctx: HmContext,
    me: Address,
    signer: Box<dyn Signer>,
    config: CoreConfig,
    height: u64,
    validators: ValidatorSet,
    replaying: bool,
    outputs: Vec<CoreOutput>,
    blocks: HashMap<BlockId, KnownBlock>,
    /// Proposals at this height that passed the host checks, by value.
    proposals: BTreeMap<BlockId, (Round, Round, Address)>,
    /// Digests of (signed bytes, signature) already verified.
    verified: HashSet<[u8; 32]>,
    /// First vote seen per (round, type, validator), for equivocation.
    votes_seen: HashMap<(Round, u8, Address), SignedVote<HmContext>>,
    proposals_seen: HashMap<(Round, Address), SignedProposal<HmContext>>,
    /// Offences already reported at this height: (round, step, validator).
    evidence_sent: HashSet<(Round, u8, Address)>,
    future: BTreeMap<u64, Vec<(Address, Message)>>,
    future_len: usize,
    decided: bool,
    behind_reported: u64,
}

/// The consensus host of one validator.
pub struct Core {
    state: State<HmContext>,
    host: Host,
}

impl Core {
    /// A core for the validator `me` that signs with `signer`, not yet
    /// started (feed [`CoreInput::Start`]).
    pub fn new(
        ctx: HmContext,
        me: Address,
        signer: Box<dyn Signer>,
        config: CoreConfig,
        validators: ValidatorSet,
    ) -> Self {
        let params = Params {
            address: me,
            threshold_params: ThresholdParams::default(),
            value_payload: ValuePayload::ProposalAndParts,
            enabled: true,
        };
        let state = State::new(ctx.clone(), Height(0), validators.clone(), params, 16, 1_024);
        Core {
            state,
            host: Host {
                ctx,
                me,
                signer,
                config,
                height: 0,
                validators,
                replaying: false,
                outputs: Vec::new(),
                blocks: HashMap::new(),
                proposals: BTreeMap::new(),
                verified: HashSet::new(),
                votes_seen: HashMap::new(),
                proposals_seen: HashMap::new(),
                evidence_sent: HashSet::new(),
                future: BTreeMap::new(),
                future_len: 0,
                decided: false,
                behind_reported: 0,
            },
        }
    }

    /// The height being decided (0 before the first start).
    pub fn height(&self) -> u64 {
        self.host.height
    }

    /// The current round.
    pub fn round(&self) -> Round {
        self.state.round()
    }

    /// This validator's address.
    pub fn address(&self) -> Address {
        self.host.me
    }

    /// Handles one input and returns what it causes, in order.
    pub fn handle(&mut self, input: CoreInput) -> Result<Vec<CoreOutput>> {
        match input {
            CoreInput::Start {
                height,
                validators,
                wal,
            } => self.start(height, validators, wal)?,
            CoreInput::Message { from, msg } => self.on_message(from, msg)?,
            CoreInput::Timeout(t) => self.engine(EngineInput::TimeoutElapsed(t))?,
            CoreInput::BlockBuilt {
                height,
                round,
                block,
                hash,
            } => {
                if height == self.host.height && !self.host.decided {
                    let id = BlockId(hash);
                    self.host.wal(WalEntry::Block(block.clone()));
                    self.host.blocks.insert(
                        id,
                        KnownBlock {
                            block,
                            verdict: Some(true),
                            asked: true,
                        },
                    );
                    self.engine(EngineInput::Propose(LocallyProposedValue::new(
                        Height(height),
                        round,
                        id,
                    )))?;
                }
            }
            CoreInput::BlockChecked { height, hash, valid } => {
                if height == self.host.height {
                    self.on_verdict(BlockId(hash), valid)?;
                }
            }
            CoreInput::Committed {
                height,
                next_validators,
            } => {
                if height == self.host.height {
                    self.start(height + 1, next_validators, Vec::new())?;
                }
            }
        }
        Ok(std::mem::take(&mut self.host.outputs))
    }

    fn start(&mut self, height: u64, validators: ValidatorSet, wal: Vec<WalEntry>) -> Result<()> {
        let h = &mut self.host;
        h.height = height;
        h.validators = validators.clone();
        h.blocks.clear();
        h.proposals.clear();
        h.verified.clear();
        h.votes_seen.clear();
        h.proposals_seen.clear();
        h.evidence_sent.clear();
        h.decided = false;
        if wal.is_empty() {
            h.outputs.push(CoreOutput::WalReset(height));
        }
        let engine_entries: Vec<EngineInput<HmContext>> = wal
            .iter()
            .filter_map(|e| match e {
                WalEntry::Engine(i) => Some(i.clone()),
                WalEntry::Block(_) => None,
            })
            .collect();
        if !wal.is_empty() {
            h.replaying = true;
            self.state.index_wal_entries(&engine_entries);
        }
        self.engine(EngineInput::StartHeight(
            Height(height),
            validators,
            false,
            None,
            VoteExtensionPolicy::Disabled,
        ))?;
        for entry in wal {
            match entry {
                WalEntry::Block(block) => {
                    let hash = block.header.hash()?;
                    self.host.blocks.insert(
                        BlockId(hash),
                        KnownBlock {
                            block,
                            verdict: None,
                            asked: false,
                        },
                    );
                }
                WalEntry::Engine(input) => {
                    if let EngineInput::ProposedValue(v, _) = &input {
                        if let Some(b) = self.host.blocks.get_mut(&v.value) {
                            b.verdict = Some(v.validity.is_valid());
                            b.asked = true;
                        }
                    }
                    if let EngineInput::Proposal(p) = &input {
                        self.host.note_proposal(p);
                    }
                    self.engine(input)?;
                }
            }
        }
        if self.host.replaying {
            self.state.reset_entries_index();
            self.host.replaying = false;
        }
        // Messages that arrived early for this height.
        let early = self.host.future.remove(&height).unwrap_or_default();
        self.host.future_len -= early.len();
        let stale: Vec<u64> = self.host.future.range(..height).map(|(k, _)| *k).collect();
        for k in stale {
            if let Some(v) = self.host.future.remove(&k) {
                self.host.future_len -= v.len();
            }
        }
        for (from, m) in early {
            self.on_message(from, m)?;
        }
        Ok(())
    }

    fn on_message(&mut self, from: Address, m: Message) -> Result<()> {
        if let Message::BlockRequest { height, hash } = &m {
            if *height == self.host.height {
                if let Some(known) = self.host.blocks.get(&BlockId(*hash)) {
                    let msg = Message::Block(known.block.clone());
                    self.host.outputs.push(CoreOutput::Send { to: from, msg });
                }
            }
            return Ok(());
        }
        let height = match &m {
            Message::Proposal(p) => p.message.height.0,
            Message::Vote(v) => v.message.height.0,
            Message::Block(b) => b.header.height,
            Message::Polka(c) => c.height.0,
            Message::Round(c) => c.height.0,
            Message::Evidence(_)
            | Message::BlockRequest { .. }
            | Message::CompactBlock(_)
            | Message::BlockTxsRequest { .. }
            | Message::BlockTxs { .. } => {
                // Evidence is the application's (it checks and includes
                // it); compact relay is the shell's (it hands the rebuilt
                // block in).
                return Ok(());
            }
        };
        let current = self.host.height;
        if height < current || current == 0 {
            return Ok(());
        }
        if height > current {
            let h = &mut self.host;
            if height > h.behind_reported {
                h.behind_reported = height;
                h.outputs.push(CoreOutput::Behind {
                    height: current,
                    seen: height,
                    peer: from,
                });
            }
            if height - current <= h.config.future_heights && h.future_len < h.config.max_future_messages {
                h.future.entry(height).or_default().push((from, m));
                h.future_len += 1;
            }
            return Ok(());
        }
        match m {
            Message::Proposal(p) => {
                if self.host.check_proposal(&p) {
                    self.engine(EngineInput::Proposal(p.clone()))?;
                    self.host.note_proposal(&p);
                    let id = p.message.value;
                    if self.host.blocks.contains_key(&id) {
                        self.host.ask_check(&id);
                    } else {
                        let request = Message::BlockRequest { height, hash: id.0 };
                        self.host.outputs.push(CoreOutput::Send { to: from, msg: request });
                    }
                }
            }
            Message::Vote(v) => {
                if self.host.check_vote(&v) {
                    self.engine(EngineInput::Vote(v))?;
                }
            }
            Message::Block(block) => self.on_block(block)?,
            Message::Polka(c) => self.engine(EngineInput::PolkaCertificate(c))?,
            Message::Round(c) => self.engine(EngineInput::RoundCertificate(c))?,
            Message::Evidence(_)
            | Message::BlockRequest { .. }
            | Message::CompactBlock(_)
            | Message::BlockTxsRequest { .. }
            | Message::BlockTxs { .. } => {}
        }
        Ok(())
    }

    fn on_block(&mut self, block: EncodedBlock) -> Result<()> {
        let Ok(hash) = block.header.hash() else {
            return Ok(());
        };
        let id = BlockId(hash);
        let h = &mut self.host;
        if h.blocks.contains_key(&id) || h.blocks.len() >= h.config.max_blocks_per_height {
            return Ok(());
        }
        h.blocks.insert(
            id,
            KnownBlock {
                block,
                verdict: None,
                asked: false,
            },
        );
        h.ask_check(&id);
        Ok(())
    }

    fn on_verdict(&mut self, id: BlockId, valid: bool) -> Result<()> {
        let Some(known) = self.host.blocks.get_mut(&id) else {
            return Ok(());
        };
        if known.verdict.is_some() {
            return Ok(());
        }
        known.verdict = Some(valid);
        let Some(&(round, pol_round, proposer)) = self.host.proposals.get(&id) else {
            return Ok(());
        };
        // A received block is not logged (only its verdict is, below): the
        // validators that sent and voted for it hold it, and a restarted
        // node gets it back from them (block request, or sync once it is
        // decided). Logging megabytes per block on every validator cost
        // more than executing them. A node's own block, which may exist
        // nowhere else yet, is logged when built.
        let value = ProposedValue {
            height: Height(self.host.height),
            round,
            valid_round: pol_round,
            proposer,
            value: id,
            validity: Validity::from_bool(valid),
        };
        self.engine(EngineInput::ProposedValue(value, ValueOrigin::Consensus))
    }

    /// Runs the engine on one input, handling its effects.
    fn engine(&mut self, input: EngineInput<HmContext>) -> Result<()> {
        let host = &mut self.host;
        let result: std::result::Result<(), malachite_core::Error<HmContext>> = process!(
            input: input,
            state: &mut self.state,
            metrics: &(),
            with: effect => host.effect(effect)
        );
        result.map_err(|e| Error::Consensus(e.to_string()))
    }
}

impl Host {
    fn wal(&mut self, entry: WalEntry) {
        if !self.replaying {
            self.outputs.push(CoreOutput::Wal(entry));
        }
    }

    fn digest(bytes: &[u8], sig: &Signature) -> [u8; 32] {
        use sha3::Digest;
        sha3::Sha3_256::new()
            .chain_update(bytes)
            .chain_update(sig.as_bytes())
            .finalize()
            .into()
    }

    /// Verifies a signature by `address` (a member of this height's set),
    /// remembering it so the engine's own check costs nothing.
    fn verify(&mut self, address: &Address, bytes: &[u8], sig: &Signature) -> bool {
        let digest = Self::digest(bytes, sig);
        if self.verified.contains(&digest) {
            return true;
        }
        let Some(i) = self.validators.index_of(address) else {
            return false;
        };
        let ok = self.validators.validators()[i].public_key.verify(bytes, sig).is_ok();
        if ok {
            self.verified.insert(digest);
        }
        ok
    }

    fn check_vote(&mut self, v: &SignedVote<HmContext>) -> bool {
        let bytes = vote_bytes(self.ctx.chain_id(), &v.message);
        if !self.verify(&v.message.validator, &bytes, &v.signature.0) {
            return false;
        }
        let key = (v.message.round, v.message.vote_type as u8, v.message.validator);
        match self.votes_seen.get(&key) {
            None => {
                self.votes_seen.insert(key, v.clone());
            }
            Some(first) if first.message != v.message => {
                let e = Evidence::DoubleVote(first.clone(), v.clone());
                self.report(key, e);
            }
            Some(_) => {}
        }
        true
    }

    fn check_proposal(&mut self, p: &SignedProposal<HmContext>) -> bool {
        let bytes = proposal_signing_bytes(self.ctx.chain_id(), &p.message);
        if !self.verify(&p.message.proposer, &bytes, &p.signature.0) {
            return false;
        }
        let key = (p.message.round, p.message.proposer);
        match self.proposals_seen.get(&key) {
            None => {
                self.proposals_seen.insert(key, p.clone());
            }
            Some(first) if first.message != p.message => {
                let e = Evidence::DoubleProposal(first.clone(), p.clone());
                self.report((p.message.round, PROPOSAL_STEP, p.message.proposer), e);
            }
            Some(_) => {}
        }
        true
    }

    /// Hands evidence to the application and gossips it, once per
    /// offence (a validator that keeps equivocating in a round is
    /// reported once).
    fn report(&mut self, offence: (Round, u8, Address), evidence: Evidence) {
        if self.evidence_sent.insert(offence) {
            self.outputs.push(CoreOutput::Evidence(evidence.clone()));
            self.outputs.push(CoreOutput::Broadcast(Message::Evidence(evidence)));
        }
    }

    fn note_proposal(&mut self, p: &SignedProposal<HmContext>) {
        let m = &p.message;
        self.proposals
            .entry(m.value)
            .or_insert((m.round, m.pol_round, m.proposer));
    }

    /// Asks the shell to check a block once both it and a proposal for it
    /// are here (a block nobody proposed is never executed).
    fn ask_check(&mut self, id: &BlockId) {
        if !self.proposals.contains_key(id) {
            return;
        }
        if let Some(known) = self.blocks.get_mut(id) {
            if !known.asked {
                known.asked = true;
                self.outputs.push(CoreOutput::Check {
                    height: self.height,
                    block: Arc::clone(known.block.block()),
                    hash: id.0,
                });
            }
        }
    }

    fn sign(&mut self, bytes: &[u8]) -> std::result::Result<ConsensusSignature, Error> {
        self.signer.sign(bytes).map(ConsensusSignature)
    }

    /// Carries out one engine effect and says how the engine resumes.
    fn effect(&mut self, effect: Effect<HmContext>) -> std::result::Result<Resume<HmContext>, Error> {
        use malachite_core::Resumable;
        Ok(match effect {
            Effect::CancelAllTimeouts(r) => {
                self.outputs.push(CoreOutput::CancelAll);
                r.resume_with(())
            }
            Effect::CancelTimeout(t, r) => {
                self.outputs.push(CoreOutput::Cancel(t));
                r.resume_with(())
            }
            Effect::ScheduleTimeout(t, r) => {
                let d = self.config.timeouts.duration_for(t);
                self.outputs.push(CoreOutput::Schedule(t, d));
                r.resume_with(())
            }
            Effect::StartRound(_, _, _, _, r) => r.resume_with(()),
            Effect::PublishConsensusMsg(msg, r) => {
                match msg {
                    SignedConsensusMsg::Vote(v) => self.outputs.push(CoreOutput::Broadcast(Message::Vote(v))),
                    SignedConsensusMsg::Proposal(p) => {
                        // The block goes first, so peers can check it as
                        // soon as the proposal arrives.
                        if let Some(known) = self.blocks.get(&p.message.value) {
                            self.outputs
                                .push(CoreOutput::Broadcast(Message::Block(known.block.clone())));
                        }
                        self.note_proposal(&p);
                        self.outputs.push(CoreOutput::Broadcast(Message::Proposal(p)));
                    }
                }
                r.resume_with(())
            }
            Effect::PublishLivenessMsg(msg, r) => {
                let m = match msg {
                    LivenessMsg::Vote(v) => Message::Vote(v),
                    LivenessMsg::PolkaCertificate(c) => Message::Polka(c),
                    LivenessMsg::SkipRoundCertificate(c) => Message::Round(c),
                };
                self.outputs.push(CoreOutput::Broadcast(m));
                r.resume_with(())
            }
            Effect::RepublishVote(v, r) => {
                self.outputs.push(CoreOutput::Broadcast(Message::Vote(v)));
                r.resume_with(())
            }
            Effect::RepublishRoundCertificate(c, r) => {
                self.outputs.push(CoreOutput::Broadcast(Message::Round(c)));
                r.resume_with(())
            }
            Effect::GetValue(height, round, timeout, r) => {
                let within = self.config.timeouts.duration_for(timeout);
                self.outputs.push(CoreOutput::Build {
                    height: height.0,
                    round,
                    within,
                });
                r.resume_with(())
            }
            Effect::RestreamProposal(_, _, _, _, id, r) => {
                if let Some(known) = self.blocks.get(&id) {
                    self.outputs
                        .push(CoreOutput::Broadcast(Message::Block(known.block.clone())));
                }
                r.resume_with(())
            }
            // Sync runs in the host (blocks with their certificates), not
            // through the engine; these never occur.
            Effect::CertVerifiedSyncValue(_, _, r) | Effect::CertRejectedSyncValue(_, _, _, r) => r.resume_with(()),
            Effect::Decide(cert, _, r) => {
                if !self.decided {
                    if let Some(known) = self.blocks.get(&cert.value_id) {
                        let certificate = to_block_certificate(&cert, &self.validators)?;
                        self.decided = true;
                        self.outputs.push(CoreOutput::Decide {
                            block: Arc::clone(known.block.block()),
                            hash: cert.value_id.0,
                            certificate,
                        });
                    }
                }
                r.resume_with(())
            }
            Effect::Finalize(_, _, _, r) => r.resume_with(()),
            Effect::SignVote(vote, r) => {
                let bytes = vote_bytes(self.ctx.chain_id(), &vote);
                let signature = self.sign(&bytes)?;
                r.resume_with(SignedMessage::new(vote, signature))
            }
            Effect::SignProposal(proposal, r) => {
                let bytes = proposal_signing_bytes(self.ctx.chain_id(), &proposal);
                let signature = self.sign(&bytes)?;
                r.resume_with(SignedMessage::new(proposal, signature))
            }
            Effect::VerifySignature(msg, key, r) => {
                let bytes = match &msg.message {
                    malachite_core::ConsensusMsg::Vote(v) => vote_bytes(self.ctx.chain_id(), v),
                    malachite_core::ConsensusMsg::Proposal(p) => proposal_signing_bytes(self.ctx.chain_id(), p),
                };
                let digest = Self::digest(&bytes, &msg.signature.0);
                let ok = self.verified.contains(&digest) || key.verify(&bytes, &msg.signature.0).is_ok();
                r.resume_with(ok)
            }
            Effect::VerifyCommitCertificate(cert, set, thresholds, r) => {
                r.resume_with(verify_commit(&self.ctx, &cert, &set, thresholds))
            }
            Effect::VerifyExtendedCommitCertificate(cert, set, thresholds, _, r) => {
                let plain = cert.trim_vote_extensions();
                r.resume_with(verify_commit(&self.ctx, &plain, &set, thresholds))
            }
            Effect::VerifyPolkaCertificate(cert, set, thresholds, r) => {
                r.resume_with(verify_polka(&self.ctx, &cert, &set, thresholds))
            }
            Effect::VerifyRoundCertificate(cert, set, thresholds, r) => {
                r.resume_with(verify_round(&self.ctx, &cert, &set, thresholds))
            }
            Effect::WalAppend(height, input, r) => {
                if height.0 == self.height {
                    self.wal(WalEntry::Engine(input));
                }
                r.resume_with(())
            }
            // Vote extensions are disabled.
            Effect::ExtendVote(_, _, _, _, r) => r.resume_with(None),
            Effect::VerifyVoteExtension(_, _, _, _, _, _, r) => r.resume_with(Ok(())),
        })
    }
}
