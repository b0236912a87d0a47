//! The issuance pipeline: requests queue up, and each round takes what is
//! queued as one batch.
//!
//! A round has two phases. *Check*: every other member re-validates each
//! item (policy, token state, precertificate) and the head's consistency,
//! changing nothing; items any of them refuses are answered with that
//! refusal and dropped. *Sign*: the remaining batch is written as pending,
//! then signed by this member and by at least k-1 others; the certificates
//! get their inclusion proofs and signatures, and everything is committed
//! in one transaction before any answer leaves. The check phase keeps one
//! bad item (a token replayed at another member, say) from leaving a head
//! that some witnesses signed and others refuse, which would block the log.

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use stoq::crypto::merkle_leaf_hash;

use super::Shared;
use crate::bundle::Member;
use crate::checkpoint::{Checkpoint, CheckpointBody, Cosignature};
use crate::error::Refusal;
use crate::log::{Frontier, Hash, MerkleTree};
use crate::messages::{method, CosignReply, Issued};
use crate::request::Authorization;
use crate::revocation::SignedRevocation;
use crate::store::TokenState;
use crate::time::now_ms;
use crate::witness::{BatchItem, CosignRequest, Head};
use crate::Error;

/// What a request gets back from the pipeline.
#[derive(Debug)]
// Short-lived values moved once through a channel or codec: boxing the
// certificate would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Outcome {
    /// A certificate.
    Issued(Issued),
    /// A logged revocation.
    Revoked(SignedRevocation),
}

/// One queued request.
pub(crate) struct Job {
    pub(crate) item: BatchItem,
    pub(crate) admitted: Instant,
    pub(crate) reply: oneshot::Sender<Result<Outcome, Refusal>>,
}

/// Co-sign request modes.
pub(crate) const MODE_CHECK: u8 = 1;
pub(crate) const MODE_SIGN: u8 = 2;

