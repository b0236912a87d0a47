//! The application side of consensus: building a proposal with its
//! proofs, checking a peer's proposal before voting for it (the veto),
//! and committing a decided block. Synchronous: the validator service
//! runs it on a blocking thread, the simulator inline.
//!
//! A block is voted for only if all four of its proofs check out:
//! - *stake*: the parent's commit certificate in the header, verified
//!   against the set that committed the parent;
//! - *time*: a VDF over the parent hash with the genesis' number of steps
//!   ([`crate::proofs::vdf`]);
//! - *space*: the proposer's answers to the plot challenges derived from
//!   the parent hash, against the plot root it registered
//!   ([`crate::proofs::space`]);
//! - *work*: every transaction's proof of work and signature, through
//!   [`Chain::check_txs`].
//!
//! Then the block's equivocation evidence is checked (each item against
//! the validator set of its height) and the block executed
//! ([`Chain::validate_slashing`]), convicting the offenders.

use std::collections::HashMap;
use std::sync::Arc;

use super::context::ValidatorSet;
use super::evidence::Evidence;
use crate::chain::{Chain, CommitCertificate, Committed, Executed, KnownTxs};
use crate::codec::{Hash, ReadExt, Reader, Writer};
use crate::error::{Error, Result};
use crate::modules::staking;
use crate::proofs::space::{self, Plot, SpaceProof};
use crate::proofs::vdf::{self, VdfParams, VdfProof};
use crate::runtime::BlockLimits;
use crate::types::{AccountId, Block, CheckedTx, EncodedBlock, KeyCache, MAX_PROOF_BYTES};

/// Validators convicted of equivocation, with the height of each offence.
type Convictions = Vec<(AccountId, u64)>;

/// Executed blocks kept for commit (proposals of a few rounds).
const MAX_EXECUTED: usize = 16;
/// Evidence older than this many heights is no longer taken (the state
/// to check it against may be pruned, and the offender punished).
pub const MAX_EVIDENCE_AGE: u64 = 64;
/// Most evidence waiting for a block.
const MAX_PENDING_EVIDENCE: usize = 256;
const TIME_SEED_DOMAIN: &[u8] = b"hypermesh/time-seed/v1";

/// The seed of the proof of time of the block after `parent_hash`.
pub fn time_seed(chain_id: &str, parent_hash: &Hash) -> [u8; 32] {
    let mut w = Writer::with_domain(TIME_SEED_DOMAIN);
    w.str8(chain_id).fixed(parent_hash);
    stoq::crypto::sha3_256(w.as_slice())
}

/// Encodes a block's evidence list (its `proofs.evidence`; no items:
/// no bytes).
pub fn encode_evidence_list(items: &[Evidence]) -> Result<Vec<u8>> {
    let encoded = items
        .iter()
        .map(super::wire::encode_evidence)
        .collect::<Result<Vec<_>>>()?;
    Ok(evidence_list_of(&encoded))
}

fn evidence_list_of(encoded: &[Vec<u8>]) -> Vec<u8> {
    if encoded.is_empty() {
        return Vec::new();
    }
    let mut w = Writer::new();
    w.u32(encoded.len() as u32);
    for e in encoded {
        w.bytes32(e);
    }
    w.finish()
}

/// Decodes a block's evidence list (empty bytes: none).
pub fn decode_evidence_list(bytes: &[u8]) -> Result<Vec<Evidence>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut r = Reader::new(bytes, "evidence list");
    let n = r.count32(MAX_PROOF_BYTES / 64)?;
    // Each item takes at least its 4-byte length: no reservation for a
    // count the bytes cannot hold.
    if n.saturating_mul(4) > r.remaining() {
        return Err(Error::InvalidBlock(format!(
            "{n} evidence items cannot fit in {} bytes",
            r.remaining()
        )));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(super::wire::decode_evidence(r.bytes32(MAX_PROOF_BYTES)?)?);
    }
    r.finish()?;
    if out.is_empty() {
        return Err(Error::InvalidBlock(
            "an empty evidence list is encoded as no bytes".into(),
        ));
    }
    Ok(out)
}

