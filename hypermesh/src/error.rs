//! Errors of the HyperMesh library.
//!
//! [`TxError`] is why a transaction was refused; each variant has a stable
//! code that crosses the node API unchanged, so clients can act on it.

use trustchain::error::WireError;

/// A HyperMesh result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the HyperMesh library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bytes that do not decode as the value expected (truncated, over a
    /// size limit, trailing bytes, unknown version or tag).
    #[error("malformed {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A value that cannot be encoded within the format's limits.
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Which limit it breaks.
        reason: String,
    },
    /// A transaction refused, with the reason.
    #[error(transparent)]
    Tx(#[from] TxError),
    /// Signing failed (the key could not produce a signature).
    #[error("signing failed: {0}")]
    Signing(String),
    /// The database failed (I/O, corruption, a transaction that could not
    /// commit); what was being written was not.
    #[error("store: {0}")]
    Store(String),
    /// A state version that is not (or no longer) kept.
    #[error("state at version {version} is not available ({reason})")]
    VersionUnavailable {
        /// The version (block height) asked for.
        version: u64,
        /// Why: pruned, not yet written, ...
        reason: String,
    },
    /// A state proof or snapshot that does not verify against the root it
    /// claims.
    #[error("state proof does not verify: {0}")]
    BadProof(String),
    /// The transaction ran out of gas; it is recorded as failed.
    #[error("out of gas: limit {limit}, needed {needed}")]
    OutOfGas {
        /// The transaction's gas limit.
        limit: u64,
        /// Gas it would have used at the point it stopped.
        needed: u64,
    },
    /// A block that cannot be applied (a transaction in it fails the
    /// checks a proposer must make, a header that does not match what
    /// executing it gives). Validators answer such a proposal with nil.
    #[error("invalid block: {0}")]
    InvalidBlock(String),
    /// The consensus engine refused to go on (a write-ahead log that
    /// replays differently, an internal invariant); the node must stop
    /// rather than risk signing conflicting votes.
    #[error("consensus: {0}")]
    Consensus(String),
    /// A genesis file or parameter set that cannot start a chain.
    #[error("genesis: {0}")]
    Genesis(String),
    /// A module call that cannot run (unknown module or method, bad
    /// arguments, a failed check); the transaction is recorded as failed.
    #[error("{module}: {reason}")]
    Module {
        /// The module that refused.
        module: String,
        /// Why.
        reason: String,
    },
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        Error::Decode {
            what: e.what,
            reason: e.reason,
        }
    }
}

/// Why a transaction was refused. Codes are stable (see [`TxError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The bytes do not decode as a transaction.
    #[error("malformed transaction: {0}")]
    Malformed(String),
    /// The encoded transaction is over the size limit.
    #[error("transaction of {size} bytes exceeds the limit of {limit}")]
    Oversized {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Signed for another chain.
    #[error("transaction for chain {got:?}, this is {expected:?}")]
    WrongChain {
        /// The chain it names.
        got: String,
        /// This chain.
        expected: String,
    },
    /// The proof of work has fewer leading zero bits than the chain asks.
    #[error("proof of work has {got} leading zero bits, the chain asks for {needed}")]
    InsufficientWork {
        /// Bits it has.
        got: u32,
        /// Bits required.
        needed: u32,
    },
    /// The signature does not verify under the sender's key.
    #[error("the signature does not verify")]
    BadSignature,
    /// The sender's key is not an accepted algorithm.
    #[error("sender keys must be FN-DSA-1024")]
    KeyAlgorithm,
    /// Past its expiry height.
    #[error("expired at height {expiry}, the chain is at {height}")]
    Expired {
        /// The last height it was valid for.
        expiry: u64,
        /// The height it was checked for.
        height: u64,
    },
    /// The nonce was already used by this sender.
    #[error("nonce {got} already used; the next is {expected}")]
    NonceReplayed {
        /// The nonce it carries.
        got: u64,
        /// The sender's next nonce.
        expected: u64,
    },
    /// The nonce leaves a gap after the sender's next nonce.
    #[error("nonce {got} leaves a gap; the next is {expected}")]
    NonceGap {
        /// The nonce it carries.
        got: u64,
        /// The sender's next nonce.
        expected: u64,
    },
    /// The sender cannot pay the fee.
    #[error("balance {balance} cannot pay the fee of {fee}")]
    InsufficientFee {
        /// The fee.
        fee: u128,
        /// The sender's native balance.
        balance: u128,
    },
    /// The fee per gas is below the node's minimum.
    #[error("fee per gas {offered} is below the minimum of {minimum}")]
    FeeTooLow {
        /// Offered fee per unit of gas.
        offered: u128,
        /// The minimum.
        minimum: u128,
    },
    /// The same transaction is already known.
    #[error("transaction already known")]
    Duplicate,
    /// The sender already has as many transactions waiting as a node
    /// holds per sender; wait for some to be included.
    #[error("the sender already has {limit} transactions waiting; wait for some to be included")]
    SenderLimit {
        /// Transactions a sender may have waiting.
        limit: usize,
    },
    /// The transaction names its sender by account, but the chain holds
    /// no key for that account: an account's first transaction must carry
    /// the full key, which registers it.
    #[error("account {account} has no key on chain; send its first transaction with the full key")]
    UnknownSender {
        /// The account, in hex.
        account: String,
    },
    /// The mempool is full and the transaction pays too little to evict
    /// anything.
    #[error("mempool full; a fee per gas above {floor} is needed")]
    MempoolFull {
        /// The fee per gas of the cheapest transaction it would evict.
        floor: u128,
    },
}

impl TxError {
    /// The stable code of this refusal.
    pub fn code(&self) -> u16 {
        match self {
            TxError::Malformed(_) => 1,
            TxError::Oversized { .. } => 2,
            TxError::WrongChain { .. } => 3,
            TxError::InsufficientWork { .. } => 4,
            TxError::BadSignature => 5,
            TxError::KeyAlgorithm => 6,
            TxError::Expired { .. } => 7,
            TxError::NonceReplayed { .. } => 8,
            TxError::NonceGap { .. } => 9,
            TxError::InsufficientFee { .. } => 10,
            TxError::FeeTooLow { .. } => 11,
            TxError::Duplicate => 12,
            TxError::MempoolFull { .. } => 13,
            TxError::SenderLimit { .. } => 14,
            TxError::UnknownSender { .. } => 15,
        }
    }
}
