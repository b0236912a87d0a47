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
use stoq::pki::Certificate;

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
    /// The item's log entry and its leaf hash, computed by the handler
    /// (on any core) rather than by the one pipeline task.
    pub(crate) entry: LogEntry,
    pub(crate) admitted: Instant,
    pub(crate) reply: oneshot::Sender<Result<Outcome, Refusal>>,
}

/// A log entry with its Merkle leaf hash.
pub(crate) type LogEntry = (Vec<u8>, Hash);

impl Job {
    /// A job for `item`, admitted now.
    pub(crate) fn new(item: BatchItem, reply: oneshot::Sender<Result<Outcome, Refusal>>) -> Self {
        let entry = item.log_entry();
        let leaf = merkle_leaf_hash(&entry);
        Job {
            item,
            entry: (entry, leaf),
            admitted: Instant::now(),
            reply,
        }
    }
}

/// Co-sign request modes.
pub(crate) const MODE_CHECK: u8 = 1;
pub(crate) const MODE_SIGN: u8 = 2;

pub(crate) async fn run(shared: Arc<Shared>, mut jobs: mpsc::Receiver<Job>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    let mut staged: Option<Staged> = None;
    loop {
        if staged.as_ref().is_some_and(|s| s.committed.is_finished()) {
            if let Some(s) = staged.take() {
                s.landed().await;
            }
        }
        // A batch some witnesses may have signed must complete before any
        // other head: they will sign nothing else at its size. (It can only
        // be left over when no round is staged: a failed commit is seen by
        // the round after it, which then fails too.)
        let pending = if staged.is_none() {
            shared.store.pending_batch()
        } else {
            Ok(None)
        };
        match pending {
            Ok(Some(bytes)) => match CosignRequest::decode(&bytes) {
                Ok(req) => match retry_pending(&shared, req).await {
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
            () = shutdown.cancelled() => None,
            j = jobs.recv() => j,
        };
        let Some(first) = first else {
            if let Some(s) = staged.take() {
                s.landed().await;
            }
            return;
        };
        let mut batch = vec![first];
        while batch.len() < shared.config.max_batch.clamp(1, crate::witness::MAX_BATCH) {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        run_round(&shared, batch, &mut staged).await;
    }
}

/// A signed round whose commit runs while the next round is built and
/// signed (the writes of one round overlap the signing of the next). The
/// in-memory tree already holds its entries.
struct Staged {
    /// Tokens it spends: the next round must not spend them again.
    tokens: Vec<[u8; 16]>,
    /// Whether the commit landed.
    committed: tokio::task::JoinHandle<bool>,
}

impl Staged {
    async fn landed(self) -> bool {
        self.committed.await.unwrap_or(false)
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

/// Refuses jobs whose token is spent (stored, in the staged round, or
/// earlier in this batch).
fn drop_spent_tokens(shared: &Shared, jobs: Vec<Job>, staged: &[[u8; 16]]) -> Vec<Job> {
    let mut seen = staged.to_vec();
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
fn build_request(shared: &Shared, items: Vec<BatchItem>, leaves: &[Hash]) -> Result<CosignRequest, Error> {
    let tree = shared.tree();
    let start = tree.size();
    let prev_frontier = Frontier::from_tree(&tree, start)?;
    let mut frontier = prev_frontier.clone();
    for l in leaves {
        frontier.push(*l);
    }
    let body = CheckpointBody {
        bundle_id: shared.bundle.id(),
        log_id: shared.index,
        tree_size: start + items.len() as u64,
        root: frontier.root(),
        timestamp_ms: now_ms(),
        batch_start: start,
        batch_root: MerkleTree::from_leaf_hashes(leaves.iter().copied()).root(),
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

async fn run_round(shared: &Arc<Shared>, jobs: Vec<Job>, staged: &mut Option<Staged>) {
    let jobs = drop_spent_tokens(shared, jobs, staged.as_ref().map_or(&[], |s| &s.tokens[..]));
    if jobs.is_empty() {
        return;
    }
    let items: Vec<BatchItem> = jobs.iter().map(|j| j.item.clone()).collect();
    let leaves: Vec<Hash> = jobs.iter().map(|j| j.entry.1).collect();
    let req = match build_request(shared, items, &leaves) {
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
        let leaves: Vec<Hash> = kept.iter().map(|j| j.entry.1).collect();
        match build_request(shared, kept.iter().map(|j| j.item.clone()).collect(), &leaves) {
            Ok(r) => r,
            Err(e) => return fail_all(shared, kept, Refusal::Unavailable(e.to_string())),
        }
    };
    let mut entries = Vec::with_capacity(kept.len());
    let mut replies = Vec::with_capacity(kept.len());
    for j in kept {
        entries.push(j.entry);
        replies.push((j.admitted, j.reply));
    }
    // Only witnesses need the batch stored as pending (see
    // `collect_signatures`).
    let pending = (shared.bundle.threshold() > 1).then(|| req.encode());
    let started = Instant::now();
    match sign_round(shared, &req, &entries, pending, staged.take()).await {
        Ok((checkpoint, certificates)) => {
            *staged = Some(stage_commit(
                shared,
                req,
                entries,
                checkpoint,
                certificates,
                replies,
                started,
            ));
        }
        Err(e) => {
            warn!(error = %e, "co-signing failed; the batch stays pending");
            for (_, r) in replies {
                let _ = r.send(Err(e.clone()));
            }
        }
    }
}

fn fail_all(shared: &Shared, jobs: Vec<Job>, why: Refusal) {
    for job in jobs {
        shared.metrics.refused.inc();
        let _ = job.reply.send(Err(why.clone()));
    }
}

type Reply = (Instant, oneshot::Sender<Result<Outcome, Refusal>>);

/// A member's check-phase refusals: (item, code, message).
type Verdicts = Vec<(u16, u16, String)>;

/// Completes the batch a previous run left pending (no one waits for it).
async fn retry_pending(shared: &Arc<Shared>, req: CosignRequest) -> Result<(), Refusal> {
    let entries = super::finalize::batch_leaves(&req);
    let (checkpoint, certificates) = sign_round(shared, &req, &entries, None, None).await?;
    if stage_commit(
        shared,
        req,
        entries,
        checkpoint,
        certificates,
        Vec::new(),
        Instant::now(),
    )
    .landed()
    .await
    {
        Ok(())
    } else {
        Err(Refusal::Unavailable("committing the pending batch failed".into()))
    }
}

/// Sign phase: the certificates and the checkpoint. `pending` is the
/// encoded batch, to store before any witness is asked (`None` when it
/// already is); `previous` is the round still being committed, which must
/// land before this round's head is signed (the head extends it).
async fn sign_round(
    shared: &Arc<Shared>,
    req: &CosignRequest,
    entries: &[LogEntry],
    pending: Option<Vec<u8>>,
    previous: Option<Staged>,
) -> Result<(Checkpoint, Vec<Certificate>), Refusal> {
    // The certificates' inclusion proofs lead to the batch root, which the
    // request fixes: sign them while the previous round is written and the
    // witnesses sign the head.
    let head = async {
        if let Some(previous) = previous {
            if !previous.landed().await {
                return Err(Refusal::Unavailable(
                    "the previous batch could not be written; retry".into(),
                ));
            }
        }
        collect_signatures(shared, req, pending).await
    };
    let (certificates, checkpoint) = tokio::join!(super::finalize::sign_certificates(shared, req, entries), head);
    let checkpoint = checkpoint.inspect_err(|_| {
        shared.metrics.quorum_failures.inc();
    })?;
    let certificates = certificates.map_err(|e| Refusal::Unavailable(format!("signing the certificates: {e}")))?;
    Ok((checkpoint, certificates))
}

/// Adds the signed round to the in-memory log (the next round builds on
/// it) and commits it in the background; the commit answers the requests.
/// A failed commit puts the in-memory log back to what is stored.
fn stage_commit(
    shared: &Arc<Shared>,
    req: CosignRequest,
    entries: Vec<LogEntry>,
    checkpoint: Checkpoint,
    certificates: Vec<Certificate>,
    replies: Vec<Reply>,
    started: Instant,
) -> Staged {
    {
        let mut tree = shared.tree.write().unwrap_or_else(|p| p.into_inner());
        for (_, h) in &entries {
            tree.push_leaf_hash(*h);
        }
    }
    let tokens = req.items.iter().filter_map(token_of).collect();
    let shared = shared.clone();
    let committed = tokio::spawn(async move {
        let signed_at = Instant::now();
        let outcomes = match super::finalize::commit(&shared, &req, &checkpoint, certificates, entries).await {
            Ok(o) => o,
            Err(e) => {
                warn!(error = %e, "committing a co-signed batch failed");
                match shared.store.leaf_hashes() {
                    Ok(leaves) => {
                        *shared.tree.write().unwrap_or_else(|p| p.into_inner()) = MerkleTree::from_leaf_hashes(leaves)
                    }
                    Err(e) => warn!(error = %e, "reloading the log after a failed commit failed"),
                }
                let e = Refusal::Unavailable(format!("committing the batch: {e}"));
                for (_, r) in replies {
                    let _ = r.send(Err(e.clone()));
                }
                return false;
            }
        };
        debug!(
            size = checkpoint.body.tree_size,
            entries = req.items.len(),
            ms = started.elapsed().as_millis() as u64,
            sign_us = (signed_at - started).as_micros() as u64,
            commit_us = signed_at.elapsed().as_micros() as u64,
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
        true
    });
    Staged { tokens, committed }
}

/// The check phase: the items to refuse, by index, with a refusal from
/// the members chosen to sign.
///
/// An item goes ahead when k-1 other members accept every item that goes
/// ahead: the round keeps the k-1 answering members that refused the
/// fewest items and drops whatever any of them refused. So a member that
/// disagrees (a stricter policy, say) or is down does not stop issuance
/// while k members remain willing, and the sign phase finds k-1 members
/// that accept the whole batch (a batch no k-1 members accept would stay
/// pending). Tokens stay single-use whatever is chosen: every signer of a
/// head records its tokens, and any two k-member quorums share a member.
///
/// Once k-1 members answered, the others get as long again (at least
/// 5 ms) to improve the choice; a member that is down costs the round
/// that grace, not the co-sign timeout.
async fn check_with_members(shared: &Arc<Shared>, req: &CosignRequest) -> Result<Vec<(u16, Refusal)>, Refusal> {
    let need = shared.bundle.threshold() - 1;
    if need == 0 {
        return Ok(Vec::new());
    }
    let started = tokio::time::Instant::now();
    let mut calls: FuturesUnordered<_> = others(shared)
        .map(|m| async move { (m.name.clone(), ask(shared, m, req, MODE_CHECK).await) })
        .collect();
    let total = calls.len();
    let mut answers: Vec<(String, Verdicts)> = Vec::new();
    let (mut errors, mut heard, mut grace_until) = (Vec::new(), 0, None);
    while heard < total {
        let next = match grace_until {
            None => calls.next().await,
            Some(until) => match tokio::time::timeout_at(until, calls.next()).await {
                Ok(next) => next,
                Err(_) => {
                    errors.push(format!("{} members too slow for this round", total - heard));
                    break;
                }
            },
        };
        let Some((name, r)) = next else { break };
        heard += 1;
        match r {
            Ok(CosignReply::Verdicts(v)) => answers.push((name, v)),
            Ok(other) => errors.push(format!("{name}: unexpected reply {other:?}")),
            Err(e) => errors.push(format!("{name}: {e}")),
        }
        if answers.len() >= need && grace_until.is_none() {
            grace_until = Some(tokio::time::Instant::now() + started.elapsed().max(Duration::from_millis(5)));
        }
    }
    if answers.len() < need {
        return Err(Refusal::Quorum(format!(
            "{} other members answered, {need} needed ({})",
            answers.len(),
            errors.join("; ")
        )));
    }
    let refused_items = |v: &[(u16, u16, String)]| {
        let mut items: Vec<u16> = v.iter().map(|(i, _, _)| *i).collect();
        items.sort_unstable();
        items.dedup();
        items.len()
    };
    answers.sort_by_key(|(_, v)| refused_items(v));
    let mut refused: Vec<(u16, Refusal)> = Vec::new();
    for (name, verdicts) in answers.into_iter().take(need) {
        for (i, code, message) in verdicts {
            if !refused.iter().any(|(j, _)| *j == i) {
                refused.push((
                    i,
                    Refusal::ByMember {
                        member: name.clone(),
                        code,
                        message,
                    },
                ));
            }
        }
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
