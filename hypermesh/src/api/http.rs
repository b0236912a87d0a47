//! The node API as JSON-RPC 2.0 over HTTP, for the web UI and tools.
//!
//! `POST /` takes one JSON-RPC request or a batch (an array of at most
//! [`MAX_BATCH`]); the methods are those of STOQ ([`methods`]) with named
//! parameters. `GET /health` answers `ok`; `GET /metrics` the Prometheus
//! text of the node's metrics, when the server was given them.
//!
//! JSON conventions: byte strings (hashes, accounts, transactions,
//! arguments, values, proofs) are lowercase hex without `0x` (input may be
//! either case, with or without `0x`); amounts and fees (u128) are decimal
//! strings; heights, nonces, gas and times are JSON numbers.
//!
//! Errors use the JSON-RPC codes for malformed calls (-32700 parse error,
//! -32600 invalid request, -32601 method not found, -32602 invalid params,
//! which [`ApiError::BadRequest`] maps to as well); every other
//! [`ApiError`] keeps its [`ApiError::code`] (1000 + n for a refused
//! transaction, 404, 410, 422, 500, 503), with `data.kind` naming the
//! variant and, for a refused transaction, `data.tx_code` and
//! `data.tx_kind`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::stoq_rpc::blocking;
use super::wire::methods;
use super::{
    AccountInfo, ApiError, ApiResult, BlockRef, NodeApi, NodeStatus, TxStatus, MAX_BLOCKS_PER_ANSWER, MAX_SUBMIT_BATCH,
    MAX_WAIT,
};
use crate::chain::{EventRecord, StateProofAt, MAX_EVENTS_PER_READ};
use crate::codec::Hash;
use crate::error::TxError;
use crate::runtime::{Event, Receipt};
use crate::types::{Block, BlockHeader, Transaction, MAX_TX_BYTES};

/// Most requests in one batch.
pub const MAX_BATCH: usize = 64;
/// Largest request body: 1 MiB plus one transaction of the largest size
/// in hex. Bigger bodies are refused with 413.
pub const MAX_BODY_BYTES: usize = (1 << 20) + 2 * MAX_TX_BYTES;
/// Most bytes of blocks (in their binary encoding) one `hm.blocks`
/// answer carries; it carries at least one block in any case, and `next`
/// says where to ask from.
pub const MAX_BLOCKS_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// The content type of `/metrics`.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// JSON-RPC 2.0 error codes of malformed calls.
pub mod codes {
    /// The body is not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a valid JSON-RPC request (or an empty or oversized batch).
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The parameters are missing, of the wrong type, or invalid.
    pub const INVALID_PARAMS: i64 = -32602;
    /// A failure of the server itself outside the node API.
    pub const INTERNAL_ERROR: i64 = -32603;
}

/// Renders the node's metrics in the Prometheus text format.
pub type MetricsFn = Arc<dyn Fn() -> String + Send + Sync>;

struct HttpState {
    api: Arc<dyn NodeApi>,
    metrics: Option<MetricsFn>,
    shutdown: CancellationToken,
}

/// The routes, for embedding in another server. Waiting calls end (with a
/// 503 error) when `shutdown` is cancelled.
pub fn router(api: Arc<dyn NodeApi>, metrics: Option<MetricsFn>, shutdown: CancellationToken) -> Router {
    let state = Arc::new(HttpState { api, metrics, shutdown });
    Router::new()
        .route("/", post(rpc))
        .route("/metrics", get(metrics_text))
        .route("/health", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Arc<dyn NodeApi>,
    metrics: Option<MetricsFn>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router(api, metrics, shutdown.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn metrics_text(State(s): State<Arc<HttpState>>) -> Response {
    match &s.metrics {
        Some(render) => ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], render()).into_response(),
        None => (StatusCode::NOT_FOUND, "no metrics here").into_response(),
    }
}

// --- JSON-RPC framing -------------------------------------------------------

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
struct Fail {
    code: i64,
    message: String,
    data: Option<Value>,
}

impl Fail {
    fn new(code: i64, message: impl Into<String>) -> Self {
        Fail {
            code,
            message: message.into(),
            data: None,
        }
    }

    fn params(message: impl Into<String>) -> Self {
        Fail::new(codes::INVALID_PARAMS, message)
    }

    fn to_json(&self) -> Value {
        let mut e = json!({ "code": self.code, "message": self.message });
        if let Some(d) = &self.data {
            e["data"] = d.clone();
        }
        e
    }
}

/// The name of an [`ApiError`] variant (`data.kind`).
fn api_kind(e: &ApiError) -> &'static str {
    match e {
        ApiError::Tx(_) => "Tx",
        ApiError::BadRequest(_) => "BadRequest",
        ApiError::NotFound(_) => "NotFound",
        ApiError::Unavailable(_) => "Unavailable",
        ApiError::Query(_) => "Query",
        ApiError::Busy(_) => "Busy",
        ApiError::Internal(_) => "Internal",
    }
}

