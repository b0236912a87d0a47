//! The binary encoding of the node API's requests and answers on STOQ RPC.
//!
//! Each [`super::NodeApi`] call is one STOQ method ([`methods`]); its
//! request and answer bodies use the chain's canonical codec
//! ([`crate::codec`]): big-endian integers, length-prefixed fields with
//! bounds, strict decoding (trailing bytes are refused). Chain values
//! travel in their own canonical encodings (blocks, transactions,
//! receipts, headers, state proofs), so what a client hashes or verifies
//! is what the node stored.
//!
//! Every decoder checks counts and lengths against the limits before
//! allocating, and fails with [`ApiError::BadRequest`] on anything
//! malformed. The `encode_*` functions for requests check the same limits,
//! so a client never sends what a node would refuse to read.

use std::time::Duration;

use bytes::Bytes;

use super::{
    AccountInfo, ApiError, ApiResult, BlockRef, NodeStatus, TxStatus, MAX_BLOCKS_PER_ANSWER, MAX_SUBMIT_BATCH,
};
use crate::chain::{EventRecord, StateProofAt, TxRecord};
use crate::codec::{Hash, ReadExt, Reader, WriteExt, Writer};
use crate::error::{Error, TxError};
use crate::runtime::{truncate, Event, Receipt};
use crate::state::{StateProof, MAX_KEY_LEN, MAX_PROOF_LEN, MAX_VALUE_LEN};
use crate::types::{
    AccountId, Block, BlockHeader, Transaction, MAX_ARGS_BYTES, MAX_BLOCK_BYTES, MAX_BLOCK_TXS, MAX_CHAIN_ID, MAX_NAME,
    MAX_PROOF_BYTES, MAX_TX_BYTES,
};

/// The STOQ method names (also the JSON-RPC method names over HTTP).
pub mod methods {
    /// [`crate::api::NodeApi::submit`].
    pub const SUBMIT: &str = "hm.submit";
    /// [`crate::api::NodeApi::status`].
    pub const STATUS: &str = "hm.status";
    /// [`crate::api::NodeApi::block`].
    pub const BLOCK: &str = "hm.block";
    /// [`crate::api::NodeApi::receipts`].
    pub const RECEIPTS: &str = "hm.receipts";
    /// [`crate::api::NodeApi::tx`].
    pub const TX: &str = "hm.tx";
    /// [`crate::api::NodeApi::account`].
    pub const ACCOUNT: &str = "hm.account";
    /// [`crate::api::NodeApi::query`].
    pub const QUERY: &str = "hm.query";
    /// [`crate::api::NodeApi::prove`].
    pub const PROVE: &str = "hm.prove";
    /// [`crate::api::NodeApi::blocks_from`].
    pub const BLOCKS: &str = "hm.blocks";
    /// [`crate::api::NodeApi::events_from`].
    pub const EVENTS: &str = "hm.events";

    /// Every method, in the order above.
    pub const ALL: [&str; 10] = [
        SUBMIT, STATUS, BLOCK, RECEIPTS, TX, ACCOUNT, QUERY, PROVE, BLOCKS, EVENTS,
    ];
}

/// Longest query path, in bytes.
pub const MAX_QUERY_PATH: usize = 128;
/// Largest query answer, in bytes.
pub const MAX_QUERY_ANSWER: usize = 16 * 1024 * 1024;
/// Largest encoded receipt accepted in an answer, in bytes.
pub const MAX_RECEIPT_BYTES: usize = MAX_BLOCK_BYTES;
/// Largest encoded block header accepted in an answer, in bytes.
pub const MAX_HEADER_BYTES: usize = 3 * (4 + MAX_PROOF_BYTES) + 1024;
/// Most events one events answer carries (a block's events come whole, so
/// this is above the per-read limit; the answer's size bounds it first).
pub const MAX_EVENTS_PER_ANSWER: usize = 1 << 22;
/// Longest event module or kind name, in bytes (as [`Event::check`]).
pub const MAX_EVENT_NAME: usize = 64;
/// Longest transaction refusal message carried, in bytes.
pub const MAX_REFUSAL_MESSAGE: usize = 1024;
/// Longest denomination name carried in a status, in bytes.
const MAX_DENOM_NAME: usize = 64;

