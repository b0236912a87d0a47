//! The client of the node API over STOQ, and building transactions.
//!
//! [`Client`] calls one node's [`crate::api::NodeApi`] methods (see
//! [`crate::api::stoq_rpc`]). It needs no TrustChain enrollment:
//! [`Client::unenrolled`] and [`Client::connect_with_bundle`] start an
//! endpoint with a self-signed FN-DSA identity that trusts the node's CA.
//! Answers are checked where the client can (proofs verify, blocks and
//! transactions are the ones asked for).
//!
//! [`build_tx`] signs a call and does its proof of work;
//! [`transfer_call`], [`bond_call`] and [`unbond_call`] build the common
//! calls.

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use stoq::crypto::KeyPair;
use stoq::endpoint::RpcError;
use stoq::pki::{CertificateCheck, TrustAnchors};
use stoq::tls::{SecurityMode, TlsContext};
use stoq::{Endpoint, EndpointConfig};
use trustchain::TrustBundle;

use crate::api::wire::{self, methods, BlocksRequest, EventsRequest, ProveRequest, QueryRequest};
use crate::api::{
    AccountInfo, ApiError, BlockRef, NodeStatus, TxStatus, MAX_BLOCKS_PER_ANSWER, MAX_SUBMIT_BATCH, MAX_WAIT,
};
use crate::chain::{EventRecord, StateProofAt, TxRecord};
use crate::codec::Hash;
use crate::error::TxError;
use crate::modules::{bank, staking};
use crate::runtime::Receipt;
use crate::types::{AccountId, Block, Call, Sender, Transaction, UnsignedTransaction, MAX_TX_BYTES};

/// How long one call waits for its answer (waiting calls: plus their wait).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest answer an endpoint made by this module reads: one block of the
/// largest size, with room to spare.
pub const CLIENT_MAX_FRAME: usize = crate::types::MAX_BLOCK_BYTES + (1 << 20);
/// Largest submit request sent at once: larger batches go as several
/// calls, in order, so they fit a node's default frame limit.
pub const SUBMIT_CHUNK_BYTES: usize = stoq::frame::DEFAULT_MAX_FRAME_LEN - 1024;
/// Blocks after the tip a transaction built by [`Client::send`] stays
/// valid.
pub const DEFAULT_EXPIRY_BLOCKS: u64 = 100;

/// A client result.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A transaction refusal as it arrived: its [`TxError::code`], the
/// message, and the refusal itself when its fields arrived too (always
/// for the per-transaction results of a submit; not when a whole call
/// failed with a refusal, which carries a code and a message only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTxError {
    /// The refusal's [`TxError::code`] (the API code is 1000 + it).
    pub code: u16,
    /// Its message.
    pub message: String,
    /// The refusal, when known in full.
    pub error: Option<TxError>,
}

impl RemoteTxError {
    /// The API code: 1000 + [`RemoteTxError::code`].
    pub fn api_code(&self) -> u16 {
        1000 + self.code
    }
}

impl std::fmt::Display for RemoteTxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "transaction refused ({}): {}", self.code, self.message)
    }
}

impl From<TxError> for RemoteTxError {
    fn from(e: TxError) -> Self {
        RemoteTxError {
            code: e.code(),
            message: e.to_string(),
            error: Some(e),
        }
    }
}

/// Why a client call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The call failed at the RPC layer (unknown method, deadline,
    /// overload, an application code this client does not know).
    #[error("rpc: {0}")]
    Rpc(RpcError),
    /// The node refused the call, with the error it gave (rebuilt from the
    /// stable code).
    #[error(transparent)]
    Api(ApiError),
    /// A transaction was refused.
    #[error("{0}")]
    Tx(RemoteTxError),
    /// The node's answer does not decode, or is not an answer to what was
    /// asked.
    #[error("malformed answer: {0}")]
    Decode(String),
    /// A state proof that does not verify.
    #[error("state proof does not verify: {0}")]
    Proof(String),
    /// Nothing happened in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The connection failed.
    #[error("transport: {0}")]
    Transport(String),
    /// A transaction could not be built (signing, encoding, proof of work).
    #[error("cannot build the transaction: {0}")]
    Build(String),
}

