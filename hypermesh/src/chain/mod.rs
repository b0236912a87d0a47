//! The chain a node keeps: blocks, receipts and state in one redb
//! database, and the three steps a block goes through.
//!
//! 1. **Propose** ([`Chain::propose`]): the proposer builds a block from
//!    mempool candidates on top of the tip, executes it and fills in the
//!    header's roots.
//! 2. **Validate** ([`Chain::validate`]): any validator re-executes a
//!    proposal and checks every header field against what it computed.
//! 3. **Commit** ([`Chain::commit`]): once a commit certificate exists
//!    (one signature for a single validator, a BFT quorum otherwise), the
//!    block, its receipts, the transaction index and the new state are
//!    written in one database transaction. A crash leaves either all of
//!    it or none of it; reopening resumes at the last committed block.
//!
//! Steps 1 and 2 write nothing, so a consensus engine may run them for
//! proposals that never commit. The chain does no I/O besides its
//! database and keeps no clock: callers pass the time.

mod blocklog;
mod commit;
mod pending;
mod read;
mod tables;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_keys;

pub use blocklog::BlockLog;
pub use commit::{vote_signing_bytes, CommitCertificate, CommitSignature, VoteKind, MAX_COMMIT_SIGNATURES};
pub(crate) use pending::next_nonces;
pub use pending::Pending;
pub use read::{EventRecord, StateProofAt, TxRecord, MAX_EVENTS_PER_READ};

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use redb::{Database, ReadableDatabase, ReadableTable};

use crate::codec::Hash;
use crate::error::{Error, Result};
use crate::modules::staking::{self, ValidatorSet};
use crate::runtime::{BlockInfo, BlockLimits, BlockOutcome, Genesis, Receipt, Runtime};
use crate::state::{StagedState, StateStore};
use crate::types::{AccountId, Block, BlockHeader, CheckedTx, KeyCache, ProofSection};
use crate::TxError;
use tables::{db_err, position, Location, BLOCKS, HASHES, META, META_GENESIS, META_SCHEMA, META_TIP, SCHEMA, TXS};

/// How far ahead of the validating node's clock a block's timestamp may be.
pub const MAX_CLOCK_DRIFT_MS: u64 = 10_000;

/// Settings of a [`Chain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainConfig {
    /// Historical state versions kept readable and provable (older ones are
    /// pruned as blocks commit); at least 1.
    pub state_history: u64,
    /// The database's own page cache, in bytes (the OS caches the file
    /// as well). Default [`DEFAULT_CACHE_BYTES`].
    pub cache_bytes: usize,
}

/// The database page cache a chain opens with by default: 64 MiB, not
/// redb's 1 GiB. Under a flood of transfers, 4 validators spent about 6 %
/// less CPU with it (`hypermesh bench consensus`, 225-234 us per transfer
/// against 242-251 us, two runs each): a large cache kept allocating fresh
/// pages for every block's writes.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            state_history: 10_000,
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

/// The last committed block, as the next one builds on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tip {
    /// Its height (0: only the genesis state).
    pub height: u64,
    /// Its header hash (the genesis hash at height 0).
    pub hash: Hash,
    /// Its timestamp (the genesis time at height 0).
    pub time_ms: u64,
    /// The state root after it.
    pub state_root: Hash,
    /// The validator set that must commit the next block.
    pub validators: ValidatorSet,
}

/// A block executed on top of the tip and not yet committed.
#[derive(Debug)]
pub struct Executed {
    /// The block (its `commit` field still empty).
    pub block: Block,
    /// Its header hash.
    pub hash: Hash,
    /// Its transactions with their encodings and ids.
    pub txs: Vec<CheckedTx>,
    /// What executing it produced.
    pub outcome: BlockOutcome,
    /// `outcome.receipts` encoded: hashed into the result root, then
    /// stored with the block.
    receipt_encodings: Vec<Vec<u8>>,
    staged: Arc<StagedState>,
}

/// A block a proposer built.
#[derive(Debug)]
pub struct Proposal {
    /// The block, executed.
    pub executed: Executed,
    /// Candidates left out because they failed the stateful checks.
    pub skipped: Vec<(Hash, TxError)>,
}