/// Fewest bytes one encoded event record takes (height, tag, two empty
/// names, no attributes).
const MIN_EVENT_RECORD: usize = 8 + 1 + 1 + 1 + 1;

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

fn malformed(what: &'static str, reason: impl Into<String>) -> Error {
    Error::Decode {
        what,
        reason: reason.into(),
    }
}

/// Decodes all of `buf` with `f`, refusing trailing bytes.
fn decode<T>(buf: &[u8], what: &'static str, f: impl FnOnce(&mut Reader<'_>) -> crate::Result<T>) -> ApiResult<T> {
    let mut r = Reader::new(buf, what);
    let v = f(&mut r).map_err(bad)?;
    r.finish().map_err(|e| bad(Error::from(e)))?;
    Ok(v)
}

/// Reads a u32 count of at most `max` items of at least `min_item` bytes
/// each, refusing a count the remaining bytes cannot hold.
fn count(r: &mut Reader<'_>, what: &'static str, max: usize, min_item: usize) -> crate::Result<usize> {
    let n = r.count32(max)?;
    if n.saturating_mul(min_item) > r.remaining() {
        return Err(malformed(
            what,
            format!("{n} items cannot fit in {} bytes", r.remaining()),
        ));
    }
    Ok(n)
}

fn check(what: &str, len: usize, max: usize) -> ApiResult<()> {
    if len > max {
        return Err(ApiError::BadRequest(format!(
            "{what} of {len} bytes exceeds the limit of {max}"
        )));
    }
    Ok(())
}

fn bad_tag(what: &'static str, tag: u8) -> Error {
    malformed(what, format!("unknown tag {tag}"))
}

fn write_opt_u64(w: &mut Writer, v: Option<u64>) {
    match v {
        None => w.u8(0),
        Some(v) => w.u8(1).u64(v),
    };
}

fn read_opt_u64(r: &mut Reader<'_>, what: &'static str) -> crate::Result<Option<u64>> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(r.u64()?)),
        t => Err(bad_tag(what, t)),
    }
}

fn write_opt_str(w: &mut Writer, v: Option<&str>) {
    match v {
        None => w.u8(0),
        Some(s) => w.u8(1).str8(s),
    };
}

fn read_opt_str(r: &mut Reader<'_>, what: &'static str, max: usize) -> crate::Result<Option<String>> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(r.str8(max)?)),
        t => Err(bad_tag(what, t)),
    }
}

fn duration_ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// Fails unless a request body that carries nothing is empty.
pub fn decode_empty(body: &[u8]) -> ApiResult<()> {
    decode(body, "request", |_| Ok(()))
}

// --- submit ---------------------------------------------------------------

/// The `hm.submit` request: encoded transactions (each at most
/// [`MAX_TX_BYTES`], at most [`MAX_SUBMIT_BATCH`] of them).
pub fn encode_submit(txs: &[Bytes]) -> ApiResult<Vec<u8>> {
    if txs.len() > MAX_SUBMIT_BATCH {
        return Err(ApiError::BadRequest(format!(
            "{} transactions exceed the batch limit of {MAX_SUBMIT_BATCH}",
            txs.len()
        )));
    }
    let mut w = Writer::with_capacity(4 + txs.iter().map(|t| 4 + t.len()).sum::<usize>());
    w.u32(txs.len() as u32);
    for tx in txs {
        check("transaction", tx.len(), MAX_TX_BYTES)?;
        w.bytes32(tx);
    }
    Ok(w.finish())
}

/// Decodes an `hm.submit` request; the transactions are slices of `body`.
pub fn decode_submit(body: &Bytes) -> ApiResult<Vec<Bytes>> {
    decode(body, "submit request", |r| {
        let n = count(r, "submit request", MAX_SUBMIT_BATCH, 4)?;
        let mut txs = Vec::with_capacity(n);
        for _ in 0..n {
            let tx = r.bytes32(MAX_TX_BYTES)?;
            txs.push(if tx.is_empty() {
                Bytes::new()
            } else {
                body.slice_ref(tx)
            });
        }
        Ok(txs)
    })
}

