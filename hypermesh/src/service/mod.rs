//! The node service: the chain, the mempool and single-validator block
//! production behind the [`NodeApi`](crate::api::NodeApi).
//!
//! Admission checks signatures on every core ([`check_batch`]) outside
//! any lock, then takes the mempool lock only to insert. The producer
//! builds a block on a timer, or as soon as the mempool holds a full
//! block: select, execute, sign the commit; the block leaves the mempool
//! and is written while the next one is built on it (see [`producer`]).
//!
//! [`check_batch`]: crate::mempool::check_batch

mod api_impl;
mod block_relay;
mod metrics;
mod producer;
#[cfg(test)]
mod tests;
pub mod validator;

pub use api_impl::ServiceApi;
pub use metrics::{outcome_label, ServiceMetrics};
pub use validator::ValidatorConfig;

/// Where transactions admitted through the API are also sent (the other
/// validators, by gossip).
pub(crate) type TxForward = Box<dyn Fn(&[Bytes]) + Send + Sync>;

/// Locks a mutex, taking it over from a thread that panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use stoq::crypto::KeyPair;
use tokio::sync::{watch, Notify};
use tracing::warn;

use crate::chain::{Chain, Committed};
use crate::codec::Hash;
use crate::error::{Error, Result, TxError};
use crate::mempool::{check_batch_with, default_threads, Mempool, MempoolConfig};
use crate::types::{AccountId, Block, KeyCache};

/// Most blocks kept decoded in memory for subscribers.
const RECENT_BLOCKS: usize = 64;
/// Most encoded bytes of the blocks kept in memory (the newest block is
/// kept whatever its size). Decoded transactions share the buffers they
/// arrived in, so this also bounds how much received data stays alive
/// after a commit.
const RECENT_BYTES: u64 = 16 << 20;
/// Sender keys kept decoded per cache generation.
const KEY_CACHE: usize = 8_192;

/// How the node produces blocks and admits transactions.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// Longest time between blocks.
    pub block_interval: Duration,
    /// Most transactions per block; a block is produced as soon as this
    /// many are ready, without waiting for the timer.
    pub max_block_txs: usize,
    /// Produce blocks when there is nothing to include (keeps the chain's
    /// clock moving); otherwise the timer skips empty blocks.
    pub empty_blocks: bool,
    /// Threads checking signatures on admission (0: one per core).
    pub verify_threads: usize,
    /// Mempool limits.
    pub mempool: MempoolConfig,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            block_interval: Duration::from_millis(1_000),
            max_block_txs: 5_000,
            empty_blocks: true,
            verify_threads: 0,
            mempool: MempoolConfig::default(),
        }
    }
}

/// A running node's state (see the [module documentation](self)).
pub struct NodeService {
    chain: Arc<Chain>,
    mempool: Mutex<Mempool>,
    key: KeyPair,
    account: AccountId,
    config: ServiceConfig,
    tip: watch::Sender<u64>,
    wake: Notify,
    /// Signalled whenever transactions are admitted (a proposer waiting
    /// for some stops waiting).
    admitted: Notify,
    recent: Mutex<RecentBlocks>,
    metrics: ServiceMetrics,
    last_block: Mutex<Option<Instant>>,
    /// Sender keys decoded recently (decoding costs about a verification).
    keys: KeyCache,
    /// The next nonce of each sender with transactions in a block still
    /// committing (they have left the mempool; the state does not show
    /// them yet).
    inflight: Mutex<HashMap<AccountId, u64>>,
    /// Set by a validator: admitted transactions go to the others.
    tx_forward: Mutex<Option<TxForward>>,
}