/// The name of a [`TxError`] variant (`data.tx_kind`).
fn tx_kind(e: &TxError) -> &'static str {
    match e {
        TxError::Malformed(_) => "Malformed",
        TxError::Oversized { .. } => "Oversized",
        TxError::WrongChain { .. } => "WrongChain",
        TxError::InsufficientWork { .. } => "InsufficientWork",
        TxError::BadSignature => "BadSignature",
        TxError::KeyAlgorithm => "KeyAlgorithm",
        TxError::Expired { .. } => "Expired",
        TxError::NonceReplayed { .. } => "NonceReplayed",
        TxError::NonceGap { .. } => "NonceGap",
        TxError::InsufficientFee { .. } => "InsufficientFee",
        TxError::FeeTooLow { .. } => "FeeTooLow",
        TxError::Duplicate => "Duplicate",
        TxError::MempoolFull { .. } => "MempoolFull",
        TxError::SenderLimit { .. } => "SenderLimit",
        TxError::UnknownSender { .. } => "UnknownSender",
    }
}

impl From<ApiError> for Fail {
    fn from(e: ApiError) -> Self {
        let mut data = json!({ "kind": api_kind(&e) });
        if let ApiError::Tx(t) = &e {
            data["tx_code"] = json!(t.code());
            data["tx_kind"] = json!(tx_kind(t));
        }
        let code = match &e {
            ApiError::BadRequest(_) => codes::INVALID_PARAMS,
            other => i64::from(other.code()),
        };
        Fail {
            code,
            message: e.to_string(),
            data: Some(data),
        }
    }
}

/// A refused transaction inside a batch answer of `hm.submit`.
fn tx_error_json(e: &TxError) -> Value {
    json!({
        "code": ApiError::Tx(e.clone()).code(),
        "message": e.to_string(),
        "kind": tx_kind(e),
    })
}

fn reply(id: Value, result: Result<Value, Fail>) -> Value {
    match result {
        Ok(v) => json!({ "jsonrpc": "2.0", "result": v, "id": id }),
        Err(f) => json!({ "jsonrpc": "2.0", "error": f.to_json(), "id": id }),
    }
}

async fn rpc(State(s): State<Arc<HttpState>>, body: Bytes) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let f = Fail::new(codes::PARSE_ERROR, format!("parse error: {e}"));
            return Json(reply(Value::Null, Err(f))).into_response();
        }
    };
    match request {
        Value::Array(items) => {
            if items.is_empty() || items.len() > MAX_BATCH {
                let f = Fail::new(
                    codes::INVALID_REQUEST,
                    format!("a batch holds 1 to {MAX_BATCH} requests, this one {}", items.len()),
                );
                return Json(reply(Value::Null, Err(f))).into_response();
            }
            // Concurrently (one may wait for a block); dropping the set,
            // when the client goes away, aborts them all.
            let mut set = tokio::task::JoinSet::new();
            let n = items.len();
            for (i, item) in items.into_iter().enumerate() {
                let s = s.clone();
                set.spawn(async move { (i, handle(&s, item).await) });
            }
            let mut answers: Vec<Option<Value>> = vec![None; n];
            while let Some(done) = set.join_next().await {
                match done {
                    Ok((i, answer)) => answers[i] = answer,
                    Err(e) => {
                        let f = Fail::new(codes::INTERNAL_ERROR, format!("the call failed: {e}"));
                        answers.push(Some(reply(Value::Null, Err(f))));
                    }
                }
            }
            let answers: Vec<Value> = answers.into_iter().flatten().collect();
            if answers.is_empty() {
                StatusCode::NO_CONTENT.into_response()
            } else {
                Json(Value::Array(answers)).into_response()
            }
        }
        single => match handle(&s, single).await {
            Some(answer) => Json(answer).into_response(),
            None => StatusCode::NO_CONTENT.into_response(),
        },
    }
}