/// Appends a transaction refusal, every field of it.
pub fn write_tx_error(w: &mut Writer, e: &TxError) {
    w.u16(e.code());
    match e {
        TxError::Malformed(m) => {
            w.bytes16(truncate(m, MAX_REFUSAL_MESSAGE).as_bytes());
        }
        TxError::Oversized { size, limit } => {
            w.u64(*size as u64).u64(*limit as u64);
        }
        TxError::WrongChain { got, expected } => {
            w.str8(truncate(got, 255)).str8(truncate(expected, 255));
        }
        TxError::InsufficientWork { got, needed } => {
            w.u32(*got).u32(*needed);
        }
        TxError::BadSignature | TxError::KeyAlgorithm | TxError::Duplicate => {}
        TxError::Expired { expiry, height } => {
            w.u64(*expiry).u64(*height);
        }
        TxError::NonceReplayed { got, expected } | TxError::NonceGap { got, expected } => {
            w.u64(*got).u64(*expected);
        }
        TxError::InsufficientFee { fee, balance } => {
            w.u128(*fee).u128(*balance);
        }
        TxError::FeeTooLow { offered, minimum } => {
            w.u128(*offered).u128(*minimum);
        }
        TxError::MempoolFull { floor } => {
            w.u128(*floor);
        }
        TxError::SenderLimit { limit } => {
            w.u64(*limit as u64);
        }
        TxError::UnknownSender { account } => {
            w.str8(truncate(account, 255));
        }
    }
}

/// Reads a transaction refusal written by [`write_tx_error`].
pub fn read_tx_error(r: &mut Reader<'_>) -> crate::Result<TxError> {
    let usize_of = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    Ok(match r.u16()? {
        1 => {
            let m = r.bytes16(MAX_REFUSAL_MESSAGE)?;
            TxError::Malformed(String::from_utf8_lossy(m).into_owned())
        }
        2 => TxError::Oversized {
            size: usize_of(r.u64()?),
            limit: usize_of(r.u64()?),
        },
        3 => TxError::WrongChain {
            got: r.str8(255)?,
            expected: r.str8(255)?,
        },
        4 => TxError::InsufficientWork {
            got: r.u32()?,
            needed: r.u32()?,
        },
        5 => TxError::BadSignature,
        6 => TxError::KeyAlgorithm,
        7 => TxError::Expired {
            expiry: r.u64()?,
            height: r.u64()?,
        },
        8 => TxError::NonceReplayed {
            got: r.u64()?,
            expected: r.u64()?,
        },
        9 => TxError::NonceGap {
            got: r.u64()?,
            expected: r.u64()?,
        },
        10 => TxError::InsufficientFee {
            fee: r.u128()?,
            balance: r.u128()?,
        },
        11 => TxError::FeeTooLow {
            offered: r.u128()?,
            minimum: r.u128()?,
        },
        12 => TxError::Duplicate,
        13 => TxError::MempoolFull { floor: r.u128()? },
        14 => TxError::SenderLimit {
            limit: usize_of(r.u64()?),
        },
        15 => TxError::UnknownSender { account: r.str8(255)? },
        code => return Err(malformed("transaction refusal", format!("unknown refusal code {code}"))),
    })
}

/// The `hm.submit` answer: each transaction's id or refusal, in order.
pub fn encode_submit_results(results: &[Result<Hash, TxError>]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(results.len() as u32);
    for r in results {
        match r {
            Ok(hash) => {
                w.u8(0).hash(hash);
            }
            Err(e) => {
                w.u8(1);
                write_tx_error(&mut w, e);
            }
        }
    }
    w.finish()
}

/// Decodes an `hm.submit` answer.
pub fn decode_submit_results(buf: &[u8]) -> ApiResult<Vec<Result<Hash, TxError>>> {
    decode(buf, "submit answer", |r| {
        let n = count(r, "submit answer", MAX_SUBMIT_BATCH, 3)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(match r.u8()? {
                0 => Ok(r.hash()?),
                1 => Err(read_tx_error(r)?),
                t => return Err(bad_tag("submit answer", t)),
            });
        }
        Ok(out)
    })
}