/// A block after commit: what subscribers and the mempool learn.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The block with its commit certificate.
    pub block: Arc<Block>,
    /// Its header hash.
    pub hash: Hash,
    /// Its receipts.
    pub receipts: Arc<Vec<Receipt>>,
    /// The ids of its transactions, in order.
    pub tx_hashes: Vec<Hash>,
    /// The next nonce of each sender in it.
    pub next_nonces: Vec<(AccountId, u64)>,
    /// The length of its canonical encoding, in bytes.
    pub encoded_len: u64,
}

/// Transactions a node has checked already (its mempool): for each of
/// the given transactions, the checked one identical to it, or `None`.
pub type KnownTxs<'a> = dyn Fn(&[Arc<crate::types::Transaction>]) -> Vec<Option<CheckedTx>> + Send + Sync + 'a;

/// A node's chain: database, runtime and tip.
pub struct Chain {
    runtime: Runtime,
    genesis: Genesis,
    genesis_hash: Hash,
    db: Arc<Database>,
    log: BlockLog,
    state: StateStore,
    config: ChainConfig,
    tip: RwLock<Arc<Tip>>,
    /// Serialises commits (readers never wait for it).
    commit_lock: Mutex<()>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("chain_id", &self.genesis.params.chain_id)
            .field("tip", &self.tip().height)
            .finish_non_exhaustive()
    }
}

impl Chain {
    /// Opens the chain in the database file at `path` (created if
    /// missing, started from `genesis`), with its block log beside it
    /// (`path` with the extension `blocks`).
    pub fn open(path: &Path, runtime: Runtime, genesis: &Genesis, config: ChainConfig) -> Result<Chain> {
        let db = Database::builder()
            .set_cache_size(config.cache_bytes)
            .create(path)
            .map_err(|e| Error::Store(format!("opening {}: {e}", path.display())))?;
        let log = BlockLog::open(&path.with_extension("blocks"))?;
        tracing::debug!(direct_io = log.is_direct(), "block log opened");
        Self::open_db(Arc::new(db), log, runtime, genesis, config)
    }

    /// Opens the chain in `db`. A fresh database is initialised with
    /// `genesis`; one written before must hold the same genesis (a data
    /// dir of another chain is refused) and resumes at its last committed
    /// block.
    pub fn open_db(
        db: Arc<Database>,
        log: BlockLog,
        runtime: Runtime,
        genesis: &Genesis,
        config: ChainConfig,
    ) -> Result<Chain> {
        if config.state_history == 0 {
            return Err(Error::Genesis("state_history must be at least 1".into()));
        }
        let genesis_hash = genesis.hash()?;
        let state = StateStore::open(db.clone())?;
        let txn = db.begin_write().map_err(db_err)?;
        {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            txn.open_table(BLOCKS).map_err(db_err)?;
            txn.open_table(HASHES).map_err(db_err)?;
            txn.open_table(TXS).map_err(db_err)?;
            let stored = meta.get(META_GENESIS).map_err(db_err)?.map(|v| v.value().to_vec());
            match stored {
                Some(bytes) => {
                    let schema = meta.get(META_SCHEMA).map_err(db_err)?.map(|v| v.value().to_vec());
                    if schema.as_deref() != Some(SCHEMA.to_be_bytes().as_slice()) {
                        return Err(Error::Store(format!(
                            "the data dir uses another table layout than this node's ({SCHEMA}); \
                             start from an empty data dir or a snapshot"
                        )));
                    }
                    let theirs = Genesis::decode(&bytes)?;
                    if theirs.hash()? != genesis_hash {
                        return Err(Error::Genesis(format!(
                            "the data dir belongs to chain {:?} with another genesis; \
                             use the genesis it was created with, or an empty data dir",
                            theirs.params.chain_id
                        )));
                    }
                }
                None => {
                    let writes = runtime.genesis(genesis)?;
                    let staged = state.stage(0, writes)?;
                    state.write(&txn, &staged)?;
                    meta.insert(META_SCHEMA, SCHEMA.to_be_bytes().as_slice())
                        .map_err(db_err)?;
                    meta.insert(META_GENESIS, genesis.encode()?.as_slice())
                        .map_err(db_err)?;
                    meta.insert(META_TIP, 0u64.to_be_bytes().as_slice()).map_err(db_err)?;
                }
            }
        }
        txn.commit().map_err(db_err)?;
        let chain = Chain {
            runtime,
            genesis: genesis.clone(),
            genesis_hash,
            db,
            log,
            state,
            config,
            tip: RwLock::new(Arc::new(Tip {
                height: 0,
                hash: genesis_hash,
                time_ms: genesis.time_ms,
                state_root: [0; 32],
                validators: ValidatorSet::default(),
            })),
            commit_lock: Mutex::new(()),
        };
        chain.reconcile_log(chain.stored_height()?)?;
        let tip = chain.load_tip()?;
        *chain.tip.write().map_err(|_| poisoned())? = Arc::new(tip);
        Ok(chain)
    }