/// Builds, checks and commits blocks for the consensus host.
pub struct BlockApp {
    chain: Arc<Chain>,
    proposer: AccountId,
    keys: KeyCache,
    threads: usize,
    executed: HashMap<Hash, Executed>,
    /// The tip's certificate and the set that signed it, kept from the
    /// last commit so that neither building nor checking the next block
    /// reads the tip block back.
    parent: Option<ParentProof>,
    /// This validator's storage plot (chains with proofs of space).
    plot: Option<Arc<Plot>>,
    /// The proof of time over the tip (the same for every round).
    time_proof: Option<(Hash, Vec<u8>)>,
    /// Equivocation evidence waiting for a block, in arrival order.
    evidence: Vec<Evidence>,
    /// Transactions this node checked on admission (its mempool).
    known: Option<Arc<KnownTxs<'static>>>,
}

/// What the next block's proof of stake is checked against.
struct ParentProof {
    height: u64,
    certificate: Vec<u8>,
    signers: staking::ValidatorSet,
}

impl BlockApp {
    /// The application of the validator `proposer` over `chain`, checking
    /// signatures on up to `threads` threads.
    pub fn new(chain: Arc<Chain>, proposer: AccountId, threads: usize) -> Self {
        BlockApp {
            chain,
            proposer,
            keys: KeyCache::new(100_000),
            threads: threads.max(1),
            executed: HashMap::new(),
            parent: None,
            plot: None,
            time_proof: None,
            evidence: Vec::new(),
            known: None,
        }
    }

    /// Skips the signature checks of a proposed block's transactions that
    /// `known` (the node's mempool) holds: they passed them on admission.
    pub fn with_known_txs(mut self, known: Arc<KnownTxs<'static>>) -> Self {
        self.known = Some(known);
        self
    }

    /// Answers the proof-of-space challenges of this validator's blocks
    /// from `plot` (whose root it registered).
    pub fn with_plot(mut self, plot: Arc<Plot>) -> Self {
        self.plot = Some(plot);
        self
    }

    /// Queues equivocation evidence for the next block this validator
    /// proposes (checked then; duplicates and stale items are dropped).
    /// It is checked first (as a block carrying it would be: signatures,
    /// membership, age, not yet punished), so forged evidence naming a
    /// real offender cannot take that offender's place in the queue.
    /// Returns whether it was queued: `Ok(false)` for evidence against an
    /// offence already queued or already punished (copies gossiped late),
    /// or a full queue.
    pub fn add_evidence(&mut self, evidence: Evidence) -> Result<bool> {
        let key = (evidence.offender(), evidence.height());
        if self.evidence.iter().any(|e| (e.offender(), e.height()) == key) {
            return Ok(false);
        }
        let reader = self.chain.state().reader(self.chain.tip().height)?;
        if staking::punished(&reader, &key.0 .0, key.1)? {
            return Ok(false);
        }
        // The earliest block that could carry it: the next one, or the
        // one after the offence when that is the height being decided.
        let height = self.next_height().max(evidence.height().saturating_add(1));
        self.verify_evidence(&evidence, height)?;
        if self.evidence.len() >= MAX_PENDING_EVIDENCE {
            return Ok(false);
        }
        self.evidence.push(evidence);
        Ok(true)
    }

    /// Evidence waiting for a block.
    pub fn pending_evidence(&self) -> usize {
        self.evidence.len()
    }

    /// The chain.
    pub fn chain(&self) -> &Arc<Chain> {
        &self.chain
    }

    /// The height consensus decides next.
    pub fn next_height(&self) -> u64 {
        self.chain.tip().height + 1
    }

    /// The validator set that must commit the next block.
    pub fn validators(&self) -> ValidatorSet {
        ValidatorSet::from_staking(&self.chain.tip().validators)
    }