impl std::fmt::Debug for NodeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeService")
            .field("chain", &self.chain)
            .field("account", &stoq::crypto::hex(&self.account))
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl NodeService {
    /// A service producing blocks with `key`, which must hold more than
    /// two thirds of the voting power of the chain's validator set (the
    /// single-validator case; a larger set needs the BFT engine).
    pub fn new(chain: Chain, key: KeyPair, config: ServiceConfig) -> Result<Arc<NodeService>> {
        let tip = chain.tip();
        let account = key.public_key().node_id().0;
        let set = &tip.validators;
        let mine: u128 = set.0.iter().filter(|(a, _, _)| *a == account).map(|(_, _, p)| *p).sum();
        if set.0.is_empty() {
            return Err(Error::Genesis(
                "the chain has no validator; add one to the genesis".into(),
            ));
        }
        if mine.saturating_mul(3) <= set.total_power().saturating_mul(2) {
            return Err(Error::Genesis(format!(
                "this node's key holds {mine} of {} voting power; producing blocks alone needs more \
                 than two thirds (is this the validator's key?)",
                set.total_power()
            )));
        }
        Self::open(chain, key, config)
    }

    /// A service whose blocks come from BFT consensus with the other
    /// validators ([`NodeService::spawn_validator`]); `key` must be a
    /// validator's.
    ///
    /// A validator outside the active set (jailed after a slashing, or
    /// with its stake below the minimum) still starts: its consensus task
    /// follows the chain without voting, and votes again from the height
    /// where it is back in the set. A key that never bonded is refused, as
    /// most likely the wrong key.
    pub fn for_validator(chain: Chain, key: KeyPair, config: ServiceConfig) -> Result<Arc<NodeService>> {
        let account = key.public_key().node_id().0;
        let tip = chain.tip();
        if !tip.validators.0.iter().any(|(a, _, _)| *a == account) {
            let reader = chain.state().reader(tip.height)?;
            let Some(record) = crate::modules::staking::validator_at(&reader, &account)? else {
                return Err(Error::Genesis(format!(
                    "this node's key ({}) has never bonded as a validator (height {}); is this the validator's key?",
                    stoq::crypto::hex(&account),
                    tip.height
                )));
            };
            let why = if record.jailed {
                "jailed"
            } else {
                "its stake is below the minimum"
            };
            warn!(
                height = tip.height,
                stake = %record.stake,
                "this validator is not in the active set ({why}): following the chain without voting"
            );
        }
        Self::open(chain, key, config)
    }

    fn open(chain: Chain, key: KeyPair, config: ServiceConfig) -> Result<Arc<NodeService>> {
        let tip = chain.tip();
        let account = key.public_key().node_id().0;
        if config.max_block_txs == 0 {
            return Err(Error::Genesis("max_block_txs must be at least 1".into()));
        }
        let metrics = ServiceMetrics::default();
        metrics.height.set(tip.height as i64);
        let (tip_tx, _) = watch::channel(tip.height);
        Ok(Arc::new(NodeService {
            mempool: Mutex::new(Mempool::new(config.mempool.clone())),
            chain: Arc::new(chain),
            key,
            account,
            config,
            tip: tip_tx,
            wake: Notify::new(),
            admitted: Notify::new(),
            recent: Mutex::new(RecentBlocks::default()),
            metrics,
            last_block: Mutex::new(None),
            keys: KeyCache::new(KEY_CACHE),
            inflight: Mutex::new(HashMap::new()),
            tx_forward: Mutex::new(None),
        }))
    }

    /// The chain.
    pub fn chain(&self) -> &Arc<Chain> {
        &self.chain
    }

    /// The metrics (register them with [`ServiceMetrics::register`]).
    pub fn metrics(&self) -> &ServiceMetrics {
        &self.metrics
    }

    /// (hits, misses) of the sender key cache.
    pub fn key_cache_stats(&self) -> (u64, u64) {
        self.keys.stats()
    }

    /// This node's account.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// The height of each commit, as it happens.
    pub fn subscribe_tip(&self) -> watch::Receiver<u64> {
        self.tip.subscribe()
    }

    fn mempool(&self) -> MutexGuard<'_, Mempool> {
        match self.mempool.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn inflight(&self) -> MutexGuard<'_, HashMap<AccountId, u64>> {
        match self.inflight.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Checks and admits encoded transactions: the stateless checks in
    /// parallel on every core, then the mempool's.
    pub async fn admit(self: &Arc<Self>, txs: Vec<Bytes>) -> Vec<std::result::Result<Hash, TxError>> {
        let forward = lock(&self.tx_forward).is_some();
        let kept = if forward { txs.clone() } else { Vec::new() };
        let out = self.admit_checked(txs).await;
        if forward {
            let accepted: Vec<Bytes> = kept
                .into_iter()
                .zip(&out)
                .filter(|(_, r)| r.is_ok())
                .map(|(t, _)| t)
                .collect();
            if !accepted.is_empty() {
                if let Some(f) = lock(&self.tx_forward).as_ref() {
                    f(&accepted);
                }
            }
        }
        out
    }

    /// Admits transactions another validator gossiped (not sent on).
    pub async fn admit_forwarded(self: &Arc<Self>, txs: Vec<Bytes>) {
        let out = self.admit_checked(txs).await;
        let refused = out.iter().filter(|r| r.is_err()).count();
        if refused > 0 {
            let first = out.iter().find_map(|r| r.as_ref().err()).map(ToString::to_string);
            tracing::debug!(refused, of = out.len(), first, "gossiped transactions refused");
        }
    }

    async fn admit_checked(self: &Arc<Self>, txs: Vec<Bytes>) -> Vec<std::result::Result<Hash, TxError>> {
        let this = self.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let params = this.chain.runtime().params();
            let threads = match this.config.verify_threads {
                0 => default_threads(),
                n => n,
            };
            let chain = &this.chain;
            // Keys the cache misses (rare: it holds every key decoded or
            // looked up recently) come from the registry at the tip.
            let lookup = |account: &AccountId| {
                let reader = chain.state().reader(chain.tip().height).ok()?;
                chain.runtime().registered_key(&reader, account).ok().flatten()
            };
            check_batch_with(&txs, &params.chain_id, params.pow_bits, threads, &this.keys, &lookup)
        })
        .await;
        let checked = match checked {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "admission task failed");
                return Vec::new();
            }
        };
        let out = self.insert_checked(checked);
        if out.iter().any(|r| r.is_ok()) {
            self.admitted.notify_waiters();
        }
        if self.mempool().ready_count() >= self.config.max_block_txs {
            self.wake.notify_one();
        }
        out
    }

    fn insert_checked(
        &self,
        checked: Vec<std::result::Result<crate::types::CheckedTx, TxError>>,
    ) -> Vec<std::result::Result<Hash, TxError>> {
        // Lock order: in-flight nonces, then the mempool (the producer
        // never holds both). Taken before the state is read, so a commit
        // that lands meanwhile cannot drop its nonces from the map while
        // this batch still reads the state from before it.
        let inflight = self.inflight();
        let tip = self.chain.tip();
        let committed = match self.chain.state().reader(tip.height) {
            Ok(r) => Some(r),
            Err(e) => {
                warn!(error = %e, "cannot read the state to admit transactions");
                None
            }
        };
        // A batch is mostly bursts from the same senders: their nonce,
        // balance and locks are read once.
        let reader = committed.as_ref().map(crate::runtime::CachedRead::new);
        let mut out = Vec::with_capacity(checked.len());
        let mut pool = self.mempool();
        for c in checked {
            let r = c.and_then(|tx| {
                let reader = reader
                    .as_ref()
                    .ok_or_else(|| TxError::Malformed("the node cannot read its state; retry".into()))?;
                let height = tip.height + 1;
                let next = self.chain.runtime().check_admission(reader, &tx, height)?;
                let next = inflight.get(&tx.sender()).map_or(next, |n| next.max(*n));
                if tx.nonce() < next {
                    return Err(TxError::NonceReplayed {
                        got: tx.nonce(),
                        expected: next,
                    });
                }
                // No gaps: a transaction must follow the sender's committed
                // ones and those already waiting here.
                let expected = pool.pending_nonce(&tx.sender()).unwrap_or(next).max(next);
                if tx.nonce() > expected {
                    return Err(TxError::NonceGap {
                        got: tx.nonce(),
                        expected,
                    });
                }
                let hash = tx.hash();
                pool.insert(tx, next, height).map(|_| hash)
            });
            match &r {
                Ok(_) => {
                    self.metrics.admitted.inc();
                }
                Err(e) => {
                    self.metrics
                        .refused
                        .get_or_create(&vec![("code".to_string(), e.code().to_string())])
                        .inc();
                }
            }
            out.push(r);
        }
        self.metrics.mempool_txs.set(pool.len() as i64);
        self.metrics.mempool_bytes.set(pool.bytes() as i64);
        out
    }

    fn record(&self, committed: &Committed) {
        let n = committed.tx_hashes.len();
        let now = Instant::now();
        let mut last = match self.last_block.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(prev) = last.replace(now) {
            let secs = now.duration_since(prev).as_secs_f64();
            self.metrics.block_interval.observe(secs);
            if secs > 0.0 {
                self.metrics.tps.set(n as f64 / secs);
            }
        }
        drop(last);
        self.metrics.block_txs.observe(n as f64);
        self.metrics.committed_txs.inc_by(n as u64);
        let height = committed.block.header.height;
        self.metrics.height.set(height as i64);
        {
            let mut recent = match self.recent.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            recent.push(committed.block.clone(), committed.encoded_len);
        }
        self.tip.send_replace(height);
    }

    /// A committed block from memory if recent, else from the database.
    pub fn block_at(&self, height: u64) -> Result<Option<Arc<Block>>> {
        {
            let recent = match self.recent.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if let Some(b) = recent.get(height) {
                return Ok(Some(b));
            }
        }
        Ok(self.chain.block(height)?.map(Arc::new))
    }
}