/// Handles one request; `None` for a notification (no `id`).
async fn handle(s: &HttpState, request: Value) -> Option<Value> {
    let invalid = |id: Value, why: &str| Some(reply(id, Err(Fail::new(codes::INVALID_REQUEST, why))));
    let Value::Object(mut obj) = request else {
        return invalid(Value::Null, "a request is a JSON object");
    };
    let id = match obj.remove("id") {
        None => None,
        Some(id @ (Value::Null | Value::Number(_) | Value::String(_))) => Some(id),
        Some(_) => return invalid(Value::Null, "id must be a string, a number or null"),
    };
    let some_id = || id.clone().unwrap_or(Value::Null);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return invalid(some_id(), "jsonrpc must be \"2.0\"");
    }
    let Some(Value::String(method)) = obj.remove("method") else {
        return invalid(some_id(), "method must be a string");
    };
    let params = obj.remove("params").unwrap_or(Value::Null);
    if !matches!(params, Value::Null | Value::Object(_) | Value::Array(_)) {
        return invalid(some_id(), "params must be an object or an array");
    }
    let result = call(s, &method, params).await;
    id.map(|id| reply(id, result))
}

async fn call(s: &HttpState, method: &str, params: Value) -> Result<Value, Fail> {
    let api = s.api.clone();
    match method {
        methods::SUBMIT => submit(s, parse(params)?).await,
        methods::STATUS => {
            let NoParams {} = parse(params)?;
            Ok(status_json(&api.status()?))
        }
        methods::BLOCK => {
            let p: BlockParams = parse(params)?;
            let at = match (p.height, p.hash) {
                (None, None) => BlockRef::Latest,
                (Some(h), None) => BlockRef::Height(h),
                (None, Some(h)) => BlockRef::Hash(hash_param("hash", &h)?),
                (Some(_), Some(_)) => return Err(Fail::params("give a height or a hash, not both")),
            };
            Ok(blocking(move || {
                Ok(match api.block(at)? {
                    Some(b) => block_json(&b, p.raw)?,
                    None => Value::Null,
                })
            })
            .await?)
        }
        methods::RECEIPTS => {
            let HeightParams { height } = parse(params)?;
            Ok(blocking(move || Ok(Value::Array(api.receipts(height)?.iter().map(receipt_json).collect()))).await?)
        }
        methods::TX => {
            let HashParams { hash } = parse(params)?;
            let hash = hash_param("hash", &hash)?;
            Ok(blocking(move || tx_status_json(&api.tx(&hash)?)).await?)
        }
        methods::ACCOUNT => {
            let AccountParams { account } = parse(params)?;
            let account = hash_param("account", &account)?;
            Ok(blocking(move || Ok(account_json(&api.account(&account)?))).await?)
        }
        methods::QUERY => {
            let p: QueryParams = parse(params)?;
            let args = hex_param("args", &p.args)?;
            Ok(blocking(move || {
                let (height, value) = api.query(&p.module, &p.path, &args, p.height)?;
                Ok(json!({ "height": height, "value": hex(&value) }))
            })
            .await?)
        }
        methods::PROVE => {
            let p: ProveParams = parse(params)?;
            let key = hex_param("key", &p.key)?;
            Ok(blocking(move || proof_json(&api.prove(&key, p.height)?)).await?)
        }
        methods::BLOCKS => {
            let p: BlocksParams = parse(params)?;
            let wait = Duration::from_millis(p.wait_ms.unwrap_or(0)).min(MAX_WAIT);
            let max = p.max.unwrap_or(MAX_BLOCKS_PER_ANSWER).clamp(1, MAX_BLOCKS_PER_ANSWER);
            let blocks = tokio::select! {
                r = api.blocks_from(p.from, max, wait) => r?,
                () = s.shutdown.cancelled() => return Err(shutting_down()),
            };
            Ok(blocking(move || {
                // Whole blocks up to the budget, at least one; `next` says
                // where the answer ended.
                let mut list = Vec::with_capacity(blocks.len());
                let mut size = 0;
                let mut next = p.from;
                for b in blocks.iter() {
                    let encoded = b.encode().map_err(internal)?;
                    size += encoded.len();
                    if !list.is_empty() && size > MAX_BLOCKS_ANSWER_BYTES {
                        break;
                    }
                    list.push(block_json_with(b, p.raw.then_some(encoded.as_slice()))?);
                    next = b.header.height.saturating_add(1);
                }
                Ok(json!({ "blocks": list, "next": next }))
            })
            .await?)
        }
        methods::EVENTS => {
            let p: EventsParams = parse(params)?;
            let wait = Duration::from_millis(p.wait_ms.unwrap_or(0)).min(MAX_WAIT);
            let limit = p.limit.unwrap_or(1_000).clamp(1, MAX_EVENTS_PER_READ);
            let (events, next) = tokio::select! {
                r = api.events_from(p.from, p.module, p.kind, limit, wait) => r?,
                () = s.shutdown.cancelled() => return Err(shutting_down()),
            };
            let list: Vec<Value> = events.iter().map(event_record_json).collect();
            Ok(json!({ "events": list, "next": next }))
        }
        other => Err(Fail::new(codes::METHOD_NOT_FOUND, format!("no method {other:?}"))),
    }
}

