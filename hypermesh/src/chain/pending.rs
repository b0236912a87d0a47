//! Building a block on one that is still committing.
//!
//! Writing a block (its log record, the state tree's nodes, the indexes)
//! takes about as long as executing the next one, and needs none of it:
//! the next block reads the state after its parent from the parent's
//! staged writes over the committed state ([`crate::state::PendingReader`])
//! and stages its tree over the parent's staged nodes
//! ([`crate::state::StateStore::stage_on`]). Commits still happen in
//! order: the child's commit checks that the parent is the tip, and its
//! state that the parent's was written.

use std::sync::Arc;

use super::{Chain, Executed, Proposal, Tip};
use crate::codec::Hash;
use crate::error::{Error, Result};
use crate::modules::staking;
use crate::runtime::BlockLimits;
use crate::state::StagedState;
use crate::types::{AccountId, CheckedTx};

/// A block executed and maybe not yet committed, as the parent of the
/// next one: the tip it makes and its staged state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Pending {
    tip: Arc<Tip>,
    staged: Arc<StagedState>,
}

impl Pending {
    /// The tip the block makes once committed.
    pub fn tip(&self) -> &Tip {
        &self.tip
    }

    /// Its height.
    pub fn height(&self) -> u64 {
        self.tip.height
    }

    /// Its hash.
    pub fn hash(&self) -> Hash {
        self.tip.hash
    }
}

impl Chain {
    /// What building on `executed` before it commits needs (the validator
    /// set after it is read from its staged state). `parent` is what
    /// `executed` was built on if that may still be committing (`None`:
    /// the tip).
    pub fn pending(&self, parent: Option<&Pending>, executed: &Executed) -> Result<Pending> {
        let reader = match parent {
            Some(p) if p.tip.height + 1 == executed.block.header.height => {
                match self.state.reader_after_pair(&p.staged, &executed.staged) {
                    Ok(r) => r,
                    // The parent committed meanwhile and, with a one-version
                    // history, pruned the version below it: its own state
                    // is readable now.
                    Err(_) => self.state.reader_after(&executed.staged)?,
                }
            }
            _ => self.state.reader_after(&executed.staged)?,
        };
        let h = &executed.block.header;
        Ok(Pending {
            tip: Arc::new(Tip {
                height: h.height,
                hash: executed.hash,
                time_ms: h.timestamp_ms,
                state_root: h.state_root,
                validators: staking::validator_set(&reader)?,
            }),
            staged: executed.staged.clone(),
        })
    }

    /// [`Chain::propose`] on top of `parent`: the tip, or a block executed
    /// on the tip and still committing (`None`: the tip).
    pub fn propose_on(
        &self,
        parent: Option<&Pending>,
        now_ms: u64,
        proposer: AccountId,
        candidates: impl IntoIterator<Item = CheckedTx>,
        limits: BlockLimits,
    ) -> Result<Proposal> {
        let tip = self.tip();
        let parent = match parent {
            None => None,
            Some(p) if p.tip.height == tip.height && p.tip.hash == tip.hash => None,
            Some(p) if p.tip.height == tip.height + 1 => Some(p),
            Some(p) => {
                return Err(Error::InvalidBlock(format!(
                    "cannot build on block {}: the tip is {}",
                    p.tip.height, tip.height
                )))
            }
        };
        let Some(p) = parent else {
            return self.propose(now_ms, proposer, candidates, limits);
        };
        let reader = self.state.reader_after(&p.staged)?;
        let info = crate::runtime::BlockInfo {
            height: p.tip.height + 1,
            time_ms: now_ms.max(p.tip.time_ms + 1),
            proposer,
            slashed: Vec::new(),
        };
        self.build_on(&p.tip, Some(&p.staged), &reader, info, candidates, limits)
    }
}

/// Each sender's next nonce after `txs` (in block order), sorted by
/// account.
pub(crate) fn next_nonces(txs: &[CheckedTx]) -> Vec<(AccountId, u64)> {
    let mut out: Vec<(AccountId, u64)> = Vec::new();
    for t in txs {
        match out.last_mut() {
            Some((a, n)) if *a == t.sender() => *n = t.nonce() + 1,
            _ => out.push((t.sender(), t.nonce() + 1)),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    out.dedup_by_key(|e| e.0);
    out
}