    /// The height of the last committed block, as the index records it.
    fn stored_height(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        let raw = meta
            .get(META_TIP)
            .map_err(db_err)?
            .ok_or_else(|| Error::Store("no tip recorded".into()))?;
        Ok(u64::from_be_bytes(
            raw.value()
                .try_into()
                .map_err(|_| Error::Store("malformed tip record".into()))?,
        ))
    }

    fn load_tip(&self) -> Result<Tip> {
        let height = self.stored_height()?;
        let (hash, time_ms) = if height == 0 {
            (self.genesis_hash, self.genesis.time_ms)
        } else {
            let header = self
                .header(height)?
                .ok_or_else(|| Error::Store(format!("tip block {height} is missing")))?;
            (header.hash()?, header.timestamp_ms)
        };
        let reader = self.state.reader(height)?;
        Ok(Tip {
            height,
            hash,
            time_ms,
            state_root: reader.root(),
            validators: staking::validator_set(&reader)?,
        })
    }

    /// Cuts what the log holds past the last indexed block (a commit
    /// that crashed between writing the log and the index); refuses a log
    /// shorter than the index says.
    fn reconcile_log(&self, height: u64) -> Result<()> {
        let end = match height {
            0 => 0,
            h => self
                .location(h)?
                .ok_or_else(|| Error::Store(format!("tip block {h} is not indexed")))?
                .end(),
        };
        let len = self.log.len()?;
        if len < end {
            return Err(Error::Store(format!(
                "the block log holds {len} bytes but block {height} ends at {end}: the data dir is damaged; \
                 restore it from a snapshot or a backup"
            )));
        }
        if len > end {
            tracing::warn!(
                bytes = len - end,
                "cutting an unindexed tail off the block log (a commit was interrupted)"
            );
            self.log.truncate(end)?;
        }
        Ok(())
    }