impl ClientError {
    /// The stable API code of a refusal by the node ([`ApiError::code`]),
    /// if this is one.
    pub fn code(&self) -> Option<u16> {
        match self {
            ClientError::Api(e) => Some(e.code()),
            ClientError::Tx(t) => Some(t.api_code()),
            ClientError::Rpc(RpcError::Application { code, .. }) => Some(*code),
            _ => None,
        }
    }
}

impl From<RpcError> for ClientError {
    fn from(e: RpcError) -> Self {
        match e {
            RpcError::BadRequest(m) => ClientError::Api(ApiError::BadRequest(m)),
            RpcError::Transport(m) => ClientError::Transport(m),
            RpcError::Application { code, message } => match code {
                1000..=1999 => ClientError::Tx(RemoteTxError {
                    code: code - 1000,
                    message,
                    error: None,
                }),
                404 => ClientError::Api(ApiError::NotFound(message)),
                410 => ClientError::Api(ApiError::Unavailable(message)),
                422 => ClientError::Api(ApiError::Query(message)),
                500 => ClientError::Api(ApiError::Internal(message)),
                503 => ClientError::Api(ApiError::Busy(message)),
                400 => ClientError::Api(ApiError::BadRequest(message)),
                _ => ClientError::Rpc(RpcError::Application { code, message }),
            },
            other => ClientError::Rpc(other),
        }
    }
}

fn decode_err(e: ApiError) -> ClientError {
    match e {
        ApiError::BadRequest(m) => ClientError::Decode(m),
        other => ClientError::Decode(other.to_string()),
    }
}

/// A request this client would not send (over a limit).
fn request_err(e: ApiError) -> ClientError {
    ClientError::Api(e)
}

/// A client of one node.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    addr: SocketAddr,
    server_name: String,
    /// The endpoint was made for this client (and is shut down with it).
    owned: bool,
    timeout: Duration,
}

/// An endpoint on `[::]` with a self-signed certificate for `key`,
/// trusting `anchors`, reading answers up to [`CLIENT_MAX_FRAME`].
pub fn unenrolled_endpoint(
    key: &KeyPair,
    anchors: TrustAnchors,
    checks: Vec<Arc<dyn CertificateCheck>>,
) -> Result<Endpoint> {
    let identity = trustchain::client::self_signed_identity(key, "hypermesh-client")
        .map_err(|e| ClientError::Transport(format!("client identity: {e}")))?;
    let tls = TlsContext::new(SecurityMode::PostQuantum, identity, None, anchors, checks)
        .map_err(|e| ClientError::Transport(format!("client TLS: {e}")))?;
    let mut config = EndpointConfig {
        listen: SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        ..EndpointConfig::default()
    };
    config.limits.max_frame_len = CLIENT_MAX_FRAME;
    Endpoint::bind(config, tls).map_err(|e| ClientError::Transport(format!("client endpoint: {e}")))
}

impl Client {
    /// A client over `endpoint` (an enrolled daemon's, say) of the node at
    /// `addr`, whose certificate must be valid for `server_name`.
    /// Connects now, so a wrong address fails here.
    pub async fn connect(endpoint: &Endpoint, addr: SocketAddr, server_name: &str) -> Result<Client> {
        let client = Client {
            endpoint: endpoint.clone(),
            addr,
            server_name: server_name.to_string(),
            owned: false,
            timeout: CALL_TIMEOUT,
        };
        client.connection().await?;
        Ok(client)
    }

    /// A client with its own endpoint and a self-signed identity for
    /// `key`, trusting `anchors` (the node's CA).
    pub async fn unenrolled(
        key: &KeyPair,
        anchors: TrustAnchors,
        addr: SocketAddr,
        server_name: &str,
    ) -> Result<Client> {
        Self::own(unenrolled_endpoint(key, anchors, Vec::new())?, addr, server_name).await
    }

