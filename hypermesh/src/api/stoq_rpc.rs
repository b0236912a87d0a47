//! The node API over STOQ RPC: one public method per [`NodeApi`] call,
//! bodies in the [`super::wire`] encoding.
//!
//! The methods are public ([`stoq::Endpoint::register_public`]): clients
//! that are not enrolled with TrustChain may call them, since
//! transactions authenticate themselves and everything else is public
//! chain data. Refusals cross as [`RpcError::Application`] with the
//! [`ApiError::code`] (a bad request as [`RpcError::BadRequest`]).
//!
//! Calls that read the database run on tokio's blocking pool, so a slow
//! read never stalls the endpoint's tasks. Subscription calls wait at most
//! [`MAX_WAIT`], and end early enough to answer before the caller's
//! deadline ([`WAIT_MARGIN`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use stoq::endpoint::{RpcError, RpcRequest};
use stoq::Endpoint;

use super::wire::{self, methods, BlocksRequest, EventsRequest, ProveRequest, QueryRequest};
use super::{ApiError, ApiResult, NodeApi, MAX_BLOCKS_PER_ANSWER, MAX_WAIT};
use crate::chain::MAX_EVENTS_PER_READ;

/// How long before the caller's deadline a waiting call stops waiting, so
/// its (empty) answer still arrives in time.
pub const WAIT_MARGIN: Duration = Duration::from_secs(1);

struct Service {
    api: Arc<dyn NodeApi>,
    /// The endpoint's frame limit: the answer budget when the caller
    /// names none.
    max_frame: usize,
}

/// Serves `api` on `endpoint`: every method of [`methods::ALL`], public.
/// Clients that are not enrolled reach them only if the endpoint's TLS
/// context admits them ([`stoq::tls::TlsContext::accept_unenrolled_clients`]).
/// The endpoint's `max_frame_len` bounds what a caller can submit in one
/// call (the client splits larger batches) and is the answer budget of a
/// caller that names none.
pub fn register(endpoint: &Endpoint, api: Arc<dyn NodeApi>) {
    let service = Arc::new(Service {
        api,
        max_frame: endpoint.config().limits.max_frame_len,
    });
    add(endpoint, methods::SUBMIT, &service, submit);
    add(endpoint, methods::STATUS, &service, status);
    add(endpoint, methods::BLOCK, &service, block);
    add(endpoint, methods::RECEIPTS, &service, receipts);
    add(endpoint, methods::TX, &service, tx);
    add(endpoint, methods::ACCOUNT, &service, account);
    add(endpoint, methods::QUERY, &service, query);
    add(endpoint, methods::PROVE, &service, prove);
    add(endpoint, methods::BLOCKS, &service, blocks);
    add(endpoint, methods::EVENTS, &service, events);
}

