//! The application side of consensus: building a proposal with its
//! proofs, checking a peer's proposal before voting for it (the veto),
//! and committing a decided block. Synchronous: the validator service
//! runs it on a blocking thread, the simulator inline.
//!
//! Of the four proofs, this module checks *stake* (the parent's commit
//! certificate in the header, verified against the set that committed
//! the parent) and *work* (every transaction's proof of work and
//! signature, through [`Chain::check_txs`]), then executes the block
//! ([`Chain::validate`]).

use std::collections::HashMap;
use std::sync::Arc;

use super::context::ValidatorSet;
use crate::chain::{Chain, CommitCertificate, Committed, Executed};
use crate::codec::Hash;
use crate::error::{Error, Result};
use crate::modules::staking;
use crate::runtime::BlockLimits;
use crate::types::{AccountId, Block, CheckedTx, KeyCache};

/// Executed blocks kept for commit (proposals of a few rounds).
const MAX_EXECUTED: usize = 16;

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
        }
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
    ) -> Result<(Arc<Block>, Hash)> {
        let stake = self.parent()?.certificate.clone();
        let mut executed = self.chain.propose(now_ms, self.proposer, candidates, limits)?.executed;
        executed.block.header.proofs.stake = stake;
        executed.hash = executed.block.header.hash()?;
        let out = (Arc::new(executed.block.clone()), executed.hash);
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
        self.check_stake(block)?;
        let txs = self
            .chain
            .check_txs(block, &self.keys, self.threads)
            .map_err(|(i, e)| Error::InvalidBlock(format!("transaction {i}: {e}")))?;
        let executed = self.chain.validate(block, txs, now_ms)?;
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