    /// A client with its own endpoint and a self-signed identity for
    /// `key`, trusting the members of `bundle` and checking the node's
    /// certificate against it (revocations, the log) as a daemon does.
    pub async fn connect_with_bundle(
        key: &KeyPair,
        bundle: Arc<TrustBundle>,
        addr: SocketAddr,
        server_name: &str,
    ) -> Result<Client> {
        let anchors = bundle
            .trust_anchors()
            .map_err(|e| ClientError::Transport(format!("trust bundle: {e}")))?;
        let trust = trustchain::trust::TrustStore::new(bundle.clone());
        let endpoint = unenrolled_endpoint(key, anchors, vec![trust.check()])?;
        // The node's certificate verifies only against checkpoints of the
        // log that holds it: fetch them from the members first.
        let ca = trustchain::client::CaClient::with_endpoint(endpoint.clone(), bundle);
        if let Err(e) = ca.sync(&trust).await {
            endpoint.shutdown().await;
            return Err(ClientError::Transport(format!(
                "cannot fetch TrustChain checkpoints to verify the node (is a TrustChain member reachable?): {e}"
            )));
        }
        Self::own(endpoint, addr, server_name).await
    }

    async fn own(endpoint: Endpoint, addr: SocketAddr, server_name: &str) -> Result<Client> {
        match Self::connect(&endpoint, addr, server_name).await {
            Ok(mut c) => {
                c.owned = true;
                Ok(c)
            }
            Err(e) => {
                endpoint.shutdown().await;
                Err(e)
            }
        }
    }

    /// The same client with another per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The endpoint it calls through.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The node's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shuts the endpoint down if the client made it (clones of this
    /// client stop working too); an endpoint passed to
    /// [`Client::connect`] is left alone.
    pub async fn shutdown(&self) {
        if self.owned {
            self.endpoint.shutdown().await;
        }
    }

    async fn connection(&self) -> Result<stoq::Connection> {
        tokio::time::timeout(self.timeout, self.endpoint.connect(self.addr, &self.server_name))
            .await
            .map_err(|_| ClientError::Timeout(format!("connecting to {}", self.addr)))?
            .map_err(|e| ClientError::Transport(e.to_string()))
    }

    async fn call(&self, method: &str, body: Vec<u8>, extra: Duration) -> Result<Bytes> {
        let conn = self.connection().await?;
        let result = conn.call(method, Bytes::from(body), Some(self.timeout + extra)).await;
        if let Err(RpcError::DeadlineExceeded | RpcError::Transport(_)) = &result {
            // The node may have restarted: dial afresh next time.
            conn.close("unresponsive");
        }
        Ok(result?)
    }

    /// The largest answer this client's endpoint reads.
    fn max_answer(&self) -> u32 {
        u32::try_from(self.endpoint.config().limits.max_frame_len).unwrap_or(u32::MAX)
    }

    /// Submits transactions: each gets its id or its refusal, in order.
    pub async fn submit(&self, txs: &[Transaction]) -> Result<Vec<Result<Hash, TxError>>> {
        let mut raw = Vec::with_capacity(txs.len());
        let mut local = Vec::with_capacity(txs.len());
        for tx in txs {
            match tx.encode() {
                Ok(b) => {
                    local.push(None);
                    raw.push(Bytes::from(b));
                }
                Err(e) => local.push(Some(TxError::Malformed(e.to_string()))),
            }
        }
        let mut sent = self.submit_raw(raw).await?.into_iter();
        local
            .into_iter()
            .map(|l| match l {
                Some(e) => Ok(Err(e)),
                None => sent
                    .next()
                    .ok_or_else(|| ClientError::Decode("fewer results than transactions".into())),
            })
            .collect()
    }

    /// Submits one transaction; its id, or [`ClientError::Tx`].
    pub async fn submit_one(&self, tx: &Transaction) -> Result<Hash> {
        match self.submit(std::slice::from_ref(tx)).await?.pop() {
            Some(Ok(hash)) => Ok(hash),
            Some(Err(e)) => Err(ClientError::Tx(e.into())),
            None => Err(ClientError::Decode("no result for the transaction".into())),
        }
    }