fn add<F, Fut>(endpoint: &Endpoint, method: &str, service: &Arc<Service>, f: F)
where
    F: Fn(Arc<Service>, RpcRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ApiResult<Vec<u8>>> + Send + 'static,
{
    let service = service.clone();
    endpoint.register_public(method, move |req: RpcRequest| {
        let answer = f(service.clone(), req);
        async move { answer.await.map(Bytes::from).map_err(to_rpc_error) }
    });
}

/// How an [`ApiError`] crosses STOQ: [`RpcError::BadRequest`] for a bad
/// request, otherwise [`RpcError::Application`] with [`ApiError::code`]
/// and the error's own message (without the variant's prefix, so the
/// client rebuilds the same error).
pub fn to_rpc_error(e: ApiError) -> RpcError {
    let code = e.code();
    match e {
        ApiError::BadRequest(m) => RpcError::BadRequest(m),
        ApiError::Tx(t) => RpcError::Application {
            code,
            message: t.to_string(),
        },
        ApiError::NotFound(m)
        | ApiError::Unavailable(m)
        | ApiError::Query(m)
        | ApiError::Busy(m)
        | ApiError::Internal(m) => RpcError::Application { code, message: m },
    }
}

/// How long a subscription call may wait: what the caller asked, but at
/// most [`MAX_WAIT`] and ending [`WAIT_MARGIN`] before its deadline.
pub fn wait_for(requested: Duration, deadline: Duration) -> Duration {
    requested.min(deadline.saturating_sub(WAIT_MARGIN)).min(MAX_WAIT)
}

/// Runs a call that may read the database on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("the call failed: {e}")))?
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

impl Service {
    /// The answer budget for a caller that reads at most `max_bytes` (0:
    /// not said).
    fn budget(&self, max_bytes: u32) -> usize {
        match max_bytes {
            0 => self.max_frame,
            n => n as usize,
        }
    }
}

async fn submit(s: Arc<Service>, req: RpcRequest) -> ApiResult<Vec<u8>> {
    let txs = wire::decode_submit(&req.body)?;
    let results = s.api.submit(txs).await?;
    Ok(wire::encode_submit_results(&results))
}

async fn status(s: Arc<Service>, req: RpcRequest) -> ApiResult<Vec<u8>> {
    wire::decode_empty(&req.body)?;
    Ok(wire::encode_status(&s.api.status()?))
}

async fn block(s: Arc<Service>, req: RpcRequest) -> ApiResult<Vec<u8>> {
    let at = wire::decode_block_ref(&req.body)?;
    blocking(move || {
        let encoded = match s.api.block(at)? {
            Some(b) => Some(b.encode().map_err(internal)?),
            None => None,
        };
        Ok(wire::encode_block_answer(encoded.as_deref()))
    })
    .await
}

async fn receipts(s: Arc<Service>, req: RpcRequest) -> ApiResult<Vec<u8>> {
    let height = wire::decode_height(&req.body)?;
    blocking(move || Ok(wire::encode_receipts(&s.api.receipts(height)?))).await
}

async fn tx(s: Arc<Service>, req: RpcRequest) -> ApiResult<Vec<u8>> {
    let hash = wire::decode_hash(&req.body)?;
    blocking(move || wire::encode_tx_status(&s.api.tx(&hash)?)).await
}

async fn account(s: Arc<Service>, req: RpcRequest) -> ApiResult<Vec<u8>> {
    let account = wire::decode_hash(&req.body)?;
    blocking(move || Ok(wire::encode_account_info(&s.api.account(&account)?))).await
}

async fn query(s: Arc<Service>, req: RpcRequest) -> ApiResult<Vec<u8>> {
    let q = QueryRequest::decode(&req.body)?;
    blocking(move || {
        let (height, value) = s.api.query(&q.module, &q.path, &q.args, q.height)?;
        wire::encode_query_answer(height, &value)
    })
    .await
}

async fn prove(s: Arc<Service>, req: RpcRequest) -> ApiResult<Vec<u8>> {
    let p = ProveRequest::decode(&req.body)?;
    blocking(move || wire::encode_proof(&s.api.prove(&p.key, p.height)?)).await
}

async fn blocks(s: Arc<Service>, req: RpcRequest) -> ApiResult<Vec<u8>> {
    let r = BlocksRequest::decode(&req.body)?;
    let wait = wait_for(r.wait, req.deadline);
    let max = (r.max as usize).clamp(1, MAX_BLOCKS_PER_ANSWER);
    let blocks = s.api.blocks_from(r.from, max, wait).await?;
    let budget = s.budget(r.max_bytes);
    blocking(move || {
        let mut encoded: Vec<Vec<u8>> = Vec::with_capacity(blocks.len());
        let mut size = wire::blocks_answer_len([]);
        for b in blocks.iter() {
            let e = b.encode().map_err(internal)?;
            // Always at least one block, so the cursor moves on.
            if !encoded.is_empty() && size + 4 + e.len() > budget {
                break;
            }
            size += 4 + e.len();
            encoded.push(e);
        }
        Ok(wire::encode_blocks(&encoded))
    })
    .await
}

async fn events(s: Arc<Service>, req: RpcRequest) -> ApiResult<Vec<u8>> {
    let r = EventsRequest::decode(&req.body)?;
    let wait = wait_for(r.wait, req.deadline);
    let limit = (r.limit as usize).clamp(1, MAX_EVENTS_PER_READ);
    let (events, next) = s.api.events_from(r.from, r.module, r.kind, limit, wait).await?;
    let budget = s.budget(r.max_bytes);
    blocking(move || {
        let (encoded, next) = fit_events(&events, next, budget);
        Ok(wire::encode_events(&encoded, next))
    })
    .await
}

/// Encodes `events` up to `budget` bytes of answer, cutting only between
/// blocks (so resuming from the returned height neither skips nor repeats
/// an event); the first block's events are kept whole in any case.
fn fit_events(events: &[crate::chain::EventRecord], next: u64, budget: usize) -> (Vec<Vec<u8>>, u64) {
    let mut encoded = Vec::with_capacity(events.len());
    let mut size = wire::EVENTS_ANSWER_OVERHEAD;
    let mut block_start = 0;
    for (i, e) in events.iter().enumerate() {
        if i > 0 && events[i - 1].height != e.height {
            block_start = i;
        }
        let bytes = wire::encode_event_record(e);
        if block_start > 0 && size + bytes.len() > budget {
            encoded.truncate(block_start);
            return (encoded, events[block_start].height);
        }
        size += bytes.len();
        encoded.push(bytes);
    }
    (encoded, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::EventRecord;
    use crate::runtime::Event;

    fn record(height: u64, n: usize) -> EventRecord {
        EventRecord {
            height,
            tx: None,
            event: Event::new("m", "k").with("v", vec![0u8; n]),
        }
    }

    #[test]
    fn waits_end_before_the_deadline_and_within_the_cap() {
        let s = Duration::from_secs;
        assert_eq!(wait_for(s(5), s(10)), s(5));
        assert_eq!(wait_for(s(20), s(10)), s(9));
        assert_eq!(wait_for(s(100), s(100)), MAX_WAIT);
        assert_eq!(wait_for(s(5), Duration::from_millis(500)), Duration::ZERO);
    }

    #[test]
    fn events_are_cut_between_blocks_only() {
        let events = vec![record(3, 100), record(3, 100), record(4, 100), record(5, 100)];
        let one = wire::encode_event_record(&events[0]).len();
        // Room for everything: untouched.
        let (all, next) = fit_events(&events, 9, 1 << 20);
        assert_eq!((all.len(), next), (4, 9));
        // Room for two and a half records: block 3 whole, resume at 4.
        let budget = wire::EVENTS_ANSWER_OVERHEAD + 2 * one + one / 2;
        let (cut, next) = fit_events(&events, 9, budget);
        assert_eq!((cut.len(), next), (2, 4));
        // Room for less than the first block: it comes whole anyway.
        let (first, next) = fit_events(&events, 9, 10);
        assert_eq!((first.len(), next), (2, 4));
        // Room for three: blocks 3 and 4.
        let (three, next) = fit_events(&events, 9, wire::EVENTS_ANSWER_OVERHEAD + 3 * one);
        assert_eq!((three.len(), next), (3, 5));
    }

    #[test]
    fn api_errors_keep_their_codes_on_stoq() {
        let e = to_rpc_error(ApiError::BadRequest("x".into()));
        assert_eq!(e, RpcError::BadRequest("x".into()));
        let e = to_rpc_error(ApiError::NotFound("block 9".into()));
        assert_eq!(
            e,
            RpcError::Application {
                code: 404,
                message: "block 9".into()
            }
        );
        let e = to_rpc_error(ApiError::Tx(crate::TxError::Duplicate));
        assert_eq!(e.code(), 1012);
    }
}
