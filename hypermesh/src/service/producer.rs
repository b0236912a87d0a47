//! Single-validator block production, pipelined: while block N is being
//! written (log record, state tree, indexes), block N+1 is selected,
//! executed and signed on top of it ([`crate::chain::Pending`]).
//!
//! A proposed block's transactions leave the mempool at once, and their
//! senders' next nonces are kept in `inflight` until the block commits, so
//! admission neither refuses their next transactions as gapped nor takes
//! a proposed one again. Commits stay in order, one at a time. If a commit
//! fails, the block built on it is dropped and both blocks' transactions
//! go back through admission.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::{now_ms, NodeService};
use crate::chain::{CommitCertificate, Committed, Executed, Pending};
use crate::error::{Result, TxError};
use crate::runtime::BlockLimits;
use crate::types::CheckedTx;

/// A block built and signed, not yet committed.
pub(super) struct Proposed {
    executed: Executed,
    certificate: CommitCertificate,
    /// The block as the parent of the next one.
    pending: Pending,
    /// Its transactions (shared with `executed`), to requeue if the
    /// commit fails.
    txs: Vec<CheckedTx>,
    next_nonces: Vec<([u8; 32], u64)>,
    /// Whether ready transactions were left out for lack of room (the
    /// next block can start at once).
    full: bool,
}

impl NodeService {
    /// Selects, executes and signs the next block on top of `parent` (the
    /// tip when `None`), and takes its transactions out of the mempool.
    pub(super) fn propose_next(&self, parent: Option<&Pending>, now_ms: u64) -> Result<Proposed> {
        let started = Instant::now();
        let params = self.chain.runtime().params();
        let limits = BlockLimits {
            max_txs: self.config.max_block_txs.min(BlockLimits::default().max_txs),
            ..BlockLimits::default()
        };
        let candidates = self
            .mempool()
            .select(limits.max_txs, params.block_gas_limit, limits.max_bytes);
        let offered = candidates.len();
        let proposal = self
            .chain
            .propose_on(parent, now_ms, self.account, candidates, limits)?;
        self.metrics.execution.observe(started.elapsed().as_secs_f64());
        let executed = proposal.executed;
        let height = executed.block.header.height;
        let validators = match parent {
            Some(p) if p.height() + 1 == height => p.tip().validators.clone(),
            _ => self.chain.tip().validators.clone(),
        };
        let signature =
            CommitCertificate::sign(self.chain.chain_id(), &self.key, &validators, height, 0, &executed.hash)?;
        let certificate = CommitCertificate {
            height,
            round: 0,
            block_hash: executed.hash,
            signatures: vec![signature],
        };
        let full = executed.txs.len() + proposal.skipped.len() < offered || executed.txs.len() >= limits.max_txs;
        let pending = self.chain.pending(parent, &executed)?;
        let txs = executed.txs.clone();
        let next_nonces = crate::chain::next_nonces(&txs);
        let hashes: Vec<_> = txs.iter().map(CheckedTx::hash).collect();
        // In-flight nonces first, then the pool: admission in between sees
        // the block's nonces as used either way.
        {
            let mut inflight = self.inflight();
            for (account, next) in &next_nonces {
                inflight.insert(*account, *next);
            }
        }
        {
            let mut pool = self.mempool();
            for (hash, why) in &proposal.skipped {
                // A gap may fill; anything else will fail again.
                if !matches!(why, TxError::NonceGap { .. }) {
                    debug!(tx = %stoq::crypto::hex(hash), %why, "dropping a transaction the block could not take");
                    pool.remove(hash);
                }
            }
            pool.on_committed(&hashes, next_nonces.iter().copied(), height + 1);
            self.metrics.mempool_txs.set(pool.len() as i64);
            self.metrics.mempool_bytes.set(pool.bytes() as i64);
        }
        Ok(Proposed {
            executed,
            certificate,
            pending,
            txs,
            next_nonces,
            full,
        })
    }