fn shutting_down() -> Fail {
    ApiError::Busy("the node is shutting down".into()).into()
}

async fn submit(s: &HttpState, p: SubmitParams) -> Result<Value, Fail> {
    match (p.txs, p.tx) {
        (Some(txs), None) => {
            if txs.len() > MAX_SUBMIT_BATCH {
                return Err(Fail::params(format!(
                    "{} transactions exceed the batch limit of {MAX_SUBMIT_BATCH}",
                    txs.len()
                )));
            }
            let raw = txs
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    unhex(t)
                        .map(Bytes::from)
                        .map_err(|e| Fail::params(format!("txs[{i}]: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let results = s.api.submit(raw).await?;
            Ok(Value::Array(
                results
                    .iter()
                    .map(|r| match r {
                        Ok(hash) => json!({ "hash": hex(hash) }),
                        Err(e) => json!({ "error": tx_error_json(e) }),
                    })
                    .collect(),
            ))
        }
        (None, Some(tx)) => {
            let raw = Bytes::from(hex_param("tx", &tx)?);
            match s.api.submit(vec![raw]).await?.into_iter().next() {
                Some(Ok(hash)) => Ok(json!({ "hash": hex(&hash) })),
                Some(Err(e)) => Err(ApiError::Tx(e).into()),
                None => Err(ApiError::Internal("the node answered no result".into()).into()),
            }
        }
        _ => Err(Fail::params("give either txs (a list) or tx (one)")),
    }
}

// --- parameters -------------------------------------------------------------

fn parse<T: DeserializeOwned>(params: Value) -> Result<T, Fail> {
    let params = match params {
        Value::Null => Value::Object(Map::new()),
        Value::Object(o) => Value::Object(o),
        _ => return Err(Fail::params("params must be an object of named fields")),
    };
    serde_json::from_value(params).map_err(|e| Fail::params(e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitParams {
    txs: Option<Vec<String>>,
    tx: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockParams {
    height: Option<u64>,
    hash: Option<String>,
    #[serde(default)]
    raw: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeightParams {
    height: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HashParams {
    hash: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountParams {
    account: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryParams {
    module: String,
    path: String,
    #[serde(default)]
    args: String,
    height: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProveParams {
    key: String,
    height: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BlocksParams {
    from: u64,
    max: Option<usize>,
    wait_ms: Option<u64>,
    #[serde(default)]
    raw: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsParams {
    from: u64,
    module: Option<String>,
    kind: Option<String>,
    limit: Option<usize>,
    wait_ms: Option<u64>,
}

// --- hex ----------------------------------------------------------------------

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Bytes from hex (either case, with or without `0x`).
pub fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.len() % 2 != 0 {
        return Err("hex of odd length".into());
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(format!("{:?} is not a hex digit", char::from(c))),
    };
    s.as_bytes()
        .chunks_exact(2)
        .map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

fn hex_param(name: &str, s: &str) -> Result<Vec<u8>, Fail> {
    unhex(s).map_err(|e| Fail::params(format!("{name}: {e}")))
}

fn hash_param(name: &str, s: &str) -> Result<Hash, Fail> {
    hex_param(name, s)?
        .try_into()
        .map_err(|_| Fail::params(format!("{name}: a hash is 32 bytes (64 hex digits)")))
}

// --- JSON shapes --------------------------------------------------------------

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// The status as JSON.
pub(super) fn status_json(s: &NodeStatus) -> Value {
    json!({
        "chain_id": s.chain_id,
        "genesis_hash": hex(&s.genesis_hash),
        "height": s.height,
        "tip_hash": hex(&s.tip_hash),
        "tip_time_ms": s.tip_time_ms,
        "state_root": hex(&s.state_root),
        "mempool_txs": s.mempool_txs,
        "pow_bits": s.pow_bits,
        "min_fee_per_gas": s.min_fee_per_gas.to_string(),
        "native_denom": s.native_denom,
        "node": hex(&s.node),
    })
}

fn header_fields(h: &BlockHeader) -> ApiResult<Map<String, Value>> {
    let v = json!({
        "height": h.height,
        "hash": hex(&h.hash().map_err(internal)?),
        "chain_id": h.chain_id,
        "parent_hash": hex(&h.parent_hash),
        "timestamp_ms": h.timestamp_ms,
        "proposer": hex(&h.proposer),
        "tx_root": hex(&h.tx_root),
        "state_root": hex(&h.state_root),
        "validator_set_hash": hex(&h.validator_set_hash),
        "result_root": hex(&h.result_root),
    });
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(internal("header JSON is not an object")),
    }
}

/// A transaction as JSON.
pub(super) fn tx_json(tx: &Transaction) -> ApiResult<Value> {
    let b = &tx.body;
    Ok(json!({
        "hash": hex(&tx.hash().map_err(internal)?),
        "sender": hex(&b.sender_id()),
        "sender_key": b.sender.key().map(|k| hex(&k.to_compact())),
        "nonce": b.nonce,
        "expiry_height": b.expiry_height,
        "gas_limit": b.gas_limit,
        "fee": b.fee.to_string(),
        "module": b.call.module,
        "method": b.call.method,
        "args": hex(&b.call.args),
    }))
}

/// A block as JSON: the header's fields, the transactions, and with
/// `raw` the block's canonical encoding in hex.
pub(super) fn block_json(b: &Block, raw: bool) -> ApiResult<Value> {
    if raw {
        block_json_with(b, Some(&b.encode().map_err(internal)?))
    } else {
        block_json_with(b, None)
    }
}

/// [`block_json`] with the block's encoding when it is wanted.
fn block_json_with(b: &Block, raw: Option<&[u8]>) -> ApiResult<Value> {
    let mut m = header_fields(&b.header)?;
    let txs = b.txs.iter().map(|t| tx_json(t)).collect::<ApiResult<Vec<_>>>()?;
    m.insert("txs".into(), Value::Array(txs));
    if let Some(raw) = raw {
        m.insert("raw".into(), Value::String(hex(raw)));
    }
    Ok(Value::Object(m))
}

fn attributes_json(e: &Event) -> Value {
    Value::Object(
        e.attributes
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(hex(v))))
            .collect(),
    )
}

/// An event as JSON.
pub(super) fn event_json(e: &Event) -> Value {
    json!({ "module": e.module, "kind": e.kind, "attributes": attributes_json(e) })
}

/// A receipt as JSON.
pub(super) fn receipt_json(r: &Receipt) -> Value {
    json!({
        "tx_hash": hex(&r.tx_hash),
        "success": r.success(),
        "error": r.error.as_ref().map(|(code, message)| json!({ "code": code, "message": message })),
        "gas_used": r.gas_used,
        "fee": r.fee.to_string(),
        "events": r.events.iter().map(event_json).collect::<Vec<_>>(),
        "output": hex(&r.output),
    })
}

/// An event record as JSON (`tx_index` and `tx_hash` are null for a
/// block hook's event).
pub(super) fn event_record_json(e: &EventRecord) -> Value {
    json!({
        "height": e.height,
        "tx_index": e.tx.map(|(i, _)| i),
        "tx_hash": e.tx.map(|(_, h)| hex(&h)),
        "module": e.event.module,
        "kind": e.event.kind,
        "attributes": attributes_json(&e.event),
    })
}

fn tx_status_json(s: &TxStatus) -> ApiResult<Value> {
    Ok(match s {
        TxStatus::Unknown => json!({ "status": "unknown" }),
        TxStatus::Pending => json!({ "status": "pending" }),
        TxStatus::Committed(rec) => json!({
            "status": "committed",
            "height": rec.height,
            "index": rec.index,
            "tx": tx_json(&rec.tx)?,
            "receipt": receipt_json(&rec.receipt),
        }),
    })
}

fn account_json(a: &AccountInfo) -> Value {
    json!({
        "height": a.height,
        "next_nonce": a.next_nonce,
        "pending_nonce": a.pending_nonce,
        "balance": a.balance.to_string(),
        "locked": a.locked.to_string(),
    })
}

/// A state proof as JSON: `proof` and `header_raw` are the canonical
/// encodings (hex), for a verifier that checks them itself.
pub(super) fn proof_json(p: &StateProofAt) -> ApiResult<Value> {
    let (header, header_raw) = match &p.header {
        Some(h) => (
            Value::Object(header_fields(h)?),
            Value::String(hex(&h.encode().map_err(internal)?)),
        ),
        None => (Value::Null, Value::Null),
    };
    Ok(json!({
        "height": p.height,
        "root": hex(&p.root),
        "value": p.value.as_deref().map(hex),
        "proof": hex(&p.proof.encode()),
        "header": header,
        "header_raw": header_raw,
    }))
}