    /// Submits encoded transactions. Oversized ones are refused here;
    /// the rest go in as few calls as fit, in order (so a sender's nonces
    /// arrive in order).
    pub async fn submit_raw(&self, txs: Vec<Bytes>) -> Result<Vec<Result<Hash, TxError>>> {
        let mut out: Vec<Option<Result<Hash, TxError>>> = Vec::with_capacity(txs.len());
        let mut batch: Vec<Bytes> = Vec::new();
        let mut slots: Vec<usize> = Vec::new();
        let mut size = 4;
        for tx in txs {
            if tx.len() > MAX_TX_BYTES {
                out.push(Some(Err(TxError::Oversized {
                    size: tx.len(),
                    limit: MAX_TX_BYTES,
                })));
                continue;
            }
            if !batch.is_empty() && (batch.len() == MAX_SUBMIT_BATCH || size + 4 + tx.len() > SUBMIT_CHUNK_BYTES) {
                self.submit_batch(std::mem::take(&mut batch), std::mem::take(&mut slots), &mut out)
                    .await?;
                size = 4;
            }
            size += 4 + tx.len();
            slots.push(out.len());
            out.push(None);
            batch.push(tx);
        }
        if !batch.is_empty() {
            self.submit_batch(batch, slots, &mut out).await?;
        }
        out.into_iter()
            .map(|r| r.ok_or_else(|| ClientError::Decode("a transaction got no result".into())))
            .collect()
    }

    async fn submit_batch(
        &self,
        batch: Vec<Bytes>,
        slots: Vec<usize>,
        out: &mut [Option<Result<Hash, TxError>>],
    ) -> Result<()> {
        let body = wire::encode_submit(&batch).map_err(request_err)?;
        let answer = self.call(methods::SUBMIT, body, Duration::ZERO).await?;
        let results = wire::decode_submit_results(&answer).map_err(decode_err)?;
        if results.len() != slots.len() {
            return Err(ClientError::Decode(format!(
                "{} results for {} transactions",
                results.len(),
                slots.len()
            )));
        }
        for (slot, r) in slots.into_iter().zip(results) {
            out[slot] = Some(r);
        }
        Ok(())
    }

    /// The node's status.
    pub async fn status(&self) -> Result<NodeStatus> {
        let answer = self.call(methods::STATUS, Vec::new(), Duration::ZERO).await?;
        wire::decode_status(&answer).map_err(decode_err)
    }

    /// A committed block (`None`: there is none such).
    pub async fn block(&self, at: BlockRef) -> Result<Option<Block>> {
        let answer = self
            .call(methods::BLOCK, wire::encode_block_ref(&at), Duration::ZERO)
            .await?;
        let block = wire::decode_block_answer(&answer).map_err(decode_err)?;
        if let Some(b) = &block {
            let matches = match at {
                BlockRef::Latest => true,
                BlockRef::Height(h) => b.header.height == h,
                BlockRef::Hash(h) => b.header.hash().is_ok_and(|got| got == h),
            };
            if !matches {
                return Err(ClientError::Decode(format!(
                    "asked for block {at:?}, got height {}",
                    b.header.height
                )));
            }
        }
        Ok(block)
    }

    /// The receipts of the committed block at `height`.
    pub async fn receipts(&self, height: u64) -> Result<Vec<Receipt>> {
        let answer = self
            .call(methods::RECEIPTS, wire::encode_height(height), Duration::ZERO)
            .await?;
        wire::decode_receipts(&answer).map_err(decode_err)
    }

    /// Where a transaction is.
    pub async fn tx(&self, hash: &Hash) -> Result<TxStatus> {
        let answer = self.call(methods::TX, wire::encode_hash(hash), Duration::ZERO).await?;
        let status = wire::decode_tx_status(&answer).map_err(decode_err)?;
        if let TxStatus::Committed(rec) = &status {
            let got = rec.tx.hash().map_err(|e| ClientError::Decode(e.to_string()))?;
            if got != *hash || rec.receipt.tx_hash != *hash {
                return Err(ClientError::Decode(
                    "the node answered about another transaction".into(),
                ));
            }
        }
        Ok(status)
    }