// --- status ---------------------------------------------------------------

/// The `hm.status` answer (the request is empty).
pub fn encode_status(s: &NodeStatus) -> Vec<u8> {
    let mut w = Writer::new();
    w.str8(truncate(&s.chain_id, MAX_CHAIN_ID))
        .hash(&s.genesis_hash)
        .u64(s.height)
        .hash(&s.tip_hash)
        .u64(s.tip_time_ms)
        .hash(&s.state_root)
        .u64(s.mempool_txs)
        .u32(s.pow_bits)
        .u128(s.min_fee_per_gas)
        .str8(truncate(&s.native_denom, MAX_DENOM_NAME))
        .hash(&s.node);
    w.finish()
}

/// Decodes an `hm.status` answer.
pub fn decode_status(buf: &[u8]) -> ApiResult<NodeStatus> {
    decode(buf, "status", |r| {
        Ok(NodeStatus {
            chain_id: r.str8(MAX_CHAIN_ID)?,
            genesis_hash: r.hash()?,
            height: r.u64()?,
            tip_hash: r.hash()?,
            tip_time_ms: r.u64()?,
            state_root: r.hash()?,
            mempool_txs: r.u64()?,
            pow_bits: r.u32()?,
            min_fee_per_gas: r.u128()?,
            native_denom: r.str8(MAX_DENOM_NAME)?,
            node: r.hash()?,
        })
    })
}

// --- block ----------------------------------------------------------------

/// The `hm.block` request.
pub fn encode_block_ref(at: &BlockRef) -> Vec<u8> {
    let mut w = Writer::new();
    match at {
        BlockRef::Latest => w.u8(0),
        BlockRef::Height(h) => w.u8(1).u64(*h),
        BlockRef::Hash(h) => w.u8(2).hash(h),
    };
    w.finish()
}

/// Decodes an `hm.block` request.
pub fn decode_block_ref(buf: &[u8]) -> ApiResult<BlockRef> {
    decode(buf, "block request", |r| {
        Ok(match r.u8()? {
            0 => BlockRef::Latest,
            1 => BlockRef::Height(r.u64()?),
            2 => BlockRef::Hash(r.hash()?),
            t => return Err(bad_tag("block request", t)),
        })
    })
}

/// The `hm.block` answer, from the block's encoding (`None`: no such
/// block).
pub fn encode_block_answer(block: Option<&[u8]>) -> Vec<u8> {
    let mut w = Writer::new();
    match block {
        None => w.u8(0),
        Some(b) => w.u8(1).bytes32(b),
    };
    w.finish()
}

/// Decodes an `hm.block` answer.
pub fn decode_block_answer(buf: &[u8]) -> ApiResult<Option<Block>> {
    decode(buf, "block answer", |r| match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(Block::decode(r.bytes32(MAX_BLOCK_BYTES)?)?)),
        t => Err(bad_tag("block answer", t)),
    })
}

// --- receipts -------------------------------------------------------------

/// A request naming one height (`hm.receipts`).
pub fn encode_height(height: u64) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(height);
    w.finish()
}

/// Decodes a request naming one height.
pub fn decode_height(buf: &[u8]) -> ApiResult<u64> {
    decode(buf, "height", |r| Ok(r.u64()?))
}

/// The `hm.receipts` answer.
pub fn encode_receipts(receipts: &[Receipt]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(receipts.len() as u32);
    for r in receipts {
        w.bytes32(&r.encode());
    }
    w.finish()
}

/// Decodes an `hm.receipts` answer.
pub fn decode_receipts(buf: &[u8]) -> ApiResult<Vec<Receipt>> {
    decode(buf, "receipts answer", |r| {
        let n = count(r, "receipts answer", MAX_BLOCK_TXS, 4)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(Receipt::decode(r.bytes32(MAX_RECEIPT_BYTES)?)?);
        }
        Ok(out)
    })
}

// --- tx, account ----------------------------------------------------------

/// A request naming one hash or account (`hm.tx`, `hm.account`).
pub fn encode_hash(hash: &Hash) -> Vec<u8> {
    let mut w = Writer::new();
    w.hash(hash);
    w.finish()
}