pub(crate) async fn run(shared: Arc<Shared>, mut jobs: mpsc::Receiver<Job>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    loop {
        // A batch some witnesses may have signed must complete before any
        // other head: they will sign nothing else at its size.
        match shared.store.pending_batch() {
            Ok(Some(bytes)) => match CosignRequest::decode(&bytes) {
                Ok(req) => match sign_and_commit(&shared, req, Vec::new(), None).await {
                    Ok(()) => backoff = Duration::from_millis(200),
                    Err(e) => {
                        warn!(error = %e, "pending batch still lacks co-signatures; retrying");
                        while let Ok(job) = jobs.try_recv() {
                            let _ = job.reply.send(Err(Refusal::Unavailable(
                                "this member's previous batch awaits co-signatures; try another member".into(),
                            )));
                        }
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                        continue;
                    }
                },
                Err(e) => {
                    warn!(error = %e, "stored pending batch does not decode; the log is stuck until an operator intervenes");
                    shutdown.cancelled().await;
                    return;
                }
            },
            Ok(None) => {}
            Err(e) => warn!(error = %e, "reading the pending batch failed"),
        }
        let first = tokio::select! {
            () = shutdown.cancelled() => return,
            j = jobs.recv() => match j { Some(j) => j, None => return },
        };
        let mut batch = vec![first];
        while batch.len() < shared.config.max_batch.clamp(1, crate::witness::MAX_BATCH) {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        run_round(&shared, batch).await;
    }
}

pub(super) fn token_of(item: &BatchItem) -> Option<[u8; 16]> {
    match item {
        BatchItem::Issue { request, .. } => match &request.auth {
            Authorization::Token(t) => Some(t.body.id),
            Authorization::Renewal { .. } => None,
        },
        BatchItem::Revoke(_) => None,
    }
}

/// Refuses jobs whose token is spent (here, or earlier in this batch).
fn drop_spent_tokens(shared: &Shared, jobs: Vec<Job>) -> Vec<Job> {
    let mut seen = Vec::new();
    let mut keep = Vec::with_capacity(jobs.len());
    for job in jobs {
        if let Some(id) = token_of(&job.item) {
            let spent = matches!(shared.store.token(&id), Ok(Some(TokenState::Used { .. })));
            if spent || seen.contains(&id) {
                shared.metrics.refused.inc();
                let _ = job.reply.send(Err(Refusal::TokenUsed));
                continue;
            }
            seen.push(id);
        }
        keep.push(job);
    }
    keep
}

/// Builds the co-sign request for `items` on top of the current log.
fn build_request(shared: &Shared, items: Vec<BatchItem>) -> Result<CosignRequest, Error> {
    let tree = shared.tree();
    let start = tree.size();
    let prev_frontier = Frontier::from_tree(&tree, start)?;
    let leaves: Vec<Hash> = items.iter().map(|i| merkle_leaf_hash(&i.log_entry())).collect();
    let mut frontier = prev_frontier.clone();
    for l in &leaves {
        frontier.push(*l);
    }
    let body = CheckpointBody {
        bundle_id: shared.bundle.id(),
        log_id: shared.index,
        tree_size: start + items.len() as u64,
        root: frontier.root(),
        timestamp_ms: now_ms(),
        batch_start: start,
        batch_root: MerkleTree::from_leaf_hashes(leaves).root(),
    };
    Ok(CosignRequest {
        body,
        prev_root: tree.root(),
        prev_frontier,
        consistency_from: start,
        consistency: Vec::new(),
        items,
    })
}

async fn run_round(shared: &Arc<Shared>, jobs: Vec<Job>) {
    let jobs = drop_spent_tokens(shared, jobs);
    if jobs.is_empty() {
        return;
    }
    let items: Vec<BatchItem> = jobs.iter().map(|j| j.item.clone()).collect();
    let req = match build_request(shared, items) {
        Ok(r) => r,
        Err(e) => return fail_all(shared, jobs, Refusal::Unavailable(e.to_string())),
    };
    // Check phase.
    let refused = match check_with_members(shared, &req).await {
        Ok(r) => r,
        Err(e) => return fail_all(shared, jobs, e),
    };
    let mut kept = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.into_iter().enumerate() {
        match refused.iter().find(|(idx, _)| usize::from(*idx) == i) {
            Some((_, refusal)) => {
                shared.metrics.refused.inc();
                let _ = job.reply.send(Err(refusal.clone()));
            }
            None => kept.push(job),
        }
    }
    if kept.is_empty() {
        return;
    }
    let req = if kept.len() == req.items.len() {
        req
    } else {
        match build_request(shared, kept.iter().map(|j| j.item.clone()).collect()) {
            Ok(r) => r,
            Err(e) => return fail_all(shared, kept, Refusal::Unavailable(e.to_string())),
        }
    };
    let replies: Vec<_> = kept.into_iter().map(|j| (j.admitted, j.reply)).collect();
    let pending = req.encode();
    if let Err(e) = sign_and_commit(shared, req, replies, Some(pending)).await {
        warn!(error = %e, "co-signing failed; the batch stays pending");
    }
}

fn fail_all(shared: &Shared, jobs: Vec<Job>, why: Refusal) {
    for job in jobs {
        shared.metrics.refused.inc();
        let _ = job.reply.send(Err(why.clone()));
    }
}

type Reply = (Instant, oneshot::Sender<Result<Outcome, Refusal>>);

/// Sign phase and commit. `pending` is the encoded batch, to store before
/// any witness is asked (`None` when it already is). On failure the batch
/// stays pending and the waiting requests are told why.
async fn sign_and_commit(
    shared: &Arc<Shared>,
    req: CosignRequest,
    replies: Vec<Reply>,
    pending: Option<Vec<u8>>,
) -> Result<(), Refusal> {
    let started = Instant::now();
    // The certificates' inclusion proofs lead to the batch root, which the
    // request fixes: sign them while the witnesses sign the head.
    let (certificates, checkpoint) = tokio::join!(
        super::finalize::sign_certificates(shared, &req),
        collect_signatures(shared, &req, pending)
    );
    let checkpoint = match checkpoint.and_then(|cp| {
        certificates
            .map(|c| (cp, c))
            .map_err(|e| Refusal::Unavailable(format!("signing the certificates: {e}")))
    }) {
        Ok(cp) => cp,
        Err(e) => {
            shared.metrics.quorum_failures.inc();
            for (_, r) in replies {
                let _ = r.send(Err(e.clone()));
            }
            return Err(e);
        }
    };
    let (checkpoint, certificates) = checkpoint;
    let signed_at = Instant::now();
    let outcomes = match super::finalize::commit(shared, &req, &checkpoint, certificates).await {
        Ok(o) => o,
        Err(e) => {
            let e = Refusal::Unavailable(format!("committing the batch: {e}"));
            for (_, r) in replies {
                let _ = r.send(Err(e.clone()));
            }
            return Err(e);
        }
    };
    debug!(
        size = checkpoint.body.tree_size,
        entries = req.items.len(),
        ms = started.elapsed().as_millis() as u64,
        cosign_us = (signed_at - started).as_micros() as u64,
        finalize_us = signed_at.elapsed().as_micros() as u64,
        "batch co-signed and committed"
    );
    shared.metrics.batch_size.observe(req.items.len() as f64);
    let mut outcomes = outcomes.into_iter();
    for (admitted, reply) in replies {
        if let Some(o) = outcomes.next() {
            shared
                .metrics
                .issuance_seconds
                .observe(admitted.elapsed().as_secs_f64());
            let _ = reply.send(Ok(o));
        }
    }
    Ok(())
}

/// The check phase: the items any responding member refused, by index.
/// Fails when fewer than k-1 other members answer.
async fn check_with_members(shared: &Arc<Shared>, req: &CosignRequest) -> Result<Vec<(u16, Refusal)>, Refusal> {
    let need = shared.bundle.threshold() - 1;
    if need == 0 {
        return Ok(Vec::new());
    }
    let mut calls: FuturesUnordered<_> = others(shared)
        .map(|m| async move { (m.name.clone(), ask(shared, m, req, MODE_CHECK).await) })
        .collect();
    let (mut answered, mut refused, mut errors) = (0, Vec::new(), Vec::new());
    while let Some((name, r)) = calls.next().await {
        match r {
            Ok(CosignReply::Verdicts(v)) => {
                answered += 1;
                refused.extend(v.into_iter().map(|(i, code, message)| {
                    (
                        i,
                        Refusal::ByMember {
                            member: name.clone(),
                            code,
                            message,
                        },
                    )
                }));
            }
            Ok(other) => errors.push(format!("{name}: unexpected reply {other:?}")),
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    if answered < need {
        return Err(Refusal::Quorum(format!(
            "{answered} other members answered, {need} needed ({})",
            errors.join("; ")
        )));
    }
    Ok(refused)
}

fn others(shared: &Shared) -> impl Iterator<Item = &Member> {
    shared.bundle.members.iter().filter(move |m| m.index != shared.index)
}

/// Calls one member, answering a stale-view reply with a consistency proof
/// from the size it reports.
async fn ask(shared: &Shared, member: &Member, req: &CosignRequest, mode: u8) -> Result<CosignReply, Error> {
    let timeout = Duration::from_millis(shared.config.cosign_timeout_ms);
    let name = member.dns_name(&shared.bundle.zone);
    let conn = match tokio::time::timeout(timeout, shared.endpoint.connect(member.address, &name)).await {
        Ok(c) => c?,
        Err(_) => {
            return Err(Error::Refused(Refusal::Unavailable(format!(
                "{} did not answer in time",
                member.name
            ))))
        }
    };
    let call = async {
        let mut req = req.clone();
        for _ in 0..2 {
            let mut body = vec![mode];
            body.extend_from_slice(&req.encode());
            let resp = conn
                .call(method::COSIGN, Bytes::from(body), Some(timeout))
                .await
                .map_err(|e| Error::from_rpc(&member.name, e))?;
            match CosignReply::decode(&resp)? {
                CosignReply::StaleView(size) if size < req.body.batch_start && size != req.consistency_from => {
                    let proof = shared.tree().consistency_proof(size, req.body.batch_start)?;
                    req.consistency_from = size;
                    req.consistency = proof;
                }
                other => return Ok(other),
            }
        }
        Err(Error::Refused(Refusal::Witness(format!(
            "{} keeps reporting a stale view",
            member.name
        ))))
    };
    let result = tokio::time::timeout(timeout, call).await.unwrap_or_else(|_| {
        Err(Error::Refused(Refusal::Unavailable(format!(
            "{} did not answer in time",
            member.name
        ))))
    });
    if let Err(e) = &result {
        debug!(member = %member.name, error = %e, "co-sign call failed");
        if e.refusal_code().is_none() || e.refusal_code() == Some(Refusal::Unavailable(String::new()).code()) {
            // A member that crashed and restarted never answers on the old
            // connection (its stateless resets use a new key): dial afresh.
            conn.close("unresponsive");
        }
    }
    result
}

/// Signs as this member and gathers k-1 co-signatures.
///
/// With witnesses, the batch (as pending) and the head this member signs
/// are stored in one transaction before anyone is asked: after a crash the
/// member completes that very batch, the only one witnesses will sign at
/// this size. A 1-of-1 member asks no one, and a head it signed but never
/// released binds nothing, so it records the head with the batch instead.
async fn collect_signatures(
    shared: &Arc<Shared>,
    req: &CosignRequest,
    pending: Option<Vec<u8>>,
) -> Result<Checkpoint, Refusal> {
    let body = &req.body;
    let k = shared.bundle.threshold();
    let own = {
        let (shared, body) = (shared.clone(), body.clone());
        tokio::task::spawn_blocking(move || body.sign(shared.index, &shared.key))
    };
    if k > 1 {
        let head = Head {
            size: body.tree_size,
            root: body.root,
            timestamp_ms: body.timestamp_ms,
        };
        let tokens: Vec<[u8; 16]> = req.items.iter().filter_map(token_of).collect();
        let s = shared.clone();
        let recorded =
            tokio::task::spawn_blocking(move || s.store.record_cosign(s.index, &head, &tokens, pending.as_deref()))
                .await
                .map_err(|e| Refusal::Unavailable(format!("store task failed: {e}")))?;
        match recorded {
            Ok(None) => {}
            Ok(Some(_)) => return Err(Refusal::TokenUsed),
            Err(e) => return Err(Refusal::Unavailable(e.to_string())),
        }
    }
    let own = own
        .await
        .map_err(|e| Refusal::Unavailable(format!("signing task failed: {e}")))?
        .map_err(|e| Refusal::Unavailable(e.to_string()))?;
    let mut signatures = vec![own];
    let msg = body.signed_bytes();
    let mut calls: FuturesUnordered<_> = others(shared)
        .map(|m| async move { (m, ask(shared, m, req, MODE_SIGN).await) })
        .collect();
    let mut errors = Vec::new();
    while signatures.len() < k {
        let Some((member, r)) = calls.next().await else { break };
        match r {
            Ok(CosignReply::Signed(sig)) if member.key().verify(&msg, &sig).is_ok() => {
                signatures.push(Cosignature {
                    member: member.index,
                    signature: sig,
                });
            }
            Ok(CosignReply::Signed(_)) => errors.push(format!("{}: bad signature", member.name)),
            Ok(other) => errors.push(format!("{}: {other:?}", member.name)),
            Err(e) => errors.push(format!("{}: {e}", member.name)),
        }
    }
    if signatures.len() < k {
        return Err(Refusal::Quorum(format!(
            "{} of {k} signatures ({})",
            signatures.len(),
            errors.join("; ")
        )));
    }
    Ok(Checkpoint {
        body: body.clone(),
        signatures,
    })
}