    /// An account's nonces and native balance.
    pub async fn account(&self, account: &AccountId) -> Result<AccountInfo> {
        let answer = self
            .call(methods::ACCOUNT, wire::encode_account(account), Duration::ZERO)
            .await?;
        wire::decode_account_info(&answer).map_err(decode_err)
    }

    /// A module query at the state after `height` (the tip when `None`);
    /// the height answered at and the answer.
    pub async fn query(&self, module: &str, path: &str, args: &[u8], height: Option<u64>) -> Result<(u64, Vec<u8>)> {
        let request = QueryRequest {
            module: module.into(),
            path: path.into(),
            args: args.to_vec(),
            height,
        };
        let answer = self
            .call(methods::QUERY, request.encode().map_err(request_err)?, Duration::ZERO)
            .await?;
        wire::decode_query_answer(&answer).map_err(decode_err)
    }

    /// A state value with its proof, verified ([`StateProofAt::verify`])
    /// before it is returned.
    pub async fn prove(&self, key: &[u8], height: Option<u64>) -> Result<StateProofAt> {
        let request = ProveRequest {
            key: key.to_vec(),
            height,
        };
        let answer = self
            .call(methods::PROVE, request.encode().map_err(request_err)?, Duration::ZERO)
            .await?;
        let proof = wire::decode_proof(&answer).map_err(decode_err)?;
        if let Some(h) = height {
            if proof.height != h {
                return Err(ClientError::Proof(format!(
                    "asked for height {h}, the proof is for {}",
                    proof.height
                )));
            }
        }
        proof.verify(key).map_err(|e| ClientError::Proof(e.to_string()))?;
        Ok(proof)
    }

    /// Committed blocks from height `from` on (at most `max`, capped at
    /// [`MAX_BLOCKS_PER_ANSWER`], fewer if they would not fit one answer);
    /// waits up to `wait` (capped at [`MAX_WAIT`]) for block `from`, and
    /// answers empty if it still does not exist.
    pub async fn blocks_from(&self, from: u64, max: usize, wait: Duration) -> Result<Vec<Block>> {
        let wait = wait.min(MAX_WAIT);
        let request = BlocksRequest {
            from,
            max: max.clamp(1, MAX_BLOCKS_PER_ANSWER) as u32,
            wait,
            max_bytes: self.max_answer(),
        };
        let answer = self.call(methods::BLOCKS, request.encode(), wait).await?;
        let blocks = wire::decode_blocks(&answer).map_err(decode_err)?;
        // Height 0 is the genesis state, not a block: the first is 1.
        let first = from.max(1);
        for (i, b) in blocks.iter().enumerate() {
            if b.header.height != first.saturating_add(i as u64) {
                return Err(ClientError::Decode(format!(
                    "asked for blocks from {first}, got height {} at position {i}",
                    b.header.height
                )));
            }
        }
        Ok(blocks)
    }

    /// Events of committed blocks from height `from` on, optionally of one
    /// module and kind, at most about `limit`; waits like
    /// [`Client::blocks_from`]. Returns them and the height to ask from
    /// next.
    pub async fn events_from(
        &self,
        from: u64,
        module: Option<&str>,
        kind: Option<&str>,
        limit: usize,
        wait: Duration,
    ) -> Result<(Vec<EventRecord>, u64)> {
        let wait = wait.min(MAX_WAIT);
        let request = EventsRequest {
            from,
            module: module.map(str::to_string),
            kind: kind.map(str::to_string),
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            wait,
            max_bytes: self.max_answer(),
        };
        let answer = self
            .call(methods::EVENTS, request.encode().map_err(request_err)?, wait)
            .await?;
        wire::decode_events(&answer).map_err(decode_err)
    }