/// Decodes a request naming one hash or account.
pub fn decode_hash(buf: &[u8]) -> ApiResult<Hash> {
    decode(buf, "hash", |r| r.hash())
}

/// The `hm.tx` answer.
pub fn encode_tx_status(status: &TxStatus) -> ApiResult<Vec<u8>> {
    let mut w = Writer::new();
    match status {
        TxStatus::Unknown => {
            w.u8(0);
        }
        TxStatus::Pending => {
            w.u8(1);
        }
        TxStatus::Committed(rec) => {
            let tx = rec.tx.encode().map_err(internal)?;
            w.u8(2)
                .u64(rec.height)
                .u32(rec.index)
                .bytes32(&tx)
                .bytes32(&rec.receipt.encode());
        }
    }
    Ok(w.finish())
}

/// Decodes an `hm.tx` answer.
pub fn decode_tx_status(buf: &[u8]) -> ApiResult<TxStatus> {
    decode(buf, "tx answer", |r| {
        Ok(match r.u8()? {
            0 => TxStatus::Unknown,
            1 => TxStatus::Pending,
            2 => {
                let height = r.u64()?;
                let index = r.u32()?;
                let tx =
                    Transaction::decode(r.bytes32(MAX_TX_BYTES)?).map_err(|e| malformed("tx answer", e.to_string()))?;
                let receipt = Receipt::decode(r.bytes32(MAX_RECEIPT_BYTES)?)?;
                TxStatus::Committed(Box::new(TxRecord {
                    height,
                    index,
                    tx,
                    receipt,
                }))
            }
            t => return Err(bad_tag("tx answer", t)),
        })
    })
}

/// The `hm.account` answer (the request is [`encode_hash`] of the account).
pub fn encode_account_info(a: &AccountInfo) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(a.height)
        .u64(a.next_nonce)
        .u64(a.pending_nonce)
        .u128(a.balance)
        .u128(a.locked);
    w.finish()
}

/// Decodes an `hm.account` answer.
pub fn decode_account_info(buf: &[u8]) -> ApiResult<AccountInfo> {
    decode(buf, "account answer", |r| {
        Ok(AccountInfo {
            height: r.u64()?,
            next_nonce: r.u64()?,
            pending_nonce: r.u64()?,
            balance: r.u128()?,
            locked: r.u128()?,
        })
    })
}

/// An account id as a request (the same shape as a hash).
pub fn encode_account(account: &AccountId) -> Vec<u8> {
    encode_hash(account)
}

// --- query ----------------------------------------------------------------

/// The `hm.query` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRequest {
    /// The module.
    pub module: String,
    /// The query path within it.
    pub path: String,
    /// The arguments, encoded the way the module defines.
    pub args: Vec<u8>,
    /// The height to answer at (`None`: the tip).
    pub height: Option<u64>,
}

impl QueryRequest {
    /// The encoding.
    pub fn encode(&self) -> ApiResult<Vec<u8>> {
        check("module name", self.module.len(), MAX_NAME)?;
        check("query path", self.path.len(), MAX_QUERY_PATH)?;
        check("query arguments", self.args.len(), MAX_ARGS_BYTES)?;
        let mut w = Writer::new();
        w.str8(&self.module).str8(&self.path).bytes32(&self.args);
        write_opt_u64(&mut w, self.height);
        Ok(w.finish())
    }

    /// Decodes the encoding.
    pub fn decode(buf: &[u8]) -> ApiResult<Self> {
        decode(buf, "query request", |r| {
            Ok(QueryRequest {
                module: r.str8(MAX_NAME)?,
                path: r.str8(MAX_QUERY_PATH)?,
                args: r.bytes32(MAX_ARGS_BYTES)?.to_vec(),
                height: read_opt_u64(r, "query request")?,
            })
        })
    }
}

/// The `hm.query` answer: the height answered at and the value.
pub fn encode_query_answer(height: u64, value: &[u8]) -> ApiResult<Vec<u8>> {
    if value.len() > MAX_QUERY_ANSWER {
        return Err(ApiError::Internal(format!(
            "query answer of {} bytes exceeds the limit of {MAX_QUERY_ANSWER}",
            value.len()
        )));
    }
    let mut w = Writer::new();
    w.u64(height).bytes32(value);
    Ok(w.finish())
}

