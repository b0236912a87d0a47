//! Read-only HTTP on `[::1]`: the log (checkpoints, entries, proofs),
//! status and Prometheus `/metrics`. Everything here is public data; there
//! is no write path.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::checkpoint::Checkpoint;
use crate::messages::MAX_PAGE;
use crate::{Error, Result};

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A checkpoint as JSON (the binary encoding included for verification).
pub(crate) fn checkpoint_json(cp: &Checkpoint) -> Value {
    json!({
        "log_id": cp.body.log_id,
        "tree_size": cp.body.tree_size,
        "root": stoq::crypto::hex(&cp.body.root),
        "timestamp_ms": cp.body.timestamp_ms,
        "batch_start": cp.body.batch_start,
        "batch_root": stoq::crypto::hex(&cp.body.batch_root),
        "signers": cp.signatures.iter().map(|s| s.member).collect::<Vec<_>>(),
        "encoded": b64(&cp.encode()),
    })
}

fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": msg.into() }))).into_response()
}

#[derive(Deserialize)]
struct After {
    log: Option<u16>,
    after: Option<u64>,
}

#[derive(Deserialize)]
struct Range {
    start: u64,
    end: u64,
}

#[derive(Deserialize)]
struct Inclusion {
    index: u64,
    size: u64,
}

#[derive(Deserialize)]
struct Consistency {
    old: u64,
    new: u64,
}

async fn checkpoints(State(s): State<Arc<Shared>>, Query(q): Query<After>) -> Response {
    let log = q.log.unwrap_or(s.index);
    match s.store.checkpoints_after(log, q.after.unwrap_or(0), MAX_PAGE) {
        Ok(cps) => Json(json!({ "checkpoints": cps.iter().map(checkpoint_json).collect::<Vec<_>>() })).into_response(),
        Err(e) => bad(e.to_string()),
    }
}

async fn latest(State(s): State<Arc<Shared>>) -> Response {
    let size = s.tree().size();
    match size
        .checked_sub(1)
        .map(|below| s.store.checkpoints_after(s.index, below, 1))
    {
        Some(Ok(cps)) if !cps.is_empty() => Json(checkpoint_json(&cps[0])).into_response(),
        Some(Err(e)) => bad(e.to_string()),
        _ => (StatusCode::NOT_FOUND, Json(json!({ "error": "the log is empty" }))).into_response(),
    }
}

async fn entries(State(s): State<Arc<Shared>>, Query(q): Query<Range>) -> Response {
    if q.end < q.start || q.end - q.start > MAX_PAGE as u64 {
        return bad(format!("ask for at most {MAX_PAGE} entries with start <= end"));
    }
    match s.store.entries(q.start, q.end) {
        Ok(es) => {
            Json(json!({ "start": q.start, "entries": es.iter().map(|e| b64(e)).collect::<Vec<_>>() })).into_response()
        }
        Err(e) => bad(e.to_string()),
    }
}

fn hashes(h: &[[u8; 32]]) -> Vec<String> {
    h.iter().map(|x| stoq::crypto::hex(x)).collect()
}

async fn inclusion(State(s): State<Arc<Shared>>, Query(q): Query<Inclusion>) -> Response {
    match s.tree().inclusion_proof(q.index, q.size) {
        Ok(p) => Json(json!({ "index": q.index, "size": q.size, "proof": hashes(&p) })).into_response(),
        Err(e) => bad(e.to_string()),
    }
}

async fn consistency(State(s): State<Arc<Shared>>, Query(q): Query<Consistency>) -> Response {
    match s.tree().consistency_proof(q.old, q.new) {
        Ok(p) => Json(json!({ "old": q.old, "new": q.new, "proof": hashes(&p) })).into_response(),
        Err(e) => bad(e.to_string()),
    }
}

async fn status(State(s): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::handlers::status_json(&s),
    )
        .into_response()
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let mut registry = prometheus_client::registry::Registry::default();
    s.metrics.register(&mut registry);
    s.dns_metrics.register(&mut registry);
    s.endpoint.metrics().register(&mut registry);
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "encoding metrics failed").into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// Binds `addr` (IPv6 only) and serves until `shutdown`.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    if !addr.is_ipv6() {
        return Err(Error::Config(format!(
            "HTTP address {addr} is IPv4: the stack is IPv6-only"
        )));
    }
    let app = Router::new()
        .route("/log/checkpoint", get(latest))
        .route("/log/checkpoints", get(checkpoints))
        .route("/log/entries", get(entries))
        .route("/log/proof/inclusion", get(inclusion))
        .route("/log/proof/consistency", get(consistency))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Io {
        context: format!("binding HTTP {addr}"),
        source,
    })?;
    let local = listener.local_addr().map_err(|source| Error::Io {
        context: "HTTP local address".into(),
        source,
    })?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    });
    Ok((local, task))
}