    /// Waits until the transaction `hash` is committed, up to `timeout`;
    /// its record. Watches for new blocks (one cursor call at a time) and
    /// asks for the transaction after each.
    pub async fn wait_for_tx(&self, hash: &Hash, timeout: Duration) -> Result<TxRecord> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut next = self.status().await?.height.saturating_add(1);
        loop {
            if let TxStatus::Committed(rec) = self.tx(hash).await? {
                return Ok(*rec);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout(format!(
                    "transaction {} not committed after {timeout:?}",
                    crate::api::http::hex(hash)
                )));
            }
            let blocks = self.blocks_from(next, 1, left.min(MAX_WAIT)).await?;
            if let Some(b) = blocks.last() {
                next = b.header.height.saturating_add(1);
            }
        }
    }

    /// Signs `call` with `key` at its pending nonce, paying the node's
    /// minimum fee for `gas_limit`, valid for [`DEFAULT_EXPIRY_BLOCKS`],
    /// does the proof of work (on the blocking pool) and submits it.
    pub async fn send(&self, key: &KeyPair, call: Call, gas_limit: u64) -> Result<Hash> {
        let status = self.status().await?;
        let account = self.account(&key.public_key().node_id().0).await?;
        let fee = min_fee(&status, gas_limit);
        let expiry = status.height.saturating_add(DEFAULT_EXPIRY_BLOCKS);
        let key = key.clone();
        let tx = tokio::task::spawn_blocking(move || {
            build_tx(&key, &status, account.pending_nonce, call, gas_limit, fee, expiry)
        })
        .await
        .map_err(|e| ClientError::Build(e.to_string()))??;
        self.submit_one(&tx).await
    }
}

/// The lowest fee the node admits for `gas_limit` (its minimum fee per
/// gas times the limit).
pub fn min_fee(status: &NodeStatus, gas_limit: u64) -> u128 {
    status.min_fee_per_gas.saturating_mul(u128::from(gas_limit.max(1)))
}

/// Signs a transaction of `call` from `key`'s account for the chain of
/// `status`, and does the proof of work it asks for (`status.pow_bits`),
/// trying from a random nonce so parallel clients do not repeat each
/// other's work. Fails with [`ClientError::Build`] if no nonce is found in
/// 2^(bits+8) tries (practically never). CPU-bound: from async code, run
/// it on the blocking pool.
///
/// The account's first transaction (nonce 0) carries the full key, which
/// registers it on chain; later ones name the account (32 bytes instead of
/// 1,793).
pub fn build_tx(
    key: &KeyPair,
    status: &NodeStatus,
    nonce: u64,
    call: Call,
    gas_limit: u64,
    fee: u128,
    expiry_height: u64,
) -> Result<Transaction> {
    let build = |e: crate::Error| ClientError::Build(e.to_string());
    let body = UnsignedTransaction {
        chain_id: status.chain_id.clone(),
        sender: if nonce == 0 {
            Sender::Key(key.public_key().clone())
        } else {
            Sender::Account(key.public_key().node_id().0)
        },
        nonce,
        expiry_height,
        gas_limit,
        fee,
        call,
    };
    let mut tx = body.sign(key).map_err(build)?;
    let bits = status.pow_bits;
    let tries = 1u64.checked_shl(bits.saturating_add(8)).unwrap_or(u64::MAX);
    if !tx.solve_work(bits, rand::random(), tries).map_err(build)? {
        return Err(ClientError::Build(format!(
            "no proof of work of {bits} bits found in {tries} tries"
        )));
    }
    tx.encode().map_err(build)?;
    Ok(tx)
}

/// A bank transfer of `amount` of `denom` to `to`.
pub fn transfer_call(to: &AccountId, denom: &str, amount: u128) -> Call {
    Call {
        module: bank::NAME.into(),
        method: "transfer".into(),
        args: bank::transfer_args(to, denom, amount),
    }
}

/// Bonds `amount` of the native token as stake.
pub fn bond_call(amount: u128) -> Call {
    Call {
        module: staking::NAME.into(),
        method: "bond".into(),
        args: staking::amount_args(amount),
    }
}