/// Decodes an `hm.query` answer.
pub fn decode_query_answer(buf: &[u8]) -> ApiResult<(u64, Vec<u8>)> {
    decode(buf, "query answer", |r| {
        Ok((r.u64()?, r.bytes32(MAX_QUERY_ANSWER)?.to_vec()))
    })
}

// --- prove ----------------------------------------------------------------

/// The `hm.prove` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProveRequest {
    /// The state key.
    pub key: Vec<u8>,
    /// The height whose state to prove (`None`: the tip).
    pub height: Option<u64>,
}

impl ProveRequest {
    /// The encoding.
    pub fn encode(&self) -> ApiResult<Vec<u8>> {
        check("state key", self.key.len(), MAX_KEY_LEN)?;
        let mut w = Writer::new();
        w.bytes16(&self.key);
        write_opt_u64(&mut w, self.height);
        Ok(w.finish())
    }

    /// Decodes the encoding.
    pub fn decode(buf: &[u8]) -> ApiResult<Self> {
        decode(buf, "prove request", |r| {
            Ok(ProveRequest {
                key: r.bytes16(MAX_KEY_LEN)?.to_vec(),
                height: read_opt_u64(r, "prove request")?,
            })
        })
    }
}

/// The `hm.prove` answer.
pub fn encode_proof(p: &StateProofAt) -> ApiResult<Vec<u8>> {
    let mut w = Writer::new();
    w.u64(p.height).hash(&p.root);
    match &p.value {
        None => {
            w.u8(0);
        }
        Some(v) => {
            if v.len() > MAX_VALUE_LEN {
                return Err(internal(format!("state value of {} bytes", v.len())));
            }
            w.u8(1).bytes32(v);
        }
    }
    w.bytes32(&p.proof.encode());
    match &p.header {
        None => {
            w.u8(0);
        }
        Some(h) => {
            w.u8(1).bytes32(&h.encode().map_err(internal)?);
        }
    }
    Ok(w.finish())
}

/// Decodes an `hm.prove` answer (does not verify it).
pub fn decode_proof(buf: &[u8]) -> ApiResult<StateProofAt> {
    decode(buf, "proof answer", |r| {
        let height = r.u64()?;
        let root = r.hash()?;
        let value = match r.u8()? {
            0 => None,
            1 => Some(r.bytes32(MAX_VALUE_LEN)?.to_vec()),
            t => return Err(bad_tag("proof answer", t)),
        };
        let proof = StateProof::decode(r.bytes32(MAX_PROOF_LEN)?)?;
        let header = match r.u8()? {
            0 => None,
            1 => Some(BlockHeader::decode(r.bytes32(MAX_HEADER_BYTES)?)?),
            t => return Err(bad_tag("proof answer", t)),
        };
        Ok(StateProofAt {
            height,
            root,
            value,
            proof,
            header,
        })
    })
}

// --- blocks ---------------------------------------------------------------

/// The `hm.blocks` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlocksRequest {
    /// First height wanted.
    pub from: u64,
    /// Most blocks wanted (the node caps it at [`MAX_BLOCKS_PER_ANSWER`]).
    pub max: u32,
    /// Longest to wait for block `from` (whole milliseconds).
    pub wait: Duration,
    /// Largest answer the caller reads, in bytes (0: the node's own frame
    /// limit); the node sends fewer blocks to stay under it, but always at
    /// least one.
    pub max_bytes: u32,
}

impl BlocksRequest {
    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.from)
            .u32(self.max)
            .u32(duration_ms(self.wait))
            .u32(self.max_bytes);
        w.finish()
    }

    /// Decodes the encoding.
    pub fn decode(buf: &[u8]) -> ApiResult<Self> {
        decode(buf, "blocks request", |r| {
            Ok(BlocksRequest {
                from: r.u64()?,
                max: r.u32()?,
                wait: Duration::from_millis(r.u32()?.into()),
                max_bytes: r.u32()?,
            })
        })
    }
}