    /// Commits a proposed block (after its parent), then tells the
    /// subscribers. On failure its transactions go back to the mempool.
    pub(super) fn commit_proposed(&self, proposed: Proposed) -> Result<Committed> {
        let Proposed {
            executed,
            certificate,
            txs,
            next_nonces,
            ..
        } = proposed;
        let started = Instant::now();
        match self.chain.commit(executed, &certificate) {
            Ok(committed) => {
                self.metrics.commit.observe(started.elapsed().as_secs_f64());
                {
                    // The state shows these nonces now; keep only what a
                    // later block raised further.
                    let mut inflight = self.inflight();
                    for (account, next) in &next_nonces {
                        if inflight.get(account) == Some(next) {
                            inflight.remove(account);
                        }
                    }
                }
                self.record(&committed);
                Ok(committed)
            }
            Err(e) => {
                self.requeue(txs);
                Err(e)
            }
        }
    }

    /// Puts the transactions of blocks that will not commit back through
    /// admission, against the committed state.
    fn requeue(&self, txs: Vec<CheckedTx>) {
        {
            let mut inflight = self.inflight();
            for t in &txs {
                inflight.remove(&t.sender());
            }
        }
        let n = txs.len();
        let admitted = self
            .insert_checked(txs.into_iter().map(Ok).collect())
            .iter()
            .filter(|r| r.is_ok())
            .count();
        warn!(
            admitted,
            of = n,
            "transactions of an uncommitted block returned to the mempool"
        );
    }

    /// Builds, signs and commits one block on the tip now (what tests call
    /// to drive the chain without the producer; not to be mixed with a
    /// running producer).
    pub fn produce_block(&self, now_ms: u64) -> Result<Committed> {
        let proposed = self.propose_next(None, now_ms)?;
        self.commit_proposed(proposed)
    }

    /// Produces blocks until `shutdown`: every `block_interval`, or as
    /// soon as a full block is ready; each block is built while the one
    /// before it commits.
    pub fn spawn_producer(self: &Arc<Self>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let interval = this.config.block_interval;
            let mut next = tokio::time::Instant::now() + interval;
            let mut committing: Option<tokio::task::JoinHandle<Result<Committed>>> = None;
            let mut parent: Option<Pending> = None;
            // Whether the last block left ready transactions behind.
            let mut backlog = false;
            loop {
                let ready = this.mempool().ready_count();
                let full = ready >= this.config.max_block_txs || (backlog && ready > 0);
                if !full {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep_until(next) => {}
                        () = this.wake.notified() => {
                            if this.mempool().ready_count() < this.config.max_block_txs {
                                continue;
                            }
                        }
                    }
                }
                next = tokio::time::Instant::now() + interval;
                if !this.config.empty_blocks && this.mempool().ready_count() == 0 {
                    continue;
                }
                let step = this.clone();
                let on = parent.clone();
                let proposed = tokio::task::spawn_blocking(move || step.propose_next(on.as_ref(), now_ms())).await;
                // The parent's commit must succeed before this block may.
                if let Some(previous) = committing.take() {
                    if !this.finish_commit(previous).await {
                        parent = None;
                        if let Ok(Ok(p)) = proposed {
                            this.requeue(p.txs);
                        }
                        continue;
                    }
                }
                backlog = false;
                match proposed {
                    Ok(Ok(p)) => {
                        backlog = p.full;
                        parent = Some(p.pending.clone());
                        let step = this.clone();
                        committing = Some(tokio::task::spawn_blocking(move || step.commit_proposed(p)));
                    }
                    Ok(Err(e)) => {
                        this.metrics.production_failures.inc();
                        parent = None;
                        warn!(error = %e, "building a block failed; retrying at the next tick");
                    }
                    Err(e) => {
                        this.metrics.production_failures.inc();
                        parent = None;
                        error!(error = %e, "building a block panicked");
                    }
                }
            }
            if let Some(previous) = committing.take() {
                this.finish_commit(previous).await;
            }
            info!("block producer stopped");
        })
    }

    /// Waits for a commit; whether it succeeded.
    async fn finish_commit(&self, commit: tokio::task::JoinHandle<Result<Committed>>) -> bool {
        match commit.await {
            Ok(Ok(c)) => {
                debug!(height = c.block.header.height, txs = c.tx_hashes.len(), "committed");
                true
            }
            Ok(Err(e)) => {
                self.metrics.production_failures.inc();
                warn!(error = %e, "committing a block failed; its transactions are back in the mempool");
                false
            }
            Err(e) => {
                self.metrics.production_failures.inc();
                error!(error = %e, "committing a block panicked");
                false
            }
        }
    }
}