/// Unbonds `amount` of stake.
pub fn unbond_call(amount: u128) -> Call {
    Call {
        module: staking::NAME.into(),
        method: "unbond".into(),
        args: staking::amount_args(amount),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use stoq::crypto::Algorithm;

    #[test]
    fn rpc_errors_become_the_api_errors_they_were() {
        let app = |code: u16| RpcError::Application {
            code,
            message: "m".into(),
        };
        let cases = [
            (app(404), ClientError::Api(ApiError::NotFound("m".into()))),
            (app(410), ClientError::Api(ApiError::Unavailable("m".into()))),
            (app(422), ClientError::Api(ApiError::Query("m".into()))),
            (app(500), ClientError::Api(ApiError::Internal("m".into()))),
            (app(503), ClientError::Api(ApiError::Busy("m".into()))),
            (
                RpcError::BadRequest("m".into()),
                ClientError::Api(ApiError::BadRequest("m".into())),
            ),
            (
                app(1012),
                ClientError::Tx(RemoteTxError {
                    code: 12,
                    message: "m".into(),
                    error: None,
                }),
            ),
            (app(777), ClientError::Rpc(app(777))),
            (RpcError::Overloaded, ClientError::Rpc(RpcError::Overloaded)),
            (RpcError::Transport("t".into()), ClientError::Transport("t".into())),
        ];
        for (rpc, expected) in cases {
            let code = rpc.code();
            let got = ClientError::from(rpc);
            assert_eq!(got, expected);
            if code >= 100 {
                assert_eq!(got.code(), Some(code), "{got}");
            }
        }
        // Every API error survives the trip through STOQ's error.
        for e in [
            ApiError::NotFound("block 9".into()),
            ApiError::Unavailable("pruned".into()),
            ApiError::Query("no such query".into()),
            ApiError::Busy("later".into()),
            ApiError::Internal("disk".into()),
            ApiError::BadRequest("short".into()),
        ] {
            let back = ClientError::from(crate::api::stoq_rpc::to_rpc_error(e.clone()));
            assert_eq!(back, ClientError::Api(e));
        }
    }

    #[test]
    fn built_transactions_are_signed_with_work_from_a_random_start() {
        let key = KeyPair::generate(Algorithm::FnDsa1024);
        let status = NodeStatus {
            chain_id: "c".into(),
            genesis_hash: [0; 32],
            height: 1,
            tip_hash: [0; 32],
            tip_time_ms: 0,
            state_root: [0; 32],
            mempool_txs: 0,
            pow_bits: 8,
            min_fee_per_gas: 3,
            native_denom: "caes".into(),
            node: [0; 32],
        };
        let to = [7; 32];
        let build = || build_tx(&key, &status, 5, transfer_call(&to, "caes", 9), 1_000, 3_000, 50).unwrap();
        let (a, b) = (build(), build());
        for tx in [&a, &b] {
            assert_eq!(tx.check_stateless("c", 8, Some(key.public_key())), Ok(()));
            assert_eq!((tx.body.nonce, tx.body.expiry_height), (5, 50));
        }
        assert_ne!(a.pow_nonce, b.pow_nonce, "parallel builders start apart");
        assert_eq!(min_fee(&status, 1_000), 3_000);
        // A chain id over its limit cannot be signed.
        let mut other = status.clone();
        other.chain_id = "x".repeat(65);
        assert!(matches!(
            build_tx(&key, &other, 1, bond_call(1), 1, 1, 1),
            Err(ClientError::Build(_))
        ));
    }

    #[test]
    fn calls_name_their_module_and_method() {
        let to = [7; 32];
        let t = transfer_call(&to, "caes", 5);
        assert_eq!((t.module.as_str(), t.method.as_str()), ("bank", "transfer"));
        assert_eq!(t.args, bank::transfer_args(&to, "caes", 5));
        let b = bond_call(5);
        assert_eq!((b.module.as_str(), b.method.as_str()), ("staking", "bond"));
        assert_eq!(b.args, staking::amount_args(5));
        assert_eq!(unbond_call(5).method, "unbond");
    }
}