/// The `hm.blocks` answer, from the blocks' encodings.
pub fn encode_blocks(encoded: &[Vec<u8>]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(encoded.len() as u32);
    for b in encoded {
        w.bytes32(b);
    }
    w.finish()
}

/// Bytes [`encode_blocks`] takes for blocks of these encoded sizes.
pub fn blocks_answer_len(sizes: impl IntoIterator<Item = usize>) -> usize {
    4 + sizes.into_iter().map(|s| 4 + s).sum::<usize>()
}

/// Decodes an `hm.blocks` answer.
pub fn decode_blocks(buf: &[u8]) -> ApiResult<Vec<Block>> {
    decode(buf, "blocks answer", |r| {
        let n = count(r, "blocks answer", MAX_BLOCKS_PER_ANSWER, 4)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(Block::decode(r.bytes32(MAX_BLOCK_BYTES)?)?);
        }
        Ok(out)
    })
}

// --- events ---------------------------------------------------------------

/// The `hm.events` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsRequest {
    /// First height wanted.
    pub from: u64,
    /// Only events of this module.
    pub module: Option<String>,
    /// Only events of this kind.
    pub kind: Option<String>,
    /// About how many events at most.
    pub limit: u32,
    /// Longest to wait for block `from` (whole milliseconds).
    pub wait: Duration,
    /// Largest answer the caller reads, in bytes (0: the node's own frame
    /// limit); the node cuts the answer at a block boundary to stay under
    /// it, but always sends the first block's events.
    pub max_bytes: u32,
}

impl EventsRequest {
    /// The encoding.
    pub fn encode(&self) -> ApiResult<Vec<u8>> {
        for name in [&self.module, &self.kind].into_iter().flatten() {
            check("event filter", name.len(), MAX_EVENT_NAME)?;
        }
        let mut w = Writer::new();
        w.u64(self.from);
        write_opt_str(&mut w, self.module.as_deref());
        write_opt_str(&mut w, self.kind.as_deref());
        w.u32(self.limit).u32(duration_ms(self.wait)).u32(self.max_bytes);
        Ok(w.finish())
    }

    /// Decodes the encoding.
    pub fn decode(buf: &[u8]) -> ApiResult<Self> {
        decode(buf, "events request", |r| {
            Ok(EventsRequest {
                from: r.u64()?,
                module: read_opt_str(r, "events request", MAX_EVENT_NAME)?,
                kind: read_opt_str(r, "events request", MAX_EVENT_NAME)?,
                limit: r.u32()?,
                wait: Duration::from_millis(r.u32()?.into()),
                max_bytes: r.u32()?,
            })
        })
    }
}

/// One event record's encoding (what [`encode_events`] concatenates).
pub fn encode_event_record(e: &EventRecord) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(e.height);
    match &e.tx {
        None => w.u8(0),
        Some((index, hash)) => w.u8(1).u32(*index).hash(hash),
    };
    e.event.write(&mut w);
    w.finish()
}

fn read_event_record(r: &mut Reader<'_>) -> crate::Result<EventRecord> {
    let height = r.u64()?;
    let tx = match r.u8()? {
        0 => None,
        1 => Some((r.u32()?, r.hash()?)),
        t => return Err(bad_tag("event record", t)),
    };
    Ok(EventRecord {
        height,
        tx,
        event: Event::read(r)?,
    })
}

/// The `hm.events` answer from encoded records ([`encode_event_record`])
/// and the height to ask from next.
pub fn encode_events(records: &[Vec<u8>], next: u64) -> Vec<u8> {
    let mut w = Writer::new();
    w.u32(records.len() as u32);
    for r in records {
        w.fixed(r);
    }
    w.u64(next);
    w.finish()
}

/// Bytes [`encode_events`] takes besides the records.
pub const EVENTS_ANSWER_OVERHEAD: usize = 4 + 8;

/// Decodes an `hm.events` answer.
pub fn decode_events(buf: &[u8]) -> ApiResult<(Vec<EventRecord>, u64)> {
    decode(buf, "events answer", |r| {
        let n = count(r, "events answer", MAX_EVENTS_PER_ANSWER, MIN_EVENT_RECORD)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(read_event_record(r)?);
        }
        Ok((out, r.u64()?))
    })
}