    /// The tip's commit certificate (which the next block carries as its
    /// proof of stake) and the set that signed it. Read from the chain
    /// only after a restart; afterwards kept from each commit.
    fn parent(&mut self) -> Result<&ParentProof> {
        let tip = self.chain.tip();
        if self.parent.as_ref().is_none_or(|p| p.height != tip.height) {
            let certificate = match tip.height {
                0 => Vec::new(),
                h => {
                    self.chain
                        .block(h)?
                        .ok_or_else(|| Error::Store(format!("the tip block {h} is missing")))?
                        .commit
                }
            };
            // The set in the state before the tip committed the tip.
            let reader = self.chain.state().reader(tip.height.saturating_sub(1))?;
            self.parent = Some(ParentProof {
                height: tip.height,
                certificate,
                signers: staking::validator_set(&reader)?,
            });
        }
        self.parent
            .as_ref()
            .ok_or_else(|| Error::Store("parent proof missing".into()))
    }

    /// Builds the next block from `candidates` at `now_ms`.
    pub fn build(
        &mut self,
        now_ms: u64,
        candidates: impl IntoIterator<Item = CheckedTx>,
        limits: BlockLimits,
    ) -> Result<(EncodedBlock, Hash)> {
        let stake = self.parent()?.certificate.clone();
        let tip = self.chain.tip();
        let time = self.prove_time(&tip.hash)?;
        let space = match (&self.plot, self.chain.runtime().params().consensus.space) {
            (_, None) => Vec::new(),
            (Some(plot), Some(_)) => plot
                .prove(&tip.hash)
                .map_err(|e| Error::Store(format!("answering the plot challenge: {e}")))?
                .encode(),
            (None, Some(_)) => {
                return Err(Error::Genesis(
                    "this chain's blocks carry proofs of space and this validator has no plot".into(),
                ))
            }
        };
        let (evidence, slashed) = self.evidence_for_block(tip.height + 1)?;
        let mut executed = self
            .chain
            .propose_slashing(now_ms, self.proposer, candidates, limits, slashed)?
            .executed;
        let proofs = &mut executed.block.header.proofs;
        proofs.stake = stake;
        proofs.time = time;
        proofs.space = space;
        proofs.evidence = evidence;
        executed.hash = executed.block.header.hash()?;
        // Encoded once, here, from the transactions' own bytes: the block
        // is logged and broadcast as these bytes.
        let block = Arc::new(executed.block.clone());
        let encoded =
            EncodedBlock::from_tx_encodings(block, executed.txs.iter().map(|t| t.shared_bytes().clone()).collect())?
                .with_tx_ids(executed.txs.iter().map(CheckedTx::hash).collect());
        let out = (encoded, executed.hash);
        self.keep(executed);
        Ok(out)
    }