/// The newest committed blocks, consecutive, within [`RECENT_BLOCKS`] and
/// [`RECENT_BYTES`].
#[derive(Default)]
struct RecentBlocks {
    blocks: VecDeque<(Arc<Block>, u64)>,
    bytes: u64,
}

impl RecentBlocks {
    /// Adds the block after the newest, dropping the oldest past the
    /// bounds.
    fn push(&mut self, block: Arc<Block>, encoded_len: u64) {
        let follows = self
            .blocks
            .back()
            .is_none_or(|(last, _)| last.header.height + 1 == block.header.height);
        if !follows {
            self.blocks.clear();
            self.bytes = 0;
        }
        self.bytes += encoded_len;
        self.blocks.push_back((block, encoded_len));
        while self.blocks.len() > 1 && (self.blocks.len() > RECENT_BLOCKS || self.bytes > RECENT_BYTES) {
            if let Some((_, len)) = self.blocks.pop_front() {
                self.bytes -= len;
            }
        }
    }

    /// The block at `height` if it is kept.
    fn get(&self, height: u64) -> Option<Arc<Block>> {
        let first = self.blocks.front()?.0.header.height;
        let index = usize::try_from(height.checked_sub(first)?).ok()?;
        self.blocks.get(index).map(|(b, _)| b.clone())
    }
}
