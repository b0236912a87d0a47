//! The node API: what daemons, apps, tools and the web UI ask a node.
//!
//! One set of calls ([`NodeApi`]) served over two transports: STOQ RPC
//! for daemons and apps (binary, [`wire`]), and JSON-RPC 2.0 over HTTP on
//! `[::1]` for the web UI and tools ([`http`]). Errors carry the same
//! stable code on both ([`ApiError::code`]).
//!
//! Subscriptions are cursors: a caller asks for blocks (or events) from a
//! height and waits up to a deadline for the first one to exist, then
//! asks again from where the answer ended. A reconnecting subscriber
//! neither misses nor repeats anything, and the node keeps no
//! per-subscriber state.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::chain::{EventRecord, StateProofAt, TxRecord};
use crate::codec::Hash;
use crate::error::{Error, TxError};
use crate::runtime::Receipt;
use crate::types::{AccountId, Block};

pub mod http;
pub mod stoq_rpc;
pub mod wire;

#[cfg(test)]
mod tests;

/// Most transactions one submit call carries.
pub const MAX_SUBMIT_BATCH: usize = 4_096;
/// Most blocks one subscription answer carries.
pub const MAX_BLOCKS_PER_ANSWER: usize = 64;
/// Longest a subscription call waits for something new.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// Which block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockRef {
    /// The last committed block.
    Latest,
    /// By height.
    Height(u64),
    /// By header hash.
    Hash(Hash),
}

/// A node's view of its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// The chain id.
    pub chain_id: String,
    /// The genesis hash.
    pub genesis_hash: Hash,
    /// Height of the last committed block.
    pub height: u64,
    /// Its hash.
    pub tip_hash: Hash,
    /// Its timestamp, ms since the Unix epoch.
    pub tip_time_ms: u64,
    /// The state root after it.
    pub state_root: Hash,
    /// Transactions waiting in the mempool.
    pub mempool_txs: u64,
    /// Proof-of-work bits a transaction needs.
    pub pow_bits: u32,
    /// Lowest fee per gas the node admits.
    pub min_fee_per_gas: u128,
    /// The fee denomination.
    pub native_denom: String,
    /// This node's account (its key's id).
    pub node: AccountId,
}

/// Where a transaction is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxStatus {
    /// In a committed block, with its receipt.
    Committed(Box<TxRecord>),
    /// Admitted and waiting in the mempool.
    Pending,
    /// Not known to this node.
    Unknown,
}

/// An account as a wallet needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// Height the answer is for.
    pub height: u64,
    /// Next nonce in the committed state.
    pub next_nonce: u64,
    /// Next nonce counting the sender's transactions waiting in the
    /// mempool (what to sign next).
    pub pending_nonce: u64,
    /// Balance in the native denomination (locked included).
    pub balance: u128,
    /// The locked part of it.
    pub locked: u128,
}

/// Why a call failed. The code is the same on STOQ (application error
/// code) and JSON-RPC (error code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// A transaction was refused (code 1000 + its [`TxError::code`]).
    #[error(transparent)]
    Tx(#[from] TxError),
    /// The request does not decode or names something invalid (400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Nothing by that name (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// A state version that is pruned or not yet written (410).
    #[error("state not available: {0}")]
    Unavailable(String),
    /// A module refused the query (422).
    #[error("query refused: {0}")]
    Query(String),
    /// The node is overloaded or shutting down; retry (503).
    #[error("busy: {0}")]
    Busy(String),
    /// The node failed (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The stable code.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::Tx(e) => 1000 + e.code(),
            ApiError::BadRequest(_) => 400,
            ApiError::NotFound(_) => 404,
            ApiError::Unavailable(_) => 410,
            ApiError::Query(_) => 422,
            ApiError::Busy(_) => 503,
            ApiError::Internal(_) => 500,
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Tx(t) => ApiError::Tx(t),
            Error::VersionUnavailable { .. } => ApiError::Unavailable(e.to_string()),
            Error::Decode { .. } | Error::Encode { .. } => ApiError::BadRequest(e.to_string()),
            Error::Module { .. } | Error::OutOfGas { .. } => ApiError::Query(e.to_string()),
            Error::BadProof(_)
            | Error::Signing(_)
            | Error::Store(_)
            | Error::InvalidBlock(_)
            | Error::Genesis(_)
            | Error::Consensus(_) => ApiError::Internal(e.to_string()),
        }
    }
}

/// An API result.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// The calls a node answers. Implemented by the node service; served by
/// [`stoq_rpc`] and [`http`]; called remotely through
/// [`crate::client::Client`].
#[async_trait::async_trait]
pub trait NodeApi: Send + Sync + 'static {
    /// Admits encoded transactions (at most [`MAX_SUBMIT_BATCH`]): each
    /// gets its id or its refusal, in order.
    async fn submit(&self, txs: Vec<Bytes>) -> ApiResult<Vec<Result<Hash, TxError>>>;

    /// The node's status.
    fn status(&self) -> ApiResult<NodeStatus>;

    /// A committed block.
    fn block(&self, at: BlockRef) -> ApiResult<Option<Arc<Block>>>;

    /// The receipts of the committed block at `height`.
    fn receipts(&self, height: u64) -> ApiResult<Vec<Receipt>>;

    /// Where a transaction is.
    fn tx(&self, hash: &Hash) -> ApiResult<TxStatus>;

    /// An account's nonces and native balance.
    fn account(&self, account: &AccountId) -> ApiResult<AccountInfo>;

    /// A module query at the state after `height` (the tip when `None`);
    /// returns the height answered at.
    fn query(&self, module: &str, path: &str, args: &[u8], height: Option<u64>) -> ApiResult<(u64, Vec<u8>)>;

    /// A state value with its proof against the header at `height`.
    fn prove(&self, key: &[u8], height: Option<u64>) -> ApiResult<StateProofAt>;

    /// Committed blocks from height `from` on (at most `max`, capped at
    /// [`MAX_BLOCKS_PER_ANSWER`]); waits up to `wait` (capped at
    /// [`MAX_WAIT`]) for block `from` when it does not exist yet, and
    /// answers empty if it still does not.
    async fn blocks_from(&self, from: u64, max: usize, wait: Duration) -> ApiResult<Vec<Arc<Block>>>;

    /// Events of committed blocks from height `from` on, optionally of one
    /// module and kind, at most about `limit`; waits like
    /// [`NodeApi::blocks_from`]. Returns them and the height to ask from
    /// next.
    async fn events_from(
        &self,
        from: u64,
        module: Option<String>,
        kind: Option<String>,
        limit: usize,
        wait: Duration,
    ) -> ApiResult<(Vec<EventRecord>, u64)>;
}