    /// Checks a proposed block: its proofs, its transactions, and that
    /// executing it gives its header. Returns its hash; an error is the
    /// reason to prevote nil.
    pub fn check(&mut self, block: &Block, now_ms: u64) -> Result<Hash> {
        let hash = block.header.hash()?;
        if self.executed.contains_key(&hash) {
            return Ok(hash);
        }
        let tip = self.chain.tip();
        if block.header.parent_hash != tip.hash {
            return Err(Error::InvalidBlock("parent hash is not the tip's".into()));
        }
        self.check_stake(block)?;
        self.check_time(block)?;
        self.check_space(block)?;
        let slashed = self.check_evidence(block)?;
        let none = |txs: &[Arc<crate::types::Transaction>]| vec![None; txs.len()];
        let known: &KnownTxs<'_> = match &self.known {
            Some(k) => k.as_ref(),
            None => &none,
        };
        let txs = self
            .chain
            .check_txs_known(block, &self.keys, self.threads, known)
            .map_err(|(i, e)| Error::InvalidBlock(format!("transaction {i}: {e}")))?;
        let executed = self.chain.validate_slashing(block, txs, now_ms, slashed)?;
        if executed.hash != hash {
            return Err(Error::InvalidBlock("header hash does not match execution".into()));
        }
        self.keep(executed);
        Ok(hash)
    }

    /// Proof of stake: the header carries a certificate of a quorum of the
    /// parent's validator set for the parent.
    fn check_stake(&mut self, block: &Block) -> Result<()> {
        let tip = self.chain.tip();
        let stake = &block.header.proofs.stake;
        if tip.height == 0 {
            if !stake.is_empty() {
                return Err(Error::InvalidBlock(
                    "the first block carries a parent certificate".into(),
                ));
            }
            return Ok(());
        }
        if stake.is_empty() {
            return Err(Error::InvalidBlock("missing the parent's commit certificate".into()));
        }
        let cert = CommitCertificate::decode(stake)?;
        let chain = Arc::clone(&self.chain);
        let set = &self.parent()?.signers;
        if set.0.is_empty() {
            // A parent committed with no validators (a chain that started
            // without any) has nothing to check against.
            return Ok(());
        }
        cert.verify(chain.chain_id(), set, tip.height, &tip.hash)?;
        Ok(())
    }

    /// The proof of time over `parent` (computed once per parent: every
    /// round's proposal carries the same).
    fn prove_time(&mut self, parent: &Hash) -> Result<Vec<u8>> {
        let steps = self.chain.runtime().params().consensus.vdf_steps;
        if steps == 0 {
            return Ok(Vec::new());
        }
        if let Some((p, proof)) = &self.time_proof {
            if p == parent {
                return Ok(proof.clone());
            }
        }
        let seed = time_seed(self.chain.chain_id(), parent);
        let proof = vdf::prove(&seed, VdfParams { steps }, &|| false)
            .map_err(|e| Error::Store(format!("computing the proof of time: {e}")))?
            .encode();
        self.time_proof = Some((*parent, proof.clone()));
        Ok(proof)
    }

    /// Proof of time: the VDF over the parent hash, with the chain's
    /// number of steps.
    fn check_time(&self, block: &Block) -> Result<()> {
        let steps = self.chain.runtime().params().consensus.vdf_steps;
        let bytes = &block.header.proofs.time;
        if steps == 0 {
            if !bytes.is_empty() {
                return Err(Error::InvalidBlock("a proof of time on a chain without one".into()));
            }
            return Ok(());
        }
        if bytes.is_empty() {
            return Err(Error::InvalidBlock("missing the proof of time".into()));
        }
        let proof = VdfProof::decode(bytes).map_err(|e| Error::InvalidBlock(format!("proof of time: {e}")))?;
        let seed = time_seed(self.chain.chain_id(), &block.header.parent_hash);
        vdf::verify(&seed, VdfParams { steps }, &proof).map_err(|e| Error::InvalidBlock(format!("proof of time: {e}")))
    }

    /// Proof of space: the proposer's answers to the parent's challenges,
    /// against the plot root it registered.
    fn check_space(&self, block: &Block) -> Result<()> {
        let bytes = &block.header.proofs.space;
        let Some(params) = self.chain.runtime().params().consensus.space else {
            if !bytes.is_empty() {
                return Err(Error::InvalidBlock("a proof of space on a chain without one".into()));
            }
            return Ok(());
        };
        if bytes.is_empty() {
            return Err(Error::InvalidBlock("missing the proof of space".into()));
        }
        let proposer = &block.header.proposer;
        let reader = self.chain.state().reader(self.chain.tip().height)?;
        let record = staking::validator_at(&reader, proposer)?
            .ok_or_else(|| Error::InvalidBlock("the proposer is not a validator".into()))?;
        if record.plot_root == [0; 32] {
            return Err(Error::InvalidBlock("the proposer registered no plot".into()));
        }
        let proof =
            SpaceProof::decode(bytes, &params).map_err(|e| Error::InvalidBlock(format!("proof of space: {e}")))?;
        space::verify(proposer, &record.plot_root, &params, &block.header.parent_hash, &proof)
            .map_err(|e| Error::InvalidBlock(format!("proof of space: {e}")))
    }

    /// Checks one item of evidence for a block at `height`: recent, not
    /// yet punished, and proving an equivocation by a member of the set of
    /// its height. Returns (offender, offence height).
    fn verify_evidence(&self, e: &Evidence, height: u64) -> Result<(AccountId, u64)> {
        let at = e.height();
        if at == 0 || at >= height || height - at > MAX_EVIDENCE_AGE {
            return Err(Error::InvalidBlock(format!(
                "evidence of height {at} in block {height} (at most {MAX_EVIDENCE_AGE} heights old)"
            )));
        }
        let tip = self.chain.tip().height;
        let reader = self.chain.state().reader(tip)?;
        let offender = e.offender().0;
        if staking::punished(&reader, &offender, at)? {
            return Err(Error::InvalidBlock("evidence of an offence already punished".into()));
        }
        // The set that decided height `at` is the one in the state after
        // height `at - 1`.
        let set = staking::validator_set(&self.chain.state().reader(at - 1)?)?;
        e.verify(self.chain.chain_id(), &ValidatorSet::from_staking(&set))?;
        Ok((offender, at))
    }

    /// The pending evidence that still convicts someone, as the block's
    /// evidence bytes and the offenders; drops what no longer does.
    fn evidence_for_block(&mut self, height: u64) -> Result<(Vec<u8>, Convictions)> {
        let pending = std::mem::take(&mut self.evidence);
        let mut keep = Vec::new();
        let mut encoded = Vec::new();
        let mut slashed = Vec::new();
        let mut size = 4;
        for e in pending {
            let Ok(convicts) = self.verify_evidence(&e, height) else {
                continue;
            };
            if slashed.contains(&convicts) {
                continue;
            }
            let bytes = super::wire::encode_evidence(&e)?;
            if size + 4 + bytes.len() <= MAX_PROOF_BYTES {
                size += 4 + bytes.len();
                slashed.push(convicts);
                encoded.push(bytes);
                keep.push(e);
            } else {
                self.evidence.push(e);
            }
        }
        let bytes = evidence_list_of(&encoded);
        // Included evidence stays queued until its block commits (a round
        // may fail); the commit drops what was punished.
        self.evidence.splice(0..0, keep);
        Ok((bytes, slashed))
    }

    /// The block's evidence, each item checked: the offenders it convicts.
    fn check_evidence(&self, block: &Block) -> Result<Convictions> {
        let items = decode_evidence_list(&block.header.proofs.evidence)?;
        let mut slashed = Vec::with_capacity(items.len());
        for e in &items {
            let convicts = self.verify_evidence(e, block.header.height)?;
            if slashed.contains(&convicts) {
                return Err(Error::InvalidBlock("the same offence twice in one block".into()));
            }
            slashed.push(convicts);
        }
        Ok(slashed)
    }

    /// Commits a decided block with its certificate. The block is executed
    /// again if this node never checked it (it decided on others' votes).
    pub fn commit(
        &mut self,
        block: &Block,
        hash: &Hash,
        certificate: &CommitCertificate,
        now_ms: u64,
    ) -> Result<Committed> {
        let executed = match self.executed.remove(hash) {
            Some(e) => e,
            None => {
                self.check(block, now_ms)?;
                self.executed
                    .remove(hash)
                    .ok_or_else(|| Error::InvalidBlock("decided block did not execute".into()))?
            }
        };
        let signers = self.chain.tip().validators.clone();
        let committed = self.chain.commit(executed, certificate)?;
        // Everything else was built on the old tip.
        self.executed.clear();
        self.time_proof = None;
        if !self.evidence.is_empty() {
            let height = committed.block.header.height;
            let reader = self.chain.state().reader(height)?;
            let mut kept = Vec::with_capacity(self.evidence.len());
            for e in std::mem::take(&mut self.evidence) {
                let fresh = height + 1 - e.height() <= MAX_EVIDENCE_AGE;
                if fresh && !staking::punished(&reader, &e.offender().0, e.height())? {
                    kept.push(e);
                }
            }
            self.evidence = kept;
        }
        self.parent = Some(ParentProof {
            height: committed.block.header.height,
            certificate: committed.block.commit.clone(),
            signers,
        });
        Ok(committed)
    }

    fn keep(&mut self, executed: Executed) {
        if self.executed.len() >= MAX_EXECUTED {
            self.executed.clear();
        }
        self.executed.insert(executed.hash, executed);
    }
}