    /// The last committed block.
    pub fn tip(&self) -> Arc<Tip> {
        match self.tip.read() {
            Ok(t) => t.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The genesis.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The genesis hash (the first block's parent).
    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    /// The authenticated state.
    pub fn state(&self) -> &StateStore {
        &self.state
    }

    /// The chain id.
    pub fn chain_id(&self) -> &str {
        &self.genesis.params.chain_id
    }

    /// Builds the next block from `candidates` (tried in order) as
    /// `proposer` at `now_ms` (raised above the parent's timestamp).
    pub fn propose(
        &self,
        now_ms: u64,
        proposer: AccountId,
        candidates: impl IntoIterator<Item = CheckedTx>,
        limits: BlockLimits,
    ) -> Result<Proposal> {
        self.propose_slashing(now_ms, proposer, candidates, limits, Vec::new())
    }

    /// [`Chain::propose`] for a block whose evidence convicts `slashed`
    /// (validator, offence height) of equivocation.
    pub fn propose_slashing(
        &self,
        now_ms: u64,
        proposer: AccountId,
        candidates: impl IntoIterator<Item = CheckedTx>,
        limits: BlockLimits,
        slashed: Vec<(AccountId, u64)>,
    ) -> Result<Proposal> {
        let tip = self.tip();
        let reader = self.state.reader(tip.height)?;
        let info = BlockInfo {
            height: tip.height + 1,
            time_ms: now_ms.max(tip.time_ms + 1),
            proposer,
            slashed,
        };
        self.build_on(&tip, None, &reader, info, candidates, limits)
    }

    /// Builds the block after `tip`, reading the state after it from
    /// `reader` and staging the tree on `parent` when that is not written.
    fn build_on(
        &self,
        tip: &Tip,
        parent: Option<&StagedState>,
        reader: &dyn crate::runtime::StateRead,
        info: BlockInfo,
        candidates: impl IntoIterator<Item = CheckedTx>,
        limits: BlockLimits,
    ) -> Result<Proposal> {
        let built = self.runtime.build_block(reader, info.clone(), candidates, limits)?;
        let executed = self.finish(tip, parent, info, built.txs, built.outcome)?;
        Ok(Proposal {
            executed,
            skipped: built.skipped,
        })
    }

    /// The stateless checks of a proposed block's transactions, on up to
    /// `threads` threads: what [`Chain::validate`] takes. The key of a
    /// sender named by account comes from `keys`, from a transaction
    /// earlier in the block that carries it, or from the registry at the
    /// tip. The first refusal is returned with the transaction's index.
    pub fn check_txs(
        &self,
        block: &Block,
        keys: &KeyCache,
        threads: usize,
    ) -> std::result::Result<Vec<CheckedTx>, (usize, TxError)> {
        self.check_txs_known(block, keys, threads, &|txs| vec![None; txs.len()])
    }

    /// [`Chain::check_txs`], taking from `known` the transactions this
    /// node has checked already (its mempool): an identical transaction
    /// (body, work nonce, signature) from the same account (which fixes
    /// the key) passes the same checks. Only the others are verified: a
    /// validator that admitted a block's transactions as they were
    /// gossiped verifies each signature once, not twice.
    pub fn check_txs_known(
        &self,
        block: &Block,
        keys: &KeyCache,
        threads: usize,
        known: &KnownTxs<'_>,
    ) -> std::result::Result<Vec<CheckedTx>, (usize, TxError)> {
        for tx in &block.txs {
            if let Some(k) = tx.body.sender.key() {
                keys.insert(k.clone());
            }
        }
        let params = self.runtime.params();
        let mut found = known(&block.txs);
        found.resize(block.txs.len(), None);
        let reader = std::sync::OnceLock::new();
        let registered = |account: &AccountId| -> Option<stoq::crypto::PublicKey> {
            let r = reader
                .get_or_init(|| self.state.reader(self.tip().height).ok())
                .as_ref()?;
            let key = self.runtime.registered_key(r, account).ok().flatten()?;
            keys.insert(key.clone());
            Some(key)
        };
        let todo: Vec<usize> = (0..block.txs.len()).filter(|&i| found[i].is_none()).collect();
        let check = |&i: &usize| {
            let tx = &block.txs[i];
            let account = tx.body.sender.account();
            let key = match tx.body.sender.key() {
                Some(_) => None,
                None => keys.get(&account).or_else(|| registered(&account)),
            };
            CheckedTx::check_shared(Arc::clone(tx), &params.chain_id, params.pow_bits, key.as_ref()).map_err(|e| (i, e))
        };
        let checked = crate::mempool::par_map(&todo, threads, check);
        for (i, r) in todo.into_iter().zip(checked) {
            found[i] = Some(r?);
        }
        Ok(found.into_iter().flatten().collect())
    }

    /// Executes a proposed block on top of the tip and checks every header
    /// field against what it computes; `txs` are the block's transactions
    /// through the stateless checks (the caller runs those in parallel).
    /// Nothing is written.
    pub fn validate(&self, block: &Block, txs: Vec<CheckedTx>, now_ms: u64) -> Result<Executed> {
        self.validate_slashing(block, txs, now_ms, Vec::new())
    }

    /// [`Chain::validate`] for a block whose evidence (checked by the
    /// caller) convicts `slashed` (validator, offence height).
    pub fn validate_slashing(
        &self,
        block: &Block,
        txs: Vec<CheckedTx>,
        now_ms: u64,
        slashed: Vec<(AccountId, u64)>,
    ) -> Result<Executed> {
        let tip = self.tip();
        let h = &block.header;
        let bad = |m: String| Err(Error::InvalidBlock(m));
        if h.chain_id != self.chain_id() {
            return bad(format!("chain {:?}, this is {:?}", h.chain_id, self.chain_id()));
        }
        if h.height != tip.height + 1 {
            return bad(format!("height {}, the next is {}", h.height, tip.height + 1));
        }
        if h.parent_hash != tip.hash {
            return bad("parent hash is not the tip's".into());
        }
        if h.timestamp_ms <= tip.time_ms {
            return bad("timestamp is not after the parent's".into());
        }
        if h.timestamp_ms > now_ms.saturating_add(MAX_CLOCK_DRIFT_MS) {
            return bad(format!(
                "timestamp is more than {MAX_CLOCK_DRIFT_MS} ms ahead of this node's clock"
            ));
        }
        if !tip.validators.0.is_empty() && !tip.validators.0.iter().any(|(a, _, _)| a == &h.proposer) {
            return bad("the proposer is not a validator".into());
        }
        if txs.len() != block.txs.len() || txs.iter().zip(&block.txs).any(|(c, t)| c.tx() != t.as_ref()) {
            return bad("the checked transactions are not the block's".into());
        }
        let reader = self.state.reader(tip.height)?;
        let info = BlockInfo {
            height: h.height,
            time_ms: h.timestamp_ms,
            proposer: h.proposer,
            slashed,
        };
        let outcome = self.runtime.execute_block(&reader, info.clone(), &txs)?;
        let mut executed = self.finish(&tip, None, info, txs, outcome)?;
        let ours = &executed.block.header;
        for (name, theirs, mine) in [
            ("transactions root", h.tx_root, ours.tx_root),
            ("state root", h.state_root, ours.state_root),
            ("validator set hash", h.validator_set_hash, ours.validator_set_hash),
            ("result root", h.result_root, ours.result_root),
        ] {
            if theirs != mine {
                return bad(format!("{name} does not match execution"));
            }
        }
        // Keep the proposer's proof section: the consensus layer checks it.
        executed.block.header.proofs = h.proofs.clone();
        executed.hash = executed.block.header.hash()?;
        Ok(executed)
    }

    /// Stages the state and assembles the header of an executed block.
    /// The writes move into the staged state (`outcome.writes` is left
    /// empty); the two Merkle roots are computed on a second thread while
    /// the state tree is.
    fn finish(
        &self,
        tip: &Tip,
        parent: Option<&StagedState>,
        info: BlockInfo,
        txs: Vec<CheckedTx>,
        mut outcome: BlockOutcome,
    ) -> Result<Executed> {
        let writes = std::mem::take(&mut outcome.writes);
        let (staged, roots) = std::thread::scope(|scope| {
            let (txs, receipts) = (&txs, &outcome.receipts);
            let roots = scope.spawn(move || {
                let ids: Vec<Hash> = txs.iter().map(CheckedTx::hash).collect();
                let encoded: Vec<Vec<u8>> = receipts.iter().map(Receipt::encode).collect();
                (
                    Block::tx_root_of_ids(&ids),
                    Receipt::root_of_encodings(&encoded),
                    encoded,
                )
            });
            let staged = self.state.stage_on(parent, info.height, writes);
            let roots = roots
                .join()
                .map_err(|_| Error::Store("computing a block's roots panicked".into()));
            (staged, roots)
        });
        let (staged, (tx_root, result_root, receipt_encodings)) = (staged?, roots?);
        let header = BlockHeader {
            chain_id: self.chain_id().to_string(),
            height: info.height,
            parent_hash: tip.hash,
            timestamp_ms: info.time_ms,
            proposer: info.proposer,
            tx_root,
            state_root: staged.root(),
            validator_set_hash: tip.validators.hash(),
            result_root,
            proofs: ProofSection::default(),
        };
        let hash = header.hash()?;
        Ok(Executed {
            block: Block {
                header,
                txs: txs.iter().map(|t| t.shared_tx().clone()).collect(),
                commit: Vec::new(),
            },
            hash,
            txs,
            outcome,
            receipt_encodings,
            staged: Arc::new(staged),
        })
    }

    /// Commits an executed block with its certificate, which must carry a
    /// quorum of the tip's validator set (for a chain with no validators,
    /// any certificate naming the block). Block, receipts, transaction
    /// index, state and tip are written in one database transaction.
    pub fn commit(&self, executed: Executed, certificate: &CommitCertificate) -> Result<Committed> {
        let _guard = self.commit_lock.lock().map_err(|_| poisoned())?;
        let tip = self.tip();
        let height = executed.block.header.height;
        if height != tip.height + 1 || executed.block.header.parent_hash != tip.hash {
            return Err(Error::InvalidBlock(format!(
                "block {height} does not extend the tip {} (executed on a stale tip?)",
                tip.height
            )));
        }
        if tip.validators.0.is_empty() {
            if certificate.height != height || certificate.block_hash != executed.hash {
                return Err(Error::InvalidBlock("commit certificate is for another block".into()));
            }
        } else {
            certificate.verify(self.chain_id(), &tip.validators, height, &executed.hash)?;
        }
        let mut block = executed.block;
        block.commit = certificate.encode()?;
        let tx_hashes: Vec<Hash> = executed.txs.iter().map(CheckedTx::hash).collect();

        // The record is written and synced on a thread of its own while
        // this one stages the index in a database transaction; that
        // transaction commits only once the record is on disk, so the
        // index never points past the log.
        let (appended, staged) = std::thread::scope(|scope| {
            let (block, txs, receipts) = (&block, &executed.txs, &executed.receipt_encodings);
            let events = &executed.outcome.block_events;
            let writer = scope.spawn(move || {
                self.log.append(|w| {
                    let n = Block::write_parts(w, &block.header, txs.iter().map(CheckedTx::bytes), &block.commit)?;
                    tables::write_results(w, receipts, events)?;
                    Ok(n)
                })
            });
            let staged = self.stage_index(height, &executed.staged, &executed.hash, &tx_hashes);
            let appended = writer
                .join()
                .unwrap_or_else(|_| Err(Error::Store("the block log writer panicked".into())));
            (appended, staged)
        });
        // An error drops the unfinished transaction, which aborts it.
        let (offset, block_len, record_len) = appended?;
        let indexed = staged.and_then(|txn| {
            let location = Location {
                offset,
                block_len,
                record_len,
            };
            {
                let mut blocks = txn.open_table(BLOCKS).map_err(db_err)?;
                blocks.insert(height, location.encode()).map_err(db_err)?;
            }
            txn.commit().map_err(db_err)
        });
        if let Err(e) = indexed {
            // Nothing points at the record: drop it now rather than at the
            // next open.
            let _ = self.log.truncate(offset);
            return Err(e);
        }

        let reader = self.state.reader(height)?;
        let next_nonces = pending::next_nonces(&executed.txs);
        let new_tip = Tip {
            height,
            hash: executed.hash,
            time_ms: block.header.timestamp_ms,
            state_root: block.header.state_root,
            validators: staking::validator_set(&reader)?,
        };
        *self.tip.write().map_err(|_| poisoned())? = Arc::new(new_tip);
        Ok(Committed {
            block: Arc::new(block),
            hash: executed.hash,
            receipts: Arc::new(executed.outcome.receipts),
            tx_hashes,
            next_nonces,
            encoded_len: block_len,
        })
    }
}

impl Chain {
    /// Everything a commit writes to the database but the block's location
    /// in the log: state, hash and transaction indexes, tip, pruning.
    fn stage_index(
        &self,
        height: u64,
        state: &StagedState,
        hash: &Hash,
        tx_hashes: &[Hash],
    ) -> Result<redb::WriteTransaction> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            self.state.write(&txn, state)?;
            let mut hashes = txn.open_table(HASHES).map_err(db_err)?;
            hashes.insert(hash, height).map_err(db_err)?;
            let mut txs = txn.open_table(TXS).map_err(db_err)?;
            // In key order: consecutive inserts then walk the same
            // B-tree pages instead of random ones.
            let mut sorted: Vec<(&Hash, u32)> = tx_hashes.iter().zip(0u32..).collect();
            sorted.sort_unstable_by_key(|(h, _)| *h);
            for (hash, i) in sorted {
                txs.insert(*hash, position(height, i)).map_err(db_err)?;
            }
            let mut meta = txn.open_table(META).map_err(db_err)?;
            meta.insert(META_TIP, height.to_be_bytes().as_slice()).map_err(db_err)?;
        }
        if let Some(keep_from) = (height + 1).checked_sub(self.config.state_history) {
            if keep_from > 0 {
                self.state.prune(&txn, keep_from)?;
            }
        }
        Ok(txn)
    }
}

fn poisoned() -> Error {
    Error::Store("a thread panicked while holding the chain's lock".into())
}
